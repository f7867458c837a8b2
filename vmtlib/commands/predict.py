"""``python -m vmtlib predict --adapter FILE IMAGE... --out DIR``: predictions as PNGs."""

from __future__ import annotations

import argparse

from vmtlib.backbone import pretrained_arg


def run(args: argparse.Namespace) -> int:
    from vmtlib.adapter_file import load_adapter
    from vmtlib.devices import resolve_device
    from vmtlib.predict import predict_images

    device = resolve_device(args.device)
    model = load_adapter(args.adapter, pretrained=args.pretrained, device=device)
    written = predict_images(model, args.images, args.out, img_size=args.img_size,
                             batch_size=args.batch_size, panel=not args.no_panel,
                             progress=not args.no_progress)
    n_files = sum(len(w) for w in written)
    print(f"wrote {n_files} files for {len(written)} image(s) into {args.out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "predict", help="predict every task on your own images (one PNG per task per image)",
        description="For each IMAGE (any size, any format PIL reads) write OUT/<name>_<task>.png "
                    "at the image's own size and OUT/<name>_panel.png; see vmtlib.predict.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--adapter", required=True, help="adapter file (.safetensors) from export")
    p.add_argument("--out", required=True, help="folder for the PNGs (created)")
    p.add_argument("--pretrained", type=pretrained_arg, default=None,
                   help="backbone weights: true | false | a weights file "
                        "(default: those recorded in the adapter's config)")
    p.add_argument("--img-size", type=int, default=None,
                   help="square input side (default: the adapter's training size)")
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass (4)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto)")
    p.add_argument("--no-panel", action="store_true", help="skip the side-by-side figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p

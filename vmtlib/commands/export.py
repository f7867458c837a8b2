"""``python -m vmtlib export --run DIR --out FILE [--fp16]``: a run's adapter file."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    from vmtlib.adapter_file import config_path, export_run

    path = export_run(args.run, args.out, fp16=args.fp16)
    config = json.loads(config_path(path).read_text())
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {config['tensors']} tensors, "
          f"{config['dtype']}) and {config_path(path)}")
    print(f"load it with vmtlib.load_adapter({str(path)!r}) or "
          f"python -m vmtlib predict --adapter {path} IMAGE... --out DIR")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="write a trained run as an adapter file (safetensors + JSON config)",
        description="Write the trainable tensors and decoders of a run as FILE (.safetensors) "
                    "and its config as FILE with .json; see vmtlib.adapter_file.")
    p.add_argument("--run", required=True, help="run directory (config.json, checkpoint.pt)")
    p.add_argument("--out", required=True, help="adapter file to write, ending in .safetensors")
    p.add_argument("--fp16", action="store_true",
                   help="store float tensors as float16 (half the size, for shipping)")
    p.set_defaults(func=run)
    return p

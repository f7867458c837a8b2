"""Does the shipped ``swin_nano`` transfer? A decoder probe, frozen pretrained vs random.

For each backbone (``random``: timm's initialisation; ``pretrained``: the
shipped ``vmtlib/weights/swin_nano.safetensors``, or the file ``--weights``
names; or a path to other weights)
this builds ``build_model("decoders_only", backbone="swin_nano", tasks=all four,
img_size=128)`` with the same torch seed, so the four SegFormer decoders
start identical and only the frozen backbone differs. It then trains the
decoders for ``--steps`` steps of ``--batch`` SyntheticScenes (Adam, constant
``--lr``, the library's losses, summed with the tasks' weights) and evaluates
them with the library's meters on a held-out split of different seed. With
several ``--seeds`` (decoder initialisation and batch order) each backbone's
features are computed once, the decoders are trained once per seed, and the
report gives per task the mean with a 95% interval over seeds and, against the
first backbone that is not a ``random``/``hybrid``/``reset`` spec (the
pretrained one), the paired difference of every other backbone
(:mod:`vmtlib.stats`).

The backbone is frozen, so its features are computed once per image and
cached (no augmentation; inputs ImageNet-normalised like the training
pipeline); the probe then costs about 2 minutes per backbone on two threads
(about 3 on one; ``wall_time_s`` in the JSONs).
Results go to ``--out`` (JSON) and a table on stdout::

    .venv/bin/python scripts/probe_transfer.py                # random vs pretrained
    .venv/bin/python scripts/probe_transfer.py --backbones random runs/x.safetensors
    .venv/bin/python scripts/probe_transfer.py --backbones hybrid:0,1 hybrid:2,3 reset:2,3
    .venv/bin/python scripts/probe_transfer.py --weights runs/x.safetensors --seeds 0 1 2 \
        --backbones random pretrained reset:0 reset:1 reset:2 reset:3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmtlib.backbone import take_stages, weights_fingerprint  # noqa: E402
from vmtlib.data.synthetic import SyntheticScenes  # noqa: E402
from vmtlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vmtlib.losses import task_loss  # noqa: E402
from vmtlib.metrics import compute_all, make_meters  # noqa: E402
from vmtlib.model import MultiTaskModel, build_model  # noqa: E402
from vmtlib.stats import mean_ci, paired_ci  # noqa: E402
from vmtlib.tasks import ALL_TASKS, get_task  # noqa: E402

HEADLINE = {t: get_task(t).metric for t in ALL_TASKS}


def load_split(n: int, seed: int, size: int) -> dict[str, torch.Tensor]:
    """``n`` SyntheticScenes of ``seed`` stacked; images ImageNet-normalised."""
    ds = SyntheticScenes(n, size=size, seed=seed)
    items = [ds[i] for i in range(n)]
    out = {k: torch.stack([it[k] for it in items]) for k in ("image", *ALL_TASKS)}
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out["image"] = (out["image"] - mean) / std
    return out


@torch.no_grad()
def encode(model: MultiTaskModel, images: torch.Tensor, chunk: int = 32) -> list[torch.Tensor]:
    """The frozen backbone's four stage features of ``images`` (shared by all tasks)."""
    model.encoder.eval()
    task = model.tasks[0]
    parts = [model.encoder(images[i:i + chunk])[task] for i in range(0, len(images), chunk)]
    return [torch.cat([p[s] for p in parts]) for s in range(len(parts[0]))]


def decode(model: MultiTaskModel, feats: list[torch.Tensor], size: tuple[int, int]
           ) -> dict[str, torch.Tensor]:
    """Decoder outputs at the input resolution, as ``MultiTaskModel.forward`` does."""
    return {t: F.interpolate(model.decoders[t](feats), size=size, mode="bilinear",
                             align_corners=False) for t in model.tasks}


def probe(spec: str, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor],
          args: argparse.Namespace) -> dict[str, Any]:
    """Train the decoders on frozen backbone ``spec`` once per seed and evaluate them.

    Two diagnostic specs ask which stages carry the transfer, with S, S' in 0-3:
    ``hybrid:S,S'`` is the shipped weights with the *features* of stages S, S' taken
    from the ``random`` backbone (a second network fed the same images);
    ``reset:S,S'`` is the shipped weights with the *weights* of stages S, S' (their
    patch merging, and for stage 0 the patch embedding, included) put back to the
    ``random`` backbone's, in one network (:func:`vmtlib.backbone.take_stages`).
    """
    kind, _, stages = spec.partition(":")
    swapped = [int(x) for x in stages.split(",")] if kind in ("hybrid", "reset") else []
    base: bool | str = str(args.weights) if args.weights else True
    pretrained: bool | str = {"random": False, "pretrained": base}.get(spec, spec)
    if swapped:
        pretrained = base
        torch.manual_seed(0)  # the random backbone of the ``random`` spec, exactly
        donor = build_model("decoders_only", backbone="swin_nano", tasks=ALL_TASKS,
                            pretrained=False, img_size=args.size)
    torch.manual_seed(0)
    model = build_model("decoders_only", backbone="swin_nano", tasks=ALL_TASKS,
                        pretrained=pretrained, img_size=args.size)
    if kind == "reset":
        backbone = model.encoder.backbone
        backbone.load_state_dict(take_stages(donor.encoder.backbone.state_dict(),
                                             backbone.state_dict(), tuple(swapped)))
        swapped = []  # the features are the model's own
    t0 = time.time()
    f_train = encode(model, train["image"])
    f_val = encode(model, val["image"])
    if swapped:
        d_train, d_val = encode(donor, train["image"]), encode(donor, val["image"])
        for s in swapped:
            f_train[s], f_val[s] = d_train[s], d_val[s]
    t_enc = time.time() - t0
    runs = []
    for seed in args.seeds:
        torch.manual_seed(seed)  # the decoders that build_model draws after seed ``seed``
        fresh = build_model("decoders_only", backbone="swin_nano", tasks=ALL_TASKS,
                            pretrained=False, img_size=args.size)
        model.decoders.load_state_dict(fresh.decoders.state_dict())
        runs.append(train_decoders(model, f_train, f_val, train, val, seed, args))
    ci = {t: mean_ci([r["headline"][t] for r in runs]) for t in ALL_TASKS}
    return {"backbone": spec, "weights": weights_fingerprint("swin_nano", pretrained),
            "seeds": list(args.seeds), "runs": runs,
            "headline": {t: c.mean for t, c in ci.items()},
            "headline_ci": {t: c.to_json() for t, c in ci.items()},
            "metrics": runs[0]["metrics"], "curve": runs[0]["curve"],
            "encode_s": t_enc, "train_s": sum(r["train_s"] for r in runs)}


def train_decoders(model: MultiTaskModel, f_train: list[torch.Tensor],
                   f_val: list[torch.Tensor], train: dict[str, torch.Tensor],
                   val: dict[str, torch.Tensor], seed: int, args: argparse.Namespace
                   ) -> dict[str, Any]:
    """One seed of the probe: Adam on the decoders over cached features, then the meters."""
    params = [p for p in model.decoders.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    n = len(train["image"])
    order = torch.cat([torch.randperm(n, generator=gen)
                       for _ in range(args.steps * args.batch // n + 1)])
    size = tuple(train["image"].shape[-2:])
    model.decoders.train()
    curve = []
    t0 = time.time()
    for step in range(args.steps):
        idx = order[step * args.batch:(step + 1) * args.batch]
        out = decode(model, [f[idx] for f in f_train], size)
        losses = {t: task_loss(t, out[t], train[t][idx]) for t in ALL_TASKS}
        loss = sum(get_task(t).loss_weight * losses[t] for t in ALL_TASKS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0 or step == 0:
            curve.append({"step": step + 1, "loss": float(loss.detach()),
                          **{t: float(v.detach()) for t, v in losses.items()}})
    t_train = time.time() - t0
    model.decoders.eval()
    meters = make_meters(ALL_TASKS)
    with torch.no_grad():
        for i in range(0, len(val["image"]), 32):
            out = decode(model, [f[i:i + 32] for f in f_val], size)
            for t in ALL_TASKS:
                meters[t].update(out[t], val[t][i:i + 32])
    metrics = compute_all(meters)
    return {"seed": seed, "metrics": metrics,
            "headline": {t: metrics[t][HEADLINE[t]] for t in ALL_TASKS},
            "curve": curve, "train_s": t_train}


def paired_against(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired differences (95% interval over the seeds) of every backbone minus the
    reference, the first one that is a weight file or ``pretrained``; ``{}`` if none."""
    refs = [r for r in results if r["backbone"].partition(":")[0]
            not in ("random", "hybrid", "reset")]
    if not refs or len(refs[0]["runs"]) < 2:
        return {}
    ref = refs[0]
    by_seed = {r["backbone"]: {run["seed"]: run["headline"] for run in r["runs"]}
               for r in results}

    def per_task(name: str, t: str) -> dict[int, float]:
        return {s: h[t] for s, h in by_seed[name].items()}

    return {"reference": ref["backbone"],
            "differences": {r["backbone"]: {t: paired_ci(per_task(r["backbone"], t),
                                                         per_task(ref["backbone"], t)).to_json()
                                            for t in ALL_TASKS}
                            for r in results if r is not ref}}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backbones", nargs="+", default=["random", "pretrained"],
                   help="'random', 'pretrained' (the shipped weights), weight files, or "
                        "'hybrid:2,3' / 'reset:2,3' (see probe())")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--train-n", type=int, default=768)
    p.add_argument("--val-n", type=int, default=128)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--val-seed", type=int, default=2)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="decoder initialisations and batch orders (0: build_model's own)")
    p.add_argument("--weights", type=Path, default=None,
                   help="weights that 'pretrained', 'hybrid:' and 'reset:' mean (default: "
                        "the shipped file)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/probe_transfer.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train = load_split(args.train_n, args.train_seed, args.size)
    val = load_split(args.val_n, args.val_seed, args.size)
    print(f"data: {args.train_n} train (seed {args.train_seed}) + {args.val_n} val "
          f"(seed {args.val_seed}) scenes at {args.size}px in {time.time() - t0:.0f}s")
    results = []
    for spec in args.backbones:
        r = probe(spec, train, val, args)
        results.append(r)
        print(f"{spec}: " + ", ".join(f"{t} {v:.2f}" for t, v in r["headline"].items())
              + f"  (encode {r['encode_s']:.0f}s, train {r['train_s']:.0f}s)", flush=True)
    header = f"{'backbone':<28}" + "".join(f"{t + ' ' + HEADLINE[t]:>20}" for t in ALL_TASKS)
    print(header)
    for r in results:
        print(f"{Path(r['backbone']).name:<28}"
              + "".join(f"{str(mean_ci([run['headline'][t] for run in r['runs']])):>20}"
                        for t in ALL_TASKS))
    paired = paired_against(results)
    if paired:
        print(f"paired differences against {paired['reference']} (95% interval over seeds; "
              "* resolved):")
        for name, diff in paired["differences"].items():
            cells = (f"{d['mean']:+.2f} ± {d['half']:.2f}{'*' if d['resolved'] else ' '}"
                     for d in (diff[t] for t in ALL_TASKS))
            print(f"{Path(name).name:<28}" + "".join(f"{c:>20}" for c in cells))
    report = {
        "protocol": {
            "method": "decoders_only", "backbone": "swin_nano", "tasks": list(ALL_TASKS),
            "data": f"SyntheticScenes train n={args.train_n} seed={args.train_seed}, "
                    f"val n={args.val_n} seed={args.val_seed}, {args.size}px, ImageNet-normalised, "
                    "no augmentation (frozen features cached)",
            "optimiser": f"Adam lr={args.lr} constant, {args.steps} steps, batch {args.batch}",
            "losses": "vmtlib.losses.task_loss, weighted by vmtlib.tasks loss_weight",
            "metrics": "vmtlib.metrics (normals 'mean' is an angle error: lower is better)",
            "seeds": list(args.seeds), "threads": args.threads,
            "weights": str(args.weights) if args.weights else "shipped",
            "command": "python scripts/probe_transfer.py " + " ".join(sys.argv[1:]),
        },
        "results": results,
        "paired": paired,
        "wall_time_s": time.time() - t0,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        os.replace(tmp, args.out)
    return report


if __name__ == "__main__":
    main()

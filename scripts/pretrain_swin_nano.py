"""Pretrain the CPU course's ``swin_nano`` on radial contours, classified and masked (all stages).

The objective, the images and why they differ from the downstream tasks are
documented in :mod:`vmtlib.pretext` (formula-driven supervised learning, after
Kataoka et al.'s RCDB, on half of each batch; SimMIM's masked image modelling on
the other half); how the shipped weights were made is in
``vmtlib/weights/README.md``. The run that made them::

    .venv/bin/python scripts/pretrain_swin_nano.py --ship
    # interrupted? the same command with --resume continues from the checkpoint

Without ``--ship`` every output goes under ``runs/pretrain_swin_nano/`` and no
tracked file is touched; ``--ship`` writes the weights, the log and the figure to
their committed places (``vmtlib/weights/``, ``benchmarks/results/``, ``figures/``).

Data: an endless deterministic stream, batch ``k`` is samples
``k * batch .. (k + 1) * batch - 1`` of ``--seed`` (every image is new), rendered
by a DataLoader worker while the main process trains. Optimiser: AdamW
(no weight decay on norms, biases and relative-position tables), linear
warmup then cosine decay, gradient clipping at 1, bfloat16 autocast.

Outputs: the backbone's weights in float16 safetensors (written atomically at
the end, the pretext head is not included; its metadata names the objective,
the held-out accuracy and ``pretext_stages``), a resumable checkpoint every
``--ckpt-every`` seconds (atomic; tensors and plain data only, loaded with
``weights_only=True``), the JSON log (loss curve, held-out evaluations, wall
time, machine) and a figure (pretext samples and the training curves).

``--steps 2 --batch 2 --val-n 4 --out-dir TMP`` is a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vmtlib.backbone import NANO_WEIGHTS, SwinBackbone, build_backbone  # noqa: E402
from vmtlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vmtlib.pretext import (  # noqa: E402
    FACTORS,
    NUM_CLASSES,
    PixelHead,
    PretextHead,
    class_name,
    make_batch,
    mim_loss,
    pretext_loss,
    render_contour,
)
from vmtlib.utils import atomic_path  # noqa: E402

OBJECTIVE = ("radial contours (vmtlib.pretext): 64-way classification of formula-defined "
             "closed contours (n-gon x lobes x nesting) under rotation, scale, aspect, "
             "style, clutter and lighting nuisances, on half of each batch; SimMIM masked "
             "image modelling (60% of 32 px blocks, L1, linear head on the last stage) on "
             "the other half")
RUN_DIR = ROOT / "runs" / "pretrain_swin_nano"
SHIPPED = {"out": NANO_WEIGHTS, "log": ROOT / "benchmarks/results/pretrain_swin_nano.json",
           "figure": ROOT / "figures/pretrain_swin_nano.png"}

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """ImageNet normalisation, as ``vmtlib.data.transforms.Normalize`` does downstream."""
    return (images - _MEAN) / _STD


class _Stream(Dataset):
    """Samples ``start, start + 1, ...`` of ``seed`` (one DataLoader item per batch)."""

    def __init__(self, seed: int, start_step: int, steps: int, batch: int, size: int) -> None:
        self.seed, self.start, self.steps = seed, start_step, steps
        self.batch, self.size = batch, size

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = self.start + i
        return make_batch(self.seed, range(k * self.batch, (k + 1) * self.batch), self.size)


def lr_at(step: int, args: argparse.Namespace) -> float:
    """Linear warmup to ``--lr`` over ``--warmup`` steps, then a cosine to ``--min-lr``."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min((step - args.warmup) / max(1, args.steps - args.warmup), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1.0 + math.cos(math.pi * t))


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices, none on norms, biases and position tables."""
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            if p.ndim < 2 or "relative_position_bias_table" in name:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def losses(backbone: SwinBackbone, head: PretextHead, pixel_head: PixelHead,
           batch: dict[str, torch.Tensor], bf16: bool, label_smoothing: float
           ) -> tuple[torch.Tensor, dict[str, float]]:
    """One forward pass of a batch: the factors' cross-entropies on its unmasked samples
    plus the masked-pixel L1 on its masked ones (``vmtlib.pretext``), and their metrics."""
    x = normalize(batch["image"])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = backbone(x * (1 - batch["mask"]))
        logits = head(feats)
        pixels = pixel_head(feats)
    keep, masked = ~batch["masked"], batch["masked"]
    cls, m = pretext_loss({f: v[keep] for f, v in logits.items()},
                          {f: batch[f][keep] for f in FACTORS}, label_smoothing)
    rec = mim_loss(pixels[masked], x[masked], batch["mask"][masked])
    return cls + rec, {**m, "loss": m["loss"] + rec.item(), "cls_loss": m["loss"],
                       "mim_l1": rec.item()}


@torch.no_grad()
def evaluate(backbone: SwinBackbone, head: PretextHead, pixel_head: PixelHead,
             val: dict[str, torch.Tensor], bf16: bool, chunk: int = 128) -> dict[str, float]:
    """Held-out metrics on ``val``: accuracy (percent) on its unmasked half, masked-pixel
    L1 on its masked half, and ``mim_l1_mean``, the L1 of predicting the mean colour
    (zero after normalisation) for the same pixels: the baseline reconstruction beats."""
    modules = (backbone, head, pixel_head)
    for module in modules:
        module.eval()
    sums: dict[str, float] = {}
    n = val["image"].shape[0]
    for i in range(0, n, chunk):
        part = {k: v[i:i + chunk] for k, v in val.items()}
        w = part["image"].shape[0] / n
        _, m = losses(backbone, head, pixel_head, part, bf16, label_smoothing=0.0)
        masked = part["masked"]
        m["mim_l1_mean"] = mim_loss(torch.zeros_like(part["image"][masked]),
                                    normalize(part["image"][masked]),
                                    part["mask"][masked]).item()
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + w * v
    for module in modules:
        module.train()
    return sums


def save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
                 ) -> dict[str, Any]:
    """Write a backbone state dict as float16 safetensors (atomically)."""
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o644)
    data = path.read_bytes()
    return {"path": _rel(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "dtype": "float16", "tensors": len(state)}


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def make_figure(log: dict[str, Any], path: Path, seed: int, size: int) -> None:
    """Twelve held-out pretext samples with their classes, and the training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 4.4))
    grid = fig.add_gridspec(3, 6, width_ratios=[1, 1, 1, 1, 0.2, 3.2])
    for k in range(12):
        ax = fig.add_subplot(grid[k // 4, k % 4])
        s = render_contour(seed, k, size)
        ax.imshow(s.image.transpose(1, 2, 0))
        ax.set_axis_off()
        ax.set_title(f"{class_name(s.label)} ({s.style})", fontsize=6.5)
    train, evals = log["train_log"], log["eval_log"]
    ax = fig.add_subplot(grid[:, 5])
    mim = ax.twinx()
    mim.plot([r["step"] for r in evals], [r["mim_l1"] for r in evals], "s--", ms=3,
             color="tab:red", label="held-out masked-pixel L1 (right)")
    mim.axhline(evals[-1]["mim_l1_mean"] if evals else 0, color="tab:red", lw=0.8, ls=":",
                label="L1 of the mean colour")
    mim.set_ylabel("masked-pixel L1 (normalised units)")
    mim.set_ylim(bottom=0)
    mim.legend(fontsize=7, loc="upper right")
    steps = [r["step"] for r in train]
    ax.plot(steps, [r["acc"] for r in train], label="training batches", lw=1, alpha=0.6)
    ax.plot([r["step"] for r in evals], [r["acc"] for r in evals], "o-", ms=3,
            label=f"held-out ({log['config']['val_n']} images of seed {seed})")
    ax.axhline(100 / NUM_CLASSES, color="grey", lw=0.8, ls=":", label="chance")
    ax.set_ylim(0, 100)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    final = log["final"]
    fig.suptitle(f"swin_nano pretraining on radial contours, half of each batch classified, "
                 f"half masked and reconstructed: {final.get('steps', 0)} steps of "
                 f"{log['config']['batch']}, held-out accuracy {final.get('acc', 0):.1f}% "
                 f"({log['wall_time_s'] / 60:.0f} min on {log['machine']['cpus_used']} CPU "
                 "threads)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72, format="png")
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=128, help="image resolution")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="training stream and initialisation")
    p.add_argument("--val-seed", type=int, default=10_000)
    p.add_argument("--val-n", type=int, default=512)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--ckpt-every", type=float, default=120.0, help="seconds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast (weights and optimiser fp32)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers rendering batches")
    p.add_argument("--out-dir", type=Path, default=RUN_DIR,
                   help="checkpoint, and weights/log/figure unless --ship")
    p.add_argument("--ship", action="store_true",
                   help="write the weights, log and figure to their committed paths")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out-dir")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "size", "val_n", "eval_every", "log_every", "threads"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.size % 32:
        p.error(f"--size must be a multiple of 32, got {args.size}")
    paths = SHIPPED if args.ship else {
        "out": args.out_dir / "swin_nano.safetensors",
        "log": args.out_dir / "pretrain_swin_nano.json",
        "figure": args.out_dir / "pretrain_swin_nano.png"}
    args.out, args.log, args.figure = paths["out"], paths["log"], paths["figure"]
    args.ckpt = args.out_dir / "checkpoint.pt"
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    backbone = build_backbone("swin_nano", pretrained=False, img_size=args.size)
    head = PretextHead(backbone.dims)
    pixel_head = PixelHead(backbone.dims)
    opt = torch.optim.AdamW(param_groups([backbone, head, pixel_head], args.weight_decay),
                            lr=args.lr)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    log: dict[str, Any] = {
        "objective": OBJECTIVE,
        "config": config,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "cpus_used": args.threads,
                    "torch": torch.__version__, "python": platform.python_version()},
        "params_backbone": sum(p.numel() for p in backbone.parameters()),
        "train_log": [], "eval_log": [], "final": {}, "wall_time_s": 0.0,
    }
    start = 0
    if args.resume:
        if not args.ckpt.is_file():
            sys.exit(f"--resume: no checkpoint at {args.ckpt}")
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=True)
        backbone.load_state_dict(ck["backbone"])
        head.load_state_dict(ck["head"])
        pixel_head.load_state_dict(ck["pixel_head"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["torch_rng"])
        start, log = ck["step"], json.loads(ck["log"])
        log.setdefault("resumed_at", []).append(start)
        log.setdefault("resumed_config", []).append(config)  # the arguments in force from here
        print(f"resumed from {args.ckpt} at step {start}")
    elif args.ckpt.is_file():
        sys.exit(f"{args.ckpt} exists: pass --resume to continue it, or remove it to start over")

    def checkpoint(step: int) -> None:
        with atomic_path(args.ckpt) as tmp:
            torch.save({"backbone": backbone.state_dict(), "head": head.state_dict(),
                        "pixel_head": pixel_head.state_dict(),
                        "opt": opt.state_dict(), "step": step, "log": json.dumps(log),
                        "torch_rng": torch.get_rng_state()}, tmp)

    val = make_batch(args.val_seed, range(args.val_n), args.size)
    loader = DataLoader(_Stream(args.seed, start, args.steps, args.batch, args.size),
                        batch_size=None, shuffle=False, num_workers=args.workers,
                        prefetch_factor=2 if args.workers else None)
    for module in (backbone, head, pixel_head):
        module.train()
    t_run = time.time() - log["wall_time_s"]  # wall time accumulates over resumes
    t_ckpt = time.time()
    window: dict[str, float] = {}
    n_window = 0
    bar = tqdm(loader, total=args.steps, initial=start, desc="pretrain", dynamic_ncols=True,
               mininterval=10.0)
    step = start
    for batch in bar:
        lr = lr_at(step, args)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, m = losses(backbone, head, pixel_head, batch, args.bf16, args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
        opt.step()
        step += 1
        for k, v in m.items():
            window[k] = window.get(k, 0.0) + v
        n_window += 1
        if step % args.log_every == 0 or step == args.steps:
            rec = {"step": step, "lr": lr, **{k: v / n_window for k, v in window.items()},
                   "elapsed_s": time.time() - t_run}
            log["train_log"].append(rec)
            bar.set_postfix(lr=f"{lr:.1e}", loss=f"{rec['loss']:.3f}", acc=f"{rec['acc']:.1f}",
                            v=f"{rec['vertices_acc']:.0f}", k=f"{rec['lobes_acc']:.0f}",
                            x=f"{rec['nested_acc']:.0f}", s=f"{rec['style_acc']:.0f}",
                            mim=f"{rec['mim_l1']:.3f}")
            window, n_window = {}, 0
        if step % args.eval_every == 0 or step == args.steps:
            ev = {"step": step, **evaluate(backbone, head, pixel_head, val, args.bf16),
                  "elapsed_s": time.time() - t_run}
            log["eval_log"].append(ev)
            tqdm.write(f"step {step}: held-out accuracy {ev['acc']:.1f}% (vertices "
                       f"{ev['vertices_acc']:.1f}, lobes {ev['lobes_acc']:.1f}, nesting "
                       f"{ev['nested_acc']:.1f}, style {ev['style_acc']:.1f}); masked-pixel "
                       f"L1 {ev['mim_l1']:.3f} (mean colour {ev['mim_l1_mean']:.3f})")
        log["wall_time_s"] = time.time() - t_run
        if time.time() - t_ckpt > args.ckpt_every:
            checkpoint(step)
            t_ckpt = time.time()
    bar.close()

    log["wall_time_s"] = time.time() - t_run
    final = log["eval_log"][-1] if log["eval_log"] else {}
    log["final"] = {**final, "steps": step, "images_seen": step * args.batch}
    meta = {"objective": "radial contours classified + SimMIM, vmtlib.pretext",
            "script": "scripts/pretrain_swin_nano.py",
            "steps": str(step), "batch": str(args.batch), "size": str(args.size),
            "seed": str(args.seed), "input": "ImageNet-normalised RGB",
            "heldout_acc": f"{final.get('acc', float('nan')):.2f}",
            "heldout_mim_l1": f"{final.get('mim_l1', float('nan')):.4f}",
            "num_classes": str(NUM_CLASSES), "pretext_stages": "0,1,2,3", "initial_stages": ""}
    log["weights"] = {**save_weights(backbone.state_dict(), args.out, meta),
                      "pretext_stages": meta["pretext_stages"]}
    checkpoint(step)
    with atomic_path(args.log) as tmp:
        tmp.write_text(json.dumps(log, indent=1) + "\n")
    make_figure(log, args.figure, args.val_seed, args.size)
    print(f"done: {step} steps in {log['wall_time_s'] / 60:.1f} min; held-out "
          f"accuracy {final.get('acc', float('nan')):.1f}%; weights {args.out} "
          f"({log['weights']['bytes'] / 1e6:.2f} MB)")
    return log


if __name__ == "__main__":
    main()

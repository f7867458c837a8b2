"""Pretrain the CPU course's ``swin_nano`` on the relief-glyph pretext task.

The objective, the images and why they differ from the downstream tasks are
documented in :mod:`vmtlib.pretext`; how the shipped weights were made is in
``vmtlib/weights/README.md``. The run that made them::

    nohup .venv/bin/python scripts/pretrain_swin_nano.py > runs/pretrain_swin_nano.log 2>&1 &
    # interrupted? the same command with --resume continues from the checkpoint

Data: an endless deterministic stream, batch ``k`` is samples
``k * batch .. (k + 1) * batch - 1`` of ``--seed`` (every image is new), rendered
by a DataLoader worker while the main process trains. Optimiser: AdamW
(no weight decay on norms, biases and relative-position tables), linear
warmup then cosine decay, gradient clipping at 1.

Outputs: the backbone's weights in float16 safetensors (``--out``, written
atomically at the end, the pretext head is not included; only the stages of
``--pretext-stages`` carry the pretext, the others are written as they were
initialised, see :func:`vmtlib.backbone.take_stages`), a resumable
checkpoint every ``--ckpt-every`` seconds (``--ckpt``, atomic), the JSON log
(``--log``: loss curve, held-out evaluations, wall time, machine) and a figure
(``--figure``: pretext samples and the training curves).

``--steps 2 --batch 2 --val-n 4`` with paths in a temporary folder is a smoke
run of a few seconds.
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

from vmtlib.backbone import NANO_WEIGHTS, SwinBackbone, build_backbone, take_stages  # noqa: E402
from vmtlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vmtlib.pretext import (  # noqa: E402
    COLOURS,
    RELIEFS,
    SHAPES,
    PretextHead,
    make_batch,
    pretext_loss,
    render_pretext,
)

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


def progress(step: int, elapsed_s: float, args: argparse.Namespace) -> float:
    """Fraction of the run done: steps over ``--steps`` or wall time over
    ``--time-budget``, whichever is further (the run ends at 1)."""
    p = step / args.steps
    if args.time_budget > 0:
        p = max(p, elapsed_s / (60.0 * args.time_budget))
    return min(p, 1.0)


def lr_at(step: int, p: float, p_warm: float, args: argparse.Namespace) -> float:
    """Linear warmup to ``--lr`` over ``--warmup`` steps, then a cosine in the
    progress ``p`` (from ``p_warm``, the progress at the end of the warmup) to
    ``--min-lr``. Without a time budget the progress is ``step / steps``, the
    usual step-based schedule."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(max((p - p_warm) / max(1e-9, 1.0 - p_warm), 0.0), 1.0)
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


@torch.no_grad()
def evaluate(backbone: SwinBackbone, head: PretextHead, val: dict[str, torch.Tensor],
             chunk: int = 64) -> dict[str, float]:
    """Pretext metrics on the held-out batch ``val`` (weighted by chunk size)."""
    backbone.eval()
    head.eval()
    n = val["image"].shape[0]
    total: dict[str, float] = {}
    for i in range(0, n, chunk):
        part = {k: v[i:i + chunk] for k, v in val.items()}
        _, m = pretext_loss(head(backbone(normalize(part["image"]))), part)
        for k, v in m.items():
            total[k] = total.get(k, 0.0) + v * part["image"].shape[0] / n
    backbone.train()
    head.train()
    return total


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_write_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_stages(value: str) -> tuple[int, ...]:
    stages = tuple(sorted({int(x) for x in value.split(",") if x.strip()}))
    if not stages or not set(stages) <= {0, 1, 2, 3}:
        raise argparse.ArgumentTypeError(f"--pretext-stages {value!r}: expected a comma-separated "
                                         "subset of 0,1,2,3 such as '0,1'")
    return stages


def save_weights(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
                 ) -> dict[str, Any]:
    """Write a backbone state dict as float16 safetensors (atomically)."""
    from safetensors.torch import save_file

    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    data = path.read_bytes()
    return {"path": _rel(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "dtype": "float16", "tensors": len(state)}


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def make_figure(log: dict[str, Any], path: Path, seed: int, size: int) -> None:
    """Four held-out pretext samples with their labels, and the training curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.6))
    grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 0.15, 1.6, 1.6])
    for k in range(4):
        ax = fig.add_subplot(grid[k // 2, k % 2])
        s = render_pretext(seed, k, size)
        ax.imshow(s.image.transpose(1, 2, 0))
        ax.set_axis_off()
        lines = [" | ".join(f"{SHAPES[lab // len(RELIEFS)]}/{RELIEFS[lab % len(RELIEFS)]}"
                            f"/{COLOURS[c]}" for lab, c in zip(r_lab, r_col))
                 for r_lab, r_col in zip(s.label, s.colour)]
        ax.set_title("\n".join(dict.fromkeys(lines)), fontsize=5.5)
    train, evals = log["train_log"], log["eval_log"]
    ax = fig.add_subplot(grid[:, 3])
    steps = [r["step"] for r in train]
    ax.plot(steps, [r["loss"] for r in train], label="total", lw=1)
    ax.plot(steps, [r["shape_loss"] for r in train], label="shape CE", lw=1)
    ax.plot(steps, [r["relief_loss"] for r in train], label="relief CE", lw=1)
    ax.plot(steps, [r["colour_loss"] for r in train], label="colour CE", lw=1)
    ax.plot(steps, [r["light_loss"] for r in train], label="light 1 - cos", lw=1)
    ax.plot(steps, [5 * r["unshaded_loss"] for r in train], label="5 x unshaded L1", lw=1)
    ax.plot(steps, [5 * r["shading_loss"] for r in train], label="5 x shading L1", lw=1)
    ax.plot(steps, [r["edges_loss"] for r in train], label="outline BCE", lw=1)
    ax.set_xlabel("step")
    ax.set_title("training loss", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(grid[:, 4])
    es = [r["step"] for r in evals]
    ax.plot(steps, [r["acc"] for r in train], label="train shape & relief", lw=1, alpha=0.6)
    ax.plot(es, [r["acc"] for r in evals], "o-", label="held-out shape & relief", ms=3)
    ax.plot(es, [r["shape_acc"] for r in evals], "v-", label="held-out shape", ms=3)
    ax.plot(es, [r["relief_acc"] for r in evals], "x-", label="held-out relief", ms=3)
    ax.plot(es, [r["colour_acc"] for r in evals], "s-", label="held-out colour", ms=3)
    ax.plot(es, [r["edges_f1"] for r in evals], "d-", label="held-out outline F1", ms=3)
    ax.axhline(100 / 64, color="grey", lw=0.8, ls=":")
    ax.set_ylim(0, 100)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot(es, [r["light_deg"] for r in evals], "^--", color="tab:red", ms=3,
             label="held-out light error (deg)")
    ax2.set_ylabel("light error (deg)", color="tab:red")
    ax2.set_ylim(0, max([r["light_deg"] for r in evals] + [1.0]) * 1.1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=6.5, loc="center right")
    ax.set_title("pretext metrics", fontsize=9)
    fig.suptitle(f"swin_nano pretraining on relief glyphs ({log['final'].get('steps', 0)} steps, "
                 f"{log['wall_time_s'] / 60:.1f} min on {log['machine']['cpus_used']} CPU threads)",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=72)
    plt.close(fig)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--steps", type=int, default=1600, help="at most this many steps")
    p.add_argument("--time-budget", type=float, default=0.0,
                   help="minutes of wall time; the cosine follows the elapsed fraction "
                        "and the run stops when it is spent (0: step-based)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128, help="mosaic resolution")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0, help="training stream and initialisation")
    p.add_argument("--val-seed", type=int, default=10_000)
    p.add_argument("--val-n", type=int, default=128)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--ckpt-every", type=float, default=180.0, help="seconds")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; 1 is faster than 2 when other jobs share the cores")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast for the forward pass (weights and optimiser fp32)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers rendering batches")
    p.add_argument("--out", type=Path, default=NANO_WEIGHTS, help="weights (.safetensors)")
    p.add_argument("--ckpt", type=Path, default=ROOT / "runs/pretrain_swin_nano/checkpoint.pt")
    p.add_argument("--log", type=Path, default=ROOT / "benchmarks/results/pretrain_swin_nano.json")
    p.add_argument("--figure", type=Path, default=ROOT / "figures/pretrain_swin_nano.png")
    p.add_argument("--pretext-stages", type=parse_stages, default=(0, 1),
                   help="stages whose pretext weights go to --out; the others (and their "
                        "patch merging) are written at their --seed initialisation")
    p.add_argument("--resume", action="store_true", help="continue from --ckpt if it exists")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    backbone = build_backbone("swin_nano", pretrained=False, img_size=args.size)
    init_state = {k: v.clone() for k, v in backbone.state_dict().items()}
    head = PretextHead(backbone.dims)
    opt = torch.optim.AdamW(param_groups([backbone, head], args.weight_decay), lr=args.lr)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    log: dict[str, Any] = {
        "objective": "relief glyphs (vmtlib.pretext): per-tile shape x relief (64 classes), "
                     "colour (9) and light direction; dense intrinsic images (unshaded "
                     "reflectance, shading) and outlines (v3)",
        "config": config,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "cpus_used": args.threads,
                    "torch": torch.__version__, "python": platform.python_version()},
        "params_backbone": sum(p.numel() for p in backbone.parameters()),
        "train_log": [], "eval_log": [], "final": {}, "wall_time_s": 0.0,
    }
    start = 0
    if args.resume and args.ckpt.is_file():
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        backbone.load_state_dict(ck["backbone"])
        head.load_state_dict(ck["head"])
        opt.load_state_dict(ck["opt"])
        torch.set_rng_state(ck["torch_rng"])
        start, log = ck["step"], ck["log"]
        log.setdefault("resumed_at", []).append(start)
        log.setdefault("resumed_config", []).append(config)  # the arguments in force from here
        print(f"resumed from {args.ckpt} at step {start}")

    def checkpoint(step: int) -> None:
        _atomic_torch_save({"backbone": backbone.state_dict(), "head": head.state_dict(),
                            "opt": opt.state_dict(), "step": step, "log": log,
                            "torch_rng": torch.get_rng_state()}, args.ckpt)

    val = make_batch(args.val_seed, range(args.val_n), args.size)
    loader = DataLoader(_Stream(args.seed, start, args.steps, args.batch, args.size),
                        batch_size=None, shuffle=False, num_workers=args.workers,
                        prefetch_factor=2 if args.workers else None)
    backbone.train()
    head.train()
    t_run = time.time() - log["wall_time_s"]  # wall time accumulates over resumes
    t_ckpt = time.time()
    window: dict[str, float] = {}
    n_window, t_data, t_step = 0, 0.0, 0.0
    t0 = time.time()
    bar = tqdm(loader, total=len(loader.dataset), initial=0, desc="pretrain", dynamic_ncols=True,
               mininterval=5.0)
    step = start
    for batch in bar:
        t1 = time.time()
        t_data += t1 - t0
        p_now = progress(step, time.time() - t_run, args)
        if p_now >= 1.0:
            break
        if step == args.warmup and "p_warm" not in log:
            log["p_warm"] = p_now
        lr = lr_at(step, p_now, log.get("p_warm", 0.0), args)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = head(backbone(normalize(batch["image"])))
        out = {k: v.float() for k, v in out.items()}
        loss, m = pretext_loss(out, batch, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([*backbone.parameters(), *head.parameters()], 1.0)
        opt.step()
        step += 1
        t0 = time.time()
        t_step += t0 - t1
        for k, v in m.items():
            window[k] = window.get(k, 0.0) + v
        n_window += 1
        done = progress(step, time.time() - t_run, args) >= 1.0
        if step % args.log_every == 0 or done:
            rec = {"step": step, "lr": lr, **{k: v / n_window for k, v in window.items()},
                   "data_s_per_step": t_data / n_window, "step_s_per_step": t_step / n_window,
                   "elapsed_s": time.time() - t_run}
            log["train_log"].append(rec)
            bar.set_postfix(p=f"{progress(step, rec['elapsed_s'], args):.2f}", lr=f"{lr:.1e}",
                            loss=f"{rec['loss']:.3f}", shape=f"{rec['shape_acc']:.1f}",
                            relief=f"{rec['relief_acc']:.1f}", colour=f"{rec['colour_acc']:.0f}",
                            light=f"{rec['light_deg']:.1f}", s_step=f"{rec['step_s_per_step']:.2f}")
            window, n_window, t_data, t_step = {}, 0, 0.0, 0.0
        if step % args.eval_every == 0 or done:
            ev = {"step": step, **evaluate(backbone, head, val), "elapsed_s": time.time() - t_run}
            log["eval_log"].append(ev)
            tqdm.write(f"step {step}: held-out acc {ev['acc']:.1f}% shape {ev['shape_acc']:.1f}% "
                       f"relief {ev['relief_acc']:.1f}% colour {ev['colour_acc']:.1f}% "
                       f"light {ev['light_deg']:.1f} deg loss {ev['loss']:.3f}")
            t0 = time.time()
        log["wall_time_s"] = time.time() - t_run
        if done:
            break
        if time.time() - t_ckpt > args.ckpt_every:
            checkpoint(step)
            t_ckpt = time.time()
            t0 = time.time()
    bar.close()

    log["wall_time_s"] = time.time() - t_run
    final = log["eval_log"][-1] if log["eval_log"] else {}
    log["final"] = {**final, "steps": step, "images_seen": step * args.batch,
                    "tiles_seen_approx": step * args.batch * 4}
    meta = {"objective": "relief glyphs, vmtlib.pretext", "script": "scripts/pretrain_swin_nano.py",
            "steps": str(step), "batch": str(args.batch), "size": str(args.size),
            "seed": str(args.seed), "input": "ImageNet-normalised RGB",
            "heldout_acc": f"{final.get('acc', float('nan')):.2f}",
            "pretext_stages": ",".join(map(str, args.pretext_stages)),
            "initial_stages": ",".join(str(s) for s in range(4) if s not in args.pretext_stages)}
    # the transfer probes (vmtlib/weights/README.md) found that the pretext's stages 2-3
    # cost the normals and carry no transfer that stages 0-1 do not
    state = take_stages(backbone.state_dict(), init_state, args.pretext_stages)
    log["weights"] = {**save_weights(state, args.out, meta),
                      "pretext_stages": meta["pretext_stages"]}
    checkpoint(step)
    _atomic_write_text(json.dumps(log, indent=1) + "\n", args.log)
    make_figure(log, args.figure, args.val_seed, args.size)
    print(f"done: {step} steps in {log['wall_time_s'] / 60:.1f} min; held-out "
          f"acc {final.get('acc', float('nan')):.1f}%; weights {args.out} "
          f"({log['weights']['bytes'] / 1e6:.2f} MB)")
    return log


if __name__ == "__main__":
    main()

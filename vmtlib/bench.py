"""Throughput and memory of a method: ``python -m vmtlib bench``.

Measures, for chosen methods and task counts, training and inference images
per second and the peak GPU memory on generated tensors of the PASCAL-Context
shapes (3 x S x S images; labels of every task), so it runs anywhere:

- on a GPU at the papers' 512 x 512 and batch 12, with bf16 autocast,
  channels-last, the fused Adam and (``--compile``) ``torch.compile``;
- on a CPU at a small size by default (128 x 128, batch 2), for a sanity check.

The timed loop never synchronises with the host inside a step: the device is
synchronised once before and once after the timed steps.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext
from typing import Any

import torch

from vmtlib.losses import multitask_loss
from vmtlib.model import build_model, count_parameters
from vmtlib.tasks import ALL_TASKS, get_task

PASCAL_TRAIN_IMAGES = 4998


@dataclasses.dataclass
class BenchConfig:
    """One measurement. ``img_size`` / ``batch_size`` default by device (GPU: 512 / 12)."""

    method: str = "vmt_adapter"
    backbone: str = "swin_tiny"
    num_tasks: int = 4
    img_size: int | None = None
    batch_size: int | None = None
    steps: int = 20
    warmup: int = 5
    device: str | None = None
    compile: bool = False

    def resolved(self) -> BenchConfig:
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        gpu = device.startswith("cuda")
        return dataclasses.replace(
            self, device=device,
            img_size=self.img_size or (512 if gpu else 128),
            batch_size=self.batch_size or (12 if gpu else 2),
        )


def task_ids(num_tasks: int) -> tuple[str, ...]:
    """The four PASCAL tasks, then numbered copies (``semseg#2``, ...) beyond four."""
    return tuple(
        ALL_TASKS[i % 4] if i < 4 else f"{ALL_TASKS[i % 4]}#{i // 4 + 1}" for i in range(num_tasks)
    )


def random_batch(tasks: tuple[str, ...], batch: int, size: int, device: torch.device
                 ) -> dict[str, torch.Tensor]:
    """Images and labels with the shapes and dtypes of a PASCAL-Context batch."""
    g = torch.Generator(device="cpu").manual_seed(0)
    out: dict[str, torch.Tensor] = {"image": torch.randn(batch, 3, size, size, generator=g)}
    for t in tasks:
        spec = get_task(t)
        if spec.base == "normals":
            n = torch.randn(batch, 3, size, size, generator=g)
            out[t] = n / n.norm(dim=1, keepdim=True)
        elif spec.base == "sal":
            out[t] = torch.randint(0, 2, (batch, size, size), generator=g)
        else:
            out[t] = torch.randint(0, spec.channels, (batch, size, size), generator=g)
    return {k: v.to(device) for k, v in out.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Train- and inference-throughput (images/s) and peak memory for one setting."""
    cfg = cfg.resolved()
    device = torch.device(cfg.device)
    tasks = task_ids(cfg.num_tasks)
    torch.manual_seed(0)
    model = build_model(cfg.method, backbone=cfg.backbone, tasks=tasks, img_size=cfg.img_size)
    model = model.to(device)
    gpu = device.type == "cuda"
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-4, fused=gpu or None)
    net = torch.compile(model) if cfg.compile else model
    batch = random_batch(tasks, cfg.batch_size, cfg.img_size, device)
    if gpu:
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else nullcontext()

    def train_step() -> None:
        with autocast:
            loss, _ = multitask_loss(net(batch["image"]), batch, tasks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step() -> None:
        with torch.inference_mode(), autocast:
            net(batch["image"])

    results: dict[str, Any] = {}
    for name, step in (("train", train_step), ("inference", infer_step)):
        model.train(name == "train")
        for _ in range(cfg.warmup):
            step()
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        for _ in range(cfg.steps):
            step()
        _sync(device)
        seconds = (time.perf_counter() - start) / cfg.steps
        results[f"{name}_images_per_second"] = cfg.batch_size / seconds
        results[f"{name}_step_seconds"] = seconds
        results[f"{name}_peak_memory_gb"] = (
            torch.cuda.max_memory_allocated(device) / 2**30 if gpu else None
        )
    counts = count_parameters(model)
    return {
        **dataclasses.asdict(cfg),
        "tasks": list(tasks),
        "device_name": torch.cuda.get_device_name(device) if gpu else "cpu",
        "trainable_encoder": counts["encoder"],
        **results,
    }


def projected_minutes(train_images_per_second: float, epochs: int = 60,
                      images: int = PASCAL_TRAIN_IMAGES) -> float:
    """Wall time of ``epochs`` over ``images`` at the measured rate (data loading excluded)."""
    return epochs * images / train_images_per_second / 60

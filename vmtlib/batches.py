"""How a run feeds its model: batch order, collation, device placement, evaluation.

Training batches are a pure function of ``(seed, step, rank)`` (:class:`StepBatchSampler`);
evaluation takes consecutive batches (:class:`ShardSampler`). Images reach the model
ImageNet-normalised on the device; on CUDA in channels-last under bf16 autocast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from vmtlib.metrics import TaskMeter

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class StepBatchSampler(Sampler[list[int]]):
    """Batches as a pure function of ``(seed, step, rank)``, so a resumed run
    sees exactly the batches it would have seen without the interruption.

    Epoch e is a permutation drawn from ``seed * 100003 + e``; each rank takes
    every ``world``-th batch-sized slice of it.
    """

    def __init__(self, n: int, batch_size: int, start: int, stop: int, seed: int,
                 rank: int = 0, world: int = 1) -> None:
        if batch_size < 1 or n < 1:
            raise ValueError(f"need at least one sample and a batch size >= 1, got n={n}, "
                             f"batch_size={batch_size}")
        self.n, self.batch_size, self.start, self.stop = n, batch_size, start, stop
        self.seed, self.rank, self.world = seed, rank, world
        self.per_epoch = max(1, n // (batch_size * world))

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[int]]:
        perm, epoch = None, -1
        for step in range(self.start, self.stop):
            e, i = divmod(step, self.per_epoch)
            if e != epoch:
                g = torch.Generator().manual_seed(self.seed * 100003 + e)
                perm, epoch = torch.randperm(self.n, generator=g), e
            first = (i * self.world + self.rank) * self.batch_size
            yield perm[first:first + self.batch_size].tolist()


class ShardSampler(Sampler[list[int]]):
    """Consecutive evaluation batches, every ``world``-th one on this rank."""

    def __init__(self, n: int, batch_size: int, n_batches: int, rank: int, world: int) -> None:
        self.batches = [
            list(range(i * batch_size, min(n, (i + 1) * batch_size)))
            for i in range(rank, n_batches * world, world)
            if i * batch_size < n
        ]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep ``meta`` as a list."""
    out: dict[str, Any] = {"meta": [s["meta"] for s in samples]}
    for key in samples[0]:
        if key != "meta":
            out[key] = torch.stack([s[key] for s in samples])
    return out


def make_loader(dataset: Dataset, sampler: Sampler, num_workers: int, device: torch.device,
                seed: int) -> DataLoader:
    """A DataLoader with its own generator seeded ``seed``: the workers' seeds are not drawn
    from the global RNG, so loaders leave the dropout stream alone."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=collate, pin_memory=device.type == "cuda", generator=generator)


def autocast(device: torch.device, bf16: bool | None = None):
    """bfloat16 autocast on ``device`` when ``bf16``; ``None``: on CUDA only."""
    if device.type == "cuda" if bf16 is None else bf16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


class DevicePlacer:
    """Moves a batch to ``device`` and ImageNet-normalises its images there."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k != "meta"}
        out["image"] = (out["image"] - self.mean) / self.std
        if self.device.type == "cuda":
            out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
        return out


@torch.no_grad()
def evaluate_model(model: nn.Module, val_set: Dataset, tasks: Sequence[str], batch_size: int,
                   eval_batches: int | None, device: torch.device, num_workers: int = 0,
                   loader_seed: int = 0, rank: int = 0, world: int = 1,
                   should_stop: Callable[[], bool] | None = None, bf16: bool | None = None
                   ) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` over ``val_set`` (sharded over ranks, then merged).

    ``bf16``: autocast as :func:`autocast` takes it (``None``: on CUDA only).
    ``should_stop``: checked between batches; when it returns True the evaluation is
    abandoned and ``KeyboardInterrupt`` raised.
    """
    model.eval()
    place = DevicePlacer(device)
    meters = {t: TaskMeter(t) for t in tasks}
    n_batches = math.ceil(len(val_set) / (batch_size * world))
    if eval_batches is not None:
        n_batches = min(n_batches, eval_batches)
    sampler = ShardSampler(len(val_set), batch_size, n_batches, rank, world)
    for batch in make_loader(val_set, sampler, num_workers, device, loader_seed):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt
        batch = place(batch)
        with autocast(device, bf16):
            outputs = model(batch["image"])
        for t in tasks:
            meters[t].update(outputs[t].float(), batch[t])
    if world > 1:
        for meter in meters.values():
            meter.all_reduce_(device=device)
    return {t: m.compute() for t, m in meters.items()}

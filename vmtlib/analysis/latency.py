"""Training-step and inference latency of every method for T = 1..8 (wall-clock).

Latency (:func:`measure_latency`) is wall-clock and noisy on a shared CPU:
it is reported as ratios to T = 1 of the same method, within one run, from
the minimum over repeats, and never asserted in a test.
Steps are timed with :func:`vmtlib.utils.seconds_per_call`, the harness
``vmtlib.bench`` and the benchmarks use too.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from vmtlib.analysis.cost import _saved_bytes_hook, available_methods, task_set
from vmtlib.losses import multitask_loss
from vmtlib.model import build_model, count_parameters
from vmtlib.tasks import get_task
from vmtlib.utils import seconds_per_call

# multitask_loss takes numbered task copies ("semseg#2": its base task's loss and weight).
copies_loss = multitask_loss


def random_targets(
    tasks: Sequence[str], batch: int, size: int, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Labels of the right shapes and ranges for ``multitask_loss`` (timing only)."""
    out: dict[str, torch.Tensor] = {}
    for t in tasks:
        spec = get_task(t)
        base = t.partition("#")[0]
        if base == "normals":
            n = torch.randn(batch, 3, size, size, generator=generator)
            out[t] = nn.functional.normalize(n, dim=1).to(device)
        else:
            classes = 2 if base == "sal" else spec.channels
            out[t] = torch.randint(0, classes, (batch, size, size), generator=generator).to(device)
    return out


class _StepBench:
    """One (method, task set) ready to time: a model, a batch, an Adam optimizer."""

    def __init__(self, method: str, tasks: Sequence[str], backbone: str, img_size: int,
                 batch_size: int, device: torch.device, seed: int = 0) -> None:
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.device, self.tasks = device, tuple(tasks)
        self.model = build_model(method, backbone=backbone, tasks=tasks,
                                 img_size=img_size).to(device)
        self.images = torch.randn(batch_size, 3, img_size, img_size, generator=gen).to(device)
        self.batch = random_targets(tasks, batch_size, img_size, device, gen)
        self.opt = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad], lr=1e-6)
        self.train_times: list[float] = []
        self.infer_times: list[float] = []

    def _train_step(self) -> None:
        loss, _ = multitask_loss(self.model(self.images), self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def _infer(self) -> None:
        with torch.inference_mode():
            self.model(self.images)

    def train_step(self) -> float:
        """Seconds of one training step."""
        self.model.train()
        return seconds_per_call(self._train_step, 1, self.device)

    def infer(self) -> float:
        """Seconds of one inference."""
        self.model.eval()
        return seconds_per_call(self._infer, 1, self.device)

    def memory(self) -> tuple[float, str]:
        """(MB, kind): a training step's CUDA peak, else the estimate.

        On CUDA the other task counts' benches are alive too, so the peak is
        taken above what was allocated before the step, and this bench's own
        tensors (weights, Adam's state, the batch) are added to it.
        """
        if self.device.type == "cuda":
            self.opt.zero_grad(set_to_none=True)
            state = [t for s in self.opt.state.values() for t in s.values() if torch.is_tensor(t)]
            own = sum(t.numel() * t.element_size() for t in (
                *self.model.parameters(), *self.model.buffers(), *state, self.images,
                *self.batch.values()))
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.train_step()
            peak = torch.cuda.max_memory_allocated(self.device) - before
            return (own + peak) / 2**20, "cuda_peak"
        self.model.train()
        storages, hook = _saved_bytes_hook()
        with hook:
            self.model(self.images)
        counts = count_parameters(self.model)
        weights = (counts["total"] + counts["frozen"] + 3 * counts["total"]) * 4
        return (sum(storages.values()) + weights) / 2**20, "estimate"

    def row(self) -> dict[str, Any]:
        memory, kind = self.memory()
        return {
            "method": self.model.info["method"],
            "one_pass": self.model.one_pass,
            "T": len(self.tasks),
            "device": str(self.device),
            "train_ms": 1e3 * min(self.train_times),
            "train_ms_median": 1e3 * statistics.median(self.train_times),
            "infer_ms": 1e3 * min(self.infer_times),
            "infer_ms_median": 1e3 * statistics.median(self.infer_times),
            "memory_mb": memory,
            "memory_kind": kind,
        }


def latency_of(
    method: str, tasks: Sequence[str], backbone: str = "swin_nano", img_size: int = 128,
    batch_size: int = 4, device: str | torch.device = "cpu", repeats: int = 5, warmup: int = 1,
) -> dict[str, Any]:
    """Time one (method, task set) alone: see :func:`measure_latency` (no ratios here)."""
    bench = _StepBench(method, tasks, backbone, img_size, batch_size, torch.device(device))
    for _ in range(warmup):
        bench.train_step()
        bench.infer()
    bench.train_times = [bench.train_step() for _ in range(repeats)]
    bench.infer_times = [bench.infer() for _ in range(repeats)]
    return bench.row()


def measure_latency(
    methods: Sequence[str] | None = None,
    task_counts: Iterable[int] = range(1, 9),
    backbone: str = "swin_nano",
    img_size: int = 128,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    repeats: int = 5,
    warmup: int = 1,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> list[dict[str, Any]]:
    """Wall-clock training-step and inference latency, as ratios to T = 1 (one run).

    A training step is forward, the protocol's multi-task loss on random
    labels (``multitask_loss``), backward and an Adam step; inference a
    forward under ``torch.inference_mode``. Per method, the models of every T
    are built together and timed **interleaved**: ``repeats`` rounds, each
    timing one training step and one inference of every T in turn, so that a
    burst of load from other processes hits all T of a method alike. The
    **minimum** over rounds is used (the least disturbed), the median is
    reported beside it.

    Returns one row per (method, T): ``{"method", "one_pass", "T", "device",
    "train_ms", "train_ms_median", "infer_ms", "infer_ms_median",
    "train_ratio", "infer_ratio", "memory_mb", "memory_kind"}``; the ratios
    are to the smallest T of the same method. The memory is, on a GPU, a
    training step's ``torch.cuda.max_memory_allocated`` above what was
    allocated before it plus the bench's weights, Adam state and batch
    (``"cuda_peak"``), and elsewhere the saved-activation + weight/gradient/Adam
    estimate (``"estimate"``, see the module docstring).
    """
    device = torch.device(device)
    methods = list(methods) if methods is not None else available_methods()
    counts = sorted(task_counts)
    rows: list[dict[str, Any]] = []
    for method in progress(methods) if progress else methods:
        benches = [_StepBench(method, task_set(n), backbone, img_size, batch_size, device)
                   for n in counts]
        for bench in benches:
            for _ in range(warmup):
                bench.train_step()
                bench.infer()
        for _ in range(repeats):
            for bench in benches:
                bench.train_times.append(bench.train_step())
                bench.infer_times.append(bench.infer())
        method_rows = [bench.row() for bench in benches]
        del benches
        for row in method_rows:
            row["train_ratio"] = row["train_ms"] / method_rows[0]["train_ms"]
            row["infer_ratio"] = row["infer_ms"] / method_rows[0]["infer_ms"]
        rows += method_rows
    return rows

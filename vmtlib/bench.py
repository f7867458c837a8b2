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
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from vmtlib.analysis.cost import task_set
from vmtlib.analysis.latency import random_targets
from vmtlib.checks import check_choice, check_device, check_img_size, check_int
from vmtlib.losses import multitask_loss
from vmtlib.model import build_model, count_parameters
from vmtlib.utils import seconds_per_call, sync_device

PASCAL_TRAIN_IMAGES = 4998

#: The methods the GPU issue measures, and the two that its ratios are taken against.
GOAL_METHODS = ("multi_task_full", "adapter", "polyhistor", "vmt_adapter", "vmt_adapter_lite")
FULL = "multi_task_full"
DECODERS = "decoders_only"


@dataclasses.dataclass(frozen=True)
class Goals:
    """The targets of the papers' setting on one H100 (Swin-T, 512 x 512, batch 12, 4 tasks).

    ``step_ratio``: vmt_adapter's training step over multi_task_full's (a frozen
    weight needs no weight gradient); ``growth``: vmt_adapter's growth from 1 to
    4 tasks beyond the decoders' (:func:`task_scaling`).
    """

    train_images_per_second: float = 500.0
    projected_minutes: float = 10.0
    step_ratio: float = 0.75
    growth: float = 0.10


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
    profile_steps: int = 0  # > 0: also profile that many training steps (profile_step)

    def __post_init__(self) -> None:
        from vmtlib.methods import METHODS

        check_choice("method", self.method, METHODS)
        check_int("num_tasks", self.num_tasks, 1)
        if self.img_size is not None:
            check_img_size("img_size", self.img_size)
        check_int("batch_size", self.batch_size, 1, optional=True)
        check_int("steps", self.steps, 1)
        check_int("warmup", self.warmup, 0)
        check_int("profile_steps", self.profile_steps, 0)
        check_device("device", self.device, allow_none=True)

    def resolved(self) -> BenchConfig:
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        gpu = device.startswith("cuda")
        return dataclasses.replace(
            self, device=device,
            img_size=self.img_size or (512 if gpu else 128),
            batch_size=self.batch_size or (12 if gpu else 2),
        )


def random_batch(tasks: tuple[str, ...], batch: int, size: int, device: torch.device
                 ) -> dict[str, torch.Tensor]:
    """Images and labels with the shapes and dtypes of a PASCAL-Context batch
    (labels: :func:`vmtlib.analysis.random_targets`)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=g)
    return {"image": images.to(device), **random_targets(tasks, batch, size, device, g)}


def run_benchmark(cfg: BenchConfig) -> dict[str, Any]:
    """Train- and inference-throughput (images/s) and peak memory for one setting."""
    cfg = cfg.resolved()
    device = torch.device(cfg.device)
    tasks = task_set(cfg.num_tasks)
    torch.manual_seed(0)
    model = build_model(cfg.method, backbone=cfg.backbone, tasks=tasks, img_size=cfg.img_size)
    model = model.to(device)
    gpu = device.type == "cuda"
    if gpu:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-4, fused=gpu or None)
    if cfg.compile:
        # Each row's model adds graphs to the one cache of MultiTaskModel.forward, which
        # holds 8: past that, torch.compile falls back to eager with only a warning.
        torch._dynamo.reset()
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
        if name == "inference":  # its peak memory without the training's gradients and Adam
            optimizer.zero_grad(set_to_none=True)
            optimizer.state.clear()
        for _ in range(cfg.warmup):
            step()
        if gpu:
            torch.cuda.reset_peak_memory_stats(device)
        seconds = seconds_per_call(step, cfg.steps, device)
        results[f"{name}_images_per_second"] = cfg.batch_size / seconds
        results[f"{name}_step_seconds"] = seconds
        results[f"{name}_peak_memory_gb"] = (
            torch.cuda.max_memory_allocated(device) / 2**30 if gpu else None
        )
    if cfg.profile_steps:
        model.train()
        train_step()  # Adam's state back, outside the profile
        results["profile"] = profile_step(train_step, cfg.profile_steps, device)
    counts = count_parameters(model)
    return {
        **dataclasses.asdict(cfg),
        "tasks": list(tasks),
        "device_name": torch.cuda.get_device_name(device) if gpu else "cpu",
        "trainable_encoder": counts["encoder"],
        **results,
    }


def profile_step(step: Callable[[], None], steps: int, device: torch.device, top: int = 15
                 ) -> list[dict[str, Any]]:
    """Where a training step's time goes: ``torch.profiler`` over ``steps`` calls of ``step``.

    The ``top`` operators by self time (on a GPU, the time of the kernels each
    operator launches itself; on a CPU, its CPU time): ``{"name", "ms_per_step",
    "share", "calls_per_step"}``; see :func:`top_operators`.
    """
    from torch.profiler import ProfilerActivity, profile

    gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync_device(device)
    return top_operators(prof.key_averages(), steps, gpu, top)


def top_operators(events: Sequence[Any], steps: int, gpu: bool, top: int = 15
                  ) -> list[dict[str, Any]]:
    """The ``top`` operators of a profile (``key_averages()`` rows) by self time.

    On a GPU the rows hold both the operators and the kernels they launch, each
    with the same self device time: the operators are ranked (``aten::mm``
    reads better than a GEMM kernel's name) and ``share`` is of the kernels'
    total, the GPU's busy time, as in ``torch.profiler``'s own table; summing
    every row would count each kernel twice. On a CPU every row is an operator.
    """
    from torch.autograd import DeviceType

    key = "self_device_time_total" if gpu else "self_cpu_time_total"
    operators = [e for e in events if e.device_type == DeviceType.CPU]
    busy = [e for e in events if e.device_type != DeviceType.CPU] if gpu else operators
    total = sum(getattr(e, key) for e in busy) or 1.0
    ranked = sorted((e for e in operators if getattr(e, key) > 0),
                    key=lambda e: getattr(e, key), reverse=True)
    return [{"name": e.key, "ms_per_step": getattr(e, key) / 1e3 / steps,
             "share": getattr(e, key) / total, "calls_per_step": e.count / steps}
            for e in ranked[:top]]


def projected_minutes(train_images_per_second: float, epochs: int = 60,
                      images: int = PASCAL_TRAIN_IMAGES) -> float:
    """Wall time of ``epochs`` over ``images`` at the measured rate (data loading excluded)."""
    return epochs * images / train_images_per_second / 60


def run_benchmarks(methods: Iterable[str], task_counts: Iterable[int],
                   on_row: Callable[[list[dict[str, Any]]], None] | None = None,
                   **config: Any) -> list[dict[str, Any]]:
    """:func:`run_benchmark` for every method and task count, printing a line each.

    ``config``: the other :class:`BenchConfig` fields. Every row also gets
    ``projected_60_epochs_minutes``; ``on_row(rows)`` runs after each row (to save
    what was measured before an interruption).
    """
    rows: list[dict[str, Any]] = []
    counts = list(task_counts)
    for method in methods:
        for count in counts:
            row = run_benchmark(BenchConfig(method=method, num_tasks=count, **config))
            row["projected_60_epochs_minutes"] = projected_minutes(row["train_images_per_second"])
            rows.append(row)
            mem = row["train_peak_memory_gb"]
            print(f"{method:<24} T={count} {row['img_size']}px b{row['batch_size']}"
                  f"{' compiled' if row['compile'] else ''} "
                  f"train {row['train_images_per_second']:8.1f} img/s  "
                  f"infer {row['inference_images_per_second']:8.1f} img/s  "
                  f"peak {'-' if mem is None else f'{mem:.1f} GB'}  "
                  f"60 epochs of PASCAL: {row['projected_60_epochs_minutes']:.1f} min",
                  flush=True)
            if on_row is not None:
                on_row(rows)
    return rows


def task_scaling(step_cost: Mapping[tuple[str, int], float], tasks: int = 4
                 ) -> dict[str, dict[str, float]]:
    """How each method's training step grows from 1 to ``tasks`` tasks, beyond the decoders.

    ``step_cost[(method, T)]`` is any additive cost of one training step at a fixed
    batch: seconds measured by :func:`run_benchmark`, or training-step FLOPs
    (``vmtlib.analysis.cost_table``). With ``c`` that cost, ``D`` = decoders_only
    (a frozen backbone: its growth is what T - 1 more decoders and losses cost)
    and ``F`` = multi_task_full, each method that has both task counts gets

        growth           = [c(m, T) - c(m, 1) - (c(D, T) - c(D, 1))] / c(m, 1)
        ratio_to_full    = c(m, T) / c(F, T)     (when F was measured at T)

    A one-pass method (one backbone pass for all tasks) has growth near 0; a
    per-task method (adapter, polyhistor) about T - 1 times its backbone's share
    of the one-task step.
    """
    if (DECODERS, 1) not in step_cost or (DECODERS, tasks) not in step_cost:
        raise ValueError(f"task_scaling needs {DECODERS} at T = 1 and T = {tasks}; "
                         f"got {sorted(step_cost)}")
    decoders = step_cost[(DECODERS, tasks)] - step_cost[(DECODERS, 1)]
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(m for m, _ in step_cost):
        if method == DECODERS or (method, 1) not in step_cost or (method, tasks) not in step_cost:
            continue
        one, many = step_cost[(method, 1)], step_cost[(method, tasks)]
        row = {"growth": (many - one - decoders) / one}
        if (FULL, tasks) in step_cost:
            row["ratio_to_full"] = many / step_cost[(FULL, tasks)]
        out[method] = row
    return out


def measured_scaling(rows: list[dict[str, Any]], tasks: int
                     ) -> dict[str, dict[str, float]] | None:
    """:func:`task_scaling` of benchmark rows' measured step seconds; ``None`` when the
    rows lack decoders_only at 1 or ``tasks`` tasks."""
    try:
        return task_scaling({(r["method"], r["num_tasks"]): r["train_step_seconds"]
                             for r in rows}, tasks)
    except ValueError:
        return None


def goal_report(rows: list[dict[str, Any]], goals: Goals = Goals(), method: str = "vmt_adapter",
                tasks: int = 4) -> list[dict[str, Any]]:
    """The :class:`Goals` checked against benchmark rows (:func:`run_benchmark`'s output).

    One entry per goal that the rows can answer: ``name``, ``value``, ``target``,
    ``met`` and the ``rule`` (at least / at most). Throughput and the projection
    come from ``method`` at ``tasks`` tasks; the growth needs decoders_only and
    ``method`` at 1 and ``tasks`` tasks, the step ratio multi_task_full at ``tasks``.
    """
    by_key = {(r["method"], r["num_tasks"]): r for r in rows}
    checks: list[dict[str, Any]] = []

    def check(name: str, value: float, target: float, at_least: bool) -> None:
        met = value >= target if at_least else value <= target
        checks.append({"name": name, "value": value, "target": target, "met": met,
                       "rule": "at least" if at_least else "at most"})

    row = by_key.get((method, tasks))
    if row is not None:
        rate = row["train_images_per_second"]
        check("train_images_per_second", rate, goals.train_images_per_second, True)
        check("projected_minutes", projected_minutes(rate), goals.projected_minutes, False)
    scaling = measured_scaling(rows, tasks) or {}
    if method in scaling:
        if "ratio_to_full" in scaling[method]:
            check("step_ratio", scaling[method]["ratio_to_full"], goals.step_ratio, False)
        check("growth", scaling[method]["growth"], goals.growth, False)
    return checks


def scaling_summary(rows: list[dict[str, Any]]) -> list[str]:
    """Lines that read :func:`task_scaling` (measured step seconds) and, with 4 tasks,
    :func:`goal_report` off benchmark rows; none when the rows lack decoders_only."""
    most = max((r["num_tasks"] for r in rows), default=1)
    scaling = measured_scaling(rows, most)
    if scaling is None:
        return []
    lines = []
    for method, s in scaling.items():
        ratio = f", {s['ratio_to_full']:.2f} of multi_task_full's" if "ratio_to_full" in s else ""
        lines.append(f"{method:<24} training step T=1 -> {most}: {s['growth']:+.1%} beyond "
                     f"the decoders{ratio}")
    if most == 4:
        lines.append("goals (one H100, 512 px, batch 12, 4 tasks):")
        lines += [f"  {c['name']:<24} {c['value']:8.2f}  ({c['rule']} {c['target']:g}): "
                  f"{'met' if c['met'] else 'NOT met'}" for c in goal_report(rows)]
    return lines

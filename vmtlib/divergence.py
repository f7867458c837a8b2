"""Stopping a run whose loss or weights stopped being finite, without saving them.

:class:`DivergenceWatch` records the first step with a non-finite loss (the total or
a task's) on the device, so the training loop needs no host sync per step; its
:meth:`~DivergenceWatch.check` reads it at the loop's log, evaluation and checkpoint
points. :func:`check_finite_weights` guards every checkpoint write. Both raise
:class:`TrainingDiverged`, whose message names the task, the value, the step and
the last good checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch


class TrainingDiverged(RuntimeError):
    """A non-finite loss or weight: the run stopped without saving."""


class DivergenceWatch:
    """The first step whose loss (total or a task's) was not finite, tracked on the
    device without a host sync per step; :meth:`check` reads it (one sync)."""

    def __init__(self, tasks: Sequence[str], device: torch.device) -> None:
        self.names = ("total", *tasks)
        self.first = torch.full((), -1, dtype=torch.long, device=device)
        self.values = torch.zeros(len(self.names), device=device)

    def update(self, step: int, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        values = torch.stack([loss.detach().float()]
                             + [parts[t].detach().float() for t in self.names[1:]])
        new = (~torch.isfinite(values)).any() & (self.first < 0)
        self.first = torch.where(new, torch.full_like(self.first, step), self.first)
        self.values = torch.where(new, values, self.values)

    def check(self, checkpoint: Path, saved_step: int | None) -> None:
        """Raise :class:`TrainingDiverged` if a loss was not finite; ``checkpoint`` and
        ``saved_step`` say what the run keeps."""
        step = int(self.first)
        if step < 0:
            return
        values = self.values.tolist()
        bad = [n for n, v in zip(self.names, values, strict=True)
               if not math.isfinite(v) and n != "total"] or ["total"]
        kept = (f"{checkpoint} keeps step {saved_step}, the last good one"
                if saved_step is not None else "no checkpoint was saved")
        raise TrainingDiverged(
            f"training diverged: the loss of task {', '.join(bad)} was "
            f"{values[self.names.index(bad[0])]} at step {step}; stopped without saving "
            f"({kept}); check the data and try a lower --lr")


def check_finite_weights(params: Iterable[torch.Tensor], step: int, checkpoint: Path,
                         saved_step: int | None) -> None:
    """Raise :class:`TrainingDiverged` unless every trainable tensor is finite (one sync)."""
    params = [p.detach() for p in params]
    if not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        raise TrainingDiverged(
            f"training diverged: non-finite weights at step {step} (the loss was "
            f"finite); stopped without saving ({checkpoint} keeps step "
            f"{saved_step}); try a lower --lr")

"""The multi-task losses of the MTI-Net / MTLoRA protocol on PASCAL-Context.

Shapes: ``pred`` is the raw decoder output of a batch at label resolution,
``target`` the batched label of the sample dict (``vmtlib.data``):

===========  ====================  =======================  ===========================
task         pred                  target                   loss (weight)
===========  ====================  =======================  ===========================
semseg       B x 21 x H x W        int64 B x H x W, 255     cross-entropy (1)
human_parts  B x 7 x H x W         int64 B x H x W, 255     cross-entropy (2)
sal          B x 1 x H x W logits  int64 B x H x W {0,1,255} balanced BCE (5)
normals      B x 3 x H x W         float B x 3 x H x W      L1 of unit vectors (10)
===========  ====================  =======================  ===========================

Every loss averages over the *valid* pixels of the whole batch (label != 255;
normals: target not all-zero), dividing by ``max(n_valid, 1)``: a batch whose
labels are all ignored gives an exact zero that stays connected to the graph,
never NaN (one of the public-code defects listed in ``pascal_context_format.md``).
No loss synchronises with the device (no ``.item()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from vmtlib.tasks import ALL_TASKS, get_task, parse_tasks

IGNORE = 255


def _check(pred: torch.Tensor, target: torch.Tensor, channels: int | None, task: str) -> None:
    if pred.dim() != 4:
        raise ValueError(f"{task}: prediction must be B x C x H x W, got {tuple(pred.shape)}")
    if channels is not None and pred.shape[1] != channels:
        raise ValueError(f"{task}: expected {channels} channel(s), got {pred.shape[1]}")
    spatial = target.shape[-2:]
    if pred.shape[0] != target.shape[0] or pred.shape[-2:] != spatial:
        raise ValueError(
            f"{task}: prediction {tuple(pred.shape)} does not match target {tuple(target.shape)} "
            "(same batch size and H x W expected; upsample the prediction first)")


def cross_entropy_loss(pred: torch.Tensor, target: torch.Tensor,
                       ignore_index: int = IGNORE) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose label is not ``ignore_index``:
    ``sum_valid -log softmax(pred)[target] / n_valid``; 0 if ``n_valid == 0``."""
    _check(pred, target, None, "cross_entropy")
    target = target.long()
    n = (target != ignore_index).sum()
    total = F.cross_entropy(pred, target, ignore_index=ignore_index, reduction="sum")
    return total / n.clamp_min(1)


def balanced_bce_loss(pred: torch.Tensor, target: torch.Tensor,
                      ignore_index: int = IGNORE) -> torch.Tensor:
    """Balanced binary cross-entropy for saliency (MTI-Net convention).

    With P / N the positive / negative valid pixels of the batch and ``w = |N| / (|P| + |N|)``:
    ``loss = (w * sum_P bce + (1 - w) * sum_N bce) / (|P| + |N|)``, ``bce`` on the logits
    (the sigmoid is applied once, inside ``binary_cross_entropy_with_logits``).
    ``pred``: B x 1 x H x W logits; ``target``: B x H x W in {0, 1, 255}.
    """
    _check(pred, target, 1, "sal")
    logits = pred[:, 0]
    valid = target != ignore_index
    pos = (target == 1) & valid
    neg = valid & ~pos
    n = valid.sum().clamp_min(1)
    w = neg.sum() / n
    bce = F.binary_cross_entropy_with_logits(logits, pos.to(logits.dtype), reduction="none")
    zero = torch.zeros((), dtype=bce.dtype, device=bce.device)
    loss_pos = torch.where(pos, bce, zero).sum()
    loss_neg = torch.where(neg, bce, zero).sum()
    return (w * loss_pos + (1.0 - w) * loss_neg) / n


def normals_l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the L2-normalised prediction and the label over valid pixels:
    ``sum_valid |pred / |pred| - target|_1 / (3 n_valid)`` (mean over the valid
    elements, as MTI-Net's NormalsLoss); valid = target not all-zero."""
    _check(pred, target, 3, "normals")
    valid = target.abs().sum(1) > 0  # B x H x W
    unit = F.normalize(pred, p=2, dim=1, eps=1e-12)
    diff = (unit - target.to(unit.dtype)).abs().sum(1)
    zero = torch.zeros((), dtype=diff.dtype, device=diff.device)
    return torch.where(valid, diff, zero).sum() / (3 * valid.sum()).clamp_min(1)


LOSSES = {
    "semseg": cross_entropy_loss,
    "human_parts": cross_entropy_loss,
    "sal": balanced_bce_loss,
    "normals": normals_l1_loss,
}
"""Task id -> loss function ``(pred, target) -> scalar``."""


def task_loss(task: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The protocol's loss of ``task`` (unweighted)."""
    spec = get_task(task)
    if spec.base in ("semseg", "human_parts"):
        _check(pred, target, spec.channels, task)
    return LOSSES[spec.base](pred, target)


def multitask_loss(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
                   tasks: Iterable[str] | None = None,
                   weights: Mapping[str, float] | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``total = sum_t w_t L_t`` over ``tasks`` (default: the keys of ``outputs``).

    Weights default to ``TASKS[t].loss_weight`` (semseg 1, human_parts 2, sal 5,
    normals 10). Returns ``(total, {task: unweighted loss})``.
    """
    tasks = parse_tasks(list(outputs) if tasks is None else tasks)
    per: dict[str, torch.Tensor] = {}
    total: torch.Tensor | None = None
    for t in tasks:
        if t not in outputs or t not in batch:
            where = "outputs" if t not in outputs else "batch"
            raise KeyError(f"task {t!r} missing from the {where}")
        loss = task_loss(t, outputs[t], batch[t])
        per[t] = loss
        w = get_task(t).loss_weight if weights is None else float(weights[t])
        total = loss * w if total is None else total + loss * w
    assert total is not None  # parse_tasks refuses an empty selection
    return total, per


class MultiTaskLoss(nn.Module):
    """Module form of :func:`multitask_loss`: ``total, per_task = crit(outputs, batch)``."""

    def __init__(self, tasks: Iterable[str] = ALL_TASKS,
                 weights: Mapping[str, float] | None = None):
        super().__init__()
        self.tasks = parse_tasks(tasks)
        self.weights = {t: (get_task(t).loss_weight if weights is None else float(weights[t]))
                        for t in self.tasks}

    def forward(self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return multitask_loss(outputs, batch, self.tasks, self.weights)

    def extra_repr(self) -> str:
        return f"weights={self.weights}"

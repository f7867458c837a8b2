"""Evaluation of the four PASCAL-Context tasks, accumulated over a whole split.

The protocol of the MTI-Net / MTLoRA line of work (``pascal_context_format.md``):

* **semseg / human_parts** -> ``{"mIoU"}``: a confusion matrix over the split
  (pixels labelled 255 ignored; human-parts images without a labelled person are
  all 255 and so contribute nothing), ``IoU_c = TP / (TP + FP + FN)``, mIoU the
  mean over the classes in percent. Convention for absent classes: a class with
  ``TP + FP + FN = 0`` over the split (neither predicted nor labelled anywhere) has
  no IoU and is left out of the mean (``nanmean``). On the full PASCAL val split
  every class occurs, so this equals the mean over all 21 / 7 classes; on data
  with fewer classes (the synthetic scenes use 11 of the 21 VOC ids) it does not
  punish the model for classes that cannot occur.
* **sal** -> ``{"mIoU", "maxF", "maxF_beta2_0.3"}``: the sigmoid is applied once to the logits; for
  each threshold ``t`` in ``linspace(0.2, 0.9, 15)`` and each image, ``IoU_t`` of
  ``sigmoid > t`` against the label over valid pixels (1 when both are empty);
  mIoU is the max over ``t`` of the mean over images (the papers' "Sal."). maxF
  is the max over ``t`` of ``(1 + b2) P R / (b2 P + R)`` with P and R the
  per-image precision and recall averaged over images (MTI-Net's measure,
  ``b2 = 1``); ``maxF_beta2_0.3`` is the same with ``b2 = 0.3``, the weighting of
  MTI-Net's and InvPT's saliency tables (precision counts more). On an image
  without positives our conventions are not MTI-Net's
  (whose code gives P = R = 0 there): without predicted positives P = 1 if the
  label has none either, else 0; R = 1 without labelled positives, so an empty
  image predicted empty counts as perfect.
  Images whose pixels are all ignored are skipped.
* **normals** -> ``{"mean", "median", "rmse", "11.25", "22.5", "30"}``: the angle
  in degrees between the L2-normalised prediction and the label over valid pixels
  (label not all-zero), ``atan2(|p x t|, p . t)`` (exact also for tiny angles; a
  zero prediction, which has no direction, scores 90 degrees);
  mean (the papers' "mErr"), a **true** RMSE ``sqrt(mean(angle^2))`` (not the mean
  error some codebases call rmse), and the percentage of pixels with angle
  ``< 11.25, 22.5, 30``. The median comes from a histogram of 0.01-degree bins over
  [0, 180] (bin centre), so it is exact to 0.005 degrees and memory stays bounded.

Every meter keeps its state as a dict of tensors that add up: ``state()``,
``merge(other)``, :func:`merge_states` and ``all_reduce_()`` (a sum over DDP
ranks) give the same result as one meter that saw all the batches.
:func:`delta_m` is the multi-task score against the Swin-T single-task
references of VMT-Adapter Table 2 (``vmtlib.tasks``).

One module on purpose (about 400 lines): it is the evaluation protocol, this
docstring its specification and the four meters one state protocol; split, the
conventions above would stand apart from the code that implements them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from vmtlib.tasks import ALL_TASKS, get_task, parse_tasks

IGNORE = 255
SAL_THRESHOLDS: tuple[float, ...] = tuple(
    float(x) for x in torch.linspace(0.2, 0.9, 15, dtype=torch.float64))
NORMAL_THRESHOLDS: tuple[float, ...] = (11.25, 22.5, 30.0)
ANGLE_BIN_DEG = 0.01
ANGLE_BINS = 18000  # 0..180 degrees

State = dict[str, torch.Tensor]


class TaskMeter(ABC):
    """Accumulates one task's metric over a split: ``update(pred, target)`` per batch,
    ``compute()`` at the end.

    ``TaskMeter(task)`` builds the meter of the task (:class:`SegmentationMeter`,
    :class:`SaliencyMeter` or :class:`NormalsMeter`); ``pred`` is the raw decoder
    output (B x C x H x W logits; B x 1 x H x W saliency logits; B x 3 x H x W
    normals), ``target`` the batched label (B x H x W int64, 255 = ignore; normals
    B x 3 x H x W, all-zero = invalid).
    """

    task: str

    def __new__(cls, *args: Any, **kwargs: Any):
        if cls is TaskMeter:
            task = args[0] if args else kwargs.get("task")
            if task is None:
                raise TypeError("TaskMeter needs a task id")
            name = get_task(task).base
            cls = _METERS[name]
        return super().__new__(cls)

    def __init__(self, task: str):
        self.task = get_task(task).name
        self._state: State = self._empty_state()

    # -- state --------------------------------------------------------------
    @abstractmethod
    def _empty_state(self) -> State:
        """Zero tensors of the accumulated quantities."""

    def reset(self) -> None:
        """Forget every update."""
        self._state = self._empty_state()

    def state(self) -> State:
        """The accumulated state: tensors that add up over batches, processes and ranks."""
        return dict(self._state)

    def load_state(self, state: Mapping[str, torch.Tensor]) -> TaskMeter:
        """Replace the state (e.g. with a sum from :func:`merge_states`)."""
        ref = self._empty_state()
        if set(state) != set(ref):
            raise ValueError(f"{self.task}: state keys {sorted(state)} != {sorted(ref)}")
        for k, v in state.items():
            if v.shape != ref[k].shape:
                raise ValueError(f"{self.task}: state {k!r} has shape {tuple(v.shape)}, "
                                 f"expected {tuple(ref[k].shape)}")
        self._state = {k: v.clone().to(ref[k].dtype) for k, v in state.items()}
        return self

    def merge(self, other: TaskMeter | Mapping[str, torch.Tensor]) -> TaskMeter:
        """Add another meter's (or a state dict's) accumulation to this one."""
        state = other.state() if isinstance(other, TaskMeter) else other
        if isinstance(other, TaskMeter) and other.task != self.task:
            raise ValueError(f"cannot merge a {other.task} meter into a {self.task} meter")
        return self.load_state(merge_states([self.state(), state]))

    def all_reduce_(self, group: Any = None, device: torch.device | str | None = None
                    ) -> TaskMeter:
        """Sum the state over the ranks of ``torch.distributed`` (no-op when not
        initialised). ``device``: where to reduce (a CUDA device for NCCL)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        for k, v in self._state.items():
            v = v.to(device) if device is not None else v
            dist.all_reduce(v, op=dist.ReduceOp.SUM, group=group)
            self._state[k] = v
        return self

    def _add(self, key: str, value: torch.Tensor) -> None:
        cur = self._state[key]
        self._state[key] = cur.to(value.device) + value.to(cur.dtype)

    # -- interface ----------------------------------------------------------
    @abstractmethod
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Accumulate one batch."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """The metrics over everything accumulated so far."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.task!r})"


def merge_states(states: Iterable[Mapping[str, torch.Tensor]]) -> State:
    """Sum state dicts key by key (on the CPU)."""
    out: State = {}
    for st in states:
        for k, v in st.items():
            v = v.detach().cpu()
            out[k] = v.clone() if k not in out else out[k] + v
    if not out:
        raise ValueError("no state to merge")
    return out


def _check_pair(task: str, pred: torch.Tensor, target: torch.Tensor, channels: int | None,
                target_dims: int) -> None:
    if pred.dim() != 4:
        raise ValueError(f"{task}: prediction must be B x C x H x W, got {tuple(pred.shape)}")
    if channels is not None and pred.shape[1] != channels:
        raise ValueError(f"{task}: expected {channels} prediction channel(s), got {pred.shape[1]}")
    if target.dim() != target_dims:
        raise ValueError(f"{task}: target must have {target_dims} dims, got {tuple(target.shape)}")
    if pred.shape[0] != target.shape[0] or pred.shape[-2:] != target.shape[-2:]:
        raise ValueError(f"{task}: prediction {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} differ in batch size or H x W")


class SegmentationMeter(TaskMeter):
    """Confusion-matrix mIoU for ``semseg`` (21 classes) and ``human_parts`` (7)."""

    def __init__(self, task: str = "semseg", num_classes: int | None = None):
        self.num_classes = int(num_classes or get_task(task).channels)
        super().__init__(task)

    def _empty_state(self) -> State:
        c = self.num_classes
        return {"confusion": torch.zeros(c, c, dtype=torch.int64)}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: B x C x H x W logits (or B x H x W class ids); ``target``: B x H x W."""
        c = self.num_classes
        if pred.dim() == 4:
            _check_pair(self.task, pred, target, c, 3)
            pred = pred.argmax(1)
        elif pred.shape != target.shape:
            raise ValueError(f"{self.task}: class-id prediction {tuple(pred.shape)} != target "
                             f"{tuple(target.shape)}")
        target = target.long()
        valid = target != IGNORE
        t = target[valid]
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= c):
            raise ValueError(f"{self.task}: target values must be in 0..{c - 1} or 255, got "
                             f"{sorted(set(t.unique().tolist()) - set(range(c)))[:10]}")
        p = pred.long()[valid]
        idx = t * c + p
        self._add("confusion", torch.bincount(idx, minlength=c * c).view(c, c))

    def per_class_iou(self) -> torch.Tensor:
        """IoU per class in [0, 1] (NaN for a class with TP + FP + FN = 0)."""
        conf = self._state["confusion"].double()
        tp = conf.diag()
        denom = conf.sum(0) + conf.sum(1) - tp
        return torch.where(denom > 0, tp / denom.clamp_min(1), torch.full_like(tp, math.nan))

    def compute(self) -> dict[str, float]:
        iou = self.per_class_iou()
        present = ~iou.isnan()
        miou = float(iou[present].mean()) * 100.0 if present.any() else math.nan
        return {"mIoU": miou}


SAL_MAXF_03 = "maxF_beta2_0.3"
"""The key of saliency maxF with beta^2 = 0.3 (MTI-Net, InvPT) beside ``maxF`` (beta^2 = 1)."""


def f_max(precision: torch.Tensor, recall: torch.Tensor, beta2: float) -> float:
    """``max_t (1 + b2) P_t R_t / (b2 P_t + R_t)`` in percent, over thresholds t."""
    f = (1 + beta2) * precision * recall / (beta2 * precision + recall).clamp_min(1e-12)
    return float(f.max()) * 100.0


class SaliencyMeter(TaskMeter):
    """Max-over-thresholds mean per-image IoU and maxF for ``sal`` (see the module doc)."""

    def __init__(self, task: str = "sal", thresholds: Iterable[float] = SAL_THRESHOLDS,
                 beta2: float = 1.0):
        self.thresholds = torch.tensor(list(thresholds), dtype=torch.float64)
        self.beta2 = float(beta2)
        super().__init__(task)

    def _empty_state(self) -> State:
        k = len(self.thresholds)
        z = torch.zeros(k, dtype=torch.float64)
        return {"iou_sum": z.clone(), "precision_sum": z.clone(), "recall_sum": z.clone(),
                "images": torch.zeros((), dtype=torch.int64)}

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: B x 1 x H x W logits (sigmoid applied here, once); ``target``: B x H x W."""
        _check_pair(self.task, pred, target, 1, 3)
        prob = torch.sigmoid(pred[:, 0].double())
        thr = self.thresholds.to(prob.device)[:, None]
        k = len(self.thresholds)
        sums = torch.zeros(3, k, dtype=torch.float64, device=prob.device)
        n_images = 0
        for b in range(prob.shape[0]):
            valid = target[b] != IGNORE
            if not bool(valid.any()):
                continue
            n_images += 1
            gt = (target[b] == 1)[valid]  # N
            pb = prob[b][valid][None] > thr  # k x N
            inter = (pb & gt).sum(1).double()
            n_pred = pb.sum(1).double()
            n_gt = gt.sum().double()
            union = n_pred + n_gt - inter
            one = torch.ones_like(inter)
            sums[0] += torch.where(union > 0, inter / union.clamp_min(1), one)
            sums[1] += torch.where(n_pred > 0, inter / n_pred.clamp_min(1),
                                   one if float(n_gt) == 0 else torch.zeros_like(inter))
            sums[2] += inter / n_gt if float(n_gt) > 0 else one
        self._add("iou_sum", sums[0])
        self._add("precision_sum", sums[1])
        self._add("recall_sum", sums[2])
        self._add("images", torch.tensor(n_images, dtype=torch.int64, device=prob.device))

    def compute(self) -> dict[str, float]:
        n = int(self._state["images"])
        if n == 0:
            return {"mIoU": math.nan, "maxF": math.nan, SAL_MAXF_03: math.nan}
        miou = self._state["iou_sum"] / n
        p = self._state["precision_sum"] / n
        r = self._state["recall_sum"] / n
        return {"mIoU": float(miou.max()) * 100.0, "maxF": f_max(p, r, self.beta2),
                SAL_MAXF_03: f_max(p, r, 0.3)}


class NormalsMeter(TaskMeter):
    """Angular errors of surface normals: mean, median, rmse and % within 11.25/22.5/30."""

    def __init__(self, task: str = "normals"):
        super().__init__(task)

    def _empty_state(self) -> State:
        return {
            "count": torch.zeros((), dtype=torch.int64),
            "sum": torch.zeros((), dtype=torch.float64),
            "sum_sq": torch.zeros((), dtype=torch.float64),
            "within": torch.zeros(len(NORMAL_THRESHOLDS), dtype=torch.int64),
            "histogram": torch.zeros(ANGLE_BINS, dtype=torch.int64),
        }

    @staticmethod
    def angles(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Angles in degrees (1-D, valid pixels only) between B x 3 x H x W fields.

        A zero prediction has no direction and scores 90 degrees, the mean angle
        of a random direction (normalising it would give the zero vector, and
        ``atan2(0, 0)`` a perfect 0).
        """
        valid = target.abs().sum(1) > 0
        p = pred.float().permute(0, 2, 3, 1)[valid]
        t = F.normalize(target.float(), dim=1).permute(0, 2, 3, 1)[valid]
        length = p.norm(dim=1)
        p = p / length.clamp_min(1e-12)[:, None]
        cross = torch.linalg.cross(p, t, dim=1).norm(dim=1)
        dot = (p * t).sum(1)
        angle = torch.rad2deg(torch.atan2(cross, dot))
        return torch.where(length > 0, angle, torch.full_like(angle, 90.0))

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred``: B x 3 x H x W (normalised here); ``target``: B x 3 x H x W unit or zero."""
        _check_pair(self.task, pred, target, 3, 4)
        if target.shape[1] != 3:
            raise ValueError(f"normals: target must be B x 3 x H x W, got {tuple(target.shape)}")
        a = self.angles(pred, target).double()
        self._add("count", torch.tensor(a.numel(), dtype=torch.int64, device=a.device))
        self._add("sum", a.sum())
        self._add("sum_sq", (a * a).sum())
        self._add("within", torch.stack([(a < th).sum() for th in NORMAL_THRESHOLDS]))
        bins = (a / ANGLE_BIN_DEG).floor().long().clamp(0, ANGLE_BINS - 1)
        self._add("histogram", torch.bincount(bins, minlength=ANGLE_BINS))

    def compute(self) -> dict[str, float]:
        n = int(self._state["count"])
        keys = ("mean", "median", "rmse", *(f"{t:g}" for t in NORMAL_THRESHOLDS))
        if n == 0:
            return dict.fromkeys(keys, math.nan)
        hist = self._state["histogram"].cpu()
        k = int(torch.searchsorted(hist.cumsum(0), torch.tensor((n + 1) // 2)))
        out = {
            "mean": float(self._state["sum"]) / n,
            "median": (k + 0.5) * ANGLE_BIN_DEG,
            "rmse": math.sqrt(float(self._state["sum_sq"]) / n),
        }
        for key, w in zip(keys[3:], self._state["within"].tolist()):
            out[key] = 100.0 * w / n
        return out


_METERS: dict[str, type[TaskMeter]] = {
    "semseg": SegmentationMeter,
    "human_parts": SegmentationMeter,
    "sal": SaliencyMeter,
    "normals": NormalsMeter,
}


def make_meters(tasks: Iterable[str] | str = ALL_TASKS) -> dict[str, TaskMeter]:
    """One fresh meter per task: ``{task: TaskMeter(task)}``."""
    return {t: TaskMeter(t) for t in parse_tasks(tasks)}


def compute_all(meters: Mapping[str, TaskMeter]) -> dict[str, dict[str, float]]:
    """``{task: meter.compute()}``."""
    return {t: m.compute() for t, m in meters.items()}


def delta_m(scores: Mapping[str, float | Mapping[str, float]],
            reference: Mapping[str, float] | None = None) -> float:
    """Multi-task performance relative to single-task baselines, in percent:

    ``Delta_m = (1/T) sum_t s_t (M_t - S_t) / S_t * 100``, with ``s_t = +1`` where higher
    is better and ``-1`` for the normals' mean angle. ``scores``: task -> headline
    metric value (``TASKS[t].metric``), or task -> the dict of ``TaskMeter.compute()``.
    ``reference``: task -> S_t; default the Swin-T single-task full fine-tuning numbers
    of VMT-Adapter Table 2 (semseg 67.21, human_parts 61.93, sal 62.35, normals 17.97).
    """
    if not scores:
        raise ValueError("delta_m needs at least one task score")
    total = 0.0
    for task, value in scores.items():
        spec = get_task(task)
        if isinstance(value, Mapping):
            if spec.metric not in value:
                raise KeyError(f"{task}: no {spec.metric!r} in {sorted(value)}")
            value = value[spec.metric]
        if reference is None:
            ref = spec.reference
        elif task in reference:
            ref = float(reference[task])
        else:
            raise KeyError(f"no reference score for task {task!r} (given: {sorted(reference)})")
        if ref == 0:
            raise ValueError(f"reference score of {task!r} is 0")
        sign = 1.0 if spec.higher_is_better else -1.0
        total += sign * (float(value) - ref) / ref
    return total / len(scores) * 100.0

"""Gradient conflicts between tasks: theta_sh, per-task gradients and their cosines.

Gradient conflicts (VMT-Adapter Sec. 4.3, Eq. 7-8, Fig. 4)
-----------------------------------------------------------
With theta_sh the parameters shared by all tasks and ``g_i = d L_i / d theta_sh``
the gradient of task i's (unweighted) loss, a step of size eta along ``-g_i``
changes task j's loss by, to first order (Eq. 7),

    Delta L_j = L_j(theta_sh - eta g_i) - L_j(theta_sh) ~= -eta g_i . g_j,

so the update of task i helps task j when ``g_i . g_j > 0``. Eq. 8 measures it
scale-free:

    cos phi_ij = g_i . g_j / (|g_i| |g_j|)   in [-1, 1].

What counts as *shared* (:func:`shared_parameters`): the trainable encoder
parameters that **every** task's loss reaches through the autograd graph, minus
the task-indexed tensors whose rows belong to the tasks (VMT-Adapter's alpha
and gamma of Eq. 4, Hyperformer's and Polyhistor's task embeddings,
Polyhistor-Lite's scaling kernels and gains, per-task prompts; Compacter's rules
are shared by every task) and the per-task module lists that the graph connects to
every task although each task uses only its own entry (MTLoRA's
task-specific LoRAs, ``...tasks.<i>...``, run stacked along the batch). These
two are what each method declares (``Method.task_indexed``, ``Method.task_module_lists``);
reachability handles every method that keeps one module copy per task. So:

- ``adapter_shared``: every BottleneckAdapter parameter (projections and the
  LayerNorm after them), the paper's theta_sh of the Shared Adapter;
- ``vmt_adapter`` / ``vmt_adapter_lite``: the projections of Eq. 3 / Eq. 6
  (``KnowledgeExtraction.projection``: weights, biases, the Kronecker factors)
  **and the gate s** (one scalar per block that every task's loss reaches,
  through both the task-generic part and s F of Eq. 4). The paper names only
  the projections; the gate is 8 of ~198k entries on swin_nano (~67k for -Lite) and is kept so
  that "shared" means the same for every method. ``exclude=("gate",)`` gives
  the paper's exact set, and the recorder can report both (``subsets``);
- ``multi_task_full`` / ``lora_shared`` / ``bitfit_shared``: every trainable
  encoder parameter; ``mtlora``: everything but the task-specific LoRAs;
  ``hyperformer`` / ``polyhistor``: the shared hypernetworks;
- O(T) methods (``adapter``, ``lora``, ``single_task_full``, ...): each task
  has its own copy, so no encoder parameter is reached by every task and the
  shared set is empty (except truly shared parts, e.g. a hypernetwork); the
  gradient-conflict analysis of Eq. 8 does not apply to them.

Cost of recording: every recorded step adds T backward passes from each
task's loss to theta_sh (``torch.autograd.grad`` with ``retain_graph=True``;
each stops at theta_sh but crosses the frozen backbone and the task's
decoder). Measured by ``benchmarks/gradient_conflicts.py`` (swin_nano, 128 px,
batch 12, T = 4, one CPU thread; ``gradient_conflicts.json``): 0.63-0.67 s per
record against 0.57-0.61 s per training step, i.e. about one training step per
record, so recording every k steps costs about 1 / k: 11.1% (adapter_shared)
and 11.0% (vmt_adapter) of the training time at k = 10.
:class:`GradientConflictRecorder` measures its own seconds.

Shapes: images ``(B, 3, H, W)``; per-task gradients are flat ``(P,)`` float32
vectors over theta_sh in :func:`shared_parameters` order; cosine matrices
``(T, T)`` float64.
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vmtlib.methods.base import registered_methods
from vmtlib.model import MultiTaskModel

# Attribute names of task-indexed tensors (dimension 0 indexes the tasks) and of per-task
# module lists (``<name>.<task index>.``) that one pass runs together (MTLoRA's task-specific
# LoRAs, stacked along the batch dimension): what the methods declare
# (``Method.task_indexed``, ``Method.task_module_lists``), gathered over every method.
TASK_INDEXED_NAMES: tuple[str, ...] = tuple(dict.fromkeys(
    n for cls in registered_methods().values() for n in cls.task_indexed))
TASK_MODULE_LISTS: tuple[str, ...] = tuple(dict.fromkeys(
    n for cls in registered_methods().values() for n in cls.task_module_lists))


def _reached_leaves(roots: Iterable[torch.Tensor]) -> set[int]:
    """``id`` of every leaf tensor that requires grad and that ``roots`` depend on.

    A walk of the autograd graph (no computation): the leaves are the
    ``AccumulateGrad`` nodes' variables.
    """
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    leaves = {id(r) for r in roots if r.grad_fn is None and r.requires_grad}
    seen: set[Any] = set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None:
            leaves.add(id(var))
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return leaves


def is_task_indexed(
    name: str,
    param: torch.Tensor,
    num_tasks: int,
    indexed: Sequence[str] = TASK_INDEXED_NAMES,
    module_lists: Sequence[str] = TASK_MODULE_LISTS,
) -> bool:
    """Whether ``param`` (an encoder parameter called ``name``) holds one row per task
    (its last name in ``indexed``) or belongs to one task's entry of a per-task module
    list (``module_lists``). Defaults: what every method declares."""
    parts = name.split(".")
    in_task_list = any(
        a in module_lists and b.isdigit() and int(b) < num_tasks
        for a, b in zip(parts, parts[1:])
    )
    return in_task_list or (
        parts[-1] in indexed and param.dim() >= 1 and param.shape[0] == num_tasks
    )


def shared_parameters(
    model: MultiTaskModel,
    losses: Mapping[str, torch.Tensor] | None = None,
    exclude: Sequence[str] = (),
    probe_size: int = 64,
) -> dict[str, nn.Parameter]:
    """theta_sh of Eq. 7: the trainable encoder parameters every task's loss reaches,
    minus the tensors the method declares per task (see the module docstring).

    Args:
        model: a :class:`~vmtlib.model.MultiTaskModel`.
        losses: ``{task: scalar loss}`` of a forward pass whose graph is alive;
            reachability is read from it. Without it, a probe forward of the
            encoder on one ``(1, 3, probe_size, probe_size)`` zero image on the
            model's device (the meta device works) gives the graph.
        exclude: regular expressions; parameters whose name matches one are
            dropped (``("gate",)`` for the paper's projections-only set).

    Returns:
        ``{name: parameter}`` in ``model.named_parameters()`` order (names
        start with ``encoder.``); empty for O(T) methods without shared parts.
    """
    tasks, method = model.tasks, type(model.encoder)
    candidates = {
        f"encoder.{n}": p for n, p in model.encoder.named_parameters() if p.requires_grad
    }
    if not candidates:
        return {}
    if losses is not None:  # every loss given (tasks, or any losses of one forward)
        roots_per_task = [[loss] for loss in losses.values()]
    else:
        first = next(iter(candidates.values()))
        with torch.enable_grad():
            images = torch.zeros(1, 3, probe_size, probe_size, device=first.device)
            feats = model.encoder(images)
        roots_per_task = [feats[t] for t in tasks]
    reached = None
    for roots in roots_per_task:
        ids = _reached_leaves(roots)
        reached = ids if reached is None else reached & ids
    assert reached is not None
    patterns = [re.compile(p) for p in exclude]
    return {
        n: p
        for n, p in candidates.items()
        if id(p) in reached
        and not is_task_indexed(n, p, len(tasks), method.task_indexed, method.task_module_lists)
        and not any(pat.search(n) for pat in patterns)
    }


def task_gradients(
    model: MultiTaskModel | None,
    losses: Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor] | Sequence[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``{task: g_task}`` with ``g_task = d L_task / d theta_sh`` flattened to ``(P,)``.

    ``torch.autograd.grad`` with ``retain_graph=True`` (the training step's
    backward still needs the graph); ``.grad`` is left untouched. A parameter
    a loss does not reach contributes zeros. ``params`` defaults to
    :func:`shared_parameters` of ``model`` read from ``losses``' graph.
    Gradients are float32, detached, on the parameters' device.
    """
    if params is None:
        if model is None:
            raise ValueError("task_gradients needs params or a model")
        params = shared_parameters(model, losses)
    plist = list(params.values()) if isinstance(params, Mapping) else list(params)
    if not plist:
        raise ValueError("no shared parameter: every task has its own (an O(T) method?)")
    out: dict[str, torch.Tensor] = {}
    for task, loss in losses.items():
        grads = torch.autograd.grad(loss, plist, retain_graph=True, allow_unused=True)
        out[task] = torch.cat([
            (g if g is not None else torch.zeros_like(p)).detach().reshape(-1).float()
            for g, p in zip(grads, plist)
        ])
    return out


def cosine_matrix(
    grads: Mapping[str, torch.Tensor], chunk: int = 1 << 20
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Eq. 8 for every pair: ``C[i, j] = g_i . g_j / (|g_i| |g_j|)``.

    Args:
        grads: ``{task: (P,)}`` as from :func:`task_gradients`.
        chunk: entries per float64 chunk of the Gram matrix (bounds memory).

    Returns:
        ``(C, tasks)``: ``C`` ``(T, T)`` float64 on the CPU, symmetric, diagonal 1
        (NaN in the row and column of a zero gradient, whose angle is undefined),
        and the task order of its rows.
    """
    tasks = tuple(grads)
    g = torch.stack([grads[t].reshape(-1) for t in tasks])  # (T, P)
    gram = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)
    for start in range(0, g.shape[1], chunk):
        part = g[:, start:start + chunk].double()
        gram += (part @ part.T).cpu()
    norms = gram.diagonal().clamp_min(0).sqrt()
    denom = norms[:, None] * norms[None, :]
    cos = torch.where(denom > 0, gram / denom.clamp_min(1e-300),
                      torch.full_like(gram, math.nan))
    return cos.clamp(-1.0, 1.0), tasks


def pair_key(a: str, b: str) -> str:
    """The key of the pair ``(a, b)`` in records and summaries: ``"a|b"``."""
    return f"{a}|{b}"


def pairwise_cosines(cos: torch.Tensor, tasks: Sequence[str]) -> dict[str, float]:
    """The upper triangle of :func:`cosine_matrix` as ``{"a|b": cos}`` (T (T - 1) / 2 pairs)."""
    return {
        pair_key(tasks[i], tasks[j]): float(cos[i, j])
        for i in range(len(tasks))
        for j in range(i + 1, len(tasks))
    }


@dataclasses.dataclass
class GradientConflictRecorder:
    """A :data:`vmtlib.train.StepHook` that records Eq. 8 at every ``every``-th step.

    ``Trainer(cfg, step_hooks=[rec]).fit()``; then ``rec.records`` holds one dict
    per recorded step ``{"step", "cos": {"a|b": cos}, "norms": {task: |g|},
    "losses": {task: L}}`` (plus ``"subsets": {name: {"a|b": cos}}``) and
    ``rec.seconds`` the time spent recording. Recorded steps are 0, k, 2k, ...

    Attributes:
        every: k, record every k-th step.
        exclude: regular expressions of names dropped from theta_sh.
        subsets: ``{name: regex}``: also the cosines restricted to the shared
            parameters whose name matches (from the same gradients, free).
    """

    every: int = 10
    exclude: tuple[str, ...] = ()
    subsets: dict[str, str] = dataclasses.field(default_factory=dict)
    records: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    params: dict[str, nn.Parameter] | None = None
    _masks: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")

    def _subset_masks(self) -> dict[str, torch.Tensor]:
        assert self.params is not None
        masks = {}
        for name, pattern in self.subsets.items():
            rx = re.compile(pattern)
            parts = [torch.full((p.numel(),), bool(rx.search(n)))
                     for n, p in self.params.items()]
            masks[name] = torch.cat(parts)
        return masks

    def __call__(self, trainer: Any, step: int, batch: Mapping[str, Any],
                 outputs: Mapping[str, torch.Tensor], losses: Mapping[str, torch.Tensor]) -> None:
        if step % self.every:
            return
        start = time.perf_counter()
        model = trainer.model
        if self.params is None:
            self.params = shared_parameters(model, losses, self.exclude)
            if not self.params:
                raise ValueError(f"{model.info['method']}: no parameter is shared by all tasks")
            self._masks = self._subset_masks()
        grads = task_gradients(model, losses, self.params)
        cos, tasks = cosine_matrix(grads)
        record: dict[str, Any] = {
            "step": int(step),
            "cos": pairwise_cosines(cos, tasks),
            "norms": {t: float(g.norm()) for t, g in grads.items()},
            "losses": {t: float(v.detach()) for t, v in losses.items()},
        }
        if self._masks:
            record["subsets"] = {}
            for name, mask in self._masks.items():
                mask = mask.to(next(iter(grads.values())).device)
                sub, _ = cosine_matrix({t: g[mask] for t, g in grads.items()})
                record["subsets"][name] = pairwise_cosines(sub, tasks)
        self.records.append(record)
        self.seconds += time.perf_counter() - start

    @property
    def num_shared(self) -> int:
        """Entries of theta_sh (0 before the first recorded step)."""
        return sum(p.numel() for p in (self.params or {}).values())

    def cosines(self, subset: str | None = None) -> list[float]:
        """Every recorded cos phi_ij, all pairs and steps (of ``subset`` if given)."""
        return [
            v
            for r in self.records
            for v in (r["cos"] if subset is None else r["subsets"][subset]).values()
        ]


def conflict_summary(
    data: Iterable[float] | Iterable[Mapping[str, Any]] | Mapping[str, Iterable[float]],
) -> dict[str, Any]:
    """The distribution of cos phi_ij over training (Fig. 4).

    Args:
        data: recorder records (dicts with ``"cos"``), a flat iterable of
            cosines, or ``{pair: [cos, ...]}``.

    Returns:
        ``{"n", "P(cos>0)", "P(cos<0)", "mean", "median", "std", "undefined",
        "pairs": {pair: {"n", "P(cos>0)", "P(cos<0)", "mean"}}}``; NaN cosines
        (a zero gradient) are counted in ``undefined`` and left out of the rest.
    """
    pairs: dict[str, list[float]] = {}
    if isinstance(data, Mapping):
        pairs = {k: [float(v) for v in vs] for k, vs in data.items()}
    else:
        items = list(data)
        if items and isinstance(items[0], Mapping):
            for r in items:
                for k, v in r["cos"].items():
                    pairs.setdefault(k, []).append(float(v))
        else:
            pairs = {"all": [float(v) for v in items]}  # type: ignore[arg-type]

    def stats(values: list[float]) -> dict[str, Any]:
        ok = [v for v in values if not math.isnan(v)]
        n = len(ok)
        return {
            "n": n,
            "undefined": len(values) - n,
            "P(cos>0)": sum(v > 0 for v in ok) / n if n else math.nan,
            "P(cos<0)": sum(v < 0 for v in ok) / n if n else math.nan,
            "mean": statistics.fmean(ok) if n else math.nan,
            "median": statistics.median(ok) if n else math.nan,
            "std": statistics.pstdev(ok) if n else math.nan,
        }

    out = stats([v for vs in pairs.values() for v in vs])
    out["pairs"] = {
        k: {key: s[key] for key in ("n", "P(cos>0)", "P(cos<0)", "mean")}
        for k, s in ((k, stats(vs)) for k, vs in pairs.items())
    }
    return out

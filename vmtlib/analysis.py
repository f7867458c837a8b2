"""Analysis beyond the accuracy table: gradient conflicts, cost versus the number
of tasks, the rho / m ablation and the trade-off between Delta_m and parameters.

No plotting here (``vmtlib.plots`` draws); every function returns plain numbers,
tensors or JSON-ready dicts, so notebooks and widgets read the results files
without training.

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
two are recognised by name (``TASK_INDEXED_NAMES``, ``TASK_MODULE_LISTS``);
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

Cost versus number of tasks (MTLoRA supplement Table 3)
-------------------------------------------------------
:func:`cost_table` counts forward and training-step FLOPs with
``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (exact,
no compute, so Swin-T at 224 px for T = 1..8 takes seconds). FLOPs are
FlopCounterMode's: 2 per multiply-accumulate of every matmul / convolution
(normalisations, activations and interpolation are not counted). Tasks beyond
the four are numbered copies (``"semseg#2"``, see :func:`task_set`).

Memory: on a GPU, :func:`measure_latency` reports
``torch.cuda.max_memory_allocated`` of a training step. On the CPU (and on
the meta device) peak resident memory is not measurable per configuration
(``ru_maxrss`` only grows), so we report what a training step must hold:
the bytes of the distinct storages autograd saves for the backward pass
(``torch.autograd.graph.saved_tensors_hooks``; the activation memory, the
part that grows with T and with the number of passes) plus parameters,
gradients and Adam's two moments of the trainable parameters.

Latency (:func:`measure_latency`) is wall-clock and noisy on a shared CPU:
it is reported as ratios to T = 1 of the same method, within one run, from
the minimum over repeats, and never asserted in a test.

Shapes: images ``(B, 3, H, W)``; per-task gradients are flat ``(P,)`` float32
vectors over theta_sh in :func:`shared_parameters` order; cosine matrices
``(T, T)`` float64.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vmtlib.decoders import build_decoder
from vmtlib.losses import LOSSES
from vmtlib.methods import METHODS, get_method_class
from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.tasks import ALL_TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ABLATION_JSON = RESULTS / "ablation.json"
COMPARE_JSON = RESULTS / "compare.json"

# Attribute names of task-indexed tensors: dimension 0 indexes the tasks.
TASK_INDEXED_NAMES: tuple[str, ...] = (
    "alpha", "gamma",  # VMT-Adapter's Eq. 4
    "task_embeddings",  # Hyperformer, Polyhistor
    "kernels", "pre_gain", "pre_shift", "post_gain", "post_shift",  # Polyhistor-Lite
    "prompts",  # VPT
)
# Names of per-task module lists (``<name>.<task index>.``) that the autograd graph
# may connect to every task although each task's values use only its own entry
# (MTLoRA's task-specific LoRAs run stacked along the batch dimension).
TASK_MODULE_LISTS: tuple[str, ...] = ("tasks",)


# ============================================================================ gradient conflicts


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


def is_task_indexed(name: str, param: torch.Tensor, num_tasks: int) -> bool:
    """Whether ``param`` (an encoder parameter called ``name``) holds one row per task
    (``TASK_INDEXED_NAMES``) or belongs to one task's entry of a per-task module list."""
    parts = name.split(".")
    in_task_list = any(
        a in TASK_MODULE_LISTS and b.isdigit() and int(b) < num_tasks
        for a, b in zip(parts, parts[1:])
    )
    return in_task_list or (
        parts[-1] in TASK_INDEXED_NAMES and param.dim() >= 1 and param.shape[0] == num_tasks
    )


def shared_parameters(
    model: MultiTaskModel,
    losses: Mapping[str, torch.Tensor] | None = None,
    exclude: Sequence[str] = (),
    probe_size: int = 64,
) -> dict[str, nn.Parameter]:
    """theta_sh of Eq. 7: the trainable encoder parameters every task's loss reaches,
    minus task-indexed tensors (see the module docstring).

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
    tasks = model.tasks
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
        and not is_task_indexed(n, p, len(tasks))
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


# ============================================================================ cost versus tasks

# Methods drawn by default, in this order, when registered (others may come and go).
DEFAULT_COST_METHODS: tuple[str, ...] = (
    "single_task_full", "adapter", "lora", "polyhistor", "decoders_only", "multi_task_full",
    "adapter_shared", "lora_shared", "vmt_adapter", "vmt_adapter_lite", "mtlora",
)  # fmt: skip


def available_methods(preferred: Sequence[str] = DEFAULT_COST_METHODS) -> list[str]:
    """The ids of ``preferred`` that :data:`vmtlib.METHODS` registers, in order."""
    return [m for m in preferred if m in METHODS]


def task_set(n: int) -> tuple[str, ...]:
    """``n`` task ids: the four PASCAL-Context tasks, then numbered copies.

    ``task_set(6) == ("semseg", "human_parts", "sal", "normals", "semseg#2",
    "human_parts#2")``.
    """
    if n < 1:
        raise ValueError(f"at least one task, got {n}")
    base = ALL_TASKS
    return tuple(
        base[i % len(base)] if i < len(base) else f"{base[i % len(base)]}#{i // len(base) + 1}"
        for i in range(n)
    )


def _loss_surrogate(outputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    # The backward graph (and its matmul / conv FLOPs) does not depend on the loss.
    return sum(o.float().mean() for o in outputs.values())  # type: ignore[return-value]


def _saved_bytes_hook() -> tuple[dict[int, int], Any]:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        storages[st._cdata] = st.nbytes()
        # Detached: returning ``t`` itself would tie a saved output to its own
        # grad_fn, a reference cycle through C++ that leaks every graph.
        return t.detach()

    return storages, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)


def model_cost(
    model: MultiTaskModel, images: torch.Tensor, backward: bool = True
) -> dict[str, float]:
    """FLOPs of one forward (and backward) and the saved activation bytes.

    Returns ``{"forward_flops", "train_flops", "activation_bytes"}``
    (``train_flops`` = forward + backward, 0 when ``backward`` is False).
    Works on the meta device; leaves no ``.grad`` behind.
    """
    storages, hook = _saved_bytes_hook()
    with FlopCounterMode(display=False) as fwd, hook:
        outputs = model(images)
    forward = fwd.get_total_flops()
    train = 0
    if backward and any(p.requires_grad for p in model.parameters()):
        with FlopCounterMode(display=False) as bwd:
            _loss_surrogate(outputs).backward()
        train = forward + bwd.get_total_flops()
        model.zero_grad(set_to_none=True)
    elif backward:
        train = forward
    return {"forward_flops": float(forward), "train_flops": float(train),
            "activation_bytes": float(sum(storages.values()))}


def forward_flops(
    method: str, tasks: Sequence[str], backbone: str = "swin_tiny", img_size: int = 224,
    batch: int = 1, **method_kwargs: Any,
) -> int:
    """Forward FLOPs of ``method`` on ``tasks`` for ``batch`` images (meta device)."""
    with torch.device("meta"):
        model = build_model(method, backbone=backbone, tasks=tasks, img_size=img_size,
                            **method_kwargs)
        images = torch.empty(batch, 3, img_size, img_size)
    with FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops()


def decoder_flops(
    task: str, backbone: str = "swin_tiny", img_size: int = 224, batch: int = 1,
    decoder: str = "segformer", decoder_dim: int | None = None,
) -> int:
    """Forward FLOPs of one task's decoder alone on the stage features (meta device).

    Counted independently of :func:`forward_flops`: a decoder is built for the
    backbone's stage widths and fed ``(batch, C_s, H / 2^(s+2), W / 2^(s+2))``.
    """
    from vmtlib.backbone import get_backbone_config

    cfg = get_backbone_config(backbone)
    with torch.device("meta"):
        head = build_decoder(decoder, cfg.dims, get_task(task).channels,
                             decoder_dim or cfg.decoder_dim)
        feats = [torch.empty(batch, c, img_size // 2 ** (s + 2), img_size // 2 ** (s + 2))
                 for s, c in enumerate(cfg.dims)]
    with FlopCounterMode(display=False) as counter:
        head(feats)
    return counter.get_total_flops()


def cost_table(
    methods: Sequence[str] | None = None,
    task_counts: Iterable[int] = range(1, 9),
    img_size: int = 224,
    backbone: str = "swin_tiny",
    batch: int = 1,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """FLOPs and memory of every method for T = ``task_counts`` tasks (meta device).

    Args:
        methods: method ids (default: :func:`available_methods`).
        task_counts: the numbers of tasks T (tasks from :func:`task_set`).
        img_size, backbone, batch: the input ``(batch, 3, img_size, img_size)``.
        progress: e.g. ``tqdm`` to wrap the loop.
        method_kwargs: ``{method: {hyper-parameter: value}}`` overrides.

    Returns:
        One row per (method, T): ``{"method", "one_pass", "T", "tasks",
        "gflops", "gflops_ratio" (to T = 1 of the method, else to the smallest
        T), "train_gflops", "params_encoder", "params_total",
        "activation_mb", "train_memory_mb"}`` with ``train_memory_mb`` =
        (all parameters + 3 x trainable ones: gradient and Adam's two moments)
        x 4 bytes + activations.
    """
    methods = list(methods) if methods is not None else available_methods()
    counts = sorted(task_counts)
    jobs = [(m, t) for m in methods for t in counts]
    rows: list[dict[str, Any]] = []
    first: dict[str, float] = {}
    for method, n in progress(jobs) if progress else jobs:
        tasks = task_set(n)
        with torch.device("meta"):
            model = build_model(method, backbone=backbone, tasks=tasks, img_size=img_size,
                                **dict((method_kwargs or {}).get(method, {})))
            images = torch.empty(batch, 3, img_size, img_size)
        cost = model_cost(model, images)
        params = count_parameters(model)
        gflops = cost["forward_flops"] / 1e9
        first.setdefault(method, gflops)
        weights = (params["total"] + params["frozen"] + 3 * params["total"]) * 4
        rows.append({
            "method": method,
            "one_pass": model.one_pass,
            "T": n,
            "tasks": list(tasks),
            "gflops": gflops,
            "gflops_ratio": gflops / first[method],
            "train_gflops": cost["train_flops"] / 1e9,
            "params_encoder": params["encoder"],
            "params_total": params["total"],
            "activation_mb": cost["activation_bytes"] / 2**20,
            "train_memory_mb": (cost["activation_bytes"] + weights) / 2**20,
        })
    return rows


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


def copies_loss(
    outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``multitask_loss`` that also accepts numbered task copies (``"semseg#2"``):
    each copy uses its base task's loss and weight. ``(total, {task: loss})``."""
    per = {t: LOSSES[t.partition("#")[0]](outputs[t], batch[t]) for t in outputs}
    total = sum(get_task(t).loss_weight * v for t, v in per.items())
    return total, per  # type: ignore[return-value]


def sync_device(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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

    def train_step(self) -> float:
        self.model.train()
        start = time.perf_counter()
        loss, _ = copies_loss(self.model(self.images), self.batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        sync_device(self.device)
        return time.perf_counter() - start

    def infer(self) -> float:
        self.model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            self.model(self.images)
        sync_device(self.device)
        return time.perf_counter() - start

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
    labels (:func:`copies_loss`), backward and an Adam step; inference a
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


def cost_markdown(
    rows: Sequence[Mapping[str, Any]],
    key: str = "gflops",
    ratio_key: str | None = "gflops_ratio",
    fmt: str = "{:.2f}",
) -> str:
    """A markdown table in the style of MTLoRA's supplement Table 3.

    Rows T = 1..8, one column per method: ``key`` (and `` (x ratio)``).
    O(T) methods are marked with a dagger in the header.
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    one_pass = {r["method"]: r["one_pass"] for r in rows}
    counts = sorted({r["T"] for r in rows})
    cell = {(r["method"], r["T"]): r for r in rows}
    header = "| T | " + " | ".join(
        f"{m}{'' if one_pass[m] else ' †'}" for m in methods) + " |"
    lines = [header, "|---:|" + "---:|" * len(methods)]
    for t in counts:
        vals = []
        for m in methods:
            r = cell.get((m, t))
            if r is None:
                vals.append("")
                continue
            v = fmt.format(r[key])
            if ratio_key is not None:
                v += f" (×{r[ratio_key]:.2f})"
            vals.append(v)
        lines.append(f"| {t} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


# ============================================================================ ablation sweep

# VMT-Adapter Table 3 (Swin-T, PASCAL-Context): trainable parameters Encoder / All (M)
# and the averaged Delta_m (%) against single-task full fine-tuning.
PAPER_TABLE3: dict[tuple[str, int], dict[str, float]] = {
    ("vmt_adapter", 1): {"encoder_m": 4.36, "all_m": 6.91, "delta_m": 4.27},
    ("vmt_adapter", 2): {"encoder_m": 2.21, "all_m": 4.56, "delta_m": 3.81},
    ("vmt_adapter", 4): {"encoder_m": 1.13, "all_m": 3.68, "delta_m": 3.96},
    ("vmt_adapter", 8): {"encoder_m": 0.59, "all_m": 3.14, "delta_m": 3.02},
    ("vmt_adapter_lite", 3): {"encoder_m": 0.40, "all_m": 2.95, "delta_m": 1.34},
    ("vmt_adapter_lite", 6): {"encoder_m": 0.22, "all_m": 2.77, "delta_m": 0.61},
    ("vmt_adapter_lite", 12): {"encoder_m": 0.15, "all_m": 2.70, "delta_m": 0.06},
}

# VMT-Adapter Table 3, per-task columns (PASCAL-Context, Swin-T): semseg, human parts and
# saliency mIoU (%), normals mean angle error (degrees); the parameters and Delta_m are
# PAPER_TABLE3 above.
PAPER_TABLE3_TASKS: dict[tuple[str, int], dict[str, float]] = {
    ("vmt_adapter", 1): {"semseg": 71.26, "human_parts": 61.01, "sal": 63.76, "normals": 16.12},
    ("vmt_adapter", 2): {"semseg": 70.96, "human_parts": 60.82, "sal": 64.01, "normals": 16.39},
    ("vmt_adapter", 4): {"semseg": 71.60, "human_parts": 60.67, "sal": 64.02, "normals": 16.41},
    ("vmt_adapter", 8): {"semseg": 71.34, "human_parts": 59.95, "sal": 63.48, "normals": 16.82},
    ("vmt_adapter_lite", 3): {"semseg": 70.03, "human_parts": 59.51, "sal": 62.45,
                              "normals": 17.09},
    ("vmt_adapter_lite", 6): {"semseg": 69.85, "human_parts": 59.38, "sal": 61.95,
                              "normals": 17.53},
    ("vmt_adapter_lite", 12): {"semseg": 69.33, "human_parts": 59.15, "sal": 61.88,
                               "normals": 17.55},
}


@dataclasses.dataclass(frozen=True)
class AblationSetting:
    """One row of Table 3: a method and its hyper-parameters."""

    method: str
    kwargs: tuple[tuple[str, Any], ...]

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.kwargs)

    @property
    def key(self) -> str:
        """``"vmt_adapter(rho=4)"``."""
        return f"{self.method}({', '.join(f'{k}={v}' for k, v in self.kwargs)})"

    @property
    def paper(self) -> dict[str, float] | None:
        """The paper's Table 3 numbers for this setting (``None`` when absent)."""
        value = self.kw.get("m") if self.method == "vmt_adapter_lite" else self.kw.get("rho")
        return PAPER_TABLE3.get((self.method, value))  # type: ignore[arg-type]


def ablation_settings() -> list[AblationSetting]:
    """VMT-Adapter rho in {1, 2, 4, 8}, VMT-Adapter-Lite m in {3, 6, 12} (rho = 4)."""
    return [AblationSetting("vmt_adapter", (("rho", r),)) for r in (1, 2, 4, 8)] + [
        AblationSetting("vmt_adapter_lite", (("m", m),)) for m in (3, 6, 12)
    ]


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(obj, indent=2, allow_nan=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_ablation(path: str | Path = ABLATION_JSON) -> list[dict[str, Any]]:
    """The settings of ``benchmarks/results/ablation.json`` (written by
    ``benchmarks/ablation_sweep.py``), one dict per setting: ``{"key", "method",
    "kwargs", "metrics", "delta_m", "parameters" (swin_nano), "swin_tiny"
    {"encoder", "all"}, "paper" {"encoder_m", "all_m", "delta_m"}, ...}``.
    Empty when the file does not exist yet.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data["settings"] if isinstance(data, Mapping) else data)


def iter_results(obj: Any) -> list[dict[str, Any]]:
    """Per-method result dicts from a results file's content, whatever its shape:
    a list of dicts, ``{"results" / "settings" / "runs" / "methods": [...] or {...}}``, or
    ``{method: result}`` (the key becomes ``"method"`` when missing)."""
    if isinstance(obj, list):
        return [dict(r) for r in obj if isinstance(r, Mapping)]
    if not isinstance(obj, Mapping):
        return []
    for key in ("results", "settings", "runs", "methods"):
        if key in obj and isinstance(obj[key], (list, Mapping)):
            return iter_results(obj[key])
    return [
        {"method": k, **v} if "method" not in v else dict(v)
        for k, v in obj.items()
        if isinstance(v, Mapping) and ("delta_m" in v or "metrics" in v)
    ]


def headline_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``{task: headline metric}`` from ``{task: {metric: value}}`` or ``{task: value}``."""
    out = {}
    for t, v in metrics.items():
        out[t] = float(v[get_task(t).metric]) if isinstance(v, Mapping) else float(v)
    return out


def reference_from_compare(path: str | Path = COMPARE_JSON,
                           method: str = "single_task_full") -> dict[str, float] | None:
    """Headline scores of ``method`` (single-task full fine-tuning) in
    ``compare.json``, the Delta_m reference of the sweep; ``None`` if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    for r in iter_results(json.loads(path.read_text())):
        if r.get("method") == method and r.get("metrics"):
            return headline_scores(r["metrics"])
    return None


# ============================================================================ trade-off (Fig. 1)


def _one_pass(result: Mapping[str, Any]) -> bool:
    if "one_pass" in result:
        return bool(result["one_pass"])
    try:
        return bool(get_method_class(str(result["method"])).one_pass)
    except ValueError:
        return str(result["method"]).endswith("_shared")


def tradeoff_points(
    results: Iterable[Mapping[str, Any]], param_key: str = "encoder"
) -> list[dict[str, Any]]:
    """Points of the trade-off figure (VMT-Adapter Fig. 1): Delta_m against parameters.

    Args:
        results: result dicts with ``"method"``, ``"delta_m"`` and
            ``"parameters"`` ``{"encoder", "total"}`` (``Trainer`` final.json,
            compare.json, :func:`load_ablation` rows); optional
            ``"kwargs"`` / ``"method_kwargs"``, ``"label"``, ``"source"``.
        param_key: ``"encoder"`` (the papers' "Encoder" column) or ``"total"``.

    Returns:
        ``[{"label", "method", "params", "params_m", "delta_m", "one_pass",
        "source"}]``, results without a finite Delta_m or parameter count
        left out; sorted by parameters.
    """
    points = []
    for r in results:
        dm = r.get("delta_m")
        params = (r.get("parameters") or {}).get(param_key)
        if dm is None or params is None or not math.isfinite(float(dm)):
            continue
        label = r.get("label") or r.get("key") or r["method"]
        points.append({
            "label": str(label),
            "method": str(r["method"]),
            "params": int(params),
            "params_m": int(params) / 1e6,
            "delta_m": float(dm),
            "one_pass": _one_pass(r),
            "source": r.get("source", ""),
        })
    return sorted(points, key=lambda p: p["params"])


def collect_results(results_dir: str | Path = RESULTS) -> list[dict[str, Any]]:
    """Every trained result in ``results_dir``: ``compare.json`` (source
    ``"compare"``) and the ablation settings (source ``"ablation"``)."""
    results_dir = Path(results_dir)
    out: list[dict[str, Any]] = []
    compare = results_dir / "compare.json"
    if compare.is_file():
        for r in iter_results(json.loads(compare.read_text())):
            out.append({**r, "source": r.get("source", "compare")})
    for r in load_ablation(results_dir / "ablation.json"):
        out.append({**r, "source": "ablation"})
    return out


__all__ = [
    "ABLATION_JSON", "AblationSetting", "DEFAULT_COST_METHODS", "GradientConflictRecorder",
    "PAPER_TABLE3", "ablation_settings", "available_methods", "collect_results",
    "conflict_summary", "copies_loss", "cosine_matrix", "cost_markdown", "cost_table",
    "decoder_flops", "forward_flops", "headline_scores", "iter_results", "latency_of",
    "load_ablation", "measure_latency", "model_cost", "pair_key", "pairwise_cosines",
    "random_targets", "reference_from_compare", "shared_parameters", "task_gradients",
    "task_set", "tradeoff_points", "write_json_atomic",
]

"""Cost versus the number of tasks: FLOPs and memory of every method for T = 1..8.

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

The latency side (wall-clock, noisy) is :mod:`vmtlib.analysis.latency`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from vmtlib.decoders import build_decoder
from vmtlib.inspect_model import count_flops, meta_model
from vmtlib.methods import METHODS
from vmtlib.model import MultiTaskModel, build_model, count_parameters
from vmtlib.tasks import ALL_TASKS, get_task

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
    model = meta_model(method, backbone, tasks, img_size=img_size, **method_kwargs)
    with torch.device("meta"):
        images = torch.empty(batch, 3, img_size, img_size)
    return count_flops(model, images)


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
    return count_flops(head, feats)


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

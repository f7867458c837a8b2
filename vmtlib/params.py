"""The trainable-parameter table of every method (the papers' "Encoder / All" column).

Models are built on PyTorch's ``meta`` device: shapes without storage, so
counting every method takes seconds and no memory, on any backbone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import torch

from vmtlib.methods import METHODS
from vmtlib.methods.base import DivisorError
from vmtlib.model import build_model, count_parameters
from vmtlib.tasks import ALL_TASKS


def parameter_row(
    method: str,
    backbone: str = "swin_tiny",
    tasks: str | Iterable[str] = ALL_TASKS,
    decoder: str = "segformer",
    **kwargs: Any,
) -> dict[str, Any]:
    """``{"method", "kwargs", "encoder", "all", "one_pass"}`` for one method (plain counts)."""
    with torch.device("meta"):
        model = build_model(method, backbone=backbone, tasks=tasks, decoder=decoder, **kwargs)
    counts = count_parameters(model)
    return {
        "method": method,
        "kwargs": dataclasses.asdict(model.encoder.config),
        "encoder": counts["encoder"],
        "all": counts["total"],
        "one_pass": model.one_pass,
    }


def parameter_table(
    backbone: str = "swin_tiny",
    tasks: str | Iterable[str] = ALL_TASKS,
    decoder: str = "segformer",
) -> list[dict[str, Any]]:
    """One :func:`parameter_row` per method id, with paper-default hyper-parameters.

    Where a default must divide the backbone's widths and does not (VMT-Adapter-Lite's
    m = 3 on Swin-B, whose widths are 128 x 2^s), the row takes the smallest valid
    value above it, and its ``kwargs`` show the value used.
    """
    rows = []
    for method in METHODS:
        kwargs: dict[str, Any] = {}
        while True:
            try:
                rows.append(parameter_row(method, backbone, tasks, decoder, **kwargs))
                break
            except DivisorError as err:
                if err.name in kwargs:  # the replacement failed too: nothing fits
                    raise
                kwargs[err.name] = min((v for v in err.valid if v > err.value),
                                       default=max(err.valid))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as the papers print them: millions, ``encoder / all``."""
    kwargs = [", ".join(f"{k}={v}" for k, v in r["kwargs"].items()) or "-" for r in rows]
    width = max(len("hyper-parameters"), *(len(k) for k in kwargs))
    lines = [f"{'method':<24} {'hyper-parameters':<{width}} {'encoder / all (M)':>17}  passes"]
    for r, kw in zip(rows, kwargs):
        counts = f"{r['encoder'] / 1e6:.2f} / {r['all'] / 1e6:.2f}"
        passes = "O(1)" if r["one_pass"] else "O(T)"
        lines.append(f"{r['method']:<24} {kw:<{width}} {counts:>17}  {passes}")
    return "\n".join(lines)

"""The registry of method ids; importing this package registers every method.

``METHODS`` maps each id to a one-line description; ``build_method`` turns an
id and its hyper-parameters into a :class:`~vmtlib.methods.base.Method`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vmtlib.backbone import SwinBackbone
from vmtlib.methods import adapter, full, vmt_adapter  # noqa: F401  (registration)
from vmtlib.methods.base import (
    Method,
    get_method_class,
    make_config,
    registered_methods,
)

# The order of the papers' tables (design.md); ids not listed go last.
TABLE_ORDER = (
    "single_task_full", "decoders_only", "multi_task_full",
    "bitfit", "bitfit_shared", "relative_bias", "relative_bias_shared",
    "vpt_shallow", "vpt_deep", "lora", "lora_shared",
    "adapter", "adapter_shared", "low_rank_adapter", "low_rank_adapter_shared",
    "phm", "compacter", "compacter_pp", "hyperformer",
    "polyhistor", "polyhistor_lite", "vmt_adapter", "vmt_adapter_lite", "mtlora",
)  # fmt: skip


def _table_rank(method_id: str) -> int:
    return TABLE_ORDER.index(method_id) if method_id in TABLE_ORDER else len(TABLE_ORDER)


METHODS: dict[str, str] = {
    mid: cls.description
    for mid, cls in sorted(registered_methods().items(), key=lambda kv: _table_rank(kv[0]))
}


def build_method(
    method_id: str, backbone: SwinBackbone, tasks: Sequence[str], **kwargs: Any
) -> Method:
    """Attach method ``method_id`` with hyper-parameters ``kwargs`` to ``backbone``."""
    cls = get_method_class(method_id)
    return cls(backbone, tasks, make_config(cls, **kwargs))


__all__ = ["METHODS", "Method", "build_method", "get_method_class"]

"""The registry of method ids; importing this package registers every method.

``METHODS`` maps each id to a one-line description; ``get_method_class`` and
``make_config`` turn an id and its hyper-parameters into a method class and
its config (``vmtlib.build_model`` does both).
"""

from __future__ import annotations

from vmtlib.methods import (  # noqa: F401  (registration)
    adapter,
    bitfit,
    full,
    hyperformer,
    lora,
    mtlora,
    phm,
    polyhistor,
    relative_bias,
    vmt_adapter,
    vpt,
)
from vmtlib.methods.base import (
    Method,
    get_method_class,
    make_config,
    registered_methods,
)

# The order of VMT-Adapter's Table 2 and Polyhistor's Table 1; ids not listed go last.
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


__all__ = ["METHODS", "Method", "get_method_class", "make_config"]

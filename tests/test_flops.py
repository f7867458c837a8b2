"""Execution cost versus the number of tasks, counted in forward FLOPs.

Models and inputs live on the ``meta`` device: FlopCounterMode sees every
matmul and convolution without running them, so Swin-T at 224 costs nothing.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vmtlib
from vmtlib import ALL_TASKS, build_model

# design.md: the O(1) family.
ONE_PASS = {"decoders_only", "multi_task_full", "vmt_adapter", "vmt_adapter_lite", "mtlora"}


def forward_flops(method: str, tasks: tuple[str, ...]) -> int:
    with torch.device("meta"):
        model = build_model(method, backbone="swin_tiny", tasks=tasks)
        images = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops()


_cache: dict[str, float] = {}


def growth(method: str) -> float:
    """F(4 tasks) / F(1 task)."""
    if method not in _cache:
        _cache[method] = forward_flops(method, ALL_TASKS) / forward_flops(method, ("semseg",))
    return _cache[method]


@pytest.mark.parametrize("method", list(vmtlib.METHODS))
def test_declared_cost_family(method: str) -> None:
    with torch.device("meta"):
        model = build_model(method, backbone="swin_nano", img_size=64)
    expected = method in ONE_PASS or method.endswith("_shared")
    assert model.one_pass == expected


@pytest.mark.parametrize("method", list(vmtlib.METHODS))
def test_flops_grow_with_tasks_as_declared(method: str) -> None:
    g = growth(method)
    if method == "mtlora":
        assert g <= 1.25 * growth("decoders_only")
    elif method in ONE_PASS or method.endswith("_shared"):
        assert g == pytest.approx(growth("decoders_only"), rel=0.05)
    else:
        assert g == pytest.approx(growth("single_task_full"), rel=0.05)


def test_decoders_only_grows_by_exactly_the_decoders() -> None:
    one = forward_flops("decoders_only", ("semseg",))
    four = forward_flops("decoders_only", ALL_TASKS)
    adapter_one = forward_flops("vmt_adapter", ("semseg",))
    adapter_four = forward_flops("vmt_adapter", ALL_TASKS)
    # VMT-Adapter's task-specific part is element-wise: its extra FLOPs per task are the decoder's.
    assert adapter_four - adapter_one == four - one
    assert growth("single_task_full") > 3.5

"""Bottleneck adapters, one per task ("Multiple") or one for all ("Shared").

An adapter (Houlsby et al. 2019; VMT-Adapter Eq. 1, Polyhistor Eq. 1) is

    h_out = h + LN(ReLU(h W_down) W_up),   W_down: d x d/rho,  W_up: d/rho x d,

placed on a branch output of a Swin block, before the branch joins the
residual stream. Configuration that reproduces the papers' counts on Swin-T:

- ``adapter`` / ``adapter_shared``: after the MLP only, rho = 2, a LayerNorm
  after the adapter (Hyperformer's ``add_layer_norm_after_adapter``): per task
  sum_l (d_l^2 + 3.5 d_l) = 2.17M, so 8.69M for four tasks, 2.17M shared.
- ``low_rank_adapter`` / ``low_rank_adapter_shared`` (Compacter's low-rank
  baseline, as in VL-Adapter): after attention and after the MLP, both
  projections factorised as W = U V of rank r = 2, rho = 2, LayerNorm after:
  per adapter 2 r (d + d/rho) + d + d/rho + 2d = 9.5 d; 0.34M for four tasks.
  Its Shared copy is a quarter of that, 0.084M, where VMT-Adapter's Table 2
  prints 0.10M: no shared copy of the configuration that reproduces the
  Multiple row gives both (README, "Methods and their trainable parameters").

The LayerNorm's gain starts at zero, so every adapter starts as the identity
and training starts from the pretrained network's function (the role the
zero-initialised up-projection plays in LoRA and AdaptFormer; with a
LayerNorm after it, a zero up-projection would sit where LN's gradient is
1/sqrt(eps)).

"Multiple" ids are O(T): each task's adapters are active in that task's pass.
"Shared" ids are O(1): one pass, one adapter per place.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import (
    Method,
    MethodConfig,
    OnePassMethod,
    PerTaskPassMethod,
    divisor_check,
)
from vmtlib.methods.layers import BranchHooks, branch_adapters, wrap_blocks


class LowRankLinear(nn.Module):
    """``y = x U V + b`` with U: ``(d_in, r)``, V: ``(r, d_out)``; W = U V has rank r.

    Initialised so that W has the variance 1 / d_in of a default linear layer.
    """

    def __init__(self, d_in: int, d_out: int, rank: int) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(d_in, rank) / math.sqrt(d_in))
        self.v = nn.Parameter(torch.randn(rank, d_out) / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.u) @ self.v + self.bias


class BottleneckAdapter(nn.Module):
    """Eq. 1 with a LayerNorm after the up-projection: ``h + LN(ReLU(h W_down) W_up)``.

    Args:
        dim: d, the width of the branch it adapts.
        hidden: d / rho, the bottleneck width.
        rank: ``None`` for dense projections, else the rank of both factorised
            projections (the low-rank adapter).
    """

    def __init__(self, dim: int, hidden: int, rank: int | None = None) -> None:
        super().__init__()
        if rank is None:
            self.down: nn.Module = nn.Linear(dim, hidden)
            self.up: nn.Module = nn.Linear(hidden, dim)
        else:
            self.down = LowRankLinear(dim, hidden, rank)
            self.up = LowRankLinear(hidden, dim, rank)
        self.norm = nn.LayerNorm(dim)
        nn.init.zeros_(self.norm.weight)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.norm(self.up(F.relu(self.down(h))))


AdapterHooks = BranchHooks  # the adapters' and PHM adapters' hooks (old name)


@dataclasses.dataclass(frozen=True)
class AdapterConfig(MethodConfig):
    """rho: bottleneck ratio d / hidden (paper: 2)."""

    rho: int = 2


@dataclasses.dataclass(frozen=True)
class LowRankAdapterConfig(AdapterConfig):
    """rho: bottleneck ratio (paper: 2); r: rank of each projection (2)."""

    r: int = 2


class _AdapterFamily(Method):
    """Bottleneck adapters in every block: one per task for O(T) ids, else one.

    ``low_rank``: rank-``config.r`` projections and an adapter after attention too.
    """

    low_rank: ClassVar[bool] = False

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config) -> None:
        super().__init__(backbone, tasks, config)
        rho, rank = config.rho, (config.r if self.low_rank else None)
        divisor_check("rho", rho, backbone.dims, self.method_id)
        wrap_blocks(backbone, self.state, lambda s, b, dim: branch_adapters(
            lambda: BottleneckAdapter(dim, dim // rho, rank), self.copies, self.low_rank))


class Adapter(_AdapterFamily, PerTaskPassMethod):
    """Multiple Adapter: one bottleneck adapter per task after each MLP."""

    method_id = "adapter"
    description = "bottleneck adapter after each MLP, one per task (O(T))"
    table_row = 11
    Config = AdapterConfig


class AdapterShared(_AdapterFamily, OnePassMethod):
    """Shared Adapter: one bottleneck adapter after each MLP for all tasks."""

    method_id = "adapter_shared"
    description = "bottleneck adapter after each MLP, shared by all tasks (O(1))"
    table_row = 12
    Config = AdapterConfig


class LowRankAdapter(_AdapterFamily, PerTaskPassMethod):
    """Multiple low-rank adapter: rank-r projections after attention and MLP, per task."""

    method_id = "low_rank_adapter"
    description = "low-rank adapters after attention and MLP, one per task (O(T))"
    table_row = 13
    Config = LowRankAdapterConfig
    low_rank = True


class LowRankAdapterShared(_AdapterFamily, OnePassMethod):
    """Shared low-rank adapter: rank-r projections after attention and MLP, shared."""

    method_id = "low_rank_adapter_shared"
    description = "low-rank adapters after attention and MLP, shared by all tasks (O(1))"
    table_row = 14
    Config = LowRankAdapterConfig
    low_rank = True

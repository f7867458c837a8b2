"""VMT-Adapter and VMT-Adapter-Lite (Xin et al., AAAI 2024).

Placement (Fig. 3): in parallel to the MLP of every Swin block. With
x_l the MLP's input (the frozen LN2 output, so the adapter sees the features
the MLP it sits beside sees), shapes ``(B, N, d)``:

- Eq. 3, shared projections:   F = ReLU(x_l W_down + b_down) W_up + b_up,
  W_down: d x k, W_up: k x d, k = d / rho.
- Gating ratio s in (0, 1) splits F: the task-generic part (1 - s) F joins
  the residual stream next to the MLP output, and s F feeds the knowledge
  extraction modules.
- Eq. 4, knowledge extraction modules: f_{t_i} = alpha_i (.) (s F) + gamma_i,
  alpha_i, gamma_i in R^d for each task i (per block).
- Eq. 5: the decoder of task i receives, for stage j,
  f_g^j + f_{t_i}^j, where f_g^j is the stage output (it carries the
  task-generic parts through the residual stream) and f_{t_i}^j combines the
  task-specific features of the stage's blocks.

Choices the paper leaves open, made here:

- f_{t_i}^j is the *mean* over the blocks of stage j (Swin-T has 2, 2, 6, 2
  blocks), so its scale does not depend on the stage's depth.
- s is learned per block, as s = sigmoid(g) with g = 0 (s = 0.5) at start.
- W_up starts at zero (so F = 0 and the network starts as the pretrained
  one), W_down as a default linear layer, alpha_i at 1 and gamma_i at 0.

One backbone pass serves every task (O(1)): only the element-wise Eq. 4 runs
per task.

VMT-Adapter-Lite (Eq. 6) builds both projections from shared m x m matrices:
W_down = sum_i A^i (x) B_down^i, W_up = sum_i A^i (x) B_up^i, with
B_down^i: d/m x k/m and B_up^i: k/m x d/m. One set {A^i} per block (m^3
numbers) reproduces the paper's 0.15M at m = 12; the weights are built once
per forward pass (``vmtlib.kron.kron_sum``), then applied as dense matmuls,
which ``benchmarks/bench_kron.py`` measured faster than the structured
product at the Swin-T sizes.

Parameter counts (Table 1): 2 L d^2 / rho + 2 T d (+ m^3 L for Lite, and the
projections / m), here with biases and the per-block gate as well.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.kron import kron_sum
from vmtlib.methods.base import MethodConfig, OnePassMethod, divisor_check
from vmtlib.methods.layers import BlockHooks, wrap_blocks


class SharedProjection(nn.Module):
    """Eq. 3: ``F = ReLU(x W_down + b_down) W_up + b_up``; ``(..., d) -> (..., d)``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(x)))


class KroneckerProjection(nn.Module):
    """Eq. 6: the projections of Eq. 3 as sums of m Kronecker products.

    Parameters: ``a`` ``(m, m, m)`` shared by both projections,
    ``b_down`` ``(m, d/m, k/m)``, ``b_up`` ``(m, k/m, d/m)``, biases ``(k,)``, ``(d,)``.
    """

    def __init__(self, dim: int, hidden: int, m: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(m, m, m) / math.sqrt(m))
        self.b_down = nn.Parameter(torch.randn(m, dim // m, hidden // m) / math.sqrt(dim))
        self.b_up = nn.Parameter(torch.zeros(m, hidden // m, dim // m))
        self.bias_down = nn.Parameter(torch.zeros(hidden))
        self.bias_up = nn.Parameter(torch.zeros(dim))

    def weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_down (d, k), W_up (k, d))`` of Eq. 6."""
        return kron_sum(self.a, self.b_down), kron_sum(self.a, self.b_up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_down, w_up = self.weights()
        return F.relu(x @ w_down + self.bias_down) @ w_up + self.bias_up


class KnowledgeExtraction(BlockHooks):
    """One block's VMT-Adapter: shared projection, gate, Eq. 4 for every task."""

    def __init__(self, projection: nn.Module, dim: int, num_tasks: int) -> None:
        super().__init__()
        self.projection = projection
        self.gate = nn.Parameter(torch.zeros(()))  # s = sigmoid(gate)
        self.alpha = nn.Parameter(torch.ones(num_tasks, dim))
        self.gamma = nn.Parameter(torch.zeros(num_tasks, dim))

    def mlp_branch(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Eq. 3, the gate and Eq. 4; ``state.stage_extras[stage]`` sums the
        stage's Eq. 4 over its blocks, ``(T, B, N, d)``; returns ``h + (1 - s) F``.

        The ``T`` copies are the method's only per-task work, element-wise and
        so bound by memory traffic, which is why they are touched as few times
        as the arithmetic allows: s is folded into alpha_i (``(s alpha_i) (.) F``,
        a ``(T, d)`` product), and Eq. 4 is one fused multiply-add into the
        stage's sum, in place after the stage's first block (the backward pass
        keeps F and the scales, never the sum). ``benchmarks/bench_eq4.py``
        times this against the paper's order of operations.
        """
        f = self.projection(x)  # Eq. 3, (B, N, d)
        s = torch.sigmoid(self.gate)
        scale, shift = (s * self.alpha)[:, None, None, :], self.gamma[:, None, None, :]
        extras = self.state.stage_extras
        if self.stage in extras:
            extras[self.stage].addcmul_(scale, f).add_(shift)
        else:
            extras[self.stage] = torch.addcmul(shift, scale, f)  # Eq. 4
        return torch.addcmul(h, 1 - s, f)  # the task-generic part joins the residual stream


@dataclasses.dataclass(frozen=True)
class VMTAdapterConfig(MethodConfig):
    """rho: down-projection ratio d / k (paper default 4; Table 3: 1, 2, 4, 8)."""

    rho: int = 4


@dataclasses.dataclass(frozen=True)
class VMTAdapterLiteConfig(VMTAdapterConfig):
    """rho: down-projection ratio (4); m: number and size of the shared A^i (3; 3, 6, 12)."""

    m: int = 3


class _VMTBase(OnePassMethod):
    """Shared pass; Eq. 5 adds each task's stage features to the shared ones."""

    task_indexed = ("alpha", "gamma")  # Eq. 4

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config) -> None:
        super().__init__(backbone, tasks, config)
        divisor_check("rho", config.rho, backbone.dims, self.method_id)
        self.check_projection(backbone)
        self.adapters = nn.ModuleList(
            wrap_blocks(
                backbone,
                self.state,
                lambda s, b, dim: KnowledgeExtraction(
                    self.make_projection(dim, dim // config.rho), dim, len(tasks)
                ),
            )
        )

    def check_projection(self, backbone: SwinBackbone) -> None:
        """Build-time checks of the projection's own hyper-parameters (none here)."""

    def make_projection(self, dim: int, hidden: int) -> nn.Module:
        return SharedProjection(dim, hidden)

    def task_features(self, feats: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        extras = self.state.stage_extras
        per_task: dict[str, list[torch.Tensor]] = {t: [] for t in self.tasks}
        for s, shared in enumerate(feats):
            # unbind, not task_part[i]: the backward of T selections would fill
            # T zero tensors of the full (T, B, H, W, d) size, O(T^2)
            task_parts = extras[s].view(len(self.tasks), *shared.shape).unbind(0)
            mean = 1 / self.backbone.depths[s]  # over the stage's blocks
            for t, part in zip(self.tasks, task_parts):
                per_task[t].append(torch.add(shared, part, alpha=mean))
        return per_task


class VMTAdapter(_VMTBase):
    """VMT-Adapter (Eq. 3-5)."""

    method_id = "vmt_adapter"
    description = "VMT-Adapter: shared projections + per-task scale/shift, one pass (O(1))"
    table_row = 21
    Config = VMTAdapterConfig


class VMTAdapterLite(_VMTBase):
    """VMT-Adapter-Lite (Eq. 6): projections as sums of Kronecker products."""

    method_id = "vmt_adapter_lite"
    description = "VMT-Adapter-Lite: Kronecker-shared projections, one pass (O(1))"
    table_row = 22
    Config = VMTAdapterLiteConfig

    def check_projection(self, backbone: SwinBackbone) -> None:
        """m must divide every width and every bottleneck."""
        rho, m = self.config.rho, self.config.m
        divisor_check("m", m, [*backbone.dims, *(d // rho for d in backbone.dims)], self.method_id)

    def make_projection(self, dim: int, hidden: int) -> nn.Module:
        return KroneckerProjection(dim, hidden, self.config.m)

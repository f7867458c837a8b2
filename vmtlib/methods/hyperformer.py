"""Hyperformer: a task-conditioned hypernetwork generates every adapter.

Hyperformer (Karimi Mahabadi et al. 2021; Polyhistor Eq. 2) keeps one
adapter per task and layer, W_l^t = Pi(V_t W_hat_l), but trains only a
hypernetwork W_hat_l per adapter and a small embedding per task:

    z_t     = MLP(v_t),  v_t in R^512, MLP: 512 -> 128 -> ReLU -> 64 (shared by all layers)
    W_down  = Pi(z_t G_down + c_down) in R^{d x n},   b_down = z_t g_down + e_down
    W_up    = Pi(z_t G_up + c_up)     in R^{n x d},   b_up   = z_t g_up + e_up
    gamma   = z_t G_gamma + c_gamma,  beta = z_t G_beta + c_beta   (a generated LayerNorm)
    h_out   = h + LN_{gamma, beta}(ReLU(h W_down + b_down) W_up + b_up)

Placement: after the attention branch and after the MLP branch of every
Swin block (before each joins the residual stream), n = d / 8. Sizes from
Hyperformer's public configuration: task embedding 512, hidden 128,
projected 64, conditional (generated) LayerNorms after the adapters.

Count on Swin-T, four tasks: per adapter 65 (2 d n + n + d + 2 d), i.e.
16.25 d^2 + 203.1 d, twice per block: 71.88M, plus the shared task MLP
(73,920) and the task embeddings (4 x 512): 71.96M against the papers' 72.77M
(-1.1%).

The generated LayerNorm gain and shift start at zero (their generators are
zero-initialised), so every adapter starts as the identity. O(T): each task
has its own adapters (generated from its own embedding), so each task needs
its own pass; the method generates nothing per token, the hypernetworks run
once per pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import MethodConfig, PerTaskPassMethod, divisor_check
from vmtlib.methods.layers import BranchHooks, condition_input, wrap_blocks


def generator(in_dim: int, out_dim: int, std: float = 1e-2) -> nn.Linear:
    """A hypernetwork head: ``N(0, std^2)`` weights and zero bias (Hyperformer's init)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class HyperAdapter(nn.Module):
    """The hypernetworks of one adapter position (see the module docstring).

    Args:
        dim: d, the width of the branch it adapts.
        hidden: n, the bottleneck.
        embed: the size of the task embedding z_t it is conditioned on.
    """

    def __init__(self, dim: int, hidden: int, embed: int) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        self.w_down = generator(embed, dim * hidden)
        self.w_up = generator(embed, hidden * dim)
        self.b_down = generator(embed, hidden)
        self.b_up = generator(embed, dim)
        self.gamma = generator(embed, dim, std=0.0)
        self.beta = generator(embed, dim, std=0.0)

    def weights(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The adapter of task embedding ``z`` (shape ``(embed,)``)."""
        return {
            "w_down": self.w_down(z).view(self.dim, self.hidden),
            "w_up": self.w_up(z).view(self.hidden, self.dim),
            "b_down": self.b_down(z),
            "b_up": self.b_up(z),
            "gamma": self.gamma(z),
            "beta": self.beta(z),
        }

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        w = self.weights(z)
        u = F.relu(h @ w["w_down"] + w["b_down"]) @ w["w_up"] + w["b_up"]
        return h + F.layer_norm(u, (self.dim,), w["gamma"], w["beta"])


class HyperformerHooks(BranchHooks):
    """Generated adapters after attention and after the MLP of one block."""

    def __init__(self, dim: int, hidden: int, embed: int) -> None:
        attn, mlp = HyperAdapter(dim, hidden, embed), HyperAdapter(dim, hidden, embed)
        super().__init__(condition_input, attn=attn, mlp=mlp)


@dataclasses.dataclass(frozen=True)
class HyperformerConfig(MethodConfig):
    """task_dim: task embedding (512); hidden: its MLP's hidden width (128);
    projected: the embedding the hypernetworks see (64); rho: adapter ratio d / n (8)."""

    task_dim: int = 512
    hidden: int = 128
    projected: int = 64
    rho: int = 8


class Hyperformer(PerTaskPassMethod):
    """Hyperformer (Polyhistor Eq. 2): per-layer hypernetworks fed with a task embedding."""

    method_id = "hyperformer"
    description = "Hyperformer: adapters generated from task embeddings by hypernetworks (O(T))"
    table_row = 18
    task_indexed = ("task_embeddings",)
    Config = HyperformerConfig

    def __init__(
        self, backbone: SwinBackbone, tasks: Sequence[str], config: HyperformerConfig
    ) -> None:
        super().__init__(backbone, tasks, config)
        divisor_check("rho", config.rho, backbone.dims, self.method_id)
        self.task_embeddings = nn.Parameter(torch.randn(len(tasks), config.task_dim))
        self.task_mlp = nn.Sequential(
            nn.Linear(config.task_dim, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.projected),
        )
        wrap_blocks(
            backbone,
            self.state,
            lambda s, b, dim: HyperformerHooks(dim, dim // config.rho, config.projected),
        )

    def condition(self, task: int) -> torch.Tensor:
        """z_t: the projected embedding of task ``task``."""
        # a copy, not a view: under no_grad a view of a leaf still requires grad and has no
        # grad_fn, which FlopCounterMode's module hooks reject ("Expected gradient function")
        return self.task_mlp(self.task_embeddings[task].clone())

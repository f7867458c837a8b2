"""Polyhistor and Polyhistor-Lite (Liu et al., NeurIPS 2022).

Both put an adapter after the attention branch and after the MLP branch of
every Swin block (before each joins the residual stream). With h the branch
output, width d, bottleneck n = d / rho:

    h_out = h + LN_post(ReLU(LN_pre(h) W_down) W_up),   [W_down, W_up^T] = W in R^{d x 2n}.

The two LayerNorms carry the adapter's shifts (there are no separate biases)
and the gain of LN_post starts at zero, so every adapter starts as the
identity. Each task has its own adapters, so each task needs its own pass:
both methods are O(T).

Polyhistor (Sec. 4.1, Eq. 3): decomposed hypernetworks, one pair per adapter
l, map a learned task embedding V_t in R^k to two low-rank factors,

    W_l^t = p q^T,  p = Pi_p(V_t W_hat_l^p) in R^{d x r},  q = Pi_q(V_t W_hat_l^q) in R^{2n x r}.

The same V_t also generates LN_pre's and LN_post's gains and shifts through
four linear heads per adapter (Hyperformer's generated LayerNorms). The
paper does not publish k and r; k = 32, r = 9, rho = 2 give per adapter
(k + 1)(r (d + 2n) + 4 d) = 726 d, so 1452 sum_l d_l + 4 k = 6.41M on Swin-T
with four tasks (papers: 6.41M).

Polyhistor-Lite (Sec. 4.2-4.3, Eq. 4-6): a single pair of hypernetworks
W_hat^p (k x d_0 r), W_hat^q (k x 2 n_0 r), shared by all adapters and
tasks, produces template kernels at the first stage's width d_0 = 96,
n_0 = d_0 / rho, from a task embedding V_t and layer embeddings V_l^i
(k / 2 each):

    W~_l^{t,i} = Pi_p([V_t; V_l^i] W_hat^p) Pi_q([V_t; V_l^i] W_hat^q)^T in R^{d_0 x 2 n_0}  (Eq. 5)
    W_l^t      = sum_{i=1}^{s} W~_l^{t,i} (x) kappa_l^{t,i},   kappa in R^{s x s}         (Eq. 6)

where s = d_l / d_0 is the stage's scale (1, 2, 4, 8 on Swin): the layer-wise
scaling kernels kappa grow the templates to (d_0 s) x (2 n_0 s) = d_l x 2 n_l.
The two halves of W_l^t's columns are W_down and W_up^T (kron(W~, kappa)
keeps column block b of W~ in columns b s .. b s + s - 1). LN_pre and LN_post
are plain per-task, per-adapter LayerNorms: the shared hypernetworks emit
only template-width tensors. Sizes (not published either): rho = 2 and
r = 21 give 0.22M / 0.29M / 0.42M for k = 16 / 32 / 64 (papers 0.23 / 0.29 /
0.41, Table 2; -3.5% / -0.9% / +1.9%). Of these, 0.157M do not depend on k:
the per-task LayerNorms (4 d per adapter and task: 0.141M), kappa (s^3 per
adapter and task: 0.011M) and the hypernetworks' biases (0.004M); the rest is
k (r (d_0 + 2 n_0) + 46 + 2) with 92 layer and 4 task embeddings of k / 2.
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
from vmtlib.methods.base import MethodConfig, PerTaskPassMethod, divisor_check
from vmtlib.methods.layers import BranchHooks, condition_and_task, condition_input, wrap_blocks


def factor_head(k: int, out: int, rank: int, width: int) -> nn.Linear:
    """A head V -> one low-rank factor; with V ~ N(0, 1) the product of two such
    factors has entries of variance 1 / width (a default linear layer's)."""
    layer = nn.Linear(k, out)
    nn.init.normal_(layer.weight, std=(rank * width) ** -0.25 / math.sqrt(k))
    nn.init.zeros_(layer.bias)
    return layer


def constant_head(k: int, out: int, value: float) -> nn.Linear:
    """A head that outputs ``value`` everywhere at initialisation."""
    layer = nn.Linear(k, out)
    nn.init.zeros_(layer.weight)
    nn.init.constant_(layer.bias, value)
    return layer


def adapter(
    h: torch.Tensor,
    w: torch.Tensor,
    pre: tuple[torch.Tensor, torch.Tensor],
    post: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """``h + LN_post(ReLU(LN_pre(h) W_down) W_up)`` with ``[W_down, W_up^T] = w`` (d x 2n)."""
    d, n = w.shape[0], w.shape[1] // 2
    u = F.relu(F.layer_norm(h, (d,), *pre) @ w[:, :n]) @ w[:, n:].T
    return h + F.layer_norm(u, (d,), *post)


# ----------------------------------------------------------------------------- Polyhistor


class DecomposedHyperAdapter(nn.Module):
    """Eq. 3 for one adapter: a pair of hypernetworks (plus the LayerNorm heads)."""

    def __init__(self, dim: int, hidden: int, k: int, rank: int) -> None:
        super().__init__()
        self.dim, self.hidden, self.rank = dim, hidden, rank
        self.p_head = factor_head(k, dim * rank, rank, dim)
        self.q_head = factor_head(k, 2 * hidden * rank, rank, dim)
        self.pre_gain, self.pre_shift = constant_head(k, dim, 1.0), constant_head(k, dim, 0.0)
        self.post_gain, self.post_shift = constant_head(k, dim, 0.0), constant_head(k, dim, 0.0)

    def factors(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``p (d, r)`` and ``q (2n, r)`` for task embedding ``v (k,)``."""
        p = self.p_head(v).view(self.dim, self.rank)
        return p, self.q_head(v).view(2 * self.hidden, self.rank)

    def weight(self, v: torch.Tensor) -> torch.Tensor:
        """``W = p q^T`` ``(d, 2n)``: ``[W_down, W_up^T]``."""
        p, q = self.factors(v)
        return p @ q.T

    def forward(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        pre = (self.pre_gain(v), self.pre_shift(v))
        post = (self.post_gain(v), self.post_shift(v))
        return adapter(h, self.weight(v), pre, post)


class PolyhistorHooks(BranchHooks):
    """Decomposed hyper-adapters after attention and after the MLP of one block."""

    def __init__(self, dim: int, hidden: int, k: int, rank: int) -> None:
        attn = DecomposedHyperAdapter(dim, hidden, k, rank)
        mlp = DecomposedHyperAdapter(dim, hidden, k, rank)
        super().__init__(condition_input, attn=attn, mlp=mlp)


@dataclasses.dataclass(frozen=True)
class PolyhistorConfig(MethodConfig):
    """k: task embedding size (32); r: rank of p q^T (9); rho: adapter ratio d / n (2)."""

    k: int = 32
    r: int = 9
    rho: int = 2


class Polyhistor(PerTaskPassMethod):
    """Polyhistor (Eq. 3): per-adapter decomposed hypernetworks fed with task embeddings."""

    method_id = "polyhistor"
    description = "Polyhistor: adapters from per-layer decomposed hypernetworks (O(T))"
    table_row = 19
    task_indexed = ("task_embeddings",)
    Config = PolyhistorConfig

    def __init__(
        self, backbone: SwinBackbone, tasks: Sequence[str], config: PolyhistorConfig
    ) -> None:
        super().__init__(backbone, tasks, config)
        divisor_check("rho", config.rho, backbone.dims, self.method_id)
        self.task_embeddings = nn.Parameter(torch.randn(len(tasks), config.k))
        wrap_blocks(
            backbone,
            self.state,
            lambda s, b, dim: PolyhistorHooks(dim, dim // config.rho, config.k, config.r),
        )

    def condition(self, task: int) -> torch.Tensor:
        """V_t of task ``task`` (a copy: see ``Hyperformer.condition``)."""
        return self.task_embeddings[task].clone()


# ----------------------------------------------------------------------------- Polyhistor-Lite


class ScaledAdapter(nn.Module):
    """Eq. 6 for one adapter of scale s: per-task scaling kernels and LayerNorms.

    Args:
        dim: d_l = s d_0.
        scale: s.
        num_tasks: T.
        offset: where this adapter's s template kernels start in the pass's stack.
    """

    def __init__(self, dim: int, scale: int, num_tasks: int, offset: int) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset
        # var(W) = s var(W~) var(kappa) = 1 / d_l when var(W~) = 1 / d_0 and var(kappa) = 1 / s^2.
        self.kernels = nn.Parameter(torch.randn(num_tasks, scale, scale, scale) / scale)
        self.pre_gain = nn.Parameter(torch.ones(num_tasks, dim))
        self.pre_shift = nn.Parameter(torch.zeros(num_tasks, dim))
        self.post_gain = nn.Parameter(torch.zeros(num_tasks, dim))
        self.post_shift = nn.Parameter(torch.zeros(num_tasks, dim))

    def weight(self, templates: torch.Tensor, task: int) -> torch.Tensor:
        """``W_l^t = sum_i W~^i (x) kappa^i`` ``(d_l, 2 n_l)`` from the pass's template stack."""
        own = templates[self.offset : self.offset + self.scale]  # (s, d_0, 2 n_0)
        return kron_sum(own, self.kernels[task])

    def forward(self, h: torch.Tensor, templates: torch.Tensor, task: int) -> torch.Tensor:
        pre = (self.pre_gain[task], self.pre_shift[task])
        post = (self.post_gain[task], self.post_shift[task])
        return adapter(h, self.weight(templates, task), pre, post)


class LiteHooks(BranchHooks):
    """A block's two scaled adapters; they take the pass's templates and task."""

    def __init__(self, attn_adapter: ScaledAdapter, mlp_adapter: ScaledAdapter) -> None:
        super().__init__(condition_and_task, attn=attn_adapter, mlp=mlp_adapter)


@dataclasses.dataclass(frozen=True)
class PolyhistorLiteConfig(MethodConfig):
    """k: task + layer embedding size (64; Table 2: 16, 32, 64), even (V_t and V_l are
    k / 2 each); r: template rank (21); rho: adapter ratio d / n (2)."""

    k: int = 64
    r: int = 21
    rho: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k % 2:
            self.fail("k", self.k, "even (V_t and V_l are k / 2 each)")


class PolyhistorLite(PerTaskPassMethod):
    """Polyhistor-Lite (Eq. 4-6): one shared pair of hypernetworks and scaling kernels."""

    method_id = "polyhistor_lite"
    description = "Polyhistor-Lite: shared decomposed hypernetworks + scaling kernels (O(T))"
    table_row = 20
    task_indexed = (
        "task_embeddings", "kernels", "pre_gain", "pre_shift", "post_gain", "post_shift",
    )
    Config = PolyhistorLiteConfig

    def __init__(
        self, backbone: SwinBackbone, tasks: Sequence[str], config: PolyhistorLiteConfig
    ) -> None:
        super().__init__(backbone, tasks, config)
        d0 = backbone.dims[0]
        divisor_check("rho", config.rho, [d0], self.method_id)
        scales = [d // d0 for d in backbone.dims]
        if any(s * d0 != d for s, d in zip(scales, backbone.dims)):
            raise ValueError(f"{self.method_id} needs stage widths that are multiples of {d0}")
        self.template_shape = (d0, 2 * (d0 // config.rho))
        self.p_head = factor_head(config.k, d0 * config.r, config.r, d0)  # W_hat^p
        self.q_head = factor_head(config.k, self.template_shape[1] * config.r, config.r, d0)
        self.task_embeddings = nn.Parameter(torch.randn(len(tasks), config.k // 2))

        offset = 0

        def make(s: int, b: int, dim: int) -> LiteHooks:
            nonlocal offset
            scale = scales[s]
            pair = []
            for _ in range(2):  # after attention, after the MLP
                pair.append(ScaledAdapter(dim, scale, len(tasks), offset))
                offset += scale
            return LiteHooks(*pair)

        wrap_blocks(backbone, self.state, make)
        self.layer_embeddings = nn.Parameter(torch.randn(offset, config.k // 2))

    def templates(self, task: int) -> torch.Tensor:
        """Eq. 5 for every adapter and i at once: ``(sum of s over adapters, d_0, 2 n_0)``."""
        layers = self.layer_embeddings
        v = torch.cat([self.task_embeddings[task].expand(layers.shape[0], -1), layers], dim=1)
        r = self.config.r
        p = self.p_head(v).view(-1, self.template_shape[0], r)
        q = self.q_head(v).view(-1, self.template_shape[1], r)
        return p @ q.transpose(1, 2)

    def condition(self, task: int) -> torch.Tensor:
        return self.templates(task)

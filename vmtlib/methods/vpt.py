"""Visual Prompt Tuning (VPT) in Swin's windowed attention, one prompt set per task.

VPT (Jia et al. 2022; Polyhistor Sec. 5.2) prepends P = 50 learnable tokens
to a transformer layer's input. In a ViT every token attends to every other,
so the prompts simply join the sequence. Swin attends inside 7 x 7 windows
and merges windows back into a feature map after attention, and a patch
merging layer later expects exactly an H x W grid, so the prompts need a
placement. Ours, for a block with input x (B, H, W, C) and prompts
p (P, C):

- The prompts are shared by every window of the block: each window w attends
  over [prompts; window tokens],

      Attn_w = SoftMax(Q_w [K_p; K_w]^T / sqrt(d_head) + [0, B + M_w]) [V_p; V_w],

  with Q_w, K_w, V_w = LN1(x_w) W_qkv (the window's tokens) and
  K_p, V_p = LN1(p) W_qkv (the block's own LN1 and qkv, frozen), B the
  relative-position bias and M_w the shifted-window mask. The prompt columns
  get zero bias and no mask: prompts have no position and belong to every
  window.
- Prompts are keys and values only: their own outputs would be dropped
  before the windows are merged, so their queries are not computed. The
  block's output keeps the H x W grid, and nothing downstream changes.
- ``vpt_deep``: one prompt set in every block (its width, d_l). ``vpt_shallow``:
  one set in the first block only.

This is the official VPT Swin code's ``prepend`` placement (prompts
concatenated to every window, zero relative bias for prompt columns, no mask)
up to one point: there, prompt outputs are averaged over the windows and
carried on; here they are dropped. For ``vpt_deep`` the two are identical,
because the next block replaces the prompts with its own set. For
``vpt_shallow`` the official code lets the first block's prompt outputs
travel through all later blocks and patch mergings; ours act in the first
block only (as the issue specifies, "removed again before windows are
merged").

Counts on Swin-T, four tasks, P = 50: deep 4 * 50 * sum_l d_l = 0.883M (papers
0.88M); shallow 4 * 50 * 96 = 0.019M (papers 0.02M, the printed precision).
Prompts start uniform in +-sqrt(6 / (3 * 4^2 + C_0)), C_0 the embedding width (96 on
Swin-T) for every block (VPT's Xavier-style init);
as extra keys they change the output from the start.

O(T): task t's prompts are active in task t's pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vmtlib.backbone import (
    SwinBackbone,
    block_forward,
    relative_position_bias,
    windowed_attention,
)
from vmtlib.methods.base import MethodConfig, MethodState, PerTaskPassMethod
from vmtlib.methods.layers import replace_blocks


def prompted_window_attention(
    attn: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, prompts: torch.Tensor
) -> torch.Tensor:
    """timm ``WindowAttention`` over ``[prompts; window tokens]``, outputs for the tokens only.

    Args:
        attn: the block's (frozen) ``WindowAttention``.
        x: window tokens ``(B * nW, N, C)``, already through LN1.
        mask: the shifted-window mask ``(nW, N, N)`` or ``None``.
        prompts: ``(P, C)``, already through LN1.

    Returns:
        ``(B * nW, N, C)``.
    """
    b_, n, _ = x.shape
    heads = attn.num_heads
    p = prompts.shape[0]
    q, k, v = attn.qkv(x).reshape(b_, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    _, pk, pv = attn.qkv(prompts).reshape(p, 3, heads, -1).permute(1, 2, 0, 3).unbind(0)
    k = torch.cat([pk.expand(b_, -1, -1, -1), k], dim=2)  # (B nW, heads, P + N, d_head)
    v = torch.cat([pv.expand(b_, -1, -1, -1), v], dim=2)
    bias = F.pad(relative_position_bias(attn), (p, 0))  # (1, heads, N, P + N), prompt columns 0
    if mask is not None:
        nw = mask.shape[0]
        mask = F.pad(mask, (p, 0)).view(1, nw, 1, n, p + n)
        bias = (bias.unsqueeze(1) + mask).expand(b_ // nw, -1, -1, -1, -1)
        bias = bias.reshape(b_, heads, n, p + n)
    drop = attn.attn_drop.p if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=drop)
    out = out.transpose(1, 2).reshape(b_, n, -1)
    return attn.proj_drop(attn.proj(out))


class PromptedSwinBlock(nn.Module):
    """A timm ``SwinTransformerBlock`` whose windows also attend to P prompt tokens.

    ``prompts`` is ``(copies, P, C)``: one set per task (``copies`` = T) or one.
    The wrapped block is ``self.block``, as in
    :class:`~vmtlib.methods.layers.HookedSwinBlock`.
    """

    def __init__(
        self,
        block: nn.Module,
        num_prompts: int,
        copies: int,
        state: MethodState,
        init_range: float,
    ) -> None:
        super().__init__()
        self.block = block
        dim = block.norm1.normalized_shape[0]
        self.prompts = nn.Parameter(
            torch.empty(copies, num_prompts, dim).uniform_(-init_range, init_range)
        )
        self.state = state

    def active_prompts(self) -> torch.Tensor:
        """This pass's ``(P, C)`` prompts, a copy: under ``no_grad`` a view of the leaf
        would require grad without a grad_fn, which FlopCounterMode's hooks reject."""
        return self.state.active(self.prompts).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blk = self.block
        prompts = blk.norm1(self.active_prompts())

        def attention(h: torch.Tensor) -> torch.Tensor:
            return windowed_attention(
                blk, h, lambda windows, mask: prompted_window_attention(
                    blk.attn, windows, mask, prompts))

        return block_forward(blk, x, attention=attention)


@dataclasses.dataclass(frozen=True)
class VPTConfig(MethodConfig):
    """tokens: prompt tokens per prompted block (paper: 50)."""

    tokens: int = 50


class _VPT(PerTaskPassMethod):
    deep: bool
    task_indexed = ("prompts",)
    Config = VPTConfig

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: VPTConfig) -> None:
        super().__init__(backbone, tasks, config)
        # VPT's Xavier-style range: sqrt(6 / (3 * patch^2 + embed_dim)), patch 4.
        init_range = math.sqrt(6.0 / (3 * 4**2 + backbone.dims[0]))

        def prompted(s: int, b: int, block: nn.Module) -> PromptedSwinBlock | None:
            if not (self.deep or (s, b) == (0, 0)):
                return None
            return PromptedSwinBlock(block, config.tokens, self.copies, self.state, init_range)

        replace_blocks(backbone, prompted)


class VPTShallow(_VPT):
    """VPT-shallow: 50 prompts in the first block, one set per task."""

    method_id = "vpt_shallow"
    description = "VPT-shallow: 50 prompt tokens in the first block, one set per task (O(T))"
    table_row = 7
    deep = False


class VPTDeep(_VPT):
    """VPT-deep: 50 prompts in every block, one set per task."""

    method_id = "vpt_deep"
    description = "VPT-deep: 50 prompt tokens in every block, one set per task (O(T))"
    table_row = 8
    deep = True

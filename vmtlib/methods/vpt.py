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
from timm.models.swin_transformer import window_partition, window_reverse
from torch import nn

from vmtlib.backbone import SwinBackbone
from vmtlib.methods.base import MethodState, PerTaskPassMethod, register


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
    bias = F.pad(attn._get_rel_pos_bias(), (p, 0))  # (1, heads, N, P + N), prompt columns 0
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
    :class:`~vmtlib.methods.base.HookedSwinBlock`.
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
        if self.prompts.shape[0] == 1:
            return self.prompts[0].clone()
        if self.state.task is None:
            raise RuntimeError("per-task prompts were used outside a per-task pass")
        return self.prompts[self.state.task].clone()

    def _attn(self, x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """timm's ``SwinTransformerBlock._attn`` with prompted window attention."""
        blk = self.block
        _, h, w, c = x.shape
        has_shift = any(blk.shift_size)
        if has_shift:
            x = torch.roll(x, shifts=(-blk.shift_size[0], -blk.shift_size[1]), dims=(1, 2))
        wh, ww = blk.window_size
        x = F.pad(x, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
        _, hp, wp, _ = x.shape
        windows = window_partition(x, blk.window_size).view(-1, wh * ww, c)
        mask = blk.get_attn_mask(x) if getattr(blk, "dynamic_mask", False) else blk.attn_mask
        out = prompted_window_attention(blk.attn, windows, mask, prompts)
        x = window_reverse(out.view(-1, wh, ww, c), blk.window_size, hp, wp)[:, :h, :w, :]
        if has_shift:
            x = torch.roll(x, shifts=blk.shift_size, dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blk = self.block
        b, h, w, c = x.shape
        prompts = blk.norm1(self.active_prompts())
        x = x + blk.drop_path1(self._attn(blk.norm1(x), prompts))
        x = x.reshape(b, -1, c)
        x = x + blk.drop_path2(blk.mlp(blk.norm2(x)))
        return x.reshape(b, h, w, c)


@dataclasses.dataclass
class VPTConfig:
    """tokens: prompt tokens per prompted block (paper: 50)."""

    tokens: int = 50


class _VPT(PerTaskPassMethod):
    deep: bool

    def __init__(self, backbone: SwinBackbone, tasks: Sequence[str], config: VPTConfig) -> None:
        super().__init__(backbone, tasks, config)
        if config.tokens < 1:
            raise ValueError(f"{self.method_id}: tokens must be at least 1, got {config.tokens}")
        # VPT's Xavier-style range: sqrt(6 / (3 * patch^2 + embed_dim)), patch 4.
        init_range = math.sqrt(6.0 / (3 * 4**2 + backbone.dims[0]))
        for s, stage in enumerate(backbone.layers):
            for b in range(len(stage.blocks)):
                if self.deep or (s, b) == (0, 0):
                    stage.blocks[b] = PromptedSwinBlock(
                        stage.blocks[b], config.tokens, self.num_tasks, self.state, init_range
                    )


@register
class VPTShallow(_VPT):
    """VPT-shallow: 50 prompts in the first block, one set per task."""

    method_id = "vpt_shallow"
    description = "VPT-shallow: 50 prompt tokens in the first block, one set per task (O(T))"
    Config = VPTConfig
    deep = False


@register
class VPTDeep(_VPT):
    """VPT-deep: 50 prompts in every block, one set per task."""

    method_id = "vpt_deep"
    description = "VPT-deep: 50 prompt tokens in every block, one set per task (O(T))"
    Config = VPTConfig
    deep = True

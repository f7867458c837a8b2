"""Task decoders: one head per task on the four stage features.

``segformer`` (default) is the All-MLP decoder of SegFormer (Xie et al. 2021)
that both seed papers use, one per task, embedding 256:

    for each stage s:  e_s = Upsample_{H/4}(Linear_{C_s -> 256}(LN_s(f_s)))
    y = Conv1x1_{256 -> K}(Dropout(ReLU(BN(Conv1x1_{4*256 -> 256}([e_4, e_3, e_2, e_1])))))

The per-task LayerNorms LN_s on the stage features are the decoder's own
("per-task output LayerNorms"), so with the papers' four tasks on Swin-T the
decoders hold 4 x 635,200 + 8,224 = 2.55M parameters. Shapes: stage features
``(B, C_s, H/2^(s+2), W/2^(s+2))`` in, ``(B, K, H/4, W/4)`` out; the model
upsamples to the input size.

Two more heads, the ones VMT-Adapter (Fig. 5b) and MTLoRA (supplement
Table 2) compare, built with the same width E (256 on Swin-T):

``hrnet``, the HRNet-V2 head (Sun et al. 2019): every stage resized to the
finest scale, concatenated, two 1 x 1 layers,

    y = Conv1x1_{E -> K}(ReLU(BN(Conv1x1_{sum C_s -> E}([f_1, Up(f_2), Up(f_3), Up(f_4)]))))

Output at H/4. Swin-T, four tasks: 4 x 369,152 + 8,224 = 1.48M (MTLoRA:
1.94M). HRNet-V2 itself keeps the concatenated width (E = sum C_s = 1440:
8.35M), MTLoRA first projects each stage to HRNet-W18's widths
(18, 36, 72, 144) with per-task 1 x 1 convolutions and widens 270 -> 1080,
which gives its 1.94M with its stage widths.

``aspp``, DeepLabV3's head (Chen et al. 2017) on the stage-4 features f_4
(C_4 = 768 on Swin-T, stride 32): atrous spatial pyramid pooling with five
parallel branches of width E, a 1 x 1 convolution, three 3 x 3 convolutions
with dilations 3, 6, 9 and image pooling (global average, 1 x 1, broadcast
back), each with BN + ReLU (the pooled branch has a bias instead of BN, so a
batch of one still trains), concatenated and projected,

    y = Conv1x1_{E -> K}(Dropout(ReLU(BN(Conv1x1_{5E -> E}([b_1x1, b_3, b_6, b_9, b_pool])))))

Output at H/32. DeepLabV3 uses rates 6, 12, 18 at output stride 16; the same
spacing in image pixels at stride 32 is 3, 6, 9 (at 512 x 512 input, stage 4
is 16 x 16, where rate 18 would only see padding). Swin-T, four tasks:
4 x 6,032,128 + 8,224 = 24.14M, nearly all in the three 3 x 3 convolutions on
768 channels (MTLoRA: 12.44M; its ASPP runs on the HRNet-W18 projections
(270 channels) of all four stages concatenated, with rates 12, 24, 36, and
adds a 3 x 3 convolution before the classifier).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _sum_upsampled(maps: Iterable[torch.Tensor]) -> torch.Tensor:
    """``sum_s Up(z_s)``: each map bilinearly upsampled to the first one's size, summed."""
    out: torch.Tensor | None = None
    for z in maps:
        if out is None:
            out = z
            continue
        if z.shape[-2:] != out.shape[-2:]:
            z = F.interpolate(z, size=out.shape[-2:], mode="bilinear", align_corners=False)
        out = out + z
    if out is None:
        raise ValueError("a decoder needs at least one stage feature map")
    return out


class SegFormerHead(nn.Module):
    """All-MLP decoder for one task (see the module docstring)."""

    def __init__(
        self, in_dims: Sequence[int], out_channels: int, embed_dim: int = 256, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in in_dims)
        self.embeds = nn.ModuleList(nn.Linear(c, embed_dim) for c in in_dims)
        self.fuse = nn.Sequential(
            nn.Conv2d(embed_dim * len(in_dims), embed_dim, 1, bias=False),
            nn.BatchNorm2d(embed_dim),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )
        self.predict = nn.Conv2d(embed_dim, out_channels, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """``Conv_fuse([Up(e_4), ..., Up(e_1)]) = sum_s Up(W_s e_s)``, computed as the right side.

        The 1 x 1 fuse convolution acts on each pixel's channels and the bilinear
        upsampling on each channel's pixels, so they commute; with ``W_s`` the fuse
        weight's block for stage s and ``e_s = A_s LN_s(f_s) + b_s`` (the stage's
        Linear), each stage costs one ``C_s -> E`` product, ``(W_s A_s) LN_s(f_s) +
        W_s b_s``, at its own resolution, instead of two at H/4 on the concatenated
        4E channels. Same parameters, same function (to float rounding), 4.7x fewer
        FLOPs: 0.83 instead of 3.93 GFLOPs forward for two 224 px images on Swin-T's
        widths (``tests/test_decoders.py`` checks both).
        """
        fuse = self.fuse[0].weight.flatten(1)  # (E, n E), blocks in the order [e_n, ..., e_1]
        width, n = fuse.shape[0], len(feats)
        blocks = [fuse[:, (n - 1 - s) * width:(n - s) * width] for s in range(n)]
        fused = _sum_upsampled(
            F.linear(norm(f.permute(0, 2, 3, 1)), w @ embed.weight, w @ embed.bias)
            .permute(0, 3, 1, 2)
            for f, norm, embed, w in zip(feats, self.norms, self.embeds, blocks)
        )
        return self.predict(self.fuse[1:](fused))


class HRNetHead(nn.Module):
    """HRNet-V2 head for one task (see the module docstring).

    Args:
        in_dims: the stage widths C_s.
        out_channels: K.
        embed_dim: E, the width of the hidden 1 x 1 layer (``sum(in_dims)`` is
            HRNet-V2's own choice).
    """

    def __init__(self, in_dims: Sequence[int], out_channels: int, embed_dim: int = 256) -> None:
        super().__init__()
        self.fuse = nn.Sequential(
            nn.Conv2d(sum(in_dims), embed_dim, 1, bias=False),
            nn.BatchNorm2d(embed_dim),
            nn.ReLU(inplace=True),
        )
        self.predict = nn.Conv2d(embed_dim, out_channels, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """``Conv_fuse([f_1, Up(f_2), Up(f_3), Up(f_4)]) = sum_s Up(W_s f_s)``, computed as
        the right side: the 1 x 1 convolution commutes with the bilinear upsampling
        (as in :meth:`SegFormerHead.forward`), so each stage's block ``W_s`` of the fuse
        weight runs at the stage's own resolution on C_s channels."""
        weight = self.fuse[0].weight  # (E, sum C_s, 1, 1), blocks in stage order
        blocks = weight.split([f.shape[1] for f in feats], dim=1)
        fused = _sum_upsampled(F.conv2d(f, w) for f, w in zip(feats, blocks))
        return self.predict(self.fuse[1:](fused))


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ASPPHead(nn.Module):
    """DeepLabV3's ASPP head on the last stage, for one task (see the module docstring).

    Args:
        in_dims: the stage widths C_s (the head reads the last).
        out_channels: K.
        embed_dim: E, the width of every branch and of the projection.
        rates: the dilations of the three 3 x 3 branches.
        dropout: after the projection.
    """

    def __init__(
        self,
        in_dims: Sequence[int],
        out_channels: int,
        embed_dim: int = 256,
        rates: Sequence[int] = (3, 6, 9),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        c = in_dims[-1]
        self.branches = nn.ModuleList(
            [_conv_bn_relu(c, embed_dim)] + [_conv_bn_relu(c, embed_dim, 3, r) for r in rates]
        )
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, embed_dim, 1), nn.ReLU(inplace=True)
        )
        self.project = nn.Sequential(
            _conv_bn_relu(embed_dim * (len(rates) + 2), embed_dim), nn.Dropout(dropout)
        )
        self.predict = nn.Conv2d(embed_dim, out_channels, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        out = torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1)
        return self.predict(self.project(out))


DECODERS = {"segformer": SegFormerHead, "hrnet": HRNetHead, "aspp": ASPPHead}


def build_decoder(
    name: str, in_dims: Sequence[int], out_channels: int, embed_dim: int = 256
) -> nn.Module:
    """A decoder ``name`` for stage widths ``in_dims``, ``out_channels`` outputs and
    internal width ``embed_dim``."""
    try:
        cls = DECODERS[name]
    except KeyError:
        raise ValueError(
            f"unknown decoder {name!r}; valid decoders are: {', '.join(DECODERS)}"
        ) from None
    return cls(in_dims, out_channels, embed_dim)

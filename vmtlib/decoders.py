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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


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
        size = feats[0].shape[-2:]
        embedded = []
        for f, norm, embed in zip(feats, self.norms, self.embeds):
            e = embed(norm(f.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
            if e.shape[-2:] != size:
                e = F.interpolate(e, size=size, mode="bilinear", align_corners=False)
            embedded.append(e)
        return self.predict(self.fuse(torch.cat(embedded[::-1], dim=1)))


DECODERS = {"segformer": SegFormerHead}


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

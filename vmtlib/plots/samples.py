"""Pictures of samples and predictions in the PASCAL conventions (VOC colours,
saliency in grey, normals as ``(n + 1) / 2``), for the data and the benchmark notebooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved class ids), ``(n, 3)`` in [0, 1]."""
    cmap = np.zeros((n, 3))
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap / 255.0


def label_to_rgb(key: str, x: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` picture of a sample entry in the PASCAL conventions.

    ``image``: ``(3, H, W)`` in [0, 1]; ``semseg`` / ``human_parts``: class ids,
    VOC colours, 255 (ignore) white; ``sal``: {0, 1} grey, 255 white;
    ``normals``: ``(3, H, W)`` as the normals_distill PNG shows them,
    (n + 1) / 2, black where invalid (all-zero).
    """
    if key == "image":
        return np.clip(x.transpose(1, 2, 0), 0, 1)
    if key.startswith("normals"):
        vis = (x.transpose(1, 2, 0) + 1.0) / 2.0
        vis[(x == 0).all(0)] = 0.0
        return np.clip(vis, 0, 1)
    out = np.ones((*x.shape, 3))
    known = x != 255
    if key.startswith("sal"):
        out[known] = x[known, None].astype(float)
    else:
        out[known] = voc_palette()[x[known]]
    return out


def plot_samples(
    samples: Sequence[dict[str, Any]],
    keys: Sequence[str] = ("image", "semseg", "human_parts", "sal", "normals"),
    row_titles: Sequence[str] | None = None,
    size: float = 2.0,
) -> Figure:
    """A grid: one row per sample (a dict of tensors or arrays), one column per key."""
    fig, axes = plt.subplots(len(samples), len(keys), figsize=(size * len(keys),
                                                              size * len(samples)))
    axes = np.atleast_2d(axes)
    for r, sample in enumerate(samples):
        for c, key in enumerate(keys):
            ax = axes[r, c]
            x = sample[key]
            x = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
            ax.imshow(label_to_rgb(key, x), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key, fontsize=10)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], fontsize=8)
    fig.tight_layout()
    return fig


def predictions_as_labels(outputs: dict[str, Any]) -> dict[str, Any]:
    """Raw model outputs of one image (``{task: (C, H, W)}``) in the label conventions,
    for :func:`plot_samples`: class ids (argmax), saliency ``sigmoid > 0.5``,
    unit normals."""
    import torch

    out = {}
    for task, y in outputs.items():
        y = y.detach().float().cpu()
        base = task.split("#")[0]
        if base in ("semseg", "human_parts"):
            out[task] = y.argmax(0)
        elif base == "sal":
            out[task] = (torch.sigmoid(y[0]) > 0.5).long()
        else:
            out[task] = torch.nn.functional.normalize(y, dim=0)
    return out

"""Drawings of how the methods are built: one Swin block with the places where PEFT
methods act (notebook 01), VMT-Adapter's placement (the paper's Fig. 3, notebook 04)
and Polyhistor's layer-wise scaling kernels (notebook 03)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_swin_block(
    sites: dict[str, Sequence[tuple[str, str]]],
    dots: tuple[Sequence[str], str, str] | None = None,
    title: str = "",
) -> Figure:
    """One Swin block as boxes, with the places where PEFT methods act written beside them.

    ``sites`` maps a place to ``[(label, colour), ...]``. Places: ``"norm1"``,
    ``"qkv"``, ``"softmax"`` (window attention with the relative-position bias
    B), ``"proj"``, ``"attn_out"`` (the attention branch before its residual
    add), ``"norm2"``, ``"fc1"``, ``"fc2"``, ``"mlp_parallel"`` (beside the MLP,
    fed with LN2's output) and ``"mlp_out"`` (the MLP branch before its add).
    ``dots``: ``(places, colour, label)`` puts a dot on each of those boxes
    (e.g. the boxes whose biases BitFit trains).
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    boxes = {  # place: (y, text, face colour)
        "input": (13.0, r"$x$  (B, H, W, d)", "white"),
        "norm1": (12.0, "LN1", "#e8e8e8"),
        "qkv": (10.9, "qkv: Linear d → 3d  (per window of M×M tokens)", "#dbe9f6"),
        "softmax": (9.9, r"SoftMax$(QK^\top/\sqrt{d_h} + B)\,V$", "#dbe9f6"),
        "proj": (8.9, "proj: Linear d → d", "#dbe9f6"),
        "add1": (7.9, "", "white"),
        "norm2": (6.9, "LN2", "#e8e8e8"),
        "fc1": (5.8, "fc1: Linear d → 4d, GELU", "#fde7d4"),
        "fc2": (4.8, "fc2: Linear 4d → d", "#fde7d4"),
        "add2": (3.8, "", "white"),
        "output": (2.8, r"$x'$  (B, H, W, d)", "white"),
    }
    ys = {k: v[0] for k, v in boxes.items()}
    ys["attn_out"] = (ys["proj"] + ys["add1"]) / 2
    ys["mlp_out"] = (ys["fc2"] + ys["add2"]) / 2
    ys["mlp_parallel"] = (ys["fc1"] + ys["fc2"]) / 2
    cx, width, r = 3.0, 4.2, 0.22
    fig, ax = plt.subplots(figsize=(10, 7.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(2.4, 13.4)
    ax.axis("off")

    def top(k: str) -> float:
        return ys[k] + (r if k.startswith("add") else 0.3)

    def bottom(k: str) -> float:
        return ys[k] - (r if k.startswith("add") else 0.3)

    for key, (y, text, face) in boxes.items():
        if key.startswith("add"):
            ax.add_patch(plt.Circle((cx, y), r, fc="white", ec="black"))
            ax.text(cx, y, "+", ha="center", va="center", fontsize=12)
            continue
        edge = "none" if key in ("input", "output") else "black"
        ax.add_patch(FancyBboxPatch((cx - width / 2, y - 0.3), width, 0.6,
                                    boxstyle="round,pad=0.02", fc=face, ec=edge))
        ax.text(cx, y, text, ha="center", va="center", fontsize=9)
    order = list(boxes)
    for a, b in zip(order, order[1:]):
        ax.add_patch(FancyArrowPatch((cx, bottom(a)), (cx, top(b)), arrowstyle="-|>",
                                     mutation_scale=10))
    x0 = cx - width / 2 - 0.3  # residual connections on the left
    for branch_y, end in (((bottom("input") + top("norm1")) / 2, "add1"),
                          ((bottom("add1") + top("norm2")) / 2, "add2")):
        ax.plot([cx, x0, x0], [branch_y, branch_y, ys[end]], color="gray", lw=1)
        ax.add_patch(FancyArrowPatch((x0, ys[end]), (cx - r, ys[end]), arrowstyle="-|>",
                                     mutation_scale=10, color="gray"))
    ax.text(x0 - 0.1, (ys["qkv"] + ys["proj"]) / 2, "(S)W-MSA", rotation=90, ha="right",
            va="center", fontsize=8, color="#3b6ea5")
    ax.text(x0 - 0.1, (ys["fc1"] + ys["fc2"]) / 2, "MLP", rotation=90, ha="right",
            va="center", fontsize=8, color="#b5651d")
    if dots is not None:
        places, color, label = dots
        for key in places:
            ax.plot(cx - width / 2 + 0.15, ys[key], "o", color=color, ms=6)
        ax.plot([], [], "o", color=color, ms=6, label=label)
        ax.legend(loc="lower right", fontsize=8, frameon=False)
    for key, labels in sites.items():
        if key not in ys:
            raise ValueError(f"unknown place {key!r}; places: {sorted(ys)}")
        for i, (label, color) in enumerate(labels):
            ty = ys[key] + 0.2 * (len(labels) - 1) - 0.4 * i
            ax.annotate(label, xy=(cx + width / 2 + 0.05, ys[key]),
                        xytext=(cx + width / 2 + 0.8, ty), fontsize=8.5, color=color,
                        va="center", arrowprops=dict(arrowstyle="-", color=color, lw=0.8))
    ax.set_title(title or "Where each method acts in one Swin block", fontsize=11)
    fig.tight_layout()
    return fig


def plot_vmt_adapter(tasks: Sequence[str] = ("semseg", "human_parts", "sal", "normals"),
                     depths: Sequence[int] = (2, 2, 6, 2), title: str = "") -> Figure:
    """VMT-Adapter's placement (the paper's Fig. 3), drawn from Eq. 3-5.

    Top: the frozen Swin backbone, four stages of ``depths`` blocks, and what each
    task's decoder receives from every stage (Eq. 5). Bottom left: one block of a
    stage opened up: the frozen MLP, the shared projection in parallel to it (Eq. 3),
    the gate s that sends ``(1 - s) F`` into the residual stream and ``s F`` to the
    ``T`` task modules (Eq. 4). Trainable parts are orange, frozen parts grey.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    frozen, trainable, task_c = "#e4e4e4", "#fdd9b5", "#cfe3f5"
    fig, ax = plt.subplots(figsize=(13, 8))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 8.4)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, face: str, size: float = 8.5,
            edge: str = "black") -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03",
                                    fc=face, ec=edge, lw=0.9))
        ax.text(x, y, text, ha="center", va="center", fontsize=size)

    def arrow(a: tuple[float, float], b: tuple[float, float], color: str = "black",
              style: str = "-|>", ls: str = "-") -> None:
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=10, color=color,
                                     lw=1.0, linestyle=ls, shrinkA=0, shrinkB=0))

    # --- the backbone and the decoders (top)
    y0 = 7.4
    box(0.75, y0, 1.1, 0.6, "image", "white")
    box(2.1, y0, 1.2, 0.6, "patch\nembedding", frozen, 8)
    arrow((1.3, y0), (1.5, y0))
    xs = [3.9 + 2.35 * j for j in range(len(depths))]
    arrow((2.7, y0), (xs[0] - 0.85, y0))
    for j, (x, n) in enumerate(zip(xs, depths)):
        box(x, y0, 1.7, 0.75, f"stage {j + 1}\n{n} blocks (frozen)\n+ VMT-Adapter in each",
            frozen, 7.5)
        if j + 1 < len(xs):
            arrow((x + 0.85, y0), (xs[j + 1] - 0.85, y0))
            ax.text((x + xs[j + 1]) / 2, y0 + 0.25, "merge", ha="center", fontsize=6.5,
                    color="gray")
        arrow((x, y0 - 0.38), (x, 5.95), color="tab:blue")
        ax.text(x + 0.08, 6.35, rf"$f_g^{j + 1} + f_{{t_i}}^{j + 1}$", fontsize=8.5,
                color="tab:blue", ha="left", va="center")
    ax.plot([xs[0], xs[-1]], [5.95, 5.95], color="tab:blue", lw=1.0)
    n_tasks = len(tasks)
    dec_x = [xs[0] + (xs[-1] - xs[0]) * (i + 0.5) / n_tasks for i in range(n_tasks)]
    for i, (x, task) in enumerate(zip(dec_x, tasks)):
        arrow((x, 5.95), (x, 5.45), color="tab:blue")
        box(x, 5.15, 1.6, 0.55, f"decoder {i + 1}:\n{task}", trainable, 7.5)
    ax.text(xs[0] - 1.0, 5.75, "Eq. 5: task i's decoder\nreceives all 4 stages\n"
            r"$F_i^{ms} = [f_g^j + f_{t_i}^j]_{j=1..4}$", fontsize=8, ha="right", va="center",
            color="tab:blue")

    # --- one block, opened up (bottom left)
    ax.add_patch(FancyBboxPatch((0.3, 0.25), 8.9, 4.35, boxstyle="round,pad=0.05", fc="none",
                                ec="gray", ls="--", lw=0.8))
    ax.text(0.45, 4.45, "one block (layer) of stage j, opened up", fontsize=8.5, color="gray",
            va="top")
    cx = 1.6
    box(cx, 4.0, 1.9, 0.45, r"$x \leftarrow x + $ W-MSA(LN$_1(x)$)", frozen, 7.5)
    box(cx, 3.2, 1.2, 0.4, r"LN$_2$", frozen)
    arrow((cx, 3.77), (cx, 3.4))
    ax.text(cx + 0.15, 2.8, r"$x_\ell$", fontsize=9)
    box(cx, 1.95, 1.3, 0.55, "MLP\n(frozen)", frozen)
    arrow((cx, 3.0), (cx, 2.23))
    ax.add_patch(plt.Circle((cx, 0.85), 0.17, fc="white", ec="black"))
    ax.text(cx, 0.85, "+", ha="center", va="center", fontsize=11)
    arrow((cx, 1.67), (cx, 1.02))
    ax.text(cx - 0.25, 0.45, r"$x \leftarrow x + \mathrm{MLP}(x_\ell) + (1-s)F$", fontsize=8,
            ha="left")
    ax.plot([cx - 1.1, cx - 1.1], [3.78, 0.85], color="gray", lw=0.9)  # the residual stream
    arrow((cx - 1.1, 0.85), (cx - 0.17, 0.85), color="gray")
    ax.text(cx - 1.2, 2.3, "residual", rotation=90, fontsize=7, color="gray", ha="right",
            va="center")
    # the shared projection, in parallel to the MLP
    px = 3.85
    ax.plot([cx, px], [2.7, 2.7], color="black", lw=1.0)
    arrow((px, 2.7), (px, 2.42))
    box(px, 1.95, 2.3, 0.9, "shared projection (Eq. 3)\n"
        r"$F = \mathrm{ReLU}(x_\ell W_{down})\,W_{up}$" "\n" r"$W_{down}: d \times k,\ k = d/\rho$",
        trainable, 7.5)
    box(px, 0.85, 1.1, 0.42, r"gate $s$", trainable)
    arrow((px, 1.5), (px, 1.06))
    arrow((px - 0.55, 0.85), (cx + 0.17, 0.85), color="tab:orange")
    ax.text((px + cx) / 2 + 0.1, 0.98, r"$(1-s)F$", fontsize=8, color="tab:orange", ha="center")
    # the task modules
    tx = 6.7
    ax.text(px + 0.6, 0.55, r"$sF$", fontsize=8, color="tab:orange")
    ys = np.linspace(3.6, 0.75, n_tasks)
    for i, y in enumerate(ys):
        arrow((px + 0.55, 0.85), (tx - 0.85, y), color="tab:orange")
        box(tx, y, 1.7, 0.5, rf"$f_{{t_{i + 1}}} = \alpha_{i + 1} \odot sF + \gamma_{i + 1}$",
            task_c, 7.5)
        arrow((tx + 0.85, y), (tx + 1.3, y), color="tab:blue")
    ax.text(tx + 1.4, 2.2, "Eq. 4: T task modules,\n2d numbers each;\nmean over the\n"
            "stage's blocks,\nto decoder i (Eq. 5)", fontsize=7.5, color="tab:blue", va="center")
    # legend
    for k, (face, label) in enumerate(((frozen, "frozen (pretrained)"),
                                       (trainable, "trainable, shared by all tasks"),
                                       (task_c, "trainable, one per task"))):
        ax.add_patch(FancyBboxPatch((9.6, 3.6 - 0.5 * k), 0.35, 0.3, boxstyle="round,pad=0.02",
                                    fc=face, ec="black", lw=0.8))
        ax.text(10.1, 3.75 - 0.5 * k, label, fontsize=8.5, va="center")
    ax.text(9.6, 1.9, "One backbone pass serves all T tasks:\nnothing task-specific enters "
            "the\nresidual stream; a task adds 2d\nnumbers and T element-wise\nmodules per "
            "block, not a pass.", fontsize=8.5, va="center")
    ax.set_title(title or "VMT-Adapter in a Swin backbone (Fig. 3; Eq. 3-5)", fontsize=11)
    fig.tight_layout()
    return fig


def kronecker_tiles(weight: Any, scale: int) -> np.ndarray:
    """The ``s x s`` tiles of ``W = sum_i T^i (x) K^i`` as rows: ``(rows/s * cols/s, s*s)``.

    Tile ``(a, b)`` of a Kronecker sum is ``sum_i T^i[a, b] K^i``, a combination of the
    same ``s`` kernels, so this matrix has rank at most ``s`` (the number of terms).
    """
    w = np.asarray(weight.detach().cpu() if hasattr(weight, "detach") else weight, float)
    rows, cols = w.shape
    if rows % scale or cols % scale:
        raise ValueError(f"weight {w.shape} is not made of {scale} x {scale} tiles")
    tiles = w.reshape(rows // scale, scale, cols // scale, scale).transpose(0, 2, 1, 3)
    return tiles.reshape(-1, scale * scale)


def plot_scaling_kernels(weights: Sequence[Any], scales: Sequence[int], zoom_tiles: int = 6,
                         title: str = "") -> Figure:
    """Polyhistor's layer-wise scaling kernels (Eq. 4/6), made visible.

    Left: the top-left ``zoom_tiles x zoom_tiles`` tiles of the largest-scale weight,
    with the tile borders drawn; each ``s x s`` tile is one combination of the same
    ``s`` kernels. Right: for every weight, the singular values of its tiles
    (:func:`kronecker_tiles`, normalised by the largest): ``s`` of the ``s^2`` are
    non-zero, the rest fall to rounding error, which is the Kronecker structure.
    """
    if len(weights) != len(scales) or not weights:
        raise ValueError(f"{len(weights)} weights and {len(scales)} scales: give one scale each")
    k = int(np.argmax(scales))
    s = int(scales[k])
    w = np.asarray(weights[k].detach().cpu() if hasattr(weights[k], "detach") else weights[k],
                   float)
    n = min(zoom_tiles * s, *w.shape)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    crop = w[:n, :n]
    lim = float(np.abs(crop).max()) or 1.0
    ax.imshow(crop, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    for edge in np.arange(s, n, s) - 0.5:
        ax.axhline(edge, color="black", lw=0.6)
        ax.axvline(edge, color="black", lw=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"top-left {n} x {n} of W {tuple(w.shape)} (s = {s}):\n"
                 f"each {s} x {s} tile = sum of the same {s} kernels", fontsize=9)
    for weight, scale in sorted(zip(weights, scales), key=lambda p: p[1]):
        sv = np.linalg.svd(kronecker_tiles(weight, int(scale)), compute_uv=False)
        sv = np.maximum(sv / sv[0], 1e-12)
        bx.semilogy(np.arange(1, len(sv) + 1), sv, "o-", ms=3,
                    label=f"s = {scale}: {len(sv)} values")
    bx.set_ylim(1e-9, 3)
    bx.set_xscale("log", base=2)
    bx.set_xlabel("index of the singular value (log 2)")
    bx.set_ylabel("singular value / largest")
    bx.set_title("singular values of the tiles: s of s² are non-zero", fontsize=9)
    bx.grid(alpha=0.3, which="both")
    bx.legend(fontsize=8)
    fig.suptitle(title or "Scaling kernels (Eq. 4): a weight made of s x s tiles from s kernels",
                 fontsize=10)
    fig.tight_layout()
    return fig

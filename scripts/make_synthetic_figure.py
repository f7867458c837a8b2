"""Write figures/synthetic_scenes.png: SyntheticScenes samples with their four labels.

Usage: python scripts/make_synthetic_figure.py [--n 4] [--size 128] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from vmtlib.data.synthetic import (  # noqa: E402
    HUMAN_PARTS,
    PERSON,
    SHAPE_CLASSES,
    VOC_CLASSES,
    SyntheticScenes,
)
from vmtlib.plots import label_to_rgb, voc_palette  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--first", type=int, default=0, help="index of the first sample")
    ap.add_argument("--out", type=Path, default=ROOT / "figures" / "synthetic_scenes.png")
    args = ap.parse_args()

    ds = SyntheticScenes(args.first + args.n, size=args.size, seed=args.seed)
    pal = voc_palette()
    cols = ("image", "semseg", "human_parts", "sal", "normals")
    fig, axes = plt.subplots(args.n, len(cols), figsize=(2.0 * len(cols), 2.0 * args.n + 1.1))
    axes = np.atleast_2d(axes)
    for r in range(args.n):
        s = ds[args.first + r]
        for c, key in enumerate(cols):
            ax = axes[r, c]
            ax.imshow(label_to_rgb(key, s[key].numpy()), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(key, fontsize=10)
        axes[r, 0].set_ylabel(s["meta"]["id"], fontsize=7)
    used = sorted({*SHAPE_CLASSES.values(), PERSON})
    sem_legend = [Patch(color=pal[i], label=f"{i} {VOC_CLASSES[i]}") for i in [0, *used]]
    part_legend = [Patch(color=pal[i], label=f"{i} {HUMAN_PARTS[i]}") for i in range(7)]
    part_legend.append(Patch(facecolor="white", edgecolor="k", label="255 ignore"))
    fig.legend(handles=sem_legend, loc="lower left", ncol=4, fontsize=6.5, title="semseg (VOC ids)",
               title_fontsize=7, frameon=False, bbox_to_anchor=(0.0, 0.0))
    fig.legend(handles=part_legend, loc="lower right", ncol=2, fontsize=6.5, title="human_parts",
               title_fontsize=7, frameon=False, bbox_to_anchor=(1.0, 0.0))
    fig.suptitle("SyntheticScenes: sal = solid objects of vivid colour; normals RGB = (n + 1) / 2 "
                 "(x right, y down, z to the camera), black = invalid", fontsize=7.5)
    fig.tight_layout(rect=(0, 1.0 / (2.0 * args.n + 1.1), 1, 0.98))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=85, pil_kwargs={"optimize": True})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()

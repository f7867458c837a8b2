"""What every figure module shares: where committed figures are saved, and the
colour and marker of the two cost families (O(1): one backbone pass for all
tasks; O(T): one pass per task)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

FIGURES = Path(__file__).resolve().parents[2] / "figures"

FAMILY_STYLE = {True: ("tab:blue", "o", "one pass for all tasks, O(1)"),
                False: ("tab:orange", "s", "one pass per task, O(T)")}


def save_figure(fig: Figure, name: str, dpi: int = 110, folder: str | Path | None = None
                ) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` (modest size) and return the path;
    ``folder`` defaults to ``$VMTLIB_FIGURES`` when set, else ``figures/``."""
    folder = Path(folder or os.environ.get("VMTLIB_FIGURES") or FIGURES)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path

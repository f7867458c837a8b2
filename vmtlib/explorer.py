"""Notebook 09's rho / m explorer as a plain table, for the course site's static page.

The site cannot run a kernel, so the page shows, for every setting the widget's
sliders can reach, what the widget's callback shows. Nothing is recomputed here:
each entry calls the callback functions of :mod:`vmtlib.widgets`
(:func:`~vmtlib.widgets.describe_setting` for the text,
:func:`~vmtlib.widgets.parameter_count` for the count,
:func:`~vmtlib.widgets.ablation_row` for the measured Delta_m,
:func:`~vmtlib.widgets.results_status` for the status line), and the sliders' choices
and starting values are read off a headless :func:`~vmtlib.widgets.ablation_explorer`.
So the page and the notebook have one source.

``explorer_table(results, backbone)`` returns::

    {"status": str, "backbone": str,
     "kinds": [{"kind": "rho", "label": "VMT-Adapter (ρ)", "symbol": "ρ",
                "values": [1, 2, 4, 8]}, ...],
     "start": {"kind": "rho", "rho": 4, "m": 3},
     "settings": {"rho=4": {"kind", "value", "key", "text", "encoder", "all",
                            "delta_m" (measured or None), "paper_delta_m"}, ...}}

``python -m vmtlib.explorer [RESULTS] [--backbone B]`` prints it as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vmtlib.widgets import (
    TABLE3_CHOICES,
    ablation_explorer,
    ablation_row,
    describe_setting,
    parameter_count,
    results_status,
)


def setting_id(kind: str, value: int) -> str:
    """The key of a setting in :func:`explorer_table`'s ``settings``: ``"rho=4"``."""
    return f"{kind}={int(value)}"


def explorer_table(results: str | Path, backbone: str = "swin_tiny",
                   shown_path: str | None = None) -> dict[str, Any]:
    """Every setting of the explorer with what its callbacks return (see the module doc).

    Args:
        results: the path of ``ablation.json`` (a missing file gives the counts and the
            paper's values only, as in the notebook).
        backbone: the backbone the counts are made on (the notebook's ``count_backbone``).
        shown_path: how the status line names the results file (default: ``results``).
    """
    explorer = ablation_explorer(results, backbone=backbone)
    rows = explorer.results
    kinds = [{"kind": kind, "label": label, "symbol": getattr(explorer, kind).description,
              "values": list(TABLE3_CHOICES[kind][1])}
             for label, kind in explorer.kind.options]
    settings: dict[str, dict[str, Any]] = {}
    for entry in kinds:
        kind = entry["kind"]
        for value in entry["values"]:
            count = parameter_count(kind, value, backbone)
            row = ablation_row(kind, value, rows)
            settings[setting_id(kind, value)] = {
                "kind": kind, "value": int(value), "key": count["key"],
                "text": describe_setting(kind, value, rows, backbone),
                "encoder": count["encoder"], "all": count["all"],
                "delta_m": row["delta_m"], "paper_delta_m": row["paper"]["delta_m"]}
    return {"status": results_status(rows, shown_path or str(results)), "backbone": backbone,
            "kinds": kinds,
            "start": {"kind": explorer.kind.value, "rho": int(explorer.rho.value),
                      "m": int(explorer.m.value)},
            "settings": settings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="notebook 09's explorer as JSON")
    parser.add_argument("results", nargs="?", default="benchmarks/results/ablation.json")
    parser.add_argument("--backbone", default="swin_tiny")
    args = parser.parse_args(argv)
    print(json.dumps(explorer_table(args.results, args.backbone), indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["explorer_table", "setting_id"]

"""The trade-off figure (VMT-Adapter Fig. 1): Delta_m against trainable parameters.

Reads every trained result in ``benchmarks/results/``: the
``compare.json`` (per-method final results with ``"method"``, ``"delta_m"``,
``"parameters"`` ``{"encoder", "total"}``) and the ablation settings of
``ablation.json`` (with its single_task_full reference when the sweep trained
one). No training. Circles are O(1) methods, squares O(T) ones; the x axis is
the trainable encoder parameters on a log scale (``--params total`` for
encoder + decoders).

Run: ``python benchmarks/tradeoff.py``. Writes ``figures/tradeoff.png`` and
``benchmarks/results/tradeoff.json`` (the points).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from vmtlib.analysis import collect_results, tradeoff_points, write_json_atomic  # noqa: E402
from vmtlib.plots import plot_tradeoff, save_figure  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--params", default="encoder", choices=("encoder", "total"))
    args = parser.parse_args()
    results = collect_results(args.results)
    ablation = Path(args.results) / "ablation.json"
    if ablation.is_file():
        ref = json.loads(ablation.read_text()).get("reference") or {}
        have_reference = any(r.get("method") == "single_task_full" for r in results)
        if ref.get("parameters") and not have_reference:
            results.append({"method": "single_task_full", "delta_m": 0.0,
                            "parameters": ref["parameters"], "source": "ablation reference"})
    points = tradeoff_points(results, param_key=args.params)
    if not points:
        print(f"no trained result with delta_m in {args.results} yet "
              "(compare.json, ablation.json); the figure is empty")
    xlabel = ("trainable encoder parameters (millions, log scale)" if args.params == "encoder"
              else "trainable parameters, encoder + decoders (millions, log scale)")
    sources = sorted({p["source"] for p in points})
    fig = plot_tradeoff(points, xlabel=xlabel,
                        title=r"$\Delta_m$ versus trainable parameters (" +
                        (", ".join(sources) or "no results") + ")")
    path = save_figure(fig, "tradeoff")
    write_json_atomic(Path(args.results) / "tradeoff.json", {"params": args.params,
                                                             "points": points})
    for p in points:
        print(f"{p['label']:<28} {p['params_m']:8.3f}M  delta_m {p['delta_m']:+7.2f}%  "
              f"{'O(1)' if p['one_pass'] else 'O(T)'}  [{p['source']}]")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

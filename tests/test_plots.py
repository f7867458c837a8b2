"""vmtlib.plots: the analysis figures draw from plain dicts without error (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vmtlib.analysis import ablation_settings, conflict_summary, tradeoff_points  # noqa: E402
from vmtlib.plots import (  # noqa: E402
    plot_ablation,
    plot_cost_vs_tasks,
    plot_gradient_conflicts,
    plot_tradeoff,
)


def test_plot_gradient_conflicts() -> None:
    methods = {}
    for name, shift in (("adapter_shared", -0.1), ("vmt_adapter", 0.2)):
        cos = [shift + 0.1 * (i % 7 - 3) for i in range(60)] + [float("nan")]
        methods[name] = {"cosines": cos, "summary": conflict_summary(cos),
                         "steps": [{"step": 10 * i, "mean": shift} for i in range(5)]}
    fig = plot_gradient_conflicts(methods)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)
    fig = plot_gradient_conflicts({k: {"cosines": v["cosines"]} for k, v in methods.items()})
    assert len(fig.axes) == 1
    plt.close(fig)


def test_plot_cost_vs_tasks() -> None:
    flops = [{"method": m, "one_pass": op, "T": t, "gflops": g * t, "activation_mb": 10.0 * t}
             for m, op, g in (("vmt_adapter", True, 1.0), ("adapter", False, 3.0))
             for t in (1, 2, 3)]
    latency = [{"method": r["method"], "one_pass": r["one_pass"], "T": r["T"],
                "train_ratio": r["T"] * 1.0, "infer_ratio": 1.0} for r in flops]
    fig = plot_cost_vs_tasks(flops, latency)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    plt.close(fig)
    fig = plot_cost_vs_tasks(flops)
    assert isinstance(fig, Figure)
    plt.close(fig)


def test_plot_tradeoff_and_ablation() -> None:
    pts = tradeoff_points([
        {"method": "decoders_only", "delta_m": -10.0, "parameters": {"encoder": 0, "total": 5}},
        {"method": "single_task_full", "delta_m": 0.0, "parameters": {"encoder": 9e6, "total": 1}},
        {"method": "vmt_adapter", "delta_m": 2.0, "parameters": {"encoder": 2e5, "total": 1}},
    ])
    fig = plot_tradeoff(pts)
    assert isinstance(fig, Figure)
    plt.close(fig)
    rows = [{"key": s.key, "delta_m": float(i) if i % 2 else None, "paper": s.paper}
            for i, s in enumerate(ablation_settings())]
    fig = plot_ablation(rows)
    assert isinstance(fig, Figure)
    plt.close(fig)
    plt.close(plot_tradeoff([]))

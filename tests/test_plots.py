"""vmtlib.plots: the analysis figures draw from plain dicts without error (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

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


def test_course_figures_draw() -> None:
    import torch

    from vmtlib.data import SyntheticScenes
    from vmtlib.plots import (
        plot_comparison,
        plot_flops_vs_tasks,
        plot_parameter_breakdown,
        plot_parameter_table,
        plot_samples,
        plot_swin_block,
        predictions_as_labels,
    )

    rows = [{"method": m, "one_pass": p, "T": t, "gflops": g * t if not p else g + t}
            for m, p, g in (("adapter", False, 11.6), ("vmt_adapter", True, 11.3))
            for t in (1, 2, 3, 4)]
    metrics = {"semseg": {"mIoU": 30.0}, "human_parts": {"mIoU": 20.0},
               "sal": {"mIoU": 60.0}, "normals": {"mean": 30.0}}
    sample = SyntheticScenes(1, size=64, seed=0)[0]
    raw = {"semseg": torch.randn(21, 64, 64), "human_parts": torch.randn(7, 64, 64),
           "sal": torch.randn(1, 64, 64), "normals": torch.randn(3, 64, 64)}
    predicted = predictions_as_labels(raw)
    assert predicted["sal"].unique().tolist() in ([0], [1], [0, 1])
    torch.testing.assert_close(predicted["normals"].norm(dim=0), torch.ones(64, 64))
    figures = [
        plot_flops_vs_tasks(rows, reference={"individual": [18.48, 36.91, 55.32, 73.74]}),
        plot_parameter_breakdown([{"label": "rho=4", "parts": {"W": 1.0e6, "T": 2e4},
                                   "paper": 1.13}]),
        plot_swin_block({"mlp_out": [("adapter", "tab:orange")]}, dots=(["qkv"], "k", "bias")),
        plot_parameter_table([{"method": "vmt_adapter", "encoder": 1119132, "one_pass": True},
                              {"method": "decoders_only", "encoder": 0, "one_pass": True}]),
        plot_comparison([{"name": "a", "pretrained": True, "metrics": metrics},
                         {"name": "b", "pretrained": False, "metrics": metrics}]),
        plot_samples([sample, {**predicted, "image": sample["image"]}]),
    ]
    assert all(isinstance(f, Figure) for f in figures)
    for f in figures:
        plt.close(f)


def test_plot_cosine_matrices_and_ablation_curve() -> None:
    import math

    import torch

    from vmtlib.analysis import cosine_matrix
    from vmtlib.plots import plot_ablation_curve, plot_cosine_matrices

    g = torch.randn(4, 50)
    grads = {t: g[i] for i, t in enumerate(("semseg", "human_parts", "sal", "normals"))}
    grads["normals"] = torch.zeros(50)  # an undefined angle (NaN) is drawn as "-"
    cos, tasks = cosine_matrix(grads)
    assert math.isnan(float(cos[3, 0]))
    fig = plot_cosine_matrices({"a": (cos, tasks), "b": (cos.numpy(), tasks)})
    assert isinstance(fig, Figure) and len(fig.axes) == 3  # two maps and a colour bar
    plt.close(fig)
    points = [{"source": s, "method": m, "label": f"x={i}", "params_m": 0.1 * (i + 1),
               "delta_m": float(i)}
              for s in ("paper", "ours") for m in ("vmt_adapter", "vmt_adapter_lite")
              for i in range(3)]
    fig = plot_ablation_curve(points)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    plt.close(fig)
    fig = plot_ablation_curve([p for p in points if p["source"] == "paper"])
    assert len(fig.axes) == 1
    plt.close(fig)


def test_tradeoff_labels_of_a_cluster_do_not_overlap() -> None:
    pts = [{"label": f"vmt_adapter(rho={r})", "params_m": 0.2 + 0.002 * r,
            "delta_m": -8.0 - 0.01 * r, "one_pass": True} for r in range(5)]
    pts += [{"label": "decoders_only", "params_m": 0.0, "delta_m": -19.0, "one_pass": True},
            {"label": "single_task_full", "params_m": 20.0, "delta_m": 0.0, "one_pass": False}]
    fig = plot_tradeoff(pts)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    # the text boxes themselves (an Annotation's own extent includes its leader line)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]
    assert len(boxes) == 7
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    leaders = [t for t in ax.texts if t.arrow_patch is not None]
    assert leaders and all(abs(t.xyann[1]) > 9 for t in leaders)
    plt.close(fig)


def test_kronecker_tiles_have_the_rank_of_the_number_of_terms() -> None:
    import numpy as np
    import torch

    from vmtlib.plots import kronecker_tiles, plot_scaling_kernels, plot_vmt_adapter

    gen = torch.Generator().manual_seed(0)
    weights, scales = [], (1, 2, 4)
    for s in scales:
        weights.append(sum(torch.kron(torch.randn(6, 5, generator=gen, dtype=torch.float64),
                                      torch.randn(s, s, generator=gen, dtype=torch.float64))
                           for _ in range(s)))
    for w, s in zip(weights, scales):
        tiles = kronecker_tiles(w, s)
        assert tiles.shape == (30, s * s)
        assert np.linalg.matrix_rank(tiles) == s
    try:
        kronecker_tiles(torch.zeros(6, 7), 2)
    except ValueError as err:
        assert "2 x 2 tiles" in str(err)
    else:
        raise AssertionError("a weight that is not made of tiles must be refused")
    fig = plot_scaling_kernels(weights, scales, zoom_tiles=2)
    assert len(fig.axes) == 2 and fig.axes[0].images[0].get_array().shape == (8, 8)
    assert len(fig.axes[1].lines) == len(scales)
    plt.close(fig)
    fig = plot_vmt_adapter(("semseg", "sal"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert sum(t.startswith("decoder ") for t in texts) == 2
    assert sum("alpha" in t for t in texts) == 2  # one task module per task
    plt.close(fig)

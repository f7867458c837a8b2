"""Interactive explorer of the rho / m ablation (VMT-Adapter Table 3), headless first.

Every callback is a plain function returning plain dicts or text, tested in
``tests/test_widgets.py`` and called directly by notebook 09:

- :func:`parameter_count`: the trainable parameters of one setting on Swin-T
  (meta device, cached), next to the paper's Table 3 count;
- :func:`paper_row`: the paper's Table 3 row (parameters, per-task metrics, Delta_m);
- :func:`ablation_row`: the measured row of the sweep's results file
  (``benchmarks/results/ablation.json``, written by ``benchmarks/ablation_sweep.py``,
  read by :func:`vmtlib.analysis.load_ablation`);
- :func:`describe_setting`: the three above as the text the explorer shows;
- :func:`train_setting`: train one setting now in a quick budget and return its metrics.

:func:`ablation_explorer` only wires them to ipywidgets (sliders for rho and m,
a button that trains); ipywidgets is imported when it is called, so neither
``import vmtlib`` nor ``import vmtlib.widgets`` needs it. Under papermill or
nbval there is no widget manager and an exception inside a callback does not
fail the run: a notebook calls the plain functions as well and prints their
results.

A setting is named by ``(kind, value)``: ``("rho", 1 | 2 | 4 | 8)`` is
VMT-Adapter with down-projection ratio rho (Eq. 3), ``("m", 3 | 6 | 12)``
VMT-Adapter-Lite with m Kronecker terms (Eq. 6) at rho = 4, the rows of Table 3.
"""

from __future__ import annotations

import functools
import html
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vmtlib.analysis import (
    PAPER_TABLE3,
    PAPER_TABLE3_TASKS,
    AblationSetting,
    headline_scores,
    load_ablation,
)
from vmtlib.tasks import ALL_TASKS

# kind -> (method, the values of Table 3)
TABLE3_CHOICES: dict[str, tuple[str, tuple[int, ...]]] = {
    "rho": ("vmt_adapter", (1, 2, 4, 8)),
    "m": ("vmt_adapter_lite", (3, 6, 12)),
}
LITE_RHO = 4  # Table 3 varies m at rho = 4

# The button's budget: a few dozen steps of swin_nano at 128 px (20-30 s on a laptop CPU).
QUICK_BUDGET: dict[str, Any] = {"backbone": "swin_nano", "img_size": 128, "batch_size": 8,
                                "steps": 30, "val_size": 16}

Results = Sequence[Mapping[str, Any]] | str | Path | None


def setting_of(kind: str, value: int) -> AblationSetting:
    """The :class:`~vmtlib.analysis.AblationSetting` of ``(kind, value)``; ``ValueError``
    naming the valid choices otherwise. Its ``key`` is the one of ``ablation.json``."""
    if kind not in TABLE3_CHOICES:
        raise ValueError(f"unknown kind {kind!r}; choose one of {sorted(TABLE3_CHOICES)}")
    method, values = TABLE3_CHOICES[kind]
    if value not in values:
        raise ValueError(f"{kind}={value!r} is not in Table 3; choose one of {values}")
    return AblationSetting(method, ((kind, int(value)),))


def _kwargs(setting: AblationSetting) -> dict[str, Any]:
    """The hyper-parameters to build: Lite's rho made explicit."""
    kw = setting.kw
    if setting.method == "vmt_adapter_lite":
        kw.setdefault("rho", LITE_RHO)
    return kw


@functools.lru_cache(maxsize=64)
def _count(method: str, kwargs: tuple[tuple[str, Any], ...], backbone: str,
           tasks: tuple[str, ...]) -> tuple[int, int]:
    from vmtlib.params import parameter_row

    row = parameter_row(method, backbone, tasks, **dict(kwargs))
    return row["encoder"], row["all"]


def parameter_count(kind: str, value: int, backbone: str = "swin_tiny",
                    tasks: Sequence[str] = ALL_TASKS) -> dict[str, Any]:
    """Trainable parameters of one setting, counted on the meta device (cached).

    Returns ``{"key", "method", "kwargs", "backbone", "tasks", "encoder", "all",
    "paper"}``: plain counts (``all`` adds the decoders) and the paper's Table 3
    ``{"encoder_m", "all_m", "delta_m"}`` (Swin-T, four tasks; ``None`` for other
    task sets).
    """
    setting = setting_of(kind, value)
    kwargs = _kwargs(setting)
    tasks = tuple(tasks)
    encoder, total = _count(setting.method, tuple(sorted(kwargs.items())), backbone, tasks)
    paper = setting.paper if tasks == ALL_TASKS else None
    return {"key": setting.key, "method": setting.method, "kwargs": kwargs,
            "backbone": backbone, "tasks": list(tasks), "encoder": encoder, "all": total,
            "paper": dict(paper) if paper else None}


def paper_row(kind: str, value: int) -> dict[str, Any]:
    """The paper's Table 3 row: ``{"key", "encoder_m", "all_m", "delta_m", "metrics"}``
    (``metrics``: task -> headline value, PASCAL-Context, Swin-T)."""
    setting = setting_of(kind, value)
    return {"key": setting.key, **PAPER_TABLE3[setting.method, int(value)],
            "metrics": dict(PAPER_TABLE3_TASKS[setting.method, int(value)])}


def _rows(results: Results) -> list[Mapping[str, Any]]:
    if results is None:
        return []
    if isinstance(results, (str, Path)):
        return load_ablation(results)
    return list(results)


def ablation_row(kind: str, value: int, results: Results) -> dict[str, Any]:
    """The measured row of ``(kind, value)`` in the sweep's results.

    Args:
        results: the rows of :func:`vmtlib.analysis.load_ablation`, or the path of
            ``ablation.json`` (a missing file is no results), or ``None``.

    Returns:
        ``{"key", "found", "delta_m", "scores" {task: headline metric},
        "metrics", "parameters" (trainable, on the sweep's backbone), "budget",
        "paper"}`` (:func:`paper_row`); when the setting has no result,
        ``found`` is False and the measured entries are ``None``.
    """
    setting = setting_of(kind, value)
    row = next((r for r in _rows(results) if r.get("key") == setting.key), None)
    out: dict[str, Any] = {"key": setting.key, "found": row is not None,
                           "delta_m": None, "scores": None, "metrics": None,
                           "parameters": None, "budget": None, "paper": paper_row(kind, value)}
    if row is None:
        return out
    metrics = row.get("metrics") or {}
    scores = row.get("scores") or headline_scores(metrics)
    dm = row.get("delta_m")
    out.update(delta_m=None if dm is None else float(dm),
               scores={t: float(v) for t, v in scores.items()}, metrics=metrics or None,
               parameters=row.get("parameters"), budget=row.get("budget"))
    return out


def results_status(results: Results, path: str | Path | None = None) -> str:
    """One line on what the results hold: how many of the seven settings, which budget;
    or, when there are none, that the file is missing and which command writes it."""
    rows = _rows(results)
    if path is None:
        path = results if isinstance(results, (str, Path)) else "the ablation results"
    where = str(path)
    if not rows:
        return (f"No ablation results ({where} is missing or empty): counts and the paper's "
                f"values only. `python benchmarks/ablation_sweep.py` writes them.")
    keys = {s.key for s in (setting_of(k, v) for k, (_, vs) in TABLE3_CHOICES.items()
                            for v in vs)}
    found = sum(r.get("key") in keys for r in rows)
    budget = rows[0].get("budget") or {}
    spec = ", ".join(f"{k}={budget[k]}" for k in ("backbone", "pretrained", "steps",
                                                 "batch_size", "img_size", "val_size")
                     if k in budget)
    return f"{where}: {found} of {len(keys)} settings measured ({spec})."


def _fmt(value: float | None, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, fmt)


def describe_setting(kind: str, value: int, results: Results = None,
                     backbone: str = "swin_tiny") -> str:
    """The text the explorer shows for ``(kind, value)``: the trainable parameters on
    ``backbone`` (ours and the paper's), then the measured per-task metrics and
    Delta_m of the sweep next to the paper's (or that there is no measured result)."""
    count = parameter_count(kind, value, backbone)
    paper = paper_row(kind, value)
    row = ablation_row(kind, value, results)
    lines = [f"{count['key']}  ({', '.join(f'{k}={v}' for k, v in count['kwargs'].items())})",
             f"  trainable on {backbone}, 4 tasks: encoder {count['encoder']:,} "
             f"({count['encoder'] / 1e6:.2f}M), all {count['all'] / 1e6:.2f}M;  "
             f"paper (Swin-T): {paper['encoder_m']:.2f}M / {paper['all_m']:.2f}M"]
    header = "  " + f"{'':<34}" + "".join(f"{t:>12}" for t in ALL_TASKS) + f"{'Δm %':>9}"
    lines.append(header)
    paper_cells = "".join(f"{paper['metrics'][t]:>12.2f}" for t in ALL_TASKS)
    lines.append(f"  {'paper (PASCAL-Context, Swin-T)':<34}{paper_cells}"
                 f"{paper['delta_m']:>+9.2f}")
    if row["found"]:
        budget = row["budget"] or {}
        label = (f"ours ({budget.get('backbone', '?')}, {budget.get('steps', '?')} steps)")
        cells = "".join(f"{_fmt(row['scores'].get(t), '.2f'):>12}" for t in ALL_TASKS)
        dm = _fmt(row["delta_m"], "+.2f")
        lines.append(f"  {label:<34}{cells}{dm:>9}")
        n = (row["parameters"] or {}).get("encoder")
        if n is not None:
            lines.append(f"  trainable encoder parameters of the measured run: {n:,}")
    else:
        lines.append("  ours: no measured result for this setting "
                     "(run `python benchmarks/ablation_sweep.py`)")
    lines.append("  (headline metrics: semseg / human_parts / sal mIoU %, higher is better; "
                 "normals mean angle error in degrees, lower is better)")
    return "\n".join(lines)


def table3_points(results: Results = None, backbone: str = "swin_tiny") -> list[dict[str, Any]]:
    """Delta_m against trainable encoder parameters for every setting, the paper's and
    (where measured) ours: ``[{"source", "method", "label", "params_m", "delta_m"}]``
    for :func:`vmtlib.plots.plot_ablation_curve`. The paper's points use its own
    counts; ours the trainable encoder parameters of the measured run."""
    points = []
    for kind, (method, values) in TABLE3_CHOICES.items():
        for v in values:
            paper = paper_row(kind, v)
            label = f"{'ρ' if kind == 'rho' else 'm'}={v}"
            points.append({"source": "paper (PASCAL-Context, Swin-T)", "method": method,
                           "label": label, "params_m": paper["encoder_m"],
                           "delta_m": paper["delta_m"]})
            row = ablation_row(kind, v, results)
            n = (row["parameters"] or {}).get("encoder")
            if row["found"] and row["delta_m"] is not None and n is not None:
                b = (row["budget"] or {}).get("backbone", "?")
                points.append({"source": f"ours (SyntheticScenes, {b})",
                               "method": method, "label": label, "params_m": n / 1e6,
                               "delta_m": row["delta_m"]})
    return points


def train_setting(kind: str, value: int, steps: int = QUICK_BUDGET["steps"],
                  img_size: int = QUICK_BUDGET["img_size"],
                  batch_size: int = QUICK_BUDGET["batch_size"],
                  val_size: int = QUICK_BUDGET["val_size"],
                  backbone: str = QUICK_BUDGET["backbone"], pretrained: bool | str = True,
                  seed: int = 0, lr: float | None = None, out: str | Path | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Train ``(kind, value)`` now with :class:`vmtlib.train.Trainer` on SyntheticScenes
    (the papers' recipe with the course's learning rate ``vmtlib.train.COURSE_LR``
    unless ``lr`` is given, as ``benchmarks/ablation_sweep.py``; a small budget) and
    return ``{"key", "kind", "value", "budget", "scores" {task: headline}, "metrics",
    "parameters", "seconds"}``.

    ``out``: the run directory (default a fresh temporary one). A few dozen steps
    rank nothing; compare settings trained with the same budget only.
    """
    from vmtlib.train import COURSE_LR, TrainConfig, Trainer

    lr = COURSE_LR if lr is None else lr
    setting = setting_of(kind, value)
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="vmtlib_ablation_"))
    cfg = TrainConfig(method=setting.method, method_kwargs=_kwargs(setting), backbone=backbone,
                      pretrained=pretrained, img_size=img_size, batch_size=batch_size,
                      steps=steps, lr=lr, val_size=val_size, seed=seed, out=str(run_dir),
                      progress=progress)
    start = time.perf_counter()
    result = Trainer(cfg).fit()
    seconds = time.perf_counter() - start
    return {"key": setting.key, "kind": kind, "value": int(value),
            "budget": {"backbone": backbone, "pretrained": pretrained, "steps": steps,
                       "batch_size": batch_size, "img_size": img_size, "lr": lr,
                       "val_size": val_size, "seed": seed},
            "scores": headline_scores(result["metrics"]),
            "metrics": result["metrics"], "parameters": result["parameters"],
            "seconds": seconds}


def format_trained(runs: Sequence[Mapping[str, Any]]) -> str:
    """The runs of :func:`train_setting` as a table (one line per run)."""
    if not runs:
        return "no setting trained yet"
    head = (f"{'setting':<24}" + "".join(f"{t:>12}" for t in ALL_TASKS)
            + f"{'enc. params':>12}{'steps':>7}{'px':>5}{'s':>6}")
    lines = [head]
    for r in runs:
        b = r["budget"]
        lines.append(f"{r['key']:<24}" + "".join(f"{r['scores'][t]:>12.2f}" for t in ALL_TASKS
                                                 if t in r["scores"])
                     + f"{r['parameters']['encoder']:>12,}{b['steps']:>7}{b['img_size']:>5}"
                     f"{r['seconds']:>6.0f}")
    return "\n".join(lines)


class AblationExplorer:
    """The widgets of :func:`ablation_explorer` (``ui`` is what a notebook displays).

    Attributes: ``kind`` (ToggleButtons, "rho" or "m"), ``rho`` and ``m``
    (SelectionSliders), ``info`` (HTML: :func:`describe_setting`), ``button``,
    ``output`` (HTML: :func:`format_trained` of ``trained``), ``trained`` (the
    results of the button's runs), ``ui`` (the VBox).
    """

    def __init__(self, results: Results, backbone: str,
                 train: Callable[..., dict[str, Any]],
                 train_kwargs: Mapping[str, Any]) -> None:
        import ipywidgets as W

        self.results = _rows(results)
        self.status_text = results_status(results)
        self.backbone, self.train, self.train_kwargs = backbone, train, dict(train_kwargs)
        self.trained: list[dict[str, Any]] = []
        self.kind = W.ToggleButtons(options=[("VMT-Adapter (ρ)", "rho"),
                                             ("VMT-Adapter-Lite (m, ρ = 4)", "m")],
                                    value="rho", description="method")
        self.rho = W.SelectionSlider(options=list(TABLE3_CHOICES["rho"][1]), value=4,
                                     description="ρ")
        self.m = W.SelectionSlider(options=list(TABLE3_CHOICES["m"][1]), value=3,
                                   description="m", disabled=True)
        self.status = W.HTML(f"<i>{html.escape(self.status_text)}</i>")
        self.info = W.HTML()
        budget = {**QUICK_BUDGET, **self.train_kwargs}
        self.button = W.Button(
            description="train this setting now", icon="play",
            tooltip=f"{budget['steps']} steps of {budget['backbone']} at {budget['img_size']} px",
            layout=W.Layout(width="auto"))
        self.output = W.HTML()
        self.kind.observe(self._changed, names="value")
        self.rho.observe(self._changed, names="value")
        self.m.observe(self._changed, names="value")
        self.button.on_click(self._train)
        self.ui = W.VBox([self.status, self.kind, W.HBox([self.rho, self.m]), self.info,
                          self.button, self.output])
        self._changed()

    @property
    def selected(self) -> tuple[str, int]:
        """``(kind, value)`` of the current choice."""
        kind = self.kind.value
        return kind, int(self.rho.value if kind == "rho" else self.m.value)

    def _changed(self, change: Any = None) -> None:
        self.rho.disabled = self.kind.value != "rho"
        self.m.disabled = self.kind.value != "m"
        text = describe_setting(*self.selected, self.results, self.backbone)
        self.info.value = f"<pre>{html.escape(text)}</pre>"

    def _train(self, button: Any = None) -> None:
        kind, value = self.selected
        self.button.disabled = True
        self.output.value = f"<pre>training {html.escape(setting_of(kind, value).key)} ...</pre>"
        try:
            self.trained.append(self.train(kind, value, **self.train_kwargs))
            self.output.value = f"<pre>{html.escape(format_trained(self.trained))}</pre>"
        except Exception as err:  # shown in the widget: ipywidgets would swallow it
            self.output.value = f"<pre>training failed: {html.escape(repr(err))}</pre>"
        finally:
            self.button.disabled = False

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.ui._repr_mimebundle_(**kwargs)


def ablation_explorer(results: Results = None, backbone: str = "swin_tiny",
                      train: Callable[..., dict[str, Any]] = train_setting,
                      train_kwargs: Mapping[str, Any] | None = None) -> AblationExplorer:
    """Sliders for rho (VMT-Adapter) and m (VMT-Adapter-Lite) showing
    :func:`describe_setting` live, and a button that runs ``train(kind, value,
    **train_kwargs)`` (:func:`train_setting`) and lists its results.

    ``results``: rows of :func:`vmtlib.analysis.load_ablation` or the path of
    ``ablation.json``. Builds without a display (ipywidgets is imported here);
    ``display(explorer)`` or ``explorer.ui`` shows it.
    """
    return AblationExplorer(results, backbone, train, train_kwargs or {})


__all__ = [
    "AblationExplorer", "LITE_RHO", "QUICK_BUDGET", "TABLE3_CHOICES",
    "ablation_explorer", "ablation_row", "describe_setting", "format_trained", "paper_row",
    "parameter_count", "results_status", "setting_of", "table3_points", "train_setting",
]

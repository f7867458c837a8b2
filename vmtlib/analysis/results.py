"""Results of trained runs: the rho / m ablation (Table 3), results files and the trade-off.

Nothing here knows where the repository keeps its results: benchmarks and
notebooks pass the paths (``benchmarks/results/ablation.json``,
``compare.json``, the results folder).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vmtlib.methods import get_method_class
from vmtlib.tasks import get_task

# VMT-Adapter Table 3 (Swin-T, PASCAL-Context): trainable parameters Encoder / All (M)
# and the averaged Delta_m (%) against single-task full fine-tuning.
PAPER_TABLE3: dict[tuple[str, int], dict[str, float]] = {
    ("vmt_adapter", 1): {"encoder_m": 4.36, "all_m": 6.91, "delta_m": 4.27},
    ("vmt_adapter", 2): {"encoder_m": 2.21, "all_m": 4.56, "delta_m": 3.81},
    ("vmt_adapter", 4): {"encoder_m": 1.13, "all_m": 3.68, "delta_m": 3.96},
    ("vmt_adapter", 8): {"encoder_m": 0.59, "all_m": 3.14, "delta_m": 3.02},
    ("vmt_adapter_lite", 3): {"encoder_m": 0.40, "all_m": 2.95, "delta_m": 1.34},
    ("vmt_adapter_lite", 6): {"encoder_m": 0.22, "all_m": 2.77, "delta_m": 0.61},
    ("vmt_adapter_lite", 12): {"encoder_m": 0.15, "all_m": 2.70, "delta_m": 0.06},
}

# VMT-Adapter Table 3, per-task columns (PASCAL-Context, Swin-T): semseg, human parts and
# saliency mIoU (%), normals mean angle error (degrees); the parameters and Delta_m are
# PAPER_TABLE3 above.
PAPER_TABLE3_TASKS: dict[tuple[str, int], dict[str, float]] = {
    ("vmt_adapter", 1): {"semseg": 71.26, "human_parts": 61.01, "sal": 63.76, "normals": 16.12},
    ("vmt_adapter", 2): {"semseg": 70.96, "human_parts": 60.82, "sal": 64.01, "normals": 16.39},
    ("vmt_adapter", 4): {"semseg": 71.60, "human_parts": 60.67, "sal": 64.02, "normals": 16.41},
    ("vmt_adapter", 8): {"semseg": 71.34, "human_parts": 59.95, "sal": 63.48, "normals": 16.82},
    ("vmt_adapter_lite", 3): {"semseg": 70.03, "human_parts": 59.51, "sal": 62.45,
                              "normals": 17.09},
    ("vmt_adapter_lite", 6): {"semseg": 69.85, "human_parts": 59.38, "sal": 61.95,
                              "normals": 17.53},
    ("vmt_adapter_lite", 12): {"semseg": 69.33, "human_parts": 59.15, "sal": 61.88,
                               "normals": 17.55},
}


@dataclasses.dataclass(frozen=True)
class AblationSetting:
    """One row of Table 3: a method and its hyper-parameters."""

    method: str
    kwargs: tuple[tuple[str, Any], ...]

    @property
    def kw(self) -> dict[str, Any]:
        return dict(self.kwargs)

    @property
    def key(self) -> str:
        """``"vmt_adapter(rho=4)"``."""
        return f"{self.method}({', '.join(f'{k}={v}' for k, v in self.kwargs)})"

    @property
    def paper(self) -> dict[str, float] | None:
        """The paper's Table 3 numbers for this setting (``None`` when absent)."""
        value = self.kw.get("m") if self.method == "vmt_adapter_lite" else self.kw.get("rho")
        return PAPER_TABLE3.get((self.method, value))  # type: ignore[arg-type]


def ablation_settings() -> list[AblationSetting]:
    """VMT-Adapter rho in {1, 2, 4, 8}, VMT-Adapter-Lite m in {3, 6, 12} (rho = 4)."""
    return [AblationSetting("vmt_adapter", (("rho", r),)) for r in (1, 2, 4, 8)] + [
        AblationSetting("vmt_adapter_lite", (("m", m),)) for m in (3, 6, 12)
    ]


def load_ablation(path: str | Path) -> list[dict[str, Any]]:
    """The settings of ``benchmarks/results/ablation.json`` (written by
    ``benchmarks/ablation_sweep.py``), one dict per setting: ``{"key", "method",
    "kwargs", "metrics", "delta_m", "parameters" (swin_nano), "swin_tiny"
    {"encoder", "all"}, "paper" {"encoder_m", "all_m", "delta_m"}, ...}``.
    Empty when the file does not exist yet.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return list(data["settings"] if isinstance(data, Mapping) else data)


def iter_results(obj: Any) -> list[dict[str, Any]]:
    """Per-method result dicts from a results file's content, whatever its shape:
    a list of dicts, ``{"results" / "settings" / "runs" / "methods": [...] or {...}}``, or
    ``{method: result}`` (the key becomes ``"method"`` when missing)."""
    if isinstance(obj, list):
        return [dict(r) for r in obj if isinstance(r, Mapping)]
    if not isinstance(obj, Mapping):
        return []
    for key in ("results", "settings", "runs", "methods"):
        if key in obj and isinstance(obj[key], (list, Mapping)):
            return iter_results(obj[key])
    return [
        {"method": k, **v} if "method" not in v else dict(v)
        for k, v in obj.items()
        if isinstance(v, Mapping) and ("delta_m" in v or "metrics" in v)
    ]


def headline_scores(metrics: Mapping[str, Any]) -> dict[str, float]:
    """``{task: headline metric}`` from ``{task: {metric: value}}`` or ``{task: value}``."""
    out = {}
    for t, v in metrics.items():
        out[t] = float(v[get_task(t).metric]) if isinstance(v, Mapping) else float(v)
    return out


def reference_from_compare(path: str | Path,
                           method: str = "single_task_full") -> dict[str, float] | None:
    """Headline scores of ``method`` (single-task full fine-tuning) in
    ``compare.json``, the Delta_m reference of the sweep; ``None`` if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    for r in iter_results(json.loads(path.read_text())):
        if r.get("method") == method and r.get("metrics"):
            return headline_scores(r["metrics"])
    return None


# ============================================================================ trade-off (Fig. 1)


def _one_pass(result: Mapping[str, Any]) -> bool:
    if "one_pass" in result:
        return bool(result["one_pass"])
    try:
        return bool(get_method_class(str(result["method"])).one_pass)
    except ValueError:
        return str(result["method"]).endswith("_shared")


def tradeoff_points(
    results: Iterable[Mapping[str, Any]], param_key: str = "encoder"
) -> list[dict[str, Any]]:
    """Points of the trade-off figure (VMT-Adapter Fig. 1): Delta_m against parameters.

    Args:
        results: result dicts with ``"method"``, ``"delta_m"`` and
            ``"parameters"`` ``{"encoder", "total"}`` (``Trainer`` final.json,
            compare.json, :func:`load_ablation` rows); optional
            ``"kwargs"`` / ``"method_kwargs"``, ``"label"``, ``"source"``.
        param_key: ``"encoder"`` (the papers' "Encoder" column) or ``"total"``.

    Returns:
        ``[{"label", "method", "params", "params_m", "delta_m", "one_pass",
        "source"}]``, results without a finite Delta_m or parameter count
        left out; sorted by parameters.
    """
    points = []
    for r in results:
        dm = r.get("delta_m")
        params = (r.get("parameters") or {}).get(param_key)
        if dm is None or params is None or not math.isfinite(float(dm)):
            continue
        label = r.get("label") or r.get("key") or r["method"]
        points.append({
            "label": str(label),
            "method": str(r["method"]),
            "params": int(params),
            "params_m": int(params) / 1e6,
            "delta_m": float(dm),
            "one_pass": _one_pass(r),
            "source": r.get("source", ""),
        })
    return sorted(points, key=lambda p: p["params"])


def collect_results(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every trained result in ``results_dir``: ``compare.json`` (source
    ``"compare"``) and the ablation settings (source ``"ablation"``)."""
    results_dir = Path(results_dir)
    out: list[dict[str, Any]] = []
    compare = results_dir / "compare.json"
    if compare.is_file():
        for r in iter_results(json.loads(compare.read_text())):
            out.append({**r, "source": r.get("source", "compare")})
    for r in load_ablation(results_dir / "ablation.json"):
        out.append({**r, "source": "ablation"})
    return out

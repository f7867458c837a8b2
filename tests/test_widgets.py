"""vmtlib.widgets: the ablation explorer's plain functions, and the widget built headless."""

import json
import subprocess
import sys

import pytest
import torch

import vmtlib
from vmtlib.analysis import PAPER_TABLE3, PAPER_TABLE3_TASKS, ablation_settings, load_ablation
from vmtlib.metrics import delta_m
from vmtlib.widgets import (
    TABLE3_CHOICES,
    ablation_explorer,
    ablation_row,
    describe_setting,
    format_trained,
    paper_row,
    parameter_count,
    results_status,
    setting_of,
    table3_points,
    train_setting,
)

SETTINGS = [(k, v) for k, (_, vs) in TABLE3_CHOICES.items() for v in vs]


def fake_results(tmp_path, keys=("vmt_adapter(rho=4)", "vmt_adapter_lite(m=3)")):
    """A tiny ablation.json in the sweep's format, for the given setting keys."""
    settings = []
    for i, key in enumerate(keys):
        metrics = {"semseg": {"mIoU": 10.0 + i}, "human_parts": {"mIoU": 20.0 + i},
                   "sal": {"mIoU": 50.0 + i, "maxF": 55.0}, "normals": {"mean": 40.0 - i}}
        settings.append({
            "key": key, "method": key.split("(")[0], "kwargs": {}, "metrics": metrics,
            "scores": {t: next(iter(v.values())) for t, v in metrics.items()},
            "parameters": {"encoder": 1000 * (i + 1), "decoders": 5, "total": 1005},
            "budget": {"backbone": "swin_nano", "pretrained": True, "steps": 300,
                       "batch_size": 12, "img_size": 128, "val_size": 96, "seed": 0},
            "delta_m": -5.0 - i,
        })
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"config": {}, "reference": {}, "settings": settings}))
    return path


def test_importing_vmtlib_widgets_does_not_import_ipywidgets() -> None:
    code = ("import sys, vmtlib, vmtlib.widgets; "
            "assert 'ipywidgets' not in sys.modules; assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_setting_of_names_the_keys_of_the_sweep() -> None:
    assert [setting_of(k, v).key for k, v in SETTINGS] == [s.key for s in ablation_settings()]
    with pytest.raises(ValueError, match="choose one of"):
        setting_of("rho", 3)
    with pytest.raises(ValueError, match="unknown kind"):
        setting_of("k", 4)


@pytest.mark.parametrize("kind,value", SETTINGS)
def test_parameter_count_matches_build_model(kind: str, value: int) -> None:
    row = parameter_count(kind, value)
    method, _ = TABLE3_CHOICES[kind]
    kwargs = {"rho": 4, "m": value} if kind == "m" else {"rho": value}
    with torch.device("meta"):
        model = vmtlib.build_model(method, backbone="swin_tiny", **kwargs)
    counts = vmtlib.count_parameters(model)
    assert (row["encoder"], row["all"]) == (counts["encoder"], counts["total"])
    assert row["kwargs"] == kwargs
    paper = PAPER_TABLE3[method, value]
    assert row["paper"] == paper
    # within 0.012M of the paper's rounded encoder column (notebook 05 explains the rest)
    assert abs(row["encoder"] / 1e6 - paper["encoder_m"]) < 0.012


def test_parameter_count_other_backbones_and_tasks() -> None:
    nano = parameter_count("rho", 4, backbone="swin_nano")
    assert nano["encoder"] == 209_168  # the sweep's swin_nano count
    two = parameter_count("rho", 4, tasks=("semseg", "sal"))
    assert two["paper"] is None
    assert parameter_count("rho", 4)["encoder"] - two["encoder"] == 2 * 8832  # 2Td per task


def test_paper_row_is_table3() -> None:
    row = paper_row("rho", 4)
    assert row["key"] == "vmt_adapter(rho=4)"
    assert (row["encoder_m"], row["all_m"], row["delta_m"]) == (1.13, 3.68, 3.96)
    assert row["metrics"] == {"semseg": 71.60, "human_parts": 60.67, "sal": 64.02,
                              "normals": 16.41}
    assert paper_row("m", 12)["metrics"]["normals"] == 17.55
    # The per-task columns give the printed Delta_m, except at rho = 8 and m = 6
    for key, metrics in PAPER_TABLE3_TASKS.items():
        recomputed = round(delta_m(metrics), 2)
        printed = PAPER_TABLE3[key]["delta_m"]
        assert (recomputed == printed) == (key not in (("vmt_adapter", 8),
                                                      ("vmt_adapter_lite", 6)))


def test_ablation_row_from_a_results_file(tmp_path) -> None:
    path = fake_results(tmp_path)
    for results in (path, str(path), load_ablation(path)):
        row = ablation_row("rho", 4, results)
        assert row["found"] and row["key"] == "vmt_adapter(rho=4)"
        assert row["delta_m"] == -5.0
        assert row["scores"] == {"semseg": 10.0, "human_parts": 20.0, "sal": 50.0,
                                 "normals": 40.0}
        assert row["parameters"]["encoder"] == 1000
        assert row["budget"]["steps"] == 300
        assert row["paper"]["delta_m"] == 3.96
    lite = ablation_row("m", 3, path)
    assert lite["found"] and lite["delta_m"] == -6.0 and lite["scores"]["normals"] == 39.0
    missing = ablation_row("rho", 8, path)
    assert not missing["found"] and missing["delta_m"] is None and missing["scores"] is None
    assert missing["paper"]["delta_m"] == 3.02
    # scores recomputed from the metrics when a row lacks them
    rows = load_ablation(path)
    del rows[0]["scores"]
    assert ablation_row("rho", 4, rows)["scores"]["sal"] == 50.0


def test_missing_results_file(tmp_path) -> None:
    path = tmp_path / "nope.json"
    assert load_ablation(path) == []
    assert not ablation_row("rho", 4, path)["found"]
    assert not ablation_row("rho", 4, None)["found"]
    status = results_status(path)
    assert "missing" in status and "benchmarks/ablation_sweep.py" in status
    text = describe_setting("m", 6, path)
    assert "no measured result" in text and "0.22M" in text
    assert all(p["source"].startswith("paper") for p in table3_points(path))


def test_describe_setting_and_points_with_results(tmp_path) -> None:
    path = fake_results(tmp_path)
    assert results_status(path).endswith("2 of 7 settings measured (backbone=swin_nano, "
                                         "pretrained=True, steps=300, batch_size=12, "
                                         "img_size=128, val_size=96).")
    text = describe_setting("rho", 4, path)
    assert "1,119,132" in text and "1.13M / 3.68M" in text
    assert "+3.96" in text and "-5.00" in text and "ours (swin_nano, 300 steps)" in text
    points = table3_points(path)
    ours = [p for p in points if p["source"].startswith("ours")]
    assert len(points) == 9 and len(ours) == 2
    assert ours[0] == {"source": "ours (SyntheticScenes, swin_nano)", "method": "vmt_adapter",
                       "label": "ρ=4", "params_m": 0.001, "delta_m": -5.0}


def test_train_setting_runs_the_quick_budget(tmp_path) -> None:
    result = train_setting("m", 12, steps=2, img_size=64, batch_size=2, val_size=2,
                           pretrained=False, out=tmp_path / "run")
    assert result["key"] == "vmt_adapter_lite(m=12)"
    assert set(result["scores"]) == set(vmtlib.ALL_TASKS)
    assert result["parameters"]["encoder"] == parameter_count("m", 12, "swin_nano")["encoder"]
    assert (tmp_path / "run" / "final.json").is_file()
    table = format_trained([result])
    assert "vmt_adapter_lite(m=12)" in table.splitlines()[1]
    assert format_trained([]) == "no setting trained yet"


def test_explorer_builds_and_runs_headless(tmp_path) -> None:
    calls = []

    def fake_train(kind, value, **kwargs):
        calls.append((kind, value, kwargs))
        return {"key": setting_of(kind, value).key, "budget": {"steps": 3, "img_size": 64},
                "scores": {t: 1.0 for t in vmtlib.ALL_TASKS},
                "parameters": {"encoder": 7}, "seconds": 0.5}

    ex = ablation_explorer(fake_results(tmp_path), train=fake_train, train_kwargs={"steps": 3})
    assert ex.selected == ("rho", 4)
    assert "1,119,132" in ex.info.value and "-5.00" in ex.info.value
    assert ex.m.disabled and not ex.rho.disabled
    ex.rho.value = 8
    assert "579,444" in ex.info.value and "no measured result" in ex.info.value
    ex.kind.value = "m"
    assert ex.selected == ("m", 3) and ex.rho.disabled
    assert "vmt_adapter_lite(m=3)" in ex.info.value and "-6.00" in ex.info.value
    ex.m.value = 12
    ex.button.click()
    assert calls == [("m", 12, {"steps": 3})]
    assert "vmt_adapter_lite(m=12)" in ex.output.value and not ex.button.disabled
    assert len(ex.trained) == 1 and ex.ui.children[-1] is ex.output
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()

    def broken(kind, value, **kwargs):
        raise RuntimeError("no memory")

    ex = ablation_explorer(None, train=broken)
    assert "missing" in ex.status.value
    ex.button.click()
    assert "training failed" in ex.output.value and "no memory" in ex.output.value

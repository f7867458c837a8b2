"""``benchmarks/compare_methods.py`` at a tiny budget: results where asked, runs reused."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare_methods(load_script):
    return load_script("benchmarks/compare_methods.py")


def test_variant_writes_its_own_results_and_reuses_finished_runs(compare_methods, tmp_path,
                                                                 monkeypatch) -> None:
    committed = [ROOT / "benchmarks" / "results" / "compare.json",
                 ROOT / "figures" / "compare_methods.png"]
    before = [p.stat().st_mtime_ns for p in committed]
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["compare_methods.py", "--steps", "2", "--batch-size", "2", "--img-size", "64",
            "--val-size", "4", "--transfer-steps", "0", "--threads", "1",
            "--out", str(runs), "--results", str(results)]
    monkeypatch.setattr(sys, "argv", argv)
    compare_methods.main()
    assert sorted(p.name for p in results.iterdir()) == [
        "compare.json", "compare.md", "compare_methods.png"]
    report = json.loads((results / "compare.json").read_text())
    assert [r["name"] for r in report["runs"]] == [name for name, _, _ in compare_methods.RUNS]
    assert report["runs"][0]["delta_m"] == 0.0 and "transfer_check" not in report
    assert report["setting"]["train_seconds_of_the_runs"] == pytest.approx(
        sum(r["train_seconds"] for r in report["runs"]), abs=0.1)
    assert [p.stat().st_mtime_ns for p in committed] == before

    finals = sorted(runs.glob("*/final.json"))
    stamps = [p.stat().st_mtime_ns for p in finals]
    compare_methods.main()  # same config and weights: nothing is trained again
    assert [p.stat().st_mtime_ns for p in finals] == stamps

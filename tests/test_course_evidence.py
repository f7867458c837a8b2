"""``benchmarks/course_evidence.py`` at a tiny budget: records, caching, selection, intervals."""

import json
import math

import pytest

from vmtlib.stats import mean_ci, paired_ci


@pytest.fixture(scope="module")
def evidence(load_script):
    return load_script("benchmarks/course_evidence.py")


def test_mean_ci_is_the_student_t_interval() -> None:
    ci = mean_ci([1.0, 2.0, 3.0])
    # sd = 1, t_{0.975, 2} = 4.3027
    assert ci.mean == 2.0 and ci.half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert not ci.resolved and mean_ci([5.0, 5.1, 4.9]).resolved
    assert math.isnan(mean_ci([1.0]).half) and not mean_ci([1.0]).resolved
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_ci_uses_the_common_seeds_only() -> None:
    d = paired_ci({0: 3.0, 1: 4.0, 2: 5.0, 7: 100.0}, {0: 1.0, 1: 2.0, 2: 3.5})
    assert d.n == 3 and d.mean == pytest.approx(1.8333333)
    with pytest.raises(ValueError, match="no common seed"):
        paired_ci({0: 1.0}, {1: 1.0})


def test_budget_refuses_bad_values(evidence) -> None:
    with pytest.raises(ValueError, match="steps"):
        evidence.Budget(steps=0)
    with pytest.raises(ValueError, match="selection scenes"):
        evidence.Budget(select_seed=2)
    with pytest.raises(ValueError, match="grid"):
        evidence.Budget(grid=(1e-3, -1.0))


def test_runs_are_recorded_reused_selected_and_summarised(evidence, tmp_path) -> None:
    budget = evidence.Budget(steps=2, img_size=64, val_size=4, grid=(1e-3, 2e-3), seeds=(0, 1))
    specs = [s for s in evidence.COMPARISON if s.name in ("single_task_full", "decoders_only")]
    records, runs = tmp_path / "records", tmp_path / "runs"
    out = [evidence.train_run(s, lr, seed, budget, records, runs)
           for s in specs for lr in budget.grid for seed in budget.seeds]
    files = sorted(records.glob("*.json"))
    assert len(files) == 8
    r = json.loads(files[0].read_text())
    assert {"seed", "lr", "metrics", "select_metrics", "weights", "config"} <= set(r)
    assert r["metrics"] != r["select_metrics"]  # other scenes
    stamps = [f.stat().st_mtime_ns for f in files]
    again = evidence.train_run(specs[0], 1e-3, 0, budget, records, runs)  # cached
    assert [f.stat().st_mtime_ns for f in files] == stamps and again["lr"] == 1e-3

    lr, scores = evidence.choose_lr([x for x in out if x["name"] == "decoders_only"
                                     and x["seed"] == 0])
    assert lr == max(scores, key=scores.get) and set(scores) == {1e-3, 2e-3}
    summary = evidence.summarise(budget, out, {"single_task_full": 1e-3, "decoders_only": lr})
    ref = summary["methods"]["single_task_full"]
    assert ref["delta_m"]["mean"] == 0.0 and ref["seeds"] == [0, 1]
    assert summary["methods"]["decoders_only"]["semseg"]["n"] == 2
    assert "| single_task_full | 0.001 | 2 |" in evidence.markdown(summary)


def test_ablation_rows_vary_one_hyperparameter_of_a_compared_method(evidence) -> None:
    compared = {s.name: s for s in evidence.COMPARISON}
    for spec, base in evidence.ABLATION:
        assert spec.method == compared[base].method and len(spec.kwargs) == 1
        assert " " not in evidence.slug(spec, 1e-3, 0)
    names = [s.name for s, _ in evidence.ABLATION]
    assert names == ["vmt_adapter rho=1", "vmt_adapter rho=2", "vmt_adapter rho=8",
                     "vmt_adapter_lite m=6", "vmt_adapter_lite m=12"]
    assert evidence.slug(evidence.ABLATION[0][0], 1e-3, 2) == "vmt_adapter_rho=1__lr0.001__s2"

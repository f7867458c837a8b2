"""``python -m vmtlib bench`` on the CPU at a tiny size (no timing is asserted)."""

import json

import pytest
import torch

from vmtlib.__main__ import main
from vmtlib.analysis import task_set
from vmtlib.bench import (
    DECODERS,
    FULL,
    BenchConfig,
    Goals,
    goal_report,
    projected_minutes,
    random_batch,
    run_benchmark,
    scaling_summary,
    task_scaling,
    top_operators,
)


def test_random_batch_has_the_pascal_shapes() -> None:
    import torch

    b = random_batch(task_set(4), 2, 64, torch.device("cpu"))
    assert b["image"].shape == (2, 3, 64, 64)
    assert b["semseg"].max() <= 20 and b["sal"].max() <= 1
    torch.testing.assert_close(b["normals"].norm(dim=1), torch.ones(2, 64, 64))


def test_benchmark_reports_throughput(tmp_path) -> None:
    row = run_benchmark(BenchConfig(method="vmt_adapter", backbone="swin_nano", num_tasks=2,
                                    img_size=64, batch_size=1, steps=1, warmup=1, device="cpu"))
    assert row["train_images_per_second"] > 0 and row["inference_images_per_second"] > 0
    assert row["tasks"] == ["semseg", "human_parts"] and row["train_peak_memory_gb"] is None
    assert "profile" not in row


def test_profile_names_where_the_step_spends_its_time() -> None:
    row = run_benchmark(BenchConfig(method="vmt_adapter", backbone="swin_nano", num_tasks=2,
                                    img_size=64, batch_size=1, steps=1, warmup=1, device="cpu",
                                    profile_steps=2))
    top = row["profile"]
    assert 0 < len(top) <= 15 and {"aten::mm", "aten::addmm"} & {e["name"] for e in top}
    assert [e["ms_per_step"] for e in top] == sorted((e["ms_per_step"] for e in top),
                                                     reverse=True)
    assert all(0 < e["share"] <= 1 and e["calls_per_step"] > 0 for e in top)


def test_gpu_profile_ranks_operators_and_counts_each_kernel_once() -> None:
    from types import SimpleNamespace

    from torch.autograd import DeviceType

    def row(name: str, device: DeviceType, device_us: float) -> SimpleNamespace:
        return SimpleNamespace(key=name, device_type=device, count=4,
                               self_device_time_total=device_us, self_cpu_time_total=50.0)

    # key_averages() on a GPU: each operator and the kernel it launched, same device time
    events = [row("aten::mm", DeviceType.CPU, 3000.0), row("sm90_gemm", DeviceType.CUDA, 3000.0),
              row("aten::add", DeviceType.CPU, 1000.0), row("add_kernel", DeviceType.CUDA, 1000.0),
              row("aten::view", DeviceType.CPU, 0.0)]
    top = top_operators(events, steps=2, gpu=True)
    assert [e["name"] for e in top] == ["aten::mm", "aten::add"]
    assert [e["share"] for e in top] == [0.75, 0.25]
    assert top[0]["ms_per_step"] == 1.5 and top[0]["calls_per_step"] == 2


def test_each_compiled_row_starts_from_an_empty_graph_cache(monkeypatch) -> None:
    resets = []
    monkeypatch.setattr(torch._dynamo, "reset", lambda: resets.append(1))
    monkeypatch.setattr(torch, "compile", lambda model: model)  # the plumbing, not inductor
    for tasks in (1, 2):
        row = run_benchmark(BenchConfig(method="vmt_adapter", backbone="swin_nano",
                                        num_tasks=tasks, img_size=32, batch_size=1, steps=1,
                                        warmup=0, device="cpu", compile=True))
        assert row["compile"] and row["train_images_per_second"] > 0
    assert len(resets) == 2


def test_cli_writes_json(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--methods", "decoders_only", "--backbone", "swin_nano",
                 "--img-size", "64", "--batch-size", "1", "--steps", "1", "--warmup", "0",
                 "--device", "cpu", "--task-counts", "1,2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["num_tasks"] for r in rows] == [1, 2]
    assert "img/s" in capsys.readouterr().out


def test_projection_of_a_60_epoch_run() -> None:
    # the goal: 500 images/s makes 60 epochs of 4,998 images in under 10 minutes
    assert projected_minutes(500.0) == pytest.approx(60 * 4998 / 500 / 60)
    assert projected_minutes(500.0) < 10


def _cost() -> dict[tuple[str, int], float]:
    # seconds per step: three more decoders cost +6 ms in every method
    return {(DECODERS, 1): 0.010, (DECODERS, 4): 0.016, (FULL, 1): 0.030, (FULL, 4): 0.036,
            ("vmt_adapter", 1): 0.018, ("vmt_adapter", 4): 0.0264,  # +2.4 ms beyond them
            ("adapter", 1): 0.025, ("adapter", 4): 0.100,  # one backbone pass per task
            ("polyhistor", 1): 0.025}  # no T = 4: not reported


def test_task_scaling_takes_the_decoders_growth_out() -> None:
    s = task_scaling(_cost())
    assert set(s) == {FULL, "vmt_adapter", "adapter"}
    assert s["vmt_adapter"] == pytest.approx({"growth": 0.0024 / 0.018,
                                              "ratio_to_full": 0.0264 / 0.036})
    assert s["adapter"]["growth"] == pytest.approx((0.075 - 0.006) / 0.025)
    assert s[FULL] == pytest.approx({"growth": 0.0, "ratio_to_full": 1.0})
    no_full = {k: v for k, v in _cost().items() if k[0] != FULL}
    assert "ratio_to_full" not in task_scaling(no_full)["vmt_adapter"]
    with pytest.raises(ValueError, match="decoders_only at T = 1 and T = 4"):
        task_scaling({("vmt_adapter", 1): 1.0, ("vmt_adapter", 4): 2.0})


def _rows(cost: dict[tuple[str, int], float], batch: int = 12) -> list[dict]:
    return [{"method": m, "num_tasks": t, "train_step_seconds": s,
             "train_images_per_second": batch / s} for (m, t), s in cost.items()]


def test_goal_report_checks_each_goal_it_can_answer() -> None:
    checks = {c["name"]: c for c in goal_report(_rows(_cost()))}
    assert list(checks) == ["train_images_per_second", "projected_minutes", "step_ratio",
                            "growth"]
    assert checks["train_images_per_second"]["value"] == pytest.approx(12 / 0.0264)
    assert not checks["train_images_per_second"]["met"]  # 455 < 500 images/s
    assert not checks["projected_minutes"]["met"]  # 11 > 10 minutes
    assert checks["step_ratio"]["met"] and checks["step_ratio"]["rule"] == "at most"
    assert not checks["growth"]["met"]  # +13% > 10%
    assert all(c["met"] for c in goal_report(_rows(_cost()), Goals(400, 12, 0.75, 0.2)))
    # without decoders_only and multi_task_full only the throughput goals are answered
    alone = _rows({("vmt_adapter", 4): 0.02})
    assert [c["name"] for c in goal_report(alone)] == ["train_images_per_second",
                                                       "projected_minutes"]
    assert goal_report(alone)[0]["met"]


def test_scaling_summary_lines() -> None:
    lines = scaling_summary(_rows(_cost()))
    assert any(line.startswith("vmt_adapter") and "+13.3% beyond the decoders" in line
               and "0.73 of multi_task_full's" in line for line in lines)
    assert sum("NOT met" in line for line in lines) == 3
    assert scaling_summary(_rows({("vmt_adapter", 4): 0.02})) == []

"""``python -m vmtlib bench`` on the CPU at a tiny size (no timing is asserted)."""

import json

import pytest

from vmtlib.__main__ import main
from vmtlib.bench import BenchConfig, projected_minutes, random_batch, run_benchmark, task_ids


def test_task_ids_copy_the_four_tasks_beyond_four() -> None:
    assert task_ids(2) == ("semseg", "human_parts")
    assert task_ids(6)[4:] == ("semseg#2", "human_parts#2")


def test_random_batch_has_the_pascal_shapes() -> None:
    import torch

    b = random_batch(task_ids(4), 2, 64, torch.device("cpu"))
    assert b["image"].shape == (2, 3, 64, 64)
    assert b["semseg"].max() <= 20 and b["sal"].max() <= 1
    torch.testing.assert_close(b["normals"].norm(dim=1), torch.ones(2, 64, 64))


def test_benchmark_reports_throughput(tmp_path) -> None:
    row = run_benchmark(BenchConfig(method="vmt_adapter", backbone="swin_nano", num_tasks=2,
                                    img_size=64, batch_size=1, steps=1, warmup=1, device="cpu"))
    assert row["train_images_per_second"] > 0 and row["inference_images_per_second"] > 0
    assert row["tasks"] == ["semseg", "human_parts"] and row["train_peak_memory_gb"] is None


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

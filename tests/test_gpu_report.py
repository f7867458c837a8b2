"""``benchmarks/gpu_report.py`` end to end at a tiny size on the CPU (no timing is asserted)."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_report(load_script):
    return load_script("benchmarks/gpu_report.py")


TINY = ["--backbone", "swin_nano", "--img-size", "64", "--batch-size", "1", "--steps", "1",
        "--warmup", "0", "--methods", "decoders_only,multi_task_full,vmt_adapter",
        "--train-images", "4", "--val-images", "2", "--epochs", "1", "--num-workers", "0",
        "--profile-methods", "vmt_adapter", "--profile-steps", "1"]


def test_report_writes_each_part_and_keeps_the_others(gpu_report, tmp_path, monkeypatch
                                                      ) -> None:
    monkeypatch.setenv("VMTLIB_QUICK", "1")
    monkeypatch.delenv("VMTLIB_FIGURES", raising=False)
    committed = ROOT / "figures" / "07_pascal_sample.png"
    before = committed.stat().st_mtime_ns if committed.exists() else None
    out = tmp_path / "report.json"
    run_dir = tmp_path / "run"
    args = [*TINY, "--run-dir", str(run_dir), "--out", str(out)]
    assert gpu_report.main(["--parts", "bench,notebook,profile", *args]) == 0
    assert "VMTLIB_FIGURES" not in os.environ  # set for the kernel only
    report = json.loads(out.read_text())
    assert set(report) == {"bench", "notebook", "profile"}
    (profiled,) = report["profile"]["rows"]
    assert profiled["method"] == "vmt_adapter" and profiled["num_tasks"] == 4
    assert any(e["name"] == "aten::mm" for e in profiled["profile"])  # CPU operators on a CPU
    assert 0 < sum(e["share"] for e in profiled["profile"]) <= 1 + 1e-9
    bench = report["bench"]
    assert [(r["method"], r["num_tasks"]) for r in bench["rows"]] == [
        (m, t) for m in ("decoders_only", "multi_task_full", "vmt_adapter") for t in (1, 4)]
    assert set(bench["scaling"]) == {"multi_task_full", "vmt_adapter"}
    assert [g["name"] for g in bench["goals"]] == [
        "train_images_per_second", "projected_minutes", "step_ratio", "growth"]
    assert bench["command"].startswith(
        "python benchmarks/gpu_report.py --parts bench,notebook,profile")
    assert bench["device"].startswith("CPU")

    executed = json.loads(Path(report["notebook"]["executed"]).read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not any(o["output_type"] == "error" for o in outputs)
    assert any("reading " + str(run_dir / "PASCAL_MT") in "".join(o.get("text", ""))
               for o in outputs), "the notebook read the generated folder"
    assert (run_dir / "figures" / "07_pascal_sample.png").is_file()
    assert before == (committed.stat().st_mtime_ns if committed.exists() else None)
    assert "final" not in report["notebook"]  # no GPU: the demo, not the papers' run
    assert report["notebook"]["parameters"]["weights"] is False

    # a second command adds the FLOPs and leaves the measured parts as they were
    assert gpu_report.main(["--parts", "flops", *args]) == 0
    again = json.loads(out.read_text())
    assert again["bench"] == bench and again["notebook"] == report["notebook"]
    assert again["profile"] == report["profile"]
    flops = again["flops"]
    assert flops["scaling"]["vmt_adapter"]["ratio_to_full"] < 1
    md = out.with_suffix(".md").read_text()
    for heading in ("## Training-step FLOPs", "## Measured throughput", "## Notebook 07",
                    "## Where the training step's time goes"):
        assert heading in md


def test_folder_is_reused_only_when_it_has_the_asked_shape(gpu_report, tmp_path) -> None:
    root = gpu_report.write_folder(tmp_path / "P", 2, 1, 32)
    ids = (root / "ImageSets" / "Context" / "train.txt").read_text().split()
    assert len(ids) == 2
    stamp = (root / "vmtlib_generated.json").stat().st_mtime_ns
    assert gpu_report.write_folder(tmp_path / "P", 2, 1, 32) == root
    assert (root / "vmtlib_generated.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="was not written with"):
        gpu_report.write_folder(tmp_path / "P", 3, 1, 32)


def test_unknown_part_is_refused(gpu_report, capsys) -> None:
    with pytest.raises(SystemExit):
        gpu_report.main(["--parts", "bench,speed"])
    assert "unknown ['speed']" in capsys.readouterr().err


def test_compiled_part_measures_its_methods_at_the_largest_count(gpu_report, monkeypatch
                                                                  ) -> None:
    seen = []

    def fake_benchmark(cfg):
        seen.append((cfg.method, cfg.num_tasks, cfg.compile))
        return {"method": cfg.method, "num_tasks": cfg.num_tasks, "compile": cfg.compile,
                "img_size": cfg.img_size, "batch_size": cfg.batch_size,
                "train_images_per_second": 600.0, "train_step_seconds": 0.02,
                "inference_images_per_second": 1200.0, "train_peak_memory_gb": 9.0}

    monkeypatch.setattr("vmtlib.bench.run_benchmark", fake_benchmark)
    args = gpu_report.argparse.Namespace(
        methods=["decoders_only", "vmt_adapter"], compile_methods=["vmt_adapter"],
        profile_methods=["multi_task_full"], profile_steps=5,
        task_counts=[1, 4], backbone="swin_tiny", img_size=512, batch_size=12, steps=20,
        warmup=5, device="cuda")
    part = gpu_report.bench_part(args, lambda part: None, kind="compiled")
    assert seen == [("vmt_adapter", 4, True)]
    assert [g["name"] for g in part["goals"]] == ["train_images_per_second",
                                                  "projected_minutes"]
    assert all(g["met"] for g in part["goals"]) and part["scaling"] == {}
    section = "\n".join(gpu_report._bench_section({**part, "device": "H100", "date": "d",
                                                   "torch": "t", "command": "c",
                                                   "seconds": 1.0}))
    assert "| vmt_adapter | 4 | 512 | 12 | 600.0 | 1200.0 | 9.0 | 8.3 |" in section

"""Runs that never lose work: bad values refused up front, protected run directories,
honest resumes, divergence that stops, interrupts that save, checked weight files."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vmtlib import __main__ as cli_main
from vmtlib.backbone import NANO_WEIGHTS, build_backbone
from vmtlib.checks import ConfigError
from vmtlib.interrupts import TrainingInterrupted
from vmtlib.rundir import RunDir, RunDirError, RunLock
from vmtlib.train import TrainConfig, Trainer, TrainingDiverged, evaluate_run

TINY = dict(backbone="swin_nano", pretrained=False, img_size=64, batch_size=2, train_size=32,
            val_size=4, progress=False)
CLI_TINY = ["--backbone", "swin_nano", "--pretrained", "false", "--img-size", "64",
            "--batch-size", "2", "--train-size", "32", "--val-size", "4", "--no-progress"]
ROOT = Path(__file__).resolve().parents[1]


def tiny(out: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **overrides})


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli_main.main(list(argv))
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-step run (checkpoint every step)."""
    out = tmp_path_factory.mktemp("finished")
    Trainer(tiny(out, steps=2, checkpoint_every=1, eval_every=1)).fit()
    return out


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("batch_size", -3), ("batch_size", True), ("batch_size", 1.5),
    ("steps", 0), ("steps", -5), ("epochs", -1), ("epochs", float("nan")),
    ("img_size", 0), ("img_size", -32), ("img_size", 100), ("img_size", 4096),
    ("val_size", 0), ("train_size", 0), ("eval_every", -1), ("eval_batches", 0),
    ("seed", -1), ("lr", float("nan")), ("lr", 0), ("num_workers", -1),
    ("device", "gpu"), ("device", "mps"), ("checkpoint_every", 0), ("tasks", "semseg,semseg#2"),
    ("reference", {"semseg": 50.0}), ("method", "nope"), ("pretrained", ""),
])
def test_bad_numbers_are_refused_where_they_enter(field: str, value, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=field.split("_")[0]) as err:
        tiny(tmp_path, **{field: value})
    assert "\n" not in str(err.value)


def test_bench_config_checks_its_numbers() -> None:
    from vmtlib.bench import BenchConfig

    for bad in (dict(steps=0), dict(batch_size=-1), dict(img_size=70), dict(device="gpu"),
                dict(num_tasks=0), dict(method="nope")):
        with pytest.raises(ConfigError):
            BenchConfig(**bad)


@pytest.mark.parametrize("argv, words", [
    (["--batch-size", "-3"], "--batch-size must be an integer >= 1, got -3"),
    (["--steps", "0"], "--steps must be"),
    (["--img-size", "0"], "--img-size must be"),
    (["--device", "gpu"], "--device must be auto, cpu, cuda or cuda:N"),
    (["--param", "rho=abc"], "vmt_adapter"),
    (["--param", "rho"], "--param expects NAME=VALUE"),
    (["--tasks", "semseg,semseg#2"], "--tasks cannot train task copies"),
    (["--resume", "--overwrite"], "give one of them"),
])
def test_cli_refuses_bad_values_in_one_line_writing_nothing(argv, words, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "train", *CLI_TINY, "--out", str(out), *argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err
    assert not out.exists()


def test_cli_refuses_a_missing_gpu_in_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code, err = run_cli(capsys, "train", *CLI_TINY, "--out", str(tmp_path / "r"),
                        "--device", "cuda:3")
    assert code == 2 and "no CUDA GPU" in err and err.count("\n") == 1


def test_bench_cli_refuses_before_measuring(capsys):
    code, err = run_cli(capsys, "bench", "--steps", "0", "--backbone", "swin_nano")
    assert code == 2 and "steps must be an integer >= 1, got 0" in err


# ----------------------------------------------------------------------------- run directories


def test_a_run_is_never_replaced_or_damaged_by_a_command_that_should_not_touch_it(
        finished, capsys):
    before = listing(finished)
    for argv in ([], ["--method", "adapter_shared"], ["--batch-size", "0"], ["--steps", "-5"]):
        code, err = run_cli(capsys, "train", *CLI_TINY, "--out", str(finished), *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert listing(finished) == before, argv
    assert "already holds a finished run of vmt_adapter (2 steps)" in run_cli(
        capsys, "train", *CLI_TINY, "--out", str(finished))[1]
    evaluate_run(finished)  # still a good run


def test_overwrite_replaces_every_run_file(finished, tmp_path, capsys):
    out = tmp_path / "copy"
    out.mkdir()
    for name, data in listing(finished).items():
        (out / name).write_bytes(data)
    (out / "notes.txt").write_text("mine")
    code, _ = run_cli(capsys, "train", *CLI_TINY, "--out", str(out), "--steps", "1",
                      "--method", "adapter_shared", "--overwrite")
    assert code == 0
    assert json.loads((out / "final.json").read_text())["method"] == "adapter_shared"
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_without_checkpoint_refuses_and_keeps_the_logs(finished, tmp_path, capsys):
    out = tmp_path / "nockpt"
    out.mkdir()
    for name in ("config.json", "metrics.jsonl", "losses.jsonl", "final.json"):
        (out / name).write_bytes((finished / name).read_bytes())
    before = listing(out)
    code, err = run_cli(capsys, "train", "--resume", "--out", str(out))
    assert code == 2 and "nothing to resume" in err and listing(out) == before
    code, err = run_cli(capsys, "train", "--resume", "--out", str(tmp_path / "typo"))
    assert code == 2 and "the folder does not exist" in err and not (tmp_path / "typo").exists()


def test_resume_refuses_contradicting_flags_naming_flag_and_values(finished, capsys):
    before = listing(finished)
    for argv, words in ((["--batch-size", "4"], "--batch-size 4 (the run has 2)"),
                        (["--pretrained", "true"], "--pretrained true (the run has false)"),
                        (["--param", "rho=2"], '--param {"rho": 2} (the run has {})'),
                        (["--img-size", "128"], "--img-size 128 (the run has 64)")):
        code, err = run_cli(capsys, "train", "--resume", "--out", str(finished), *argv)
        assert code == 2 and words in err, err
    assert listing(finished) == before
    with pytest.raises(RunDirError, match="batch_size=4 \\(the run has 2\\)"):
        Trainer(tiny(finished, steps=2, checkpoint_every=1, eval_every=1, batch_size=4),
                resume=True)


def test_resume_reuses_the_run_config_and_trims_the_logs(finished, tmp_path, capsys):
    out = tmp_path / "again"
    out.mkdir()
    for name, data in listing(finished).items():
        (out / name).write_bytes(data)
    # a kill after the final save left a duplicate line behind
    with open(out / "metrics.jsonl", "a") as f:
        f.write((out / "metrics.jsonl").read_text().splitlines()[-1] + "\n")
    code, _ = run_cli(capsys, "train", "--resume", "--out", str(out), "--steps", "3")
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["batch_size"] == 2 and config["img_size"] == 64 and config["steps"] == 3
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert json.loads((out / "final.json").read_text())["steps"] == 3


def test_trim_logs_keeps_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    for name in ("losses.jsonl", "metrics.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps({"step": s}) + "\n"
                                             for s in (10, 20, 30, 20, 30)))
    run.trim_logs(20, finished=False)  # the second 20 supersedes the first, 30 is dropped
    assert [json.loads(x)["step"] for x in (tmp_path / "losses.jsonl").read_text()
            .splitlines()] == [10, 20]
    run.trim_logs(20, finished=True)  # the finished run's final evaluation is redone
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text()
            .splitlines()] == [10]


def test_a_second_process_on_one_out_is_refused(tmp_path: Path) -> None:
    cfg = tiny(tmp_path, steps=1)
    with RunLock(tmp_path):  # as another process would hold it
        with pytest.raises(RunDirError, match=f"in use by another vmtlib process \\(pid "
                                              f"{os.getpid()}\\)"):
            Trainer(cfg).fit()
    assert not (tmp_path / "config.json").exists()
    Trainer(cfg).fit()  # released
    assert (tmp_path / "final.json").is_file()


def test_config_and_final_are_written_atomically(finished) -> None:
    assert not list(finished.glob("*.tmp"))
    assert json.loads((finished / "config.json").read_text())["steps"] == 2


# ----------------------------------------------------------------------------- divergence


def test_a_non_finite_loss_stops_the_run_without_saving_it(tmp_path, monkeypatch) -> None:
    import vmtlib.train as train

    real = train.multitask_loss
    calls = {"n": 0}

    def poisoned(outputs, batch, tasks):
        loss, parts = real(outputs, batch, tasks)
        calls["n"] += 1
        if calls["n"] >= 3:  # step 3 onwards
            parts = {**parts, "sal": parts["sal"] * float("nan")}
            loss = loss + parts["sal"]
        return loss, parts

    monkeypatch.setattr(train, "multitask_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="task sal was nan at step 3.*keeps step 2"):
        Trainer(tiny(tmp_path, steps=6, checkpoint_every=2)).fit()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 2
    assert not (tmp_path / "final.json").exists()
    def refuse(constant: str) -> None:
        raise AssertionError(f"a bare {constant} in a log")

    for name in ("losses.jsonl", "metrics.jsonl", "config.json"):
        path = tmp_path / name
        if path.exists():  # strict JSON: no bare NaN
            text = path.read_text()
            if name.endswith(".jsonl"):
                text = "[" + ",".join(text.splitlines()) + "]"
            json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- interrupts


def test_sigint_saves_the_step_reached_and_the_resume_matches(tmp_path: Path) -> None:
    def ctrl_c(trainer, step, *_):
        if step == 2:  # during the third step
            os.kill(os.getpid(), signal.SIGINT)

    cfg = tiny(tmp_path / "cut", steps=5, checkpoint_every=100)
    with pytest.raises(TrainingInterrupted, match="SIGINT: stopped at step 3") as stop:
        Trainer(cfg, step_hooks=[ctrl_c]).fit()
    assert stop.value.exit_code == 130 and "--resume --out" in str(stop.value)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = Trainer(cfg, resume=True).fit()
    straight = Trainer(dataclasses.replace(cfg, out=str(tmp_path / "straight"))).fit()
    assert resumed["metrics"] == straight["metrics"] and resumed["steps"] == 5


def test_sigterm_to_the_cli_saves_and_prints_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vmtlib", "train", *CLI_TINY, "--steps", "500",
         "--checkpoint-every", "1000", "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "config.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 143, err
    last = err.strip().splitlines()[-1]
    reached = int(re.search(r"stopped at step (\d+)", last).group(1))
    assert f"resume with: python -m vmtlib train --resume --out {out}" in last
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == reached >= 1


# ----------------------------------------------------------------------------- weights


@pytest.mark.parametrize("name, content, words", [
    ("text.pth", b"hello, these are not weights\n", "holds text"),
    ("text.safetensors", b"hello, these are not weights\n", "holds text"),
    ("empty.pth", b"", "empty file"),
])
def test_bad_weight_files_are_named(tmp_path, name, content, words) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + words):
        build_backbone("swin_nano", pretrained=path, img_size=64)


def test_truncated_and_wrong_variant_weights_are_named(tmp_path) -> None:
    state = build_backbone("swin_nano", img_size=64).state_dict()
    whole = tmp_path / "nano.pth"
    torch.save(state, whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{re.escape(str(cut))}.*zip archive"):
        build_backbone("swin_nano", pretrained=cut, img_size=64)
    cut_st = tmp_path / "cut.safetensors"
    cut_st.write_bytes(NANO_WEIGHTS.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=re.escape(str(cut_st))):
        build_backbone("swin_nano", pretrained=cut_st, img_size=64)
    wide = {**state, "patch_embed.proj.weight": torch.zeros(96, 3, 4, 4)}  # Swin-T's stem
    torch.save({"model": wide}, tmp_path / "tiny.pth")
    with pytest.raises(ValueError, match="embedding width 96.*another Swin variant"):
        build_backbone("swin_nano", pretrained=tmp_path / "tiny.pth", img_size=64)


def test_resume_and_eval_refuse_other_backbone_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(NANO_WEIGHTS.read_bytes())
    cfg = tiny(tmp_path / "run", steps=1, pretrained=str(weights))
    Trainer(cfg).fit()
    changed = load_file(str(weights))
    changed["patch_embed.proj.bias"] = changed["patch_embed.proj.bias"] + 1
    save_file(changed, str(weights))
    with pytest.raises(RunDirError, match="trained on backbone weights sha256:.*now loads"):
        evaluate_run(tmp_path / "run")
    with pytest.raises(RunDirError, match="trained on backbone weights sha256:"):
        Trainer(dataclasses.replace(cfg, steps=2), resume=True)


def test_eval_builds_no_trainer(finished, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("evaluate_run built a Trainer")

    monkeypatch.setattr(Trainer, "__init__", refuse)
    result = evaluate_run(finished)
    assert result["metrics"] == json.loads((finished / "final.json").read_text())["metrics"]


def test_every_torch_load_refuses_pickled_code() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.ipynb"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    offenders = []
    for name in tracked:
        if not (ROOT / name).is_file():
            continue
        for call in re.findall(r"torch\.load\([^)]*\)", (ROOT / name).read_text()):
            if "weights_only=True" not in call:
                offenders.append(f"{name}: {call}")
    assert not offenders


# ----------------------------------------------------------------------------- the CLI


def test_every_config_field_is_an_option_with_its_default() -> None:
    parser = cli_main.build_parser()
    text = parser._subparsers._group_actions[0].choices["train"].format_help()
    flat = " ".join(text.split())
    from vmtlib.cli import flag_of

    for f in dataclasses.fields(TrainConfig):
        assert flag_of(f.name) in text, f.name
    assert "--batch-size N images per step (per process under torchrun) (default: 12)" in flat
    assert "one of: segformer, hrnet, aspp" in flat and "vmt_adapter_lite" in flat


def test_config_file_with_flags_overriding(finished, tmp_path) -> None:
    from vmtlib.cli import train_config

    parser = cli_main.build_parser()
    args = parser.parse_args(["train", "--config", str(finished / "config.json"),
                              "--out", str(tmp_path / "new"), "--seed", "7"])
    cfg = train_config(args)
    saved = json.loads((finished / "config.json").read_text())
    assert cfg.seed == 7 and cfg.out == str(tmp_path / "new")
    assert cfg.batch_size == saved["batch_size"] == 2 and cfg.pretrained is False
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"batch_sise": 3}))
    with pytest.raises(ValueError, match="unknown field\\(s\\) \\['batch_sise'\\]"):
        train_config(parser.parse_args(["train", "--config", str(bad)]))


def test_late_failures_come_first(finished, tmp_path, capsys) -> None:
    from vmtlib.data.pascal_writer import write_tiny_pascal_mt

    root = write_tiny_pascal_mt(tmp_path / "PASCAL_MT", n_train=2, n_val=1)
    split = root / "ImageSets" / "Context" / "train.txt"
    split.write_text(split.read_text() + "2099_999999\n")
    code, err = run_cli(capsys, "train", *CLI_TINY, "--data", str(root), "--batch-size", "1",
                        "--out", str(tmp_path / "p"))
    assert code == 2 and "2099_999999" in err and not (tmp_path / "p").exists()
    code, err = run_cli(capsys, "train", "--resume", "--out", str(finished), "--steps", "1")
    assert code == 2 and "already at step 2, past the 1 steps" in err
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_bytes((finished / "config.json").read_bytes())
    torch.save({"foo": 1}, odd / "checkpoint.pt")
    code, err = run_cli(capsys, "train", "--resume", "--out", str(odd))
    assert code == 2 and "is not a vmtlib checkpoint" in err
    (tmp_path / "a_file").write_text("x")
    code, err = run_cli(capsys, "train", *CLI_TINY, "--out", str(tmp_path / "a_file" / "run"))
    assert code == 2 and "is a file, not a folder" in err

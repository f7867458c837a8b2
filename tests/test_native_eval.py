"""Scores at each image's native resolution (vmtlib.native_eval, ``eval --native-resolution``):
predictions are resized to the stored labels, which the meters see unresized."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vmtlib.native_eval as native_eval
from vmtlib import ALL_TASKS, build_model
from vmtlib.__main__ import main
from vmtlib.data import PascalContext, SyntheticScenes
from vmtlib.data.pascal_writer import write_tiny_pascal_mt
from vmtlib.metrics import TaskMeter
from vmtlib.rng import seed_everything
from vmtlib.train import CHECKPOINT, IMAGENET_MEAN, IMAGENET_STD, save_checkpoint, trainable_state


@pytest.fixture(scope="module")
def model():
    seed_everything(0)
    return build_model("vmt_adapter", backbone="swin_nano", img_size=64).eval()


@pytest.fixture(scope="module")
def pascal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_pascal_mt(tmp_path_factory.mktemp("p") / "PASCAL_MT", 1, 4)


def test_meters_see_the_stored_labels_at_their_own_size(model, pascal: Path, monkeypatch):
    seen: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []

    def recording(task: str) -> TaskMeter:
        meter = TaskMeter(task)
        update = meter.update

        def record(pred: torch.Tensor, target: torch.Tensor) -> None:
            seen.append((task, tuple(pred.shape[-2:]), tuple(target.shape)))
            update(pred, target)

        meter.update = record
        return meter

    monkeypatch.setattr(native_eval, "TaskMeter", recording)
    dataset = PascalContext(pascal, "val")
    metrics = native_eval.evaluate_native(model, dataset, batch_size=3)
    sizes = [dataset.load(i)["meta"]["size"] for i in range(len(dataset))]
    assert len(set(sizes)) > 1 and (64, 64) not in sizes  # sizes differ from the input's
    for task in ALL_TASKS:
        shapes = [(p, t) for name, p, t in seen if name == task]
        assert [p for p, _ in shapes] == sizes
        assert [t[-2:] for _, t in shapes] == sizes
    assert set(metrics) == set(ALL_TASKS)


def test_at_the_training_size_it_equals_scoring_the_plain_outputs(model):
    scenes = SyntheticScenes(3, size=64, seed=2)
    native = native_eval.evaluate_native(model, scenes, batch_size=2)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    batch = [scenes[i] for i in range(3)]
    with torch.no_grad():
        out = model((torch.stack([s["image"] for s in batch]) - mean) / std)
    for task in ALL_TASKS:
        meter = TaskMeter(task)
        meter.update(out[task], torch.stack([s[task] for s in batch]))
        expected = meter.compute()
        assert native[task] == pytest.approx(expected, abs=1e-4), task


def test_eval_cli_flag_on_a_saved_run(model, pascal: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    config = {"method": "vmt_adapter", "backbone": "swin_nano", "pretrained": False,
              "img_size": 64, "tasks": list(ALL_TASKS), "seed": 0, "data": str(pascal),
              "decoder": "segformer", "method_kwargs": {}}
    (run / "config.json").write_text(json.dumps(config))
    save_checkpoint(run / CHECKPOINT, {"model": trainable_state(model),
                                       "model_info": model.info})
    assert main(["eval", "--run", str(run), "--native-resolution"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["protocol"] == "native resolution"
    expected = native_eval.evaluate_native(model, PascalContext(pascal, "val"))
    for task in ALL_TASKS:
        assert result["metrics"][task] == pytest.approx(expected[task], nan_ok=True), task
    assert result["delta_m"] is not None

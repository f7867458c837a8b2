"""Adapter files (vmtlib.adapter_file, ``python -m vmtlib export``): a tiny trained run
exported and reloaded gives the trained model's outputs exactly; a different backbone
is refused; the format is the one the module docstring documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import vmtlib
from vmtlib.__main__ import main
from vmtlib.adapter_file import (
    AdapterMismatchError,
    adapter_state,
    config_path,
    export_run,
    read_adapter_config,
    save_adapter,
)
from vmtlib.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A 3-step vmt_adapter run on swin_nano (shipped weights) at 64 px with decoders of
    width 32 (not the default: the export must rebuild them from the run's config), and
    its model."""
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(method="vmt_adapter", backbone="swin_nano", steps=3, img_size=64,
                      val_size=8, train_size=16, batch_size=2, out=str(out), progress=False,
                      device="cpu", decoder_dim=32)
    trainer = Trainer(cfg)
    trainer.fit()
    return out, trainer.model.eval()


def outputs(model: vmtlib.MultiTaskModel) -> dict[str, torch.Tensor]:
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model(images)


def test_export_and_load_adapter_reproduce_the_trained_model(trained, tmp_path: Path) -> None:
    run, model = trained
    file = tmp_path / "adapter.safetensors"
    assert main(["export", "--run", str(run), "--out", str(file)]) == 0
    config = json.loads(config_path(file).read_text())
    assert {k: config[k] for k in ("format", "format_version", "method", "backbone", "decoder",
                                   "img_size", "dtype", "pretrained")} == {
        "format": "vmtlib-adapter", "format_version": 1, "method": "vmt_adapter",
        "backbone": "swin_nano", "decoder": "segformer", "img_size": 64, "dtype": "float32",
        "pretrained": True}
    assert config["tasks"] == list(vmtlib.ALL_TASKS) and config["decoder_dim"] == 32
    assert config["method_kwargs"] == model.info["kwargs"]
    assert config["vmtlib_version"] == vmtlib.__version__
    assert config["backbone_weights"].startswith("sha256:")
    assert config["source"]["steps"] == 3
    with safe_open(str(file), framework="pt") as f:
        names = set(f.keys())
    assert names == set(adapter_state(model))
    # every trainable tensor is in the file, and no frozen one
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert not names & frozen
    reloaded = vmtlib.load_adapter(file)
    assert not reloaded.training
    for task, y in outputs(model).items():
        assert torch.equal(outputs(reloaded)[task], y), task


def test_fp16_export_is_smaller_and_close(trained, tmp_path: Path) -> None:
    run, model = trained
    full = export_run(run, tmp_path / "a32.safetensors")
    half = export_run(run, tmp_path / "a16.safetensors", fp16=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert read_adapter_config(half)["dtype"] == "float16"
    reloaded = vmtlib.load_adapter(half)
    for task, y in outputs(model).items():
        assert torch.allclose(outputs(reloaded)[task], y, atol=2e-2, rtol=2e-2), task


def test_another_backbone_is_refused_naming_both_fingerprints(trained, tmp_path: Path) -> None:
    run, _ = trained
    file = export_run(run, tmp_path / "adapter.safetensors")
    expected = read_adapter_config(file)["frozen_fingerprint"]
    with pytest.raises(AdapterMismatchError) as err:
        vmtlib.load_adapter(file, pretrained=False)  # a random backbone
    text = str(err.value)
    assert expected in text
    other = [w.strip("(),") for w in text.split() if w.startswith("sha256:")]
    assert len(set(other)) >= 2, text
    assert main(["predict", "--adapter", str(file), "--pretrained", "false", "--out",
                 str(tmp_path / "p"), str(tmp_path / "none.png")]) == 2


def test_the_config_also_travels_inside_the_safetensors_file(trained, tmp_path: Path) -> None:
    run, model = trained
    file = export_run(run, tmp_path / "adapter.safetensors")
    text = config_path(file).read_text()
    config_path(file).unlink()
    alone = vmtlib.load_adapter(file)
    assert torch.equal(outputs(alone)["sal"], outputs(model)["sal"])
    changed = json.loads(text)
    changed["img_size"] = 128
    config_path(file).write_text(json.dumps(changed))
    with pytest.raises(AdapterMismatchError, match="img_size"):
        read_adapter_config(file)


def test_random_backbone_runs_are_rebuilt_from_their_seed(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = vmtlib.build_model("lora", backbone="swin_nano", img_size=64, tasks=("sal",)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    file = save_adapter(model, tmp_path / "lora.safetensors", pretrained=False, seed=3)
    assert read_adapter_config(file)["backbone_weights"] is None
    reloaded = vmtlib.load_adapter(file)
    assert torch.equal(outputs(reloaded)["sal"], outputs(model)["sal"])
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_adapter(model, tmp_path / "lora.pt", pretrained=False)


def test_predict_cli_on_the_exported_run(trained, tmp_path: Path) -> None:
    run, model = trained
    file = export_run(run, tmp_path / "adapter.safetensors")
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 256, (75, 100, 3), dtype=np.uint8)).save(photo)
    scan = tmp_path / "scan.png"
    Image.fromarray(rng.integers(0, 256, (41, 29), dtype=np.uint8), "L").save(scan)
    out = tmp_path / "pred"
    assert main(["predict", "--adapter", str(file), str(photo), str(scan), "--out", str(out),
                 "--no-progress"]) == 0
    for stem, (h, w) in (("photo", (75, 100)), ("scan", (41, 29))):
        for task, mode in (("semseg", "P"), ("human_parts", "P"), ("sal", "L"),
                           ("normals", "RGB")):
            with Image.open(out / f"{stem}_{task}.png") as im:
                assert (im.size, im.mode) == ((w, h), mode), (stem, task)
        assert (out / f"{stem}_panel.png").is_file()

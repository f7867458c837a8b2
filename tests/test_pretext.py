"""The pretext task of swin_nano (vmtlib.pretext), its script and the shipped weights."""

from __future__ import annotations

import ast
import hashlib
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import vmtlib.pretext as pretext
from vmtlib import build_model
from vmtlib.backbone import NANO_WEIGHTS, build_backbone
from vmtlib.pretext import (
    FACTORS,
    MASK_BLOCK,
    MASK_RATIO,
    NUM_CLASSES,
    STYLES,
    PixelHead,
    PretextHead,
    RadialContours,
    block_mask,
    class_factors,
    class_formula,
    contour_radius,
    make_batch,
    mim_loss,
    pretext_loss,
    render_contour,
)

SCRIPT = "scripts/pretrain_swin_nano.py"


def test_deterministic_per_seed_and_index() -> None:
    a = render_contour(3, 5)
    render_contour(3, 6)  # drawing another sample in between changes nothing
    b = render_contour(3, 5)
    np.testing.assert_array_equal(a.image, b.image)
    assert (a.label, a.style) == (b.label, b.style)
    assert not np.array_equal(a.image, render_contour(3, 6).image)
    assert not np.array_equal(a.image, render_contour(4, 5).image)
    ds = RadialContours(8, seed=3)
    assert torch.equal(ds[5]["image"], torch.from_numpy(a.image))
    assert ds[5]["label"] == a.label and ds[5]["meta"]["id"] == "contour-3-5"
    batch = make_batch(3, [2, 5])
    assert torch.equal(batch["image"][1], ds[5]["image"]) and batch["label"][1] == a.label
    assert (batch["vertices"][1], batch["lobes"][1], batch["nested"][1]) == class_factors(a.label)
    with pytest.raises(IndexError):
        ds[8]


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_dtypes_and_ranges(size: int) -> None:
    for i in range(12):
        s = render_contour(1, i, size)
        assert s.image.shape == (3, size, size) and s.image.dtype == np.float32
        assert 0.0 <= s.image.min() and s.image.max() <= 1.0
        assert 0 <= s.label < NUM_CLASSES and s.style in STYLES
    with pytest.raises(ValueError, match="at least 16"):
        render_contour(0, 0, size=8)


def test_classes_and_styles_are_drawn_uniformly() -> None:
    samples = [render_contour(0, i, 32) for i in range(640)]
    counts = np.bincount([s.label for s in samples], minlength=NUM_CLASSES)
    assert counts.min() >= 2 and counts.max() <= 25  # 10 expected per class
    assert {s.style for s in samples} == set(STYLES)


def test_each_class_is_a_distinct_formula() -> None:
    formulas = {class_formula(c) for c in range(NUM_CLASSES)}
    assert len(formulas) == NUM_CLASSES
    with pytest.raises(ValueError):
        class_formula(NUM_CLASSES)
    theta = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    square = contour_radius(theta, pretext.VERTICES.index(4))  # 4-gon, no lobes
    # a regular square's radius: 1/sqrt(2) at the edges' midpoints, 1 at its corners
    assert square.max() == pytest.approx(1.0, abs=1e-3)
    assert square.min() == pytest.approx(math.cos(math.pi / 4), abs=1e-3)


def test_pretext_uses_no_downstream_label_or_scene() -> None:
    """The pretext must stay a transfer: it imports nothing of the scenes or the tasks."""
    imports = [n for n in ast.walk(ast.parse(inspect.getsource(pretext)))
               if isinstance(n, ast.ImportFrom | ast.Import)]
    names = {a.name for n in imports for a in n.names} | {
        n.module for n in imports if isinstance(n, ast.ImportFrom)}
    assert not any("synthetic" in (x or "") or "tasks" in (x or "") for x in names)


def test_head_and_loss_train_every_stage() -> None:
    backbone = build_backbone("swin_nano", pretrained=False, img_size=64)
    head = PretextHead(backbone.dims)
    batch = make_batch(0, range(4), 64)
    logits = head(backbone(batch["image"]))
    assert {f: v.shape for f, v in logits.items()} == {f: (4, n) for f, n in FACTORS.items()}
    loss, metrics = pretext_loss(logits, batch)
    assert set(metrics) == {"loss", "acc", *(f"{f}_acc" for f in FACTORS)}
    assert 0 <= metrics["acc"] <= 100
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for name, p in backbone.named_parameters() if name.endswith("qkv.weight"))


def test_masks_hide_the_ratio_of_blocks_of_the_odd_samples_deterministically() -> None:
    mask = block_mask(0, 5, 128)
    assert mask.shape == (128, 128) and set(np.unique(mask)) == {0.0, 1.0}
    cells = mask[::MASK_BLOCK, ::MASK_BLOCK]
    assert cells.sum() == round(MASK_RATIO * cells.size)
    blocks = mask.reshape(4, MASK_BLOCK, 4, MASK_BLOCK)
    assert (blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3))).all()  # whole blocks only
    np.testing.assert_array_equal(mask, block_mask(0, 5, 128))
    assert not np.array_equal(mask, block_mask(0, 7, 128))
    with pytest.raises(ValueError, match="multiple of 32"):
        block_mask(0, 1, 100)
    batch = make_batch(0, [2, 3, 4, 5], 64)
    assert batch["masked"].tolist() == [False, True, False, True]
    assert batch["mask"].shape == (4, 1, 64, 64)
    assert batch["mask"][~batch["masked"]].sum() == 0
    torch.testing.assert_close(batch["mask"][3, 0], torch.from_numpy(block_mask(0, 5, 64)))


def test_pixel_head_reconstructs_at_full_resolution_and_the_loss_sees_masked_pixels_only(
        ) -> None:
    backbone = build_backbone("swin_nano", pretrained=False, img_size=64)
    head = PixelHead(backbone.dims)
    batch = make_batch(0, range(2), 64)
    pred = head(backbone(batch["image"]))
    assert pred.shape == (2, 3, 64, 64)
    target = torch.randn(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, :32] = 1
    assert mim_loss(target, target, mask) == 0
    off_mask = target.clone()
    off_mask[:, :, 32:] += 5.0  # errors where nothing is hidden do not count
    assert mim_loss(off_mask, target, mask) == 0
    assert mim_loss(target + 0.5, target, mask).item() == pytest.approx(0.5)
    mim_loss(pred, target, mask).backward()
    assert backbone.layers[0].blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_schedule_warmup_then_cosine(load_script) -> None:
    script = load_script(SCRIPT)
    args = script.parse_args(["--steps", "100", "--warmup", "10", "--lr", "1e-3",
                              "--min-lr", "1e-5"])
    lrs = [script.lr_at(s, args) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 2e-5


def test_script_refuses_bad_numbers_and_defaults_to_untracked_paths(load_script) -> None:
    script = load_script(SCRIPT)
    for bad in (["--steps", "0"], ["--batch", "-2"], ["--size", "100"]):
        with pytest.raises(SystemExit):
            script.parse_args(bad)
    args = script.parse_args([])
    assert "runs" in args.out.parts and args.out != NANO_WEIGHTS
    assert script.parse_args(["--ship"]).out == NANO_WEIGHTS


def test_shipped_weights_load_offline_and_differ_from_random() -> None:
    from safetensors import safe_open

    assert NANO_WEIGHTS.is_file(), "vmtlib/weights/swin_nano.safetensors is not shipped"
    assert NANO_WEIGHTS.stat().st_size < 11e6
    with safe_open(str(NANO_WEIGHTS), "pt") as f:
        stored = f.get_tensor("patch_embed.proj.weight")
    assert stored.dtype == torch.float16
    torch.manual_seed(0)
    model = build_model("decoders_only", backbone="swin_nano", pretrained=True, img_size=128)
    torch.manual_seed(0)
    rand = build_model("decoders_only", backbone="swin_nano", pretrained=False, img_size=128)
    loaded = model.encoder.backbone.patch_embed.proj.weight
    assert loaded.dtype == torch.float32  # fp16 on disk, fp32 in the model
    torch.testing.assert_close(loaded, stored.float(), rtol=0, atol=0)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        f_pre = model.encoder(x)["semseg"][-1]
        f_rand = rand.encoder(x)["semseg"][-1]
    assert torch.isfinite(f_pre).all()
    assert (f_pre - f_rand).abs().mean() > 0.1 * f_rand.abs().mean()


def test_shipped_weights_carry_a_pretext_in_stages_0_1_only() -> None:
    """Stages 2-3 of the shipped file are the seed-0 initialisation (fp16), stages 0-1
    and the patch embedding are pretrained; the metadata says so (the relief-glyph v3
    run, vmtlib/weights/README.md)."""
    from safetensors import safe_open

    torch.manual_seed(0)
    init = build_backbone("swin_nano", pretrained=False, img_size=128).state_dict()
    with safe_open(str(NANO_WEIGHTS), "pt") as f:
        meta = f.metadata()
        stored = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["pretext_stages"] == "0,1" and meta["initial_stages"] == "2,3"
    for key, value in stored.items():
        at_init = torch.equal(value, init[key].half())
        assert at_init == key.startswith(("layers.2.", "layers.3.")), key


def test_script_smoke_run_and_resume(tmp_path: Path, load_script) -> None:
    script = load_script(SCRIPT)
    before = hashlib.sha256(NANO_WEIGHTS.read_bytes()).hexdigest()
    common = ["--batch", "2", "--val-n", "4", "--workers", "0", "--warmup", "1",
              "--threads", str(torch.get_num_threads()), "--out-dir", str(tmp_path)]
    log = script.main(["--steps", "2", *common])
    assert log["final"]["steps"] == 2
    for name in ("swin_nano.safetensors", "pretrain_swin_nano.png", "pretrain_swin_nano.json",
                 "checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    backbone = build_backbone("swin_nano", pretrained=tmp_path / "swin_nano.safetensors",
                              img_size=128)
    trained = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["backbone"]
    name = "layers.3.blocks.0.attn.qkv.weight"
    assert torch.equal(backbone.state_dict()[name], trained[name].half().float())
    with pytest.raises(SystemExit, match="--resume"):  # a checkpoint is never overwritten
        script.main(["--steps", "2", *common])
    log = script.main(["--steps", "3", "--resume", *common])
    assert log["resumed_at"] == [2] and log["final"]["steps"] == 3
    assert hashlib.sha256(NANO_WEIGHTS.read_bytes()).hexdigest() == before

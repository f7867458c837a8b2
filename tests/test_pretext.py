"""The pretext task of swin_nano (vmtlib.pretext), its script and the shipped weights."""

from __future__ import annotations

import ast
import hashlib
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

import vmtlib.pretext as pretext
from vmtlib import build_model
from vmtlib.backbone import NANO_WEIGHTS, build_backbone
from vmtlib.pretext import (
    COLOURS,
    NUM_CLASSES,
    PRETEXT_KEYS,
    RELIEFS,
    SHAPES,
    PretextConfig,
    PretextHead,
    ReliefGlyphs,
    make_batch,
    pretext_loss,
    render_pretext,
    render_tile,
)
from vmtlib.tasks import ALL_TASKS

SCRIPT = "scripts/pretrain_swin_nano.py"


def test_deterministic_per_seed_and_index() -> None:
    a = render_pretext(3, 5)
    render_pretext(3, 6)  # drawing another sample in between changes nothing
    b = render_pretext(3, 5)
    for key in PRETEXT_KEYS:
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.image, render_pretext(3, 6).image)
    assert not np.array_equal(a.image, render_pretext(4, 5).image)
    ds = ReliefGlyphs(8, seed=3)
    assert torch.equal(ds[5]["image"], torch.from_numpy(a.image))
    assert torch.equal(ds[-3]["label"], ds[5]["label"])
    assert ds[5]["meta"] == {"id": "pretext-3-5", "seed": 3, "index": 5}
    batch = make_batch(3, [2, 5])
    assert torch.equal(batch["image"][1], ds[5]["image"])


@pytest.mark.parametrize("size", [64, 128])
def test_shapes_dtypes_and_ranges(size: int) -> None:
    ds = ReliefGlyphs(12, size=size, seed=1)
    assert len(ds) == 12
    for i in range(len(ds)):
        s = ds[i]
        assert set(s) == {*PRETEXT_KEYS, "meta"}
        assert s["image"].shape == (3, size, size) and s["image"].dtype == torch.float32
        assert 0.0 <= float(s["image"].min()) and float(s["image"].max()) <= 1.0
        assert s["label"].shape == (2, 2) and s["label"].dtype == torch.int64
        assert s["colour"].shape == (2, 2) and s["colour"].dtype == torch.int64
        assert s["light"].shape == (2, 2, 3) and s["light"].dtype == torch.float32
        assert 0 <= int(s["label"].min()) and int(s["label"].max()) < NUM_CLASSES
        assert 0 <= int(s["colour"].min()) and int(s["colour"].max()) < len(COLOURS)
        torch.testing.assert_close(s["light"].norm(dim=-1), torch.ones(2, 2))
        assert float(s["light"][..., 2].min()) > 0.2  # the light is in front of the glyph
        assert s["unshaded"].shape == (3, size, size) and s["unshaded"].dtype == torch.float32
        assert 0.0 <= float(s["unshaded"].min()) and float(s["unshaded"].max()) <= 1.0
        assert s["shading"].shape == (size, size) and s["shading"].dtype == torch.float32
        assert 0.0 <= float(s["shading"].min()) and float(s["shading"].max()) <= 1.5
        assert s["edges"].shape == (size, size) and s["edges"].dtype == torch.int64
        assert set(s["edges"].unique().tolist()) <= {0, 1}
    with pytest.raises(IndexError):
        ds[12]
    with pytest.raises(ValueError, match="divisible"):
        render_pretext(0, 0, size=65)


def test_label_distribution_covers_all_classes() -> None:
    labels = np.concatenate([render_pretext(0, i, 64).label.ravel() for i in range(300)])
    assert len(np.unique(labels)) > 0.9 * NUM_CLASSES
    assert NUM_CLASSES == len(SHAPES) * len(RELIEFS) == 64


def test_objective_is_not_a_downstream_task() -> None:
    """Labels per tile (shape, relief, colour, light) and dense maps that are no
    downstream label (the intrinsic images: reflectance and a grey shading; the glyph
    outlines), from a separate image generator: no downstream key, no VOC class
    count, no scene renderer, no class map, no saliency map, no normal map."""
    assert not set(PRETEXT_KEYS) & set(ALL_TASKS)
    s = render_pretext(0, 0, 128)
    assert s.label.shape == s.colour.shape == (2, 2)  # not an HxW map
    assert s.unshaded.shape == (3, 128, 128) and s.edges.shape == (128, 128)
    assert s.shading.shape == (128, 128)  # one grey value per pixel, not a 3-vector
    assert 0.0 < s.edges.mean() < 0.25  # thin outlines, not regions
    assert NUM_CLASSES not in (21, 7, 2) and len(COLOURS) not in (21, 7, 2)
    imports = [n for n in ast.walk(ast.parse(inspect.getsource(pretext)))
               if isinstance(n, ast.ImportFrom | ast.Import)]
    modules = [n.module or "" for n in imports if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in imports if isinstance(n, ast.Import) for a in n.names]
    assert not any(m.startswith("vmtlib") for m in modules)


def test_light_label_matches_the_shading() -> None:
    """A light from the right (x > 0) brightens the right side, a light from below
    (y > 0, y down) the bottom rows: the label is in the normals' frame. The
    shading is the image over its unshaded target; its centroid follows the light."""
    cfg = PretextConfig(distractor_probs=(1.0, 0.0, 0.0))
    n = 48
    pos = np.arange(n) - (n - 1) / 2
    cx, cy, lx, ly = [], [], [], []
    for i in range(160):
        tile = render_tile(np.random.default_rng([9, i]), n, cfg)
        shading = (tile.image.mean(0) + 1e-3) / (tile.unshaded.mean(0) + 1e-3)
        cx.append(float((shading * pos[None, :]).sum() / shading.sum()))
        cy.append(float((shading * pos[:, None]).sum() / shading.sum()))
        lx.append(float(tile.light[0]))
        ly.append(float(tile.light[1]))
    assert np.corrcoef(lx, cx)[0, 1] > 0.3
    assert np.corrcoef(ly, cy)[0, 1] > 0.3


def test_head_and_loss_train_every_stage() -> None:
    backbone = build_backbone("swin_nano", img_size=128)
    head = PretextHead(backbone.dims)
    batch = make_batch(0, range(2))
    out = head(backbone(batch["image"]))
    assert out["shape"].shape == (2, len(SHAPES), 2, 2)
    assert out["relief"].shape == (2, len(RELIEFS), 2, 2)
    assert out["colour"].shape == (2, len(COLOURS), 2, 2)
    torch.testing.assert_close(out["light"].norm(dim=1), torch.ones(2, 2, 2))
    loss, metrics = pretext_loss(out, batch)
    assert torch.isfinite(loss)
    assert out["unshaded"].shape == (2, 3, 32, 32) and out["edges"].shape == (2, 1, 32, 32)
    assert out["shading"].shape == (2, 1, 32, 32)
    assert set(metrics) == {
        "loss", "shape_loss", "relief_loss", "colour_loss", "light_loss", "unshaded_loss",
        "shading_loss", "edges_loss", "acc", "shape_acc", "relief_acc", "colour_acc",
        "light_deg", "edges_f1",
    }
    loss.backward()
    assert backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in backbone.parameters())


def test_schedule_warmup_then_cosine(load_script) -> None:
    script = load_script(SCRIPT)
    args = script.parse_args(["--steps", "100", "--warmup", "10", "--lr", "1e-3",
                              "--min-lr", "1e-5", "--time-budget", "0"])
    lrs = [script.lr_at(s, script.progress(s, 0.0, args), 0.1, args) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 2e-5
    timed = script.parse_args(["--steps", "1000", "--time-budget", "1"])
    assert script.progress(10, 30.0, timed) == pytest.approx(0.5)
    assert script.progress(10, 90.0, timed) == 1.0


def test_shipped_weights_load_offline_and_differ_from_random() -> None:
    from safetensors import safe_open

    assert NANO_WEIGHTS.is_file(), "vmtlib/weights/swin_nano.safetensors is not shipped"
    assert NANO_WEIGHTS.stat().st_size < 11e6
    with safe_open(str(NANO_WEIGHTS), "pt") as f:
        key = "patch_embed.proj.weight"
        stored = f.get_tensor(key)
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


def test_shipped_weights_carry_the_pretext_in_stages_0_1_only() -> None:
    """Stages 2-3 of the shipped file are the seed-0 initialisation (fp16), stages 0-1
    and the patch embedding are pretrained; the metadata says so."""
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


def test_pretext_stages_argument(load_script) -> None:
    script = load_script(SCRIPT)
    assert script.parse_args(["--pretext-stages", "1,0"]).pretext_stages == (0, 1)
    with pytest.raises(SystemExit):
        script.parse_args(["--pretext-stages", "4"])


def test_script_smoke_run_and_resume(tmp_path: Path, load_script) -> None:
    script = load_script(SCRIPT)
    before = hashlib.sha256(NANO_WEIGHTS.read_bytes()).hexdigest() if NANO_WEIGHTS.is_file() \
        else None
    common = ["--batch", "2", "--val-n", "4", "--workers", "0", "--warmup", "1",
              "--threads", str(torch.get_num_threads()),
              "--out", str(tmp_path / "w.safetensors"), "--ckpt", str(tmp_path / "ck.pt"),
              "--log", str(tmp_path / "log.json"), "--figure", str(tmp_path / "fig.png")]
    log = script.main(["--steps", "2", *common])
    assert log["final"]["steps"] == 2
    assert (tmp_path / "w.safetensors").is_file() and (tmp_path / "fig.png").is_file()
    assert (tmp_path / "log.json").is_file() and (tmp_path / "ck.pt").is_file()
    backbone = build_backbone("swin_nano", pretrained=tmp_path / "w.safetensors", img_size=128)
    assert backbone.patch_embed.proj.weight.dtype == torch.float32
    torch.manual_seed(0)
    init = build_backbone("swin_nano", pretrained=False, img_size=128)
    trained = torch.load(tmp_path / "ck.pt", weights_only=False)["backbone"]
    for name in ("layers.0.blocks.0.attn.qkv.weight", "layers.3.blocks.0.attn.qkv.weight"):
        shipped = backbone.state_dict()[name]
        assert torch.equal(shipped, trained[name].half().float()) == name.startswith("layers.0")
        assert torch.equal(shipped, init.state_dict()[name].half().float()) == \
            name.startswith("layers.3")
    log = script.main(["--steps", "3", "--resume", *common])
    assert log["resumed_at"] == [2] and log["final"]["steps"] == 3
    after = hashlib.sha256(NANO_WEIGHTS.read_bytes()).hexdigest() if NANO_WEIGHTS.is_file() \
        else None
    assert before == after  # the shipped weights are untouched

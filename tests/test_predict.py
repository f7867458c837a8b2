"""Predictions on the user's own images (vmtlib.predict): one PNG per task at the image's
own size in the documented encodings, a panel per image, any format PIL reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vmtlib import build_model
from vmtlib.plots import voc_palette
from vmtlib.predict import predict_images, prepare, read_rgb, to_label_images


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("vmt_adapter", backbone="swin_nano", img_size=64).eval()


def test_png_per_task_at_the_image_size_in_the_documented_encodings(model, tmp_path: Path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "out"
    files = predict_images(model, [tmp_path / "a.png"], out, progress=False)
    assert set(files[0]) == {"semseg", "human_parts", "sal", "normals", "panel"}
    with torch.no_grad():
        raw = model(prepare(image, 64)[None])
    expected = to_label_images({t: y[0] for t, y in raw.items()}, (50, 70))
    with Image.open(files[0]["semseg"]) as im:
        assert im.mode == "P" and im.size == (70, 50)
        np.testing.assert_array_equal(np.array(im), expected["semseg"])  # pixel values = ids
        palette = np.array(im.getpalette()[:63]).reshape(21, 3)
        np.testing.assert_array_equal(palette, np.round(voc_palette(21) * 255))
    with Image.open(files[0]["sal"]) as im:
        sal = torch.sigmoid(torch.nn.functional.interpolate(
            raw["sal"], size=(50, 70), mode="bilinear", align_corners=False))[0, 0]
        assert im.mode == "L"
        assert np.abs(np.array(im).astype(float) - sal.numpy() * 255).max() <= 0.51
    with Image.open(files[0]["normals"]) as im:
        n = np.array(im).astype(float) / 255 * 2 - 1
        assert im.mode == "RGB" and n.shape == (50, 70, 3)
        assert np.allclose(np.linalg.norm(n, axis=2), 1.0, atol=0.02)
    with Image.open(files[0]["panel"]) as im:
        assert im.size[0] > im.size[1]  # side by side


def test_any_format_and_mode_pil_reads(model, tmp_path: Path):
    rng = np.random.default_rng(2)
    rgba = Image.fromarray(rng.integers(0, 256, (33, 97, 4), dtype=np.uint8), "RGBA")
    rgba.save(tmp_path / "rgba.png")
    grey16 = Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16))
    grey16.save(tmp_path / "deep.png")
    Image.fromarray(rng.integers(0, 256, (300, 20, 3), dtype=np.uint8)).save(
        tmp_path / "tall.bmp")
    assert read_rgb(tmp_path / "deep.png").shape == (40, 40, 3)
    files = predict_images(model, [tmp_path / "rgba.png", tmp_path / "deep.png",
                                   tmp_path / "tall.bmp"], tmp_path / "o", batch_size=2,
                           panel=False, progress=False)
    sizes = [Image.open(f["semseg"]).size for f in files]
    assert sizes == [(97, 33), (40, 40), (20, 300)]
    assert all("panel" not in f for f in files)


def test_bad_input_is_named(model, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        predict_images(model, [tmp_path / "missing.jpg"], tmp_path / "o", progress=False)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        predict_images(model, [tmp_path / "broken.jpg"], tmp_path / "o", progress=False)
    (tmp_path / "x").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x" / "a.png")
    with pytest.raises(ValueError, match="same name"):
        predict_images(model, [tmp_path / "a.png", tmp_path / "x" / "a.png"], tmp_path / "o")

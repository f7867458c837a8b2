"""Transforms: flip and rotation act on normals as geometry says, padding is ignore."""

from __future__ import annotations

import math

import pytest
import torch

from vmtlib.data import SyntheticScenes
from vmtlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomScaleRotate,
    Resize,
    hflip,
    resize_normals,
    rotate_normals_in_plane,
    scale_rotate,
    train_transform,
    val_transform,
)


def sphere(size: int = 96, radius: float = 40.0, width: int | None = None) -> dict:
    """A centred sphere: normals (x, y, z) in the PASCAL convention (y down), a lit image
    and labels that are 1 inside the disc. Rotating or flipping it about the centre
    leaves every map unchanged, *if* the normals are transformed correctly."""
    width = width or size
    y, x = torch.meshgrid(torch.arange(size) - (size - 1) / 2,
                          torch.arange(width) - (width - 1) / 2, indexing="ij")
    u, v = x / radius, y / radius
    r2 = u * u + v * v
    inside = r2 < 1
    n = torch.stack([u, v, torch.sqrt((1 - r2).clamp_min(0))]) * inside
    shade = (n * torch.tensor([0.3, -0.5, 0.8]).view(3, 1, 1)).sum(0).clamp_min(0)
    lab = inside.long()
    return {"image": shade.expand(3, -1, -1).clone(), "semseg": lab, "human_parts": lab.clone(),
            "sal": lab.clone(), "normals": n.float(), "meta": {"id": "sphere"}}


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos((a * b).sum(0).clamp(-1, 1)))


def test_flip_mirrors_and_negates_normal_x():
    s = sphere()
    f = hflip(s)
    assert torch.equal(f["semseg"], s["semseg"].flip(-1))
    assert torch.allclose(f["normals"][0], -s["normals"][0].flip(-1))
    assert torch.allclose(f["normals"][1:], s["normals"][1:].flip(-1))
    # the sphere is symmetric: its flipped normal map is the map itself
    assert torch.allclose(f["normals"], s["normals"], atol=1e-6)
    assert f["meta"] == s["meta"]


def test_flip_is_consistent_with_the_image_on_a_synthetic_scene():
    s = SyntheticScenes(1, size=48, seed=2)[0]
    f = RandomHorizontalFlip(p=1.0)(s)
    assert torch.equal(f["image"], s["image"].flip(-1))
    assert torch.equal(f["normals"][0], -s["normals"][0].flip(-1))
    assert RandomHorizontalFlip(p=0.0)(s) is s


@pytest.mark.parametrize("degrees,width", [(20.0, 96), (-15.0, 96), (90.0, 96), (12.0, 150)])
def test_rotation_rotates_normals_in_plane(degrees, width):
    s = sphere(96, 40.0, width)  # width 150: a non-square image
    r = scale_rotate(s, 1.0, degrees)
    valid = (r["normals"].abs().sum(0) > 0) & (s["normals"].abs().sum(0) > 0)
    err = angle_deg(r["normals"][:, valid], s["normals"][:, valid])
    assert float(err.mean()) < 2.0  # invariant up to nearest-neighbour sampling
    wrong = rotate_normals_in_plane(r["normals"], -2 * degrees)  # i.e. rotated the other way
    assert float(angle_deg(wrong[:, valid], s["normals"][:, valid]).mean()) > 5.0


def test_rotation_direction_matches_image_and_labels():
    """+90 degrees is counter-clockwise on screen: a marker right of the centre goes up."""
    size = 33
    s = {"image": torch.zeros(3, size, size), "semseg": torch.zeros(size, size, dtype=torch.long),
         "normals": torch.zeros(3, size, size)}
    s["image"][:, 16, 28] = 1.0
    s["semseg"][16, 28] = 7
    s["normals"][:, 16, 28] = torch.tensor([1.0, 0.0, 0.0])  # pointing right
    r = scale_rotate(s, 1.0, 90.0)
    assert r["image"][0].argmax() == 4 * size + 16  # row 4, column 16: above the centre
    assert r["semseg"][4, 16] == 7
    assert torch.allclose(r["normals"][:, 4, 16], torch.tensor([0.0, -1.0, 0.0]), atol=1e-6)


def test_rotation_pads_labels_with_ignore_and_normals_with_zero():
    s = sphere(64, radius=100.0)  # the disc covers the whole image
    s["sal"] = torch.zeros(64, 64, dtype=torch.long)
    r = scale_rotate(s, 1.0, 45.0)
    for key in ("semseg", "human_parts", "sal"):
        assert r[key][0, 0] == 255 and r[key][32, 32] != 255, key
        assert r[key].dtype == torch.long
    assert (r["normals"][:, 0, 0] == 0).all()
    assert r["image"][:, 0, 0].abs().sum() == 0
    z = scale_rotate(s, 0.75, 0.0)  # zoom out pads too
    assert z["semseg"][0, 32] == 255 and z["semseg"][32, 32] == 1


def test_zoom_keeps_the_centre_and_size():
    s = sphere(64, radius=10.0)
    z = scale_rotate(s, 2.0, 0.0)
    assert z["semseg"].shape == (64, 64)
    assert int(z["semseg"].sum()) > 3 * int(s["semseg"].sum())  # the disc grew ~4x


def test_resize_keeps_unit_normals_and_invalid_zeros():
    s = sphere(40, radius=15.0)
    out = Resize(64)(s)
    n = out["normals"]
    valid = n.abs().sum(0) > 0
    assert n.shape == (3, 64, 64) and out["semseg"].shape == (64, 64)
    assert torch.allclose(n.norm(dim=0)[valid], torch.ones(()), atol=1e-5)
    assert (n[:, ~valid] == 0).all() and valid.any() and (~valid).any()
    assert set(out["semseg"].unique().tolist()) <= {0, 1}  # nearest: no new values
    assert torch.equal(valid, out["semseg"] == 1)  # validity resampled like the labels
    down = resize_normals(s["normals"], (20, 20))
    assert torch.allclose(down.norm(dim=0)[down.abs().sum(0) > 0], torch.ones(()), atol=1e-5)


def test_normalize_uses_imagenet_statistics():
    s = {"image": torch.ones(3, 2, 2) * 0.5}
    out = Normalize()(s)
    expect = (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out["image"][:, 0, 0], expect)


def test_presets_on_a_synthetic_sample_and_generator_determinism():
    s = SyntheticScenes(1, size=48, seed=0)[0]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = train_transform(64, generator=g1)(s)
    b = train_transform(64, generator=g2)(s)
    for k in ("image", "semseg", "human_parts", "sal", "normals"):
        assert a[k].shape[-2:] == (64, 64)
        assert torch.equal(a[k], b[k]), k
    assert a["semseg"].dtype == torch.long
    v = val_transform(64, normalize=False)(s)
    assert 0 <= float(v["image"].min()) and float(v["image"].max()) <= 1
    assert isinstance(train_transform(), Compose) and "Resize(512)" in repr(val_transform())


def test_random_scale_rotate_draws_the_protocols_ranges(monkeypatch):
    import vmtlib.data.transforms as transforms

    draws = []
    monkeypatch.setattr(transforms, "scale_rotate", lambda s, sc, d: draws.append((sc, d)) or s)
    t = RandomScaleRotate(generator=torch.Generator().manual_seed(0))
    for _ in range(400):
        t(sphere(8, 10.0))
    scales, degrees = zip(*draws)
    assert 0.75 <= min(scales) < 0.77 and 1.23 < max(scales) <= 1.25
    assert -20 <= min(degrees) < -19 and 19 < max(degrees) <= 20
    assert "RandomScaleRotate(scale=(0.75, 1.25), degrees=20.0)" in repr(train_transform())


def test_random_scale_rotate_of_nothing_is_the_identity():
    t = RandomScaleRotate((1.0, 1.0), degrees=0.0)
    s = sphere(32, 10.0)
    out = t(s)
    assert torch.equal(out["semseg"], s["semseg"])
    assert math.isclose(float(out["normals"].norm(dim=0).max()), 1.0, abs_tol=1e-5)

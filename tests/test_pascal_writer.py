"""The tiny PASCAL_MT writer: exact on-disk layout, decoded as the format doc says."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image

from vmtlib.data.pascal_context import PART_IDS, normals_valid_label_ids
from vmtlib.data.pascal_writer import tiny_pascal_records, write_tiny_pascal_mt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = write_tiny_pascal_mt(tmp_path_factory.mktemp("w") / "PASCAL_MT", n_train=4, n_val=2)
    return root, tiny_pascal_records(4, 2)


def test_layout_and_splits(tiny):
    root, records = tiny
    for d in ("JPEGImages", "ImageSets/Context", "semseg/VOC12", "semseg/pascal-context",
              "human_parts", "normals_distill", "sal_distill", "pascal-context/trainval"):
        assert (root / d).is_dir(), d
    train = (root / "ImageSets/Context/train.txt").read_text().split()
    val = (root / "ImageSets/Context/val.txt").read_text().split()
    assert train == [r.id for r in records[:4]] and val == [r.id for r in records[4:]]
    for r in records:
        with Image.open(root / "JPEGImages" / f"{r.id}.jpg") as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.size == (r.image.shape[1], r.image.shape[0])
        with Image.open(root / "normals_distill" / f"{r.id}.png") as im:
            assert im.mode == "RGB" and np.array_equal(np.array(im), r.normals_png)
        with Image.open(root / "sal_distill" / f"{r.id}.png") as im:
            assert im.mode == "L" and np.array_equal(np.array(im), r.sal_png)
        voc = root / "semseg/VOC12" / f"{r.id}.png"
        ctx = root / "semseg/pascal-context" / f"{r.id}.png"
        assert voc.is_file() == (r.semseg_voc is not None)
        assert ctx.is_file() == (r.semseg_context is not None)
        lm = scipy.io.loadmat(str(root / "pascal-context/trainval" / f"{r.id}.mat"))["LabelMap"]
        assert np.array_equal(lm, r.label_map)


def test_human_parts_mat_has_the_pascal_part_struct_layout(tiny):
    root, records = tiny
    names_seen = set()
    for r in records:
        objs = scipy.io.loadmat(str(root / "human_parts" / f"{r.id}.mat"))["anno"][0][0][1][0]
        assert len(objs) == len(r.objects)
        for o, want in zip(objs, r.objects):
            assert o[1][0][0] == want.class_ind
            assert np.array_equal(o[2], want.mask)
            if not want.parts:
                assert len(o[3]) == 0
                continue
            assert len(o[3][0]) == len(want.parts)
            for p, wp in zip(o[3][0], want.parts):
                assert p[0][0] == wp.name and np.array_equal(p[1], wp.mask)
                names_seen.add(str(p[0][0]))
    assert names_seen <= set(PART_IDS) and len(names_seen) >= 6


def test_the_four_cases_are_present(tiny):
    _, records = tiny
    persons = [[o for o in r.objects if o.class_ind == 15] for r in records]
    assert [len(p) for p in persons[:4]] == [1, 0, 1, 2]
    assert persons[0][0].parts and not persons[2][0].parts
    assert persons[3][0].parts and not persons[3][1].parts
    assert records[0].semseg_voc is not None and records[0].semseg_context is not None
    assert not np.array_equal(records[0].semseg_voc, records[0].semseg_context)
    assert 255 in records[0].semseg_voc  # the VOC void band


def test_label_map_mixes_valid_and_invalid_ids_and_sal_pins_the_threshold(tiny):
    _, records = tiny
    valid = set(normals_valid_label_ids())
    for r in records:
        ids = set(np.unique(r.label_map).tolist())
        assert ids & valid and ids - valid
        assert r.label_map.max() <= 459
    values = set(np.concatenate([np.unique(r.sal_png) for r in records]).tolist())
    assert {127, 128} <= values


def test_deterministic_refuses_non_empty_root_and_writes_512(tmp_path):
    a, b = tiny_pascal_records(2, 1, seed=3), tiny_pascal_records(2, 1, seed=3)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    root = write_tiny_pascal_mt(tmp_path / "big", n_train=1, n_val=1, size=512,
                                persons="natural")
    with Image.open(root / "JPEGImages" / "2008_000000.jpg") as im:
        assert im.size == (512, 512)
    with pytest.raises(FileExistsError, match="big"):
        write_tiny_pascal_mt(root)
    with pytest.raises(ValueError, match="persons"):
        tiny_pascal_records(persons="sometimes")

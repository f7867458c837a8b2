"""PascalContext reads the written PASCAL_MT folder back exactly; bad input fails clearly.

Expected labels are computed here from the raw arrays the writer encoded
(``tiny_pascal_records``), following ``pascal_context_format.md`` independently of
the loader's code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vmtlib.data import PascalContext, PascalFormatError
from vmtlib.data.pascal_writer import tiny_pascal_records, write_tiny_pascal_mt
from vmtlib.data.transforms import val_transform

# pascal_context_format.md, written out again on purpose
PARTS = {"hair": 1, "head": 1, "lear": 1, "rear": 1, "lebrow": 1, "rebrow": 1, "leye": 1,
         "reye": 1, "mouth": 1, "nose": 1, "torso": 2, "neck": 2, "luarm": 3, "ruarm": 3,
         "llarm": 4, "rlarm": 4, "lhand": 4, "rhand": 4, "luleg": 5, "ruleg": 5,
         "llleg": 6, "rlleg": 6, "lfoot": 6, "rfoot": 6}
EXPECTED_DIRS = ("JPEGImages", "ImageSets/Context", "semseg", "human_parts", "sal_distill",
                 "normals_distill", "pascal-context/trainval")
PACKAGE_IDS = Path(__file__).resolve().parents[1] / "vmtlib/data/normals_valid_label_ids.json"
SHARED_IDS = Path(__file__).resolve().parents[2] / "shared/data/normals_valid_label_ids.json"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = write_tiny_pascal_mt(tmp_path_factory.mktemp("pc") / "PASCAL_MT", n_train=4, n_val=2)
    return root, {r.id: r for r in tiny_pascal_records(4, 2)}


@pytest.fixture()
def copy(tiny, tmp_path) -> Path:
    return Path(shutil.copytree(tiny[0], tmp_path / "PASCAL_MT"))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def expected_parts(rec) -> np.ndarray:
    label = None
    for o in rec.objects:
        if o.class_ind == 15 and o.parts:
            if label is None:
                label = np.zeros(o.mask.shape, np.int64)
            for p in o.parts:  # later parts overwrite earlier ones
                label[p.mask > 0] = PARTS[p.name]
    return np.full(rec.image.shape[:2], 255) if label is None else label


def expected_normals(rec) -> np.ndarray:
    ids = json.loads(PACKAGE_IDS.read_text())["ids"]
    n = rec.normals_png.astype(np.float64).transpose(2, 0, 1) * 2 / 255 - 1
    n /= np.linalg.norm(n, axis=0, keepdims=True)
    return np.where(np.isin(rec.label_map, ids)[None], n, 0.0)


@pytest.mark.parametrize("split", ["train", "val"])
def test_every_label_reads_back_as_written(tiny, split):
    root, records = tiny
    before = snapshot(root)
    ds = PascalContext(root, split=split)
    assert len(ds) == (4 if split == "train" else 2)
    for i in range(len(ds)):
        s = ds[i]
        rec = records[s["meta"]["id"]]
        h, w = rec.image.shape[:2]
        assert s["meta"]["size"] == (h, w)
        with Image.open(root / "JPEGImages" / f"{rec.id}.jpg") as im:
            jpeg = np.array(im.convert("RGB"))
        img = s["image"]
        assert img.dtype == torch.float32 and img.shape == (3, h, w)
        assert np.allclose(img.numpy().transpose(1, 2, 0) * 255, jpeg, atol=1e-3)
        assert np.abs(jpeg.astype(float) - rec.image).mean() < 8  # JPEG is lossy, mildly

        sem = rec.semseg_voc if rec.semseg_voc is not None else rec.semseg_context
        assert s["semseg"].dtype == torch.int64
        assert np.array_equal(s["semseg"].numpy(), sem)

        assert s["human_parts"].dtype == torch.int64
        assert np.array_equal(s["human_parts"].numpy(), expected_parts(rec))

        assert s["sal"].dtype == torch.int64
        assert np.array_equal(s["sal"].numpy(), (rec.sal_png / 255.0 > 0.5).astype(np.int64))

        n = s["normals"]
        assert n.dtype == torch.float32 and n.shape == (3, h, w)
        assert np.allclose(n.numpy(), expected_normals(rec), atol=1e-6)
    assert snapshot(root) == before  # nothing written into the root


def test_the_conventions_on_the_special_cases(tiny):
    root, records = tiny
    ds = PascalContext(root, "train")
    s0, s1, s2, s3 = (ds[i] for i in range(4))
    r0, r3 = records[ds.ids[0]], records[ds.ids[3]]
    # VOC12 wins over pascal-context where both exist
    assert np.array_equal(s0["semseg"].numpy(), r0.semseg_voc)
    assert not np.array_equal(s0["semseg"].numpy(), r0.semseg_context)
    assert (s0["semseg"] == 255).any()
    # a person with parts: all 6 parts; no person, or a person without parts: all 255
    assert set(s0["human_parts"].unique().tolist()) == set(range(7))
    assert (s1["human_parts"] == 255).all() and (s2["human_parts"] == 255).all()
    # two persons, one without parts: its pixels are background 0
    bare = [o for o in r3.objects if o.class_ind == 15 and not o.parts][0].mask > 0
    assert (s3["human_parts"].numpy()[bare] == 0).all()
    # normals: zero where the LabelMap class is invalid although the PNG has values there
    invalid_obj = r0.objects[0].mask > 0
    assert (s0["normals"].numpy()[:, invalid_obj] == 0).all()
    valid = s0["normals"].abs().sum(0) > 0
    assert valid.any() and torch.allclose(s0["normals"].norm(dim=0)[valid], torch.ones(()))
    # saliency at 0.5: 128 -> 1, 127 -> 0
    assert (s0["sal"].numpy()[r0.sal_png == 128] == 1).all()
    assert (s0["sal"].numpy()[r0.sal_png == 127] == 0).all()


def test_package_copy_of_the_valid_id_list():
    ids = json.loads(PACKAGE_IDS.read_text())["ids"]
    assert len(ids) == 170 and ids == sorted(set(ids))
    if SHARED_IDS.is_file():
        assert json.loads(SHARED_IDS.read_text())["ids"] == ids


def test_task_subset_needs_only_its_folders(copy):
    shutil.rmtree(copy / "normals_distill")
    shutil.rmtree(copy / "human_parts")
    s = PascalContext(copy, "val", tasks=["semseg", "sal"])[0]
    assert set(s) == {"image", "semseg", "sal", "meta"}


def test_dataloader_with_two_workers(tiny):
    root, _ = tiny
    ds = PascalContext(root, "train", transform=val_transform(32))
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert len(batches) == 2
    b = batches[1]
    assert b["image"].shape == (2, 3, 32, 32) and b["normals"].shape == (2, 3, 32, 32)
    assert b["semseg"].shape == (2, 32, 32) and b["meta"]["id"] == ds.ids[2:4]
    assert torch.equal(b["human_parts"][1], ds[3]["human_parts"])


# ---------------------------------------------------------------- bad input


def test_missing_root_lists_the_expected_subfolders(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as e:
        PascalContext(root)
    msg = str(e.value)
    assert str(root) in msg and all(d in msg for d in EXPECTED_DIRS)
    assert not root.exists()


def test_missing_subfolder_is_named(copy):
    shutil.rmtree(copy / "sal_distill")
    before = snapshot(copy)
    with pytest.raises(FileNotFoundError, match="sal_distill") as e:
        PascalContext(copy)
    assert all(d in str(e.value) for d in EXPECTED_DIRS)
    assert snapshot(copy) == before


def test_missing_split_file_is_named(copy):
    before = snapshot(copy)
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Context/test\.txt"):
        PascalContext(copy, split="test")
    assert snapshot(copy) == before


def test_unknown_task_is_named(copy):
    with pytest.raises(ValueError, match="depth") as e:
        PascalContext(copy, tasks=["semseg", "depth"])
    assert "human_parts" in str(e.value)  # lists the valid ones


def _first(copy: Path) -> str:
    return (copy / "ImageSets/Context/train.txt").read_text().split()[0]


@pytest.mark.parametrize("kind,rel", [
    ("sal", "sal_distill/{}.png"),
    ("human_parts", "human_parts/{}.mat"),
    ("normals", "pascal-context/trainval/{}.mat"),
    ("image", "JPEGImages/{}.jpg"),
])
def test_missing_file_is_named(copy, kind, rel):
    path = copy / rel.format(_first(copy))
    path.unlink()
    before = snapshot(copy)
    with pytest.raises(FileNotFoundError, match=path.name) as e:
        PascalContext(copy, "train")[0]
    assert str(path) in str(e.value)
    assert snapshot(copy) == before


def test_missing_semseg_names_both_candidates(copy):
    i = _first(copy)
    for sub in ("VOC12", "pascal-context"):
        (copy / "semseg" / sub / f"{i}.png").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="VOC12") as e:
        PascalContext(copy, "train", tasks=["semseg"])[0]
    assert "pascal-context" in str(e.value)


@pytest.mark.parametrize("rel,expect", [
    ("semseg/VOC12/{}.png", "semseg"),
    ("normals_distill/{}.png", "normals"),
    ("human_parts/{}.mat", "MATLAB"),
    ("pascal-context/trainval/{}.mat", "MATLAB"),
])
def test_corrupt_file_is_named(copy, rel, expect):
    path = copy / rel.format(_first(copy))
    path.write_bytes(b"this is not the file you are looking for")
    before = snapshot(copy)
    with pytest.raises(PascalFormatError, match=expect) as e:
        PascalContext(copy, "train")[0]
    assert str(path) in str(e.value)
    assert snapshot(copy) == before


def test_wrong_content_is_named(copy):
    i = _first(copy)
    Image.fromarray(np.full((8, 8), 42, np.uint8)).save(copy / "semseg/VOC12" / f"{i}.png")
    with pytest.raises(PascalFormatError, match="42"):
        PascalContext(copy, "train", tasks=["semseg"])[0]
    import scipy.io

    scipy.io.savemat(str(copy / "pascal-context/trainval" / f"{i}.mat"), {"Other": np.zeros(2)})
    with pytest.raises(PascalFormatError, match="LabelMap"):
        PascalContext(copy, "train", tasks=["normals"])[0]


def test_image_and_label_of_different_sizes(copy):
    i = _first(copy)
    path = copy / "sal_distill" / f"{i}.png"
    with Image.open(copy / "JPEGImages" / f"{i}.jpg") as im:
        w, h = im.size
    Image.fromarray(np.zeros((h + 3, w), np.uint8)).save(path)
    before = snapshot(copy)
    with pytest.raises(ValueError, match=path.name) as e:
        PascalContext(copy, "train", tasks=["sal"])[0]
    assert f"{h + 3}x{w}" in str(e.value) and f"{h}x{w}" in str(e.value)
    assert snapshot(copy) == before

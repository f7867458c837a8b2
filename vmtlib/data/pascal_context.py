"""PASCAL-Context multi-task (the ``PASCAL_MT`` release), read exactly as it unpacks.

This is the benchmark of MTI-Net, ATRC, InvPT, MTLoRA and VMT-Adapter: about
4,998 train and 5,105 val images with four dense labels. The on-disk format and
its decoding are the facts of ``shared/pascal_context_format.md``:

=============  =========================================  ========================================
task           file (relative to the root)                decoding
=============  =========================================  ========================================
(split)        ``ImageSets/Context/{split}.txt``          one image id per line
(image)        ``JPEGImages/<id>.jpg``                    RGB -> float32 3xHxW in [0, 1]
semseg         ``semseg/VOC12/<id>.png`` if it exists,    values 0..20 (VOC order), 255 ignore
               else ``semseg/pascal-context/<id>.png``
human_parts    ``human_parts/<id>.mat``                   see :func:`decode_human_parts`
sal            ``sal_distill/<id>.png``                   ``png / 255 > 0.5``
normals        ``normals_distill/<id>.png`` (RGB) and     ``n = 2 png / 255 - 1`` renormalised;
               ``pascal-context/trainval/<id>.mat``       valid where ``LabelMap`` is one of the
               (key ``LabelMap``)                         170 ids of
                                                          ``normals_valid_label_ids.json``, else 0
=============  =========================================  ========================================

The loader only reads: no cache, index or lock file is ever written into the
root, so a read-only copy works. Bad input fails loudly with the file and what
was expected: a missing root or sub-folder (``FileNotFoundError`` listing the
expected sub-folders), a missing split file, an unknown task (``ValueError``),
a missing label file (``FileNotFoundError``), a corrupt label file or an image
and label of different sizes (:class:`PascalFormatError`, a ``ValueError``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import torch
from PIL import Image

from vmtlib.data.samples import SampleDataset, task_labels
from vmtlib.tasks import ALL_TASKS, parse_tasks

IGNORE = 255
PERSON = 15
NUM_SEMSEG_CLASSES = 21

PART_IDS: dict[str, int] = {
    **dict.fromkeys(("hair", "head", "lear", "rear", "lebrow", "rebrow", "leye", "reye",
                     "mouth", "nose"), 1),
    **dict.fromkeys(("torso", "neck"), 2),
    **dict.fromkeys(("luarm", "ruarm"), 3),
    **dict.fromkeys(("llarm", "rlarm", "lhand", "rhand"), 4),
    **dict.fromkeys(("luleg", "ruleg"), 5),
    **dict.fromkeys(("llleg", "rlleg", "lfoot", "rfoot"), 6),
}
"""PASCAL-Part person part names -> the 6 parts (1 head, 2 torso, 3 upper arm,
4 lower arm, 5 upper leg, 6 lower leg); 0 is background."""

BASE_DIRS: tuple[str, ...] = ("JPEGImages", "ImageSets/Context")
TASK_DIRS: dict[str, tuple[str, ...]] = {
    "semseg": ("semseg",),
    "human_parts": ("human_parts",),
    "sal": ("sal_distill",),
    "normals": ("normals_distill", "pascal-context/trainval"),
}
"""Sub-folders of the root that each task needs (besides ``BASE_DIRS``)."""

_VALID_IDS_FILE = Path(__file__).with_name("normals_valid_label_ids.json")


class PascalFormatError(ValueError):
    """A file of the PASCAL_MT folder is not in the expected format."""


@lru_cache(maxsize=1)
def normals_valid_label_ids() -> tuple[int, ...]:
    """The PASCAL-Context ``LabelMap`` ids whose pixels have valid normals (package data)."""
    with open(_VALID_IDS_FILE) as f:
        return tuple(int(i) for i in json.load(f)["ids"])


@lru_cache(maxsize=1)
def _valid_lut() -> np.ndarray:
    ids = normals_valid_label_ids()
    lut = np.zeros(max(ids) + 1, dtype=bool)
    lut[list(ids)] = True
    return lut


def expected_subfolders(tasks: Iterable[str] = ALL_TASKS) -> tuple[str, ...]:
    """The sub-folders a PASCAL_MT root needs for ``tasks``."""
    out = list(BASE_DIRS)
    for t in parse_tasks(tasks):
        out.extend(d for d in TASK_DIRS[t] if d not in out)
    return tuple(out)


def check_root(root: str | Path, tasks: Iterable[str] = ALL_TASKS) -> Path:
    """Raise ``FileNotFoundError`` unless ``root`` has every sub-folder ``tasks`` need."""
    root = Path(root)
    expected = expected_subfolders(tasks)
    if not root.is_dir():
        raise FileNotFoundError(
            f"PASCAL_MT root not found: {root} (expected a folder with the sub-folders "
            f"{', '.join(expected)})")
    missing = [d for d in expected if not (root / d).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"PASCAL_MT root {root} lacks the sub-folder(s) {', '.join(missing)}; expected "
            f"sub-folders for tasks {', '.join(parse_tasks(tasks))}: {', '.join(expected)}")
    return root


# ----------------------------------------------------------------------------
# decoders of single files (each names the file when it fails)


def _read_png(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing {what} file: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA"):
                im = im.convert(im.mode[:-1])
            return np.array(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise PascalFormatError(f"cannot read {what} file {path}: {exc}") from exc


def _read_mat(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"missing {what} file: {path}")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise PascalFormatError(
            f"cannot read {what} file {path} as a MATLAB .mat file: {exc}") from exc


def _check_size(arr_hw: tuple[int, ...], image_hw: tuple[int, int], path: Path) -> None:
    if tuple(arr_hw) != tuple(image_hw):
        raise PascalFormatError(
            f"{path}: label size {arr_hw[0]}x{arr_hw[1]} (HxW) differs from the image size "
            f"{image_hw[0]}x{image_hw[1]}")


def read_image(path: Path) -> np.ndarray:
    """JPEG -> uint8 HxWx3 (RGB)."""
    if not path.is_file():
        raise FileNotFoundError(f"missing image file: {path}")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        raise PascalFormatError(f"cannot read image file {path}: {exc}") from exc


def decode_semseg(path: Path) -> np.ndarray:
    """Single-channel PNG -> int64 HxW with values 0..20 or 255."""
    arr = _read_png(path, "semseg")
    if arr.ndim != 2:
        raise PascalFormatError(
            f"{path}: expected a single-channel semseg PNG, got shape {arr.shape}")
    bad = np.setdiff1d(np.unique(arr), [*range(NUM_SEMSEG_CLASSES), IGNORE])
    if bad.size:
        raise PascalFormatError(
            f"{path}: semseg values {bad.tolist()[:10]} outside 0..20 and 255 (VOC ids)")
    return arr.astype(np.int64)


def decode_human_parts(path: Path, image_hw: tuple[int, int] | None = None) -> np.ndarray:
    """``human_parts/<id>.mat`` -> int64 HxW in 0..6, or all 255 without a labelled person.

    ``loadmat(f)["anno"][0][0][1][0]`` is the object array; for each object ``o``,
    ``o[1][0][0]`` is its class (15 = person), ``o[2]`` its instance mask and ``o[3]``
    its parts (empty when none); for each part ``p`` in ``o[3][0]``, ``p[0][0]`` is its
    name (mapped by :data:`PART_IDS`) and ``p[1]`` its mask; later parts overwrite
    earlier ones.

    Convention (as MTI-Net, which keeps the objects that are a person *and* have
    parts): a *labelled person* is a person object with at least one part. Without
    one, the image has no human-parts label and every pixel is 255. With one, every
    pixel is 0 (background) except the parts; pixels of a person without parts are
    background too.
    """
    data = _read_mat(path, "human_parts")
    try:
        objects = data["anno"][0][0][1]
        objects = objects[0] if objects.size else []
        label = None
        for o in objects:
            if int(np.asarray(o[1]).reshape(-1)[0]) != PERSON:
                continue
            parts = o[3]
            if parts.size == 0:
                continue
            if label is None:
                label = np.zeros(np.asarray(o[2]).shape, dtype=np.int64)
            for p in parts[0]:
                name = str(np.asarray(p[0]).reshape(-1)[0])
                if name not in PART_IDS:
                    raise PascalFormatError(
                        f"{path}: unknown part name {name!r}; expected one of "
                        f"{', '.join(sorted(PART_IDS))}")
                mask = np.asarray(p[1])
                if mask.shape != label.shape:
                    raise PascalFormatError(
                        f"{path}: part mask of shape {mask.shape} differs from the object "
                        f"mask shape {label.shape}")
                label[mask > 0] = PART_IDS[name]
    except PascalFormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise PascalFormatError(
            f"{path}: not the PASCAL-Part struct layout (expected anno[0][0][1][0] = object "
            f"array, o[1] class, o[2] mask, o[3] parts with p[0] name and p[1] mask): "
            f"{exc!r}") from exc
    if label is None:
        if image_hw is None:
            raise PascalFormatError(f"{path}: no labelled person and no image size given")
        return np.full(image_hw, IGNORE, dtype=np.int64)
    if image_hw is not None:
        _check_size(label.shape, image_hw, path)
    return label


def decode_sal(path: Path) -> np.ndarray:
    """Grayscale PNG -> int64 HxW, ``png / 255 > 0.5``."""
    arr = _read_png(path, "saliency")
    if arr.ndim == 3:  # tolerate an RGB copy of the grayscale map
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise PascalFormatError(f"{path}: expected a grayscale saliency PNG, got {arr.shape}")
    return (arr.astype(np.float64) / 255.0 > 0.5).astype(np.int64)


def decode_label_map(path: Path) -> np.ndarray:
    """``pascal-context/trainval/<id>.mat`` -> the int64 HxW ``LabelMap`` (459-class ids)."""
    data = _read_mat(path, "LabelMap")
    if "LabelMap" not in data:
        keys = [k for k in data if not k.startswith("__")]
        raise PascalFormatError(f"{path}: no key 'LabelMap' (found {keys})")
    lm = np.asarray(data["LabelMap"])
    if lm.ndim != 2:
        raise PascalFormatError(f"{path}: LabelMap must be 2-D, got shape {lm.shape}")
    return lm.astype(np.int64)


def decode_normals(png_path: Path, label_map: np.ndarray) -> np.ndarray:
    """RGB PNG -> float32 3xHxW unit normals, ``n = 2 png / 255 - 1`` renormalised,
    all-zero where the LabelMap class is not in the valid list."""
    arr = _read_png(png_path, "normals")
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PascalFormatError(f"{png_path}: expected an RGB normals PNG, got shape {arr.shape}")
    _check_size(arr.shape[:2], label_map.shape, png_path)
    n = arr.astype(np.float32).transpose(2, 0, 1) * np.float32(2.0 / 255.0) - np.float32(1.0)
    lut = _valid_lut()
    valid = np.zeros(label_map.shape, dtype=bool)
    inside = (label_map >= 0) & (label_map < lut.size)
    valid[inside] = lut[label_map[inside]]
    norm = np.sqrt((n * n).sum(0))
    valid &= norm > 1e-6
    out = np.where(valid[None], n / np.maximum(norm, 1e-6)[None], np.float32(0.0))
    return out.astype(np.float32)


# ----------------------------------------------------------------------------
# the dataset


class PascalContext(SampleDataset):
    """The PASCAL_MT folder as a torch Dataset (read-only).

    Args:
        root: the ``PASCAL_MT`` folder.
        split: ``"train"`` or ``"val"`` (the file ``ImageSets/Context/<split>.txt``).
        tasks: task ids (default all four); validated by ``vmtlib.tasks``.
        transform: optional callable on the sample dict (``vmtlib.data.transforms``).

    ``ds[i]`` (without a transform, at the original resolution) is a dict with
    ``image`` float32 3xHxW in [0, 1], ``semseg`` / ``human_parts`` / ``sal`` int64 HxW
    (255 = ignore; ``human_parts`` all 255 without a labelled person), ``normals``
    float32 3xHxW (unit vectors, all-zero where invalid) and ``meta``
    ``{"id": str, "size": (H, W)}``.
    """

    def __init__(self, root: str | Path, split: str = "train",
                 tasks: Iterable[str] | str = ALL_TASKS,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.tasks = parse_tasks(tasks)
        self.root = check_root(root, self.tasks)
        self.split = split
        self.transform = transform
        split_file = self.root / "ImageSets" / "Context" / f"{split}.txt"
        if not split_file.is_file():
            have = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise FileNotFoundError(
                f"missing split file {split_file} for split {split!r} "
                f"(splits found: {', '.join(have) or 'none'})")
        ids = [line.strip() for line in split_file.read_text().splitlines()]
        self.ids: list[str] = [i for i in ids if i]
        if not self.ids:
            raise PascalFormatError(f"split file {split_file} lists no image id")

    def __len__(self) -> int:
        return len(self.ids)

    def path(self, kind: str, image_id: str) -> Path:
        """Path of ``kind`` (image, semseg, human_parts, sal, normals, label_map) for an id."""
        r = self.root
        if kind == "image":
            return r / "JPEGImages" / f"{image_id}.jpg"
        if kind == "semseg":
            voc = r / "semseg" / "VOC12" / f"{image_id}.png"
            return voc if voc.is_file() else r / "semseg" / "pascal-context" / f"{image_id}.png"
        if kind == "human_parts":
            return r / "human_parts" / f"{image_id}.mat"
        if kind == "sal":
            return r / "sal_distill" / f"{image_id}.png"
        if kind == "normals":
            return r / "normals_distill" / f"{image_id}.png"
        if kind == "label_map":
            return r / "pascal-context" / "trainval" / f"{image_id}.mat"
        raise ValueError(f"unknown file kind {kind!r}")

    def _semseg(self, image_id: str, hw: tuple[int, int]) -> np.ndarray:
        path = self.path("semseg", image_id)
        if not path.is_file():
            raise FileNotFoundError(
                f"missing semseg file for {image_id!r}: neither "
                f"{self.root / 'semseg' / 'VOC12' / (image_id + '.png')} nor {path} exists")
        lab = decode_semseg(path)
        _check_size(lab.shape, hw, path)
        return lab

    def _sal(self, image_id: str, hw: tuple[int, int]) -> np.ndarray:
        path = self.path("sal", image_id)
        lab = decode_sal(path)
        _check_size(lab.shape, hw, path)
        return lab

    def _normals(self, image_id: str, hw: tuple[int, int]) -> np.ndarray:
        lm_path = self.path("label_map", image_id)
        lm = decode_label_map(lm_path)
        _check_size(lm.shape, hw, lm_path)
        return decode_normals(self.path("normals", image_id), lm)

    def load(self, index: int) -> dict[str, Any]:
        """The untransformed sample ``index``."""
        image_id = self.ids[index]
        img = read_image(self.path("image", image_id))
        hw = (int(img.shape[0]), int(img.shape[1]))
        sample: dict[str, Any] = {
            "image": torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255.0)}
        sample.update(task_labels(self.tasks, {
            "semseg": lambda: self._semseg(image_id, hw),
            "human_parts": lambda: decode_human_parts(self.path("human_parts", image_id), hw),
            "sal": lambda: self._sal(image_id, hw),
            "normals": lambda: self._normals(image_id, hw),
        }))
        sample["meta"] = {"id": image_id, "size": hw}
        return sample

    def __repr__(self) -> str:
        return (f"PascalContext(root={str(self.root)!r}, split={self.split!r}, "
                f"tasks={self.tasks}, n={len(self)})")

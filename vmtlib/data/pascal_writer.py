"""Write a small PASCAL_MT folder in exactly the on-disk format of the real release.

PASCAL-Context cannot be downloaded here, so the tests (and the PASCAL-Context
notebook in CI) read a folder written by this module back through the real
loader, :class:`vmtlib.data.PascalContext`. Every file follows
``shared/pascal_context_format.md``:

* ``JPEGImages/<id>.jpg``: RGB JPEG (quality 95) of a :mod:`synthetic` scene;
* ``ImageSets/Context/{train,val}.txt``: one id per line;
* ``semseg/VOC12/<id>.png`` (VOC style: 255 on a one-pixel band along object
  boundaries) for some ids and ``semseg/pascal-context/<id>.png`` for others;
  where both exist the context map is deliberately different (shifted), so a
  reader that ignores the VOC12-first precedence fails;
* ``human_parts/<id>.mat``: the PASCAL-Part MATLAB struct ``anno`` with fields
  ``imname`` and ``objects``; each object has ``class``, ``class_ind``, ``mask``
  and ``parts`` (empty when none), each part ``part_name`` and ``mask``, so
  ``loadmat(f)["anno"][0][0][1][0]`` is the object array. Each person's first
  part is a ``torso`` covering the whole person, which the later parts overwrite;
  part names are drawn from every name of their group (``hair``, ``lfoot``...);
* ``normals_distill/<id>.png``: RGB, ``png = round((n + 1) / 2 * 255)``, filled
  everywhere (also where the label map says invalid, as the real maps are);
* ``pascal-context/trainval/<id>.mat``: key ``LabelMap`` (uint16, 459-class ids):
  valid ids of ``normals_valid_label_ids.json`` for the background and most
  objects, ids outside the list for the sky and for one object per image;
* ``sal_distill/<id>.png``: grayscale, salient pixels in 128..255 and the others
  in 0..127 (both 127 and 128 occur, to pin the ``> 0.5`` threshold).

With ``persons="cycle"`` (the default) the images go through four cases in
turn: 0 a person with parts, VOC12 and context semseg; 1 no person, context
semseg only; 2 a person *without* parts, VOC12 only; 3 two persons, one with
and one without parts, context only. ``persons="natural"`` keeps the synthetic
distribution (every person with parts, VOC12 semseg everywhere), for the few
hundred 512x512 images of a GPU run: ``write_tiny_pascal_mt(root, 300, 100, 512,
persons="natural")``.

:func:`tiny_pascal_records` returns the raw arrays that are written (a test can
compute its expected labels from them independently of the loader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from vmtlib.data.pascal_context import PART_IDS, normals_valid_label_ids
from vmtlib.data.synthetic import PERSON, VOC_CLASSES, render_scene

_PART_NAMES: dict[int, tuple[str, ...]] = {
    k: tuple(n for n, v in PART_IDS.items() if v == k) for k in range(1, 7)
}


@dataclass
class TinyPart:
    """One PASCAL-Part part: its name and uint8 mask."""

    name: str
    mask: np.ndarray


@dataclass
class TinyObject:
    """One PASCAL-Part object: VOC class, uint8 instance mask, parts (maybe none)."""

    class_ind: int
    mask: np.ndarray
    parts: list[TinyPart] = field(default_factory=list)


@dataclass
class TinyRecord:
    """Everything written for one image id (the arrays exactly as encoded)."""

    id: str
    split: str
    image: np.ndarray  # uint8 HxWx3 given to the JPEG encoder
    semseg_voc: np.ndarray | None  # uint8 HxW or None (file not written)
    semseg_context: np.ndarray | None
    objects: list[TinyObject]
    normals_png: np.ndarray  # uint8 HxWx3
    label_map: np.ndarray  # uint16 HxW
    sal_png: np.ndarray  # uint8 HxW


def _boundary(semseg: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another class (the VOC void band)."""
    b = np.zeros(semseg.shape, dtype=bool)
    b[:, :-1] |= semseg[:, :-1] != semseg[:, 1:]
    b[:-1, :] |= semseg[:-1, :] != semseg[1:, :]
    return b


def _person_parts(rng: np.random.Generator, inst_mask: np.ndarray,
                  parts: np.ndarray) -> list[TinyPart]:
    """PASCAL-Part parts of one person: a whole-person ``torso`` first (overwritten by
    the later parts), then per part class a name of its group, split in two names
    (upper and lower half of the mask) where the group has several."""
    out = [TinyPart("torso", inst_mask.astype(np.uint8))]
    for k in range(1, 7):
        m = inst_mask & (parts == k)
        if not m.any():
            continue
        names = _PART_NAMES[k]
        first = names[int(rng.integers(len(names)))]
        out.append(TinyPart(first, m.astype(np.uint8)))
        rows = np.nonzero(m.any(1))[0]
        if len(rows) > 1 and len(names) > 1:
            second = names[int(rng.integers(len(names)))]
            lower = m.copy()
            lower[: rows[len(rows) // 2]] = False
            out.append(TinyPart(second, lower.astype(np.uint8)))
    return out


def _render_case(seed: int, index: int, hw: tuple[int, int], persons: int):
    """Render a scene with ``persons`` clearly visible person figures (tries sub-seeds)."""
    for attempt in range(64):
        sc = render_scene(seed, index + 100_003 * attempt, hw, persons=persons)
        ok = True
        for k, cls in enumerate(sc.instance_classes, start=1):
            if cls == PERSON:
                m = sc.instances == k
                if m.sum() < 20 or len(np.unique(sc.human_parts[m])) < 2:
                    ok = False
        if ok and sum(c == PERSON for c in sc.instance_classes) == persons:
            return sc
    return sc


def tiny_pascal_records(n_train: int = 4, n_val: int = 2,
                        size: int | tuple[int, int] | None = None, seed: int = 0,
                        persons: str = "cycle") -> list[TinyRecord]:
    """The raw content of a tiny PASCAL_MT folder (see the module docstring).

    ``size``: int or (H, W) for every image, or None for varied small sizes
    (H in 40..72, W in 48..88). ``persons``: ``"cycle"`` or ``"natural"``.
    """
    if persons not in ("cycle", "natural"):
        raise ValueError(f"persons must be 'cycle' or 'natural', got {persons!r}")
    if n_train < 0 or n_val < 0:
        raise ValueError(f"n_train and n_val must be >= 0, got {n_train}, {n_val}")
    rng = np.random.default_rng([int(seed), 7919])
    valid_ids = np.array(normals_valid_label_ids())
    invalid_ids = np.setdiff1d(np.arange(1, 460), valid_ids)
    records = []
    for k in range(n_train + n_val):
        split = "train" if k < n_train else "val"
        image_id = f"2008_{k:06d}"
        if size is None:
            hw = (int(rng.integers(40, 73)), int(rng.integers(48, 89)))
        else:
            hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        case = k % 4 if persons == "cycle" else -1
        n_persons = {0: 1, 1: 0, 2: 1, 3: 2}.get(case)
        if n_persons is None:
            sc = render_scene(seed, k, hw)
        else:
            sc = _render_case(seed, k, hw, n_persons)

        image = np.round(sc.image.transpose(1, 2, 0) * 255.0).astype(np.uint8)
        sem = sc.semseg.astype(np.uint8)
        voc = np.where(_boundary(sem), np.uint8(255), sem)
        semseg_voc = None if case in (1, 3) else voc
        semseg_context = None if case == 2 else (np.roll(sem, 3, axis=1) if case == 0 else sem)

        objects: list[TinyObject] = []
        first_person_done = False
        for j, cls in enumerate(sc.instance_classes, start=1):
            m = sc.instances == j
            if not m.any():
                continue
            obj = TinyObject(int(cls), m.astype(np.uint8))
            if cls == PERSON:
                with_parts = case in (-1, 0) or (case == 3 and not first_person_done)
                first_person_done = True
                if with_parts:
                    obj.parts = _person_parts(rng, m, sc.human_parts)
            objects.append(obj)

        n = sc.normals
        png = np.round((n.transpose(1, 2, 0) + 1.0) * 0.5 * 255.0)
        invalid = ~(np.abs(n).sum(0) > 0)
        png[invalid] = rng.integers(0, 256, size=(int(invalid.sum()), 3))
        normals_png = np.clip(png, 0, 255).astype(np.uint8)

        label_map = np.empty(hw, dtype=np.uint16)
        label_map[:] = rng.choice(valid_ids)
        label_map[invalid] = rng.choice(invalid_ids)
        for i, obj in enumerate(objects):
            ids = invalid_ids if i == 0 else valid_ids
            label_map[obj.mask > 0] = rng.choice(ids)

        sal_png = np.where(sc.sal > 0, rng.integers(128, 256, hw), rng.integers(0, 128, hw))
        sal_png = sal_png.astype(np.uint8)
        for v, target in ((128, 1), (127, 0)):
            where = np.flatnonzero(sc.sal.reshape(-1) == target)
            if where.size:
                sal_png.reshape(-1)[where[: max(1, where.size // 10)]] = v
        records.append(TinyRecord(image_id, split, image, semseg_voc, semseg_context, objects,
                                  normals_png, label_map, sal_png))
    return records


def _anno_struct(image_id: str, objects: list[TinyObject]) -> np.ndarray:
    """The PASCAL-Part ``anno`` struct as numpy structured/object arrays for savemat."""
    obj_dtype = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]
    part_dtype = [("part_name", "O"), ("mask", "O")]
    objs = np.zeros((1, len(objects)), dtype=obj_dtype)
    for i, o in enumerate(objects):
        objs["class"][0, i] = VOC_CLASSES[o.class_ind]
        objs["class_ind"][0, i] = np.array([[o.class_ind]], dtype=np.float64)
        objs["mask"][0, i] = o.mask.astype(np.uint8)
        if o.parts:
            parts = np.zeros((1, len(o.parts)), dtype=part_dtype)
            for j, p in enumerate(o.parts):
                parts["part_name"][0, j] = p.name
                parts["mask"][0, j] = p.mask.astype(np.uint8)
        else:
            parts = np.zeros((0, 0))
        objs["parts"][0, i] = parts
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno["imname"][0, 0] = image_id
    anno["objects"][0, 0] = objs
    return anno


def write_records(root: str | Path, records: list[TinyRecord], exist_ok: bool = False) -> Path:
    """Write ``records`` as a PASCAL_MT folder at ``root``; returns the root.

    Refuses a non-empty existing ``root`` unless ``exist_ok``."""
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not exist_ok:
        raise FileExistsError(f"{root} exists and is not empty (pass exist_ok=True)")
    dirs = ["JPEGImages", "ImageSets/Context", "semseg/VOC12", "semseg/pascal-context",
            "human_parts", "normals_distill", "sal_distill", "pascal-context/trainval"]
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        ids = [r.id for r in records if r.split == split]
        (root / "ImageSets" / "Context" / f"{split}.txt").write_text(
            "".join(i + "\n" for i in ids))
    for r in records:
        Image.fromarray(r.image, "RGB").save(root / "JPEGImages" / f"{r.id}.jpg", quality=95)
        if r.semseg_voc is not None:
            Image.fromarray(r.semseg_voc, "L").save(root / "semseg" / "VOC12" / f"{r.id}.png")
        if r.semseg_context is not None:
            Image.fromarray(r.semseg_context, "L").save(
                root / "semseg" / "pascal-context" / f"{r.id}.png")
        scipy.io.savemat(str(root / "human_parts" / f"{r.id}.mat"),
                         {"anno": _anno_struct(r.id, r.objects)}, do_compression=True)
        Image.fromarray(r.normals_png, "RGB").save(root / "normals_distill" / f"{r.id}.png",
                                                   compress_level=3)
        scipy.io.savemat(str(root / "pascal-context" / "trainval" / f"{r.id}.mat"),
                         {"LabelMap": r.label_map}, do_compression=True)
        Image.fromarray(r.sal_png, "L").save(root / "sal_distill" / f"{r.id}.png")
    return root


def write_tiny_pascal_mt(root: str | Path, n_train: int = 4, n_val: int = 2,
                         size: int | tuple[int, int] | None = None, seed: int = 0,
                         persons: str = "cycle", exist_ok: bool = False) -> Path:
    """Write a PASCAL_MT folder of ``n_train`` + ``n_val`` images at ``root`` (see the
    module docstring) and return ``root``; :func:`tiny_pascal_records` with the same
    arguments gives the arrays that were written."""
    records = tiny_pascal_records(n_train, n_val, size, seed, persons)
    return write_records(root, records, exist_ok=exist_ok)

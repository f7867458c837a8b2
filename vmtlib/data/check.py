"""Check a PASCAL_MT folder before training on it (``python -m vmtlib data check PATH``).

The most common trouble of users of MTI-Net, InvPT and DeMT is a broken or
incomplete download that nobody checks. This walks the folder once, reading only
(a read-only copy works; nothing is written), and reports every problem with the
file it is in:

* the sub-folders the tasks need (``vmtlib.data.pascal_context.expected_subfolders``)
  and both split files ``ImageSets/Context/{train,val}.txt``;
* each split's size against the release's (4,998 train and 5,105 val ids; other
  sizes can be asked for, or none), ids listed twice, ids in both splits;
* for every id of each split: its image and every label file of the format facts
  (``shared/pascal_context_format.md``) exist, decode with the loader's own
  decoders (``vmtlib.data.pascal_context``) and have the image's height and width.

The summary table gives per split the ids, the images that decode, the semseg
labels from ``VOC12`` and from ``pascal-context``, the human-parts files, the images
with a person object and those with part labels (the images that count for human
parts), and the saliency and normals labels that decode. Counts are reported, not
checked: only the split sizes have reference values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io

from vmtlib.data.pascal_context import (
    IGNORE,
    PERSON,
    decode_human_parts,
    decode_label_map,
    decode_normals,
    decode_sal,
    decode_semseg,
    expected_subfolders,
    read_image,
)
from vmtlib.tasks import ALL_TASKS, parse_tasks

RELEASE_SPLIT_SIZES: dict[str, int] = {"train": 4998, "val": 5105}
SPLITS: tuple[str, ...] = ("train", "val")
COLUMNS: tuple[tuple[str, str], ...] = (
    ("ids", "ids"), ("image", "images"), ("semseg_voc", "semseg VOC12"),
    ("semseg_context", "semseg context"), ("human_parts", "parts files"),
    ("with_person", "with person"), ("with_parts", "with parts"), ("sal", "saliency"),
    ("normals", "normals"), ("problems", "problems of its ids"),
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, in one file (or folder)."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CheckReport:
    """What :func:`check_pascal_mt` found: per-split counts and every problem."""

    root: Path
    tasks: tuple[str, ...]
    counts: dict[str, Counter] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def table(self) -> str:
        """The summary table, one row per split (the columns of the module docstring)."""
        header = ["split", *(title for _, title in COLUMNS)]
        rows = [[split, *(str(c[key]) for key, _ in COLUMNS)]
                for split, c in self.counts.items()]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w)
                           in enumerate(zip(r, widths))) for r in [header, *rows]]
        return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])

    def format(self) -> str:
        """The table, then every problem with its file, then the verdict."""
        out = [f"PASCAL_MT folder {self.root} (tasks: {', '.join(self.tasks)})", "",
               self.table(), ""]
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out.extend(f"  {p}" for p in self.problems)
        else:
            out.append("no problem found")
        return "\n".join(out)


def _problem(path: Path, exc: Exception) -> Problem:
    """A decoder's exception as a problem of ``path`` (without the path twice)."""
    text = str(exc).replace(f" {path}: ", ": ").replace(f"{path}: ", "")
    text = text.replace(f" {path}", "").strip() or type(exc).__name__
    return Problem(path, text)


def _size_problem(path: Path, hw: tuple[int, ...], image_hw: tuple[int, int]) -> Problem:
    return Problem(path, f"size {hw[0]}x{hw[1]} (HxW) differs from the image's "
                         f"{image_hw[0]}x{image_hw[1]}")


def check_id(root: Path, image_id: str, tasks: tuple[str, ...]
             ) -> tuple[Counter, list[Problem]]:
    """Check one id's image and labels; returns counts (the table's columns) and problems."""
    counts: Counter = Counter(ids=1)
    problems: list[Problem] = []

    def attempt(path: Path, what: str, decode):
        if not path.is_file():
            problems.append(Problem(path, f"missing {what} file"))
            return None
        try:
            return decode()
        except Exception as exc:  # every decoder error is a problem of this file
            problems.append(_problem(path, exc))
            return None

    image_path = root / "JPEGImages" / f"{image_id}.jpg"
    image = attempt(image_path, "image", lambda: read_image(image_path))
    hw = None if image is None else (int(image.shape[0]), int(image.shape[1]))
    counts["image"] += image is not None

    if "semseg" in tasks:
        voc = root / "semseg" / "VOC12" / f"{image_id}.png"
        context = root / "semseg" / "pascal-context" / f"{image_id}.png"
        path = voc if voc.is_file() else context
        if not path.is_file():
            problems.append(Problem(voc, f"missing semseg file (nor {context})"))
        else:
            label = attempt(path, "semseg", lambda: decode_semseg(path))
            if label is not None:
                counts["semseg_voc" if path == voc else "semseg_context"] += 1
                if hw is not None and label.shape != hw:
                    problems.append(_size_problem(path, label.shape, hw))

    if "human_parts" in tasks:
        path = root / "human_parts" / f"{image_id}.mat"
        if hw is None:  # without the image's size only the struct is checked
            persons = attempt(path, "human_parts", lambda: _count_persons(path))
            counts["human_parts"] += persons is not None
        else:
            label = attempt(path, "human_parts", lambda: decode_human_parts(path, hw))
            if label is not None:
                counts["human_parts"] += 1
                counts["with_person"] += _count_persons(path) > 0
                counts["with_parts"] += bool((label != IGNORE).any())

    if "sal" in tasks:
        path = root / "sal_distill" / f"{image_id}.png"
        label = attempt(path, "saliency", lambda: decode_sal(path))
        if label is not None:
            counts["sal"] += 1
            if hw is not None and label.shape != hw:
                problems.append(_size_problem(path, label.shape, hw))

    if "normals" in tasks:
        lm_path = root / "pascal-context" / "trainval" / f"{image_id}.mat"
        png = root / "normals_distill" / f"{image_id}.png"
        label_map = attempt(lm_path, "LabelMap", lambda: decode_label_map(lm_path))
        if label_map is not None and hw is not None and label_map.shape != hw:
            problems.append(_size_problem(lm_path, label_map.shape, hw))
            label_map = None
        if label_map is None:  # the PNG is still checked on its own
            normals = attempt(png, "normals", lambda: _normals_alone(png, hw))
        else:
            normals = attempt(png, "normals", lambda: decode_normals(png, label_map))
        counts["normals"] += normals is not None and label_map is not None
    counts["problems"] += len(problems)
    return counts, problems


def _count_persons(path: Path) -> int:
    """Person objects (class 15) in a PASCAL-Part ``.mat`` (decoded already once)."""
    objects = scipy.io.loadmat(str(path))["anno"][0][0][1]
    objects = objects[0] if objects.size else []
    return sum(int(np.asarray(o[1]).reshape(-1)[0]) == PERSON for o in objects)


def _normals_alone(png: Path, hw: tuple[int, int] | None) -> np.ndarray:
    """The normals PNG decoded against an all-valid label map of its own size."""
    from PIL import Image

    with Image.open(png) as im:
        width, height = im.size
    if hw is not None and (height, width) != hw:
        raise ValueError(f"size {height}x{width} (HxW) differs from the image's "
                         f"{hw[0]}x{hw[1]}")
    return decode_normals(png, np.full((height, width), -1, dtype=np.int64))


def _check_one(args: tuple[Path, str, tuple[str, ...]]) -> tuple[Counter, list[Problem]]:
    return check_id(*args)


def read_split(root: Path, split: str, problems: list[Problem]) -> list[str]:
    """The ids of ``split`` (in order, duplicates reported and dropped)."""
    path = root / "ImageSets" / "Context" / f"{split}.txt"
    if not path.is_file():
        problems.append(Problem(path, f"missing split file of {split!r}"))
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(_problem(path, exc))
        return []
    ids = [line.strip() for line in lines if line.strip()]
    seen: Counter = Counter(ids)
    twice = sorted(i for i, n in seen.items() if n > 1)
    if twice:
        problems.append(Problem(path, f"{len(twice)} id(s) listed more than once, e.g. "
                                      f"{', '.join(twice[:3])}"))
    return list(dict.fromkeys(ids))


def check_pascal_mt(root: str | Path, tasks: Iterable[str] | str = ALL_TASKS,
                    split_sizes: Mapping[str, int] | None = RELEASE_SPLIT_SIZES,
                    jobs: int = 1, progress: bool = False) -> CheckReport:
    """Check the PASCAL_MT folder ``root`` (see the module docstring), reading only.

    ``split_sizes``: the expected number of ids per split (default the release's
    4,998 / 5,105; ``None`` checks no size). ``jobs``: processes that decode files.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    report = CheckReport(root, parse_tasks(tasks))
    if not root.is_dir():
        report.problems.append(Problem(root, "not a folder"))
        return report
    for sub in expected_subfolders(report.tasks):
        if not (root / sub).is_dir():
            report.problems.append(Problem(root / sub, "missing folder"))
    ids = {split: read_split(root, split, report.problems) for split in SPLITS}
    for split, expected in (split_sizes or {}).items():
        path = root / "ImageSets" / "Context" / f"{split}.txt"
        if path.is_file() and len(ids.get(split, [])) != expected:
            report.problems.append(Problem(path, f"lists {len(ids[split])} ids, expected "
                                                 f"{expected:,}"))
    both = sorted(set(ids["train"]) & set(ids["val"]))
    if both:
        report.problems.append(Problem(root / "ImageSets" / "Context",
                                       f"{len(both)} id(s) in both train and val, e.g. "
                                       f"{', '.join(both[:3])}"))
    total = sum(len(v) for v in ids.values())
    bar = tqdm(total=total, desc="data check", unit="id", disable=not progress)
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        for split in SPLITS:
            counts: Counter = Counter({key: 0 for key, _ in COLUMNS})
            work = [(root, i, report.tasks) for i in ids[split]]
            results = pool.map(_check_one, work, chunksize=16) if pool else map(_check_one, work)
            for c, problems in results:
                counts.update(c)
                report.problems.extend(problems)
                bar.update(1)
            report.counts[split] = counts
    finally:
        if pool is not None:
            pool.shutdown()
        bar.close()
    return report


def parse_split_sizes(text: str) -> dict[str, int] | None:
    """``"train=4998,val=5105"`` -> a dict; ``"any"`` -> None (no size checked)."""
    if text.strip().lower() == "any":
        return None
    out = {}
    for pair in text.split(","):
        split, sep, value = pair.partition("=")
        if not sep or split.strip() not in SPLITS or not value.strip().isdigit():
            raise ValueError(f"--split-sizes expects train=N,val=M or 'any', got {text!r}")
        out[split.strip()] = int(value)
    return out

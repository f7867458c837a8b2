"""``python -m vmtlib data check PATH`` (vmtlib.data.check): the folder the writer writes
passes, each damaged copy fails naming the damaged file, and nothing is written."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from vmtlib.__main__ import main
from vmtlib.data.check import check_pascal_mt, parse_split_sizes
from vmtlib.data.pascal_writer import tiny_pascal_records, write_records

SIZES = ["--split-sizes", "train=4,val=2", "--no-progress"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pascal") / "PASCAL_MT"
    write_records(root, tiny_pascal_records(4, 2))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def test_the_writers_folder_passes_and_is_left_untouched(folder: Path, capsys) -> None:
    before = snapshot(folder)
    assert main(["data", "check", str(folder), *SIZES]) == 0
    text = capsys.readouterr().out
    assert "no problem found" in text
    assert snapshot(folder) == before
    report = check_pascal_mt(folder, split_sizes={"train": 4, "val": 2})
    records = tiny_pascal_records(4, 2)
    for split in ("train", "val"):
        mine = [r for r in records if r.split == split]
        c = report.counts[split]
        assert c["ids"] == c["image"] == c["sal"] == c["normals"] == c["human_parts"] == len(mine)
        assert c["semseg_voc"] == sum(r.semseg_voc is not None for r in mine)
        assert c["semseg_context"] == sum(r.semseg_voc is None for r in mine)
        assert c["with_person"] == sum(any(o.class_ind == 15 for o in r.objects) for r in mine)
        assert c["with_parts"] == sum(any(o.class_ind == 15 and o.parts for o in r.objects)
                                      for r in mine)
    assert report.counts["train"]["with_person"] > report.counts["train"]["with_parts"] > 0


def test_release_sizes_are_the_default(folder: Path, capsys) -> None:
    assert main(["data", "check", str(folder), "--no-progress"]) == 1
    text = capsys.readouterr().out
    assert f"{folder / 'ImageSets' / 'Context' / 'train.txt'}: lists 4 ids, expected 4,998" in text
    assert "expected 5,105" in text
    assert parse_split_sizes("any") is None
    with pytest.raises(ValueError, match="split-sizes"):
        parse_split_sizes("train:3")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Context" / f"{split}.txt").read_text().split()


def missing_image(root: Path) -> Path:
    path = root / "JPEGImages" / f"{_ids(root, 'train')[1]}.jpg"
    path.unlink()
    return path


def truncated_png(root: Path) -> Path:
    path = root / "sal_distill" / f"{_ids(root, 'val')[0]}.png"
    _truncate(path)
    return path


def truncated_mat(root: Path) -> Path:
    path = root / "human_parts" / f"{_ids(root, 'train')[0]}.mat"
    _truncate(path)
    return path


def truncated_label_map(root: Path) -> Path:
    path = root / "pascal-context" / "trainval" / f"{_ids(root, 'train')[2]}.mat"
    _truncate(path)
    return path


def size_mismatch(root: Path) -> Path:
    path = root / "normals_distill" / f"{_ids(root, 'train')[3]}.png"
    with Image.open(path) as im:
        im.load()
        bigger = im.resize((im.width + 3, im.height))
    bigger.save(path)
    return path


def missing_split_id(root: Path) -> Path:
    path = root / "ImageSets" / "Context" / "val.txt"
    path.write_text("".join(i + "\n" for i in _ids(root, "val")[1:]))
    return path


def missing_semseg(root: Path) -> Path:
    image_id = _ids(root, "train")[0]  # case 0: VOC12 and context
    for sub in ("VOC12", "pascal-context"):
        (root / "semseg" / sub / f"{image_id}.png").unlink()
    return root / "semseg" / "VOC12" / f"{image_id}.png"


@pytest.mark.parametrize("damage", [missing_image, truncated_png, truncated_mat,
                                    truncated_label_map, size_mismatch, missing_split_id,
                                    missing_semseg])
def test_each_damaged_copy_fails_naming_its_file(folder: Path, tmp_path: Path, capsys,
                                                 damage: Callable[[Path], Path]) -> None:
    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    damaged = damage(root)
    assert main(["data", "check", str(root), *SIZES]) == 1
    text = capsys.readouterr().out
    lines = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert any(line.startswith(f"{damaged}:") for line in lines), text
    report = check_pascal_mt(root, split_sizes={"train": 4, "val": 2})
    assert {p.path for p in report.problems} == {damaged}, report.format()


def test_a_missing_folder_and_parallel_jobs(folder: Path, tmp_path: Path) -> None:
    report = check_pascal_mt(tmp_path / "nowhere")
    assert not report.ok and report.problems[0].path == tmp_path / "nowhere"
    root = tmp_path / "copy"
    shutil.copytree(folder, root)
    shutil.rmtree(root / "sal_distill")
    one = check_pascal_mt(root, split_sizes=None)
    two = check_pascal_mt(root, split_sizes=None, jobs=2)
    assert root / "sal_distill" in {p.path for p in one.problems}
    assert one.counts == two.counts and one.problems == two.problems
    only = check_pascal_mt(root, tasks="semseg,normals", split_sizes=None)
    assert only.ok, only.format()

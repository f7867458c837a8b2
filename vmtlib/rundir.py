"""The files of a run directory, written so that no command loses a run.

A run directory (written by ``vmtlib.train.Trainer``) holds

- ``config.json``: the run's ``vmtlib.train_config.TrainConfig``;
- ``metrics.jsonl``: one line per evaluation, ``{"step", "metrics", "delta_m"}``;
- ``losses.jsonl``: the training loss every ``vmtlib.train.LOG_EVERY`` steps,
  ``{"step", "lr", "loss", "losses": {task: unweighted loss}, "images_per_second"}``;
- ``checkpoint.pt``: the trainable parameters (and the decoders' buffers),
  optimizer, scheduler, step, training seconds and RNG states, written atomically;
- ``final.json``: per-task metrics, delta_m where a reference exists,
  trainable parameter counts, images per second (of the last invocation) and
  ``train_seconds``: the training loop's wall time over every invocation of a
  resumed run (periodic evaluations included, the final one not).

and, while a process trains into it, a lock on ``.lock``. The rules:

- a command that should not touch a run does not: :meth:`RunDir.check_start` refuses
  a new run in a folder that holds one (``mode="new"``) and a resume where there is no
  checkpoint (``mode="resume"``), before anything is built or written;
- JSON files and checkpoints are written atomically (a temporary file, fsync, rename):
  a kill at any moment leaves the old file or the new one;
- logs are strict JSON (a non-finite float is written as ``null``), and a resume
  first trims them back to the checkpoint's step, so no step appears twice;
- one process at a time: :class:`RunLock` holds an exclusive ``flock`` on ``.lock``
  (released by the kernel when the process dies, so no stale lock survives a kill).
  Where ``fcntl`` does not exist (Windows) there is no lock.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

CONFIG, METRICS, LOSSES, CHECKPOINT, FINAL = (
    "config.json", "metrics.jsonl", "losses.jsonl", "checkpoint.pt", "final.json")
RUN_FILES = (CONFIG, METRICS, LOSSES, CHECKPOINT, FINAL)
LOCK = ".lock"
TMP_SUFFIX = ".tmp"

#: How a Trainer treats what is already in its run directory.
NEW = "new"                      # the folder must not hold a run (nor other files)
OVERWRITE = "overwrite"          # a run there is replaced (other files are kept)
RESUME = "resume"                # continue the run's checkpoint; refuse when there is none
RESUME_OR_NEW = "resume_or_new"  # continue when there is a checkpoint, else start afresh
MODES = (NEW, OVERWRITE, RESUME, RESUME_OR_NEW)


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (one line: the folder and why)."""


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = None) -> str:
    return json.dumps(strict_json(value), indent=indent, allow_nan=False)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync, rename onto ``path``."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except Exception as err:
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < 64 * 2**20:  # what torch reports as "unexpected pos" is a full disk
            raise OSError(f"could not write {path}: only {free} bytes free on its disk "
                          f"(the previous {path.name} is intact)") from err
        raise
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a kill leaves the previous checkpoint or this one."""
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: refused, it holds objects other than tensors, numbers and "
                         f"dicts (pickled code is never loaded): "
                         f"{str(err).splitlines()[0]}") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"cannot read checkpoint {path} ({os.path.getsize(path)} bytes): "
                         f"a truncated or corrupted file? ({str(err).splitlines()[0]})") from err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunDir:
    """One run directory: what it holds, its checks, and its atomic and strict writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- what is there

    def run_files(self) -> list[str]:
        """The run files present (temporary leftovers of a killed write included)."""
        names = [*RUN_FILES, *(n + TMP_SUFFIX for n in (CONFIG, CHECKPOINT, FINAL))]
        return [n for n in names if (self.path / n).exists()]

    def other_entries(self) -> list[str]:
        if not self.path.is_dir():
            return []
        ours = {*RUN_FILES, LOCK, *(n + TMP_SUFFIX for n in RUN_FILES)}
        return sorted(p.name for p in self.path.iterdir() if p.name not in ours)

    def saved_config(self) -> dict[str, Any] | None:
        path = self.path / CONFIG
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunDirError(f"{path} is not valid JSON ({err})") from err

    def final(self) -> dict[str, Any] | None:
        path = self.path / FINAL
        return json.loads(path.read_text()) if path.is_file() else None

    def describe(self) -> str:
        """``'a finished run of vmt_adapter (20 steps)'`` and the like, for messages."""
        try:
            config, final = self.saved_config() or {}, self.final()
        except (RunDirError, json.JSONDecodeError):
            config, final = {}, None
        what = f" of {config['method']}" if "method" in config else ""
        if final is not None:
            return f"a finished run{what} ({final.get('steps')} steps)"
        if (self.path / CHECKPOINT).is_file():
            return f"an unfinished run{what} (checkpoint.pt)"
        files = self.run_files()
        if files:
            return f"the files {', '.join(files)} of a run{what} without checkpoint"
        others = self.other_entries()
        return f"{len(others)} other entries, e.g. {others[:3]}"

    # -- checks, before anything is built or written

    def check_start(self, mode: str) -> None:
        """Refuse what ``mode`` does not allow (see :data:`MODES`); writes nothing."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path} is a file, not a folder")
        existing = next(p for p in (self.path, *self.path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise RunDirError(f"--out {self.path}: {existing} is a file, not a folder")
        checkpoint = self.path / CHECKPOINT
        if mode == NEW and (self.run_files() or self.other_entries()):
            raise RunDirError(
                f"{self.path} already holds {self.describe()}; resume it (--resume), replace "
                f"it (--overwrite), or choose another --out")
        if mode == RESUME and not checkpoint.is_file():
            there = (f"it holds {self.describe()}" if self.path.is_dir()
                     else "the folder does not exist")
            kind = "is not a file" if checkpoint.exists() else "does not exist"
            raise RunDirError(f"nothing to resume: {checkpoint} {kind} ({there}); "
                              f"start a new run without --resume")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(f"--out {self.path}: cannot write into {existing} "
                              f"(read-only or no permission)")

    # -- writes (after the checks, under the lock)

    def clear(self) -> None:
        """Delete the run files (a new run replaces the old one); other files are kept."""
        for name in self.run_files():
            (self.path / name).unlink()

    def write_json(self, name: str, value: Any) -> None:
        atomic_write_text(self.path / name, dumps(value, indent=2) + "\n")

    def append(self, name: str, record: dict[str, Any]) -> None:
        with open(self.path / name, "a") as f:
            f.write(dumps(record) + "\n")

    def trim_logs(self, step: int, finished: bool) -> None:
        """Keep the log lines of steps ``<= step``, the checkpoint's: what comes after is
        trained again. A finished run (``finished``) is evaluated again at ``step``, so its
        metrics lines stop before it. Lines that an older resume left duplicated or out of
        order are resolved in favour of the later one, so the steps strictly increase."""
        for name, last in ((LOSSES, step), (METRICS, step - 1 if finished else step)):
            path = self.path / name
            if not path.is_file():
                continue
            lines = [x for x in path.read_text().splitlines() if x.strip()]
            kept: list[str] = []
            for line in lines:  # a later line of a step supersedes the earlier ones from it
                s = json.loads(line).get("step", 0)
                kept = [x for x in kept if json.loads(x).get("step", 0) < s]
                if s <= last:
                    kept.append(line)
            if kept != lines:
                atomic_write_text(path, "".join(x + "\n" for x in kept))

    def lock(self) -> RunLock:
        return RunLock(self.path)


class RunLock:
    """An exclusive lock on ``DIR/.lock`` (a context manager; creates ``DIR``)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.fd = folder, None

    def acquire(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; nothing to hold
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"{self.folder} is in use by another vmtlib process (pid {holder}); wait for "
                f"it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ----------------------------------------------------------------------------- checkpoints


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters and the decoders' buffers (BatchNorm statistics)."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if k in trainable or k.startswith("decoders.")
    }


def apply_checkpoint(state: dict[str, Any], model: torch.nn.Module, path: Path) -> None:
    """Load ``state["model"]`` into ``model``, refusing (by name) a checkpoint that was
    written by another method, backbone, task set or decoder, or that lacks tensors."""
    if not isinstance(state, dict) or not {"model", "model_info"} <= set(state):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a vmtlib checkpoint (it holds {keys}; expected "
                         f"model, model_info, optimizer, step, ...)")
    saved, here = state["model_info"], model.info
    for key in ("method", "backbone", "tasks", "decoder"):
        if saved[key] != here[key]:
            raise ValueError(
                f"{path} was written by {key}={saved[key]!r} "
                f"(method {saved['method']!r}, backbone {saved['backbone']!r}) and cannot be "
                f"loaded into a model with {key}={here[key]!r} "
                f"(method {here['method']!r}, backbone {here['backbone']!r})"
            )
    missing = set(trainable_state(model)) - set(state["model"])
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(state["model"], strict=False)


def load_checkpoint(path: Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load a checkpoint (``weights_only``) into ``model``; return the whole state."""
    state = read_checkpoint(Path(path))
    apply_checkpoint(state, model, Path(path))
    return state


def recorded_weights(state: dict[str, Any], run: RunDir) -> tuple[bool, str | None]:
    """``(known, fingerprint)`` of the backbone weights the run was trained on: the
    checkpoint's record, else final.json's (runs older than the record have only that)."""
    if "weights" in state:
        return True, state["weights"]
    final = run.final()
    if final is not None and "weights" in final:
        return True, final["weights"]
    return False, None


def check_weights(state: dict[str, Any], run: RunDir, weights: str | None,
                  pretrained: Any) -> None:
    """Refuse a backbone whose weights fingerprint differs from the run's."""
    known, recorded = recorded_weights(state, run)
    if known and recorded != weights:
        raise RunDirError(
            f"{run.path} was trained on backbone weights {recorded or 'random (none)'}, but "
            f"pretrained={pretrained!r} now loads {weights or 'random (none)'}: the frozen "
            f"backbone would differ from the one the run learnt on")

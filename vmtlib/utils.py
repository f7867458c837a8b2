"""Small helpers the library and the benchmarks share: device sync, timing, atomic writes.

- :func:`sync_device` waits for a device's queued work (CUDA kernels run
  asynchronously; a timer read without it measures the launch, not the work);
- :func:`seconds_per_call` is the one timing primitive: synchronise, time
  ``calls`` calls, synchronise; ``vmtlib.bench``, ``vmtlib.analysis.latency``
  and ``benchmarks/bench_eq4.py`` time through it;
- :func:`atomic_path` / :func:`write_json_atomic`: a file is written under a
  temporary name, flushed to disk and renamed, so a reader (or a crash) never
  sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch


def sync_device(device: torch.device | str) -> None:
    """Wait for ``device``'s queued work (CUDA); nothing to wait for on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], Any], calls: int = 1,
                     device: torch.device | str = "cpu") -> float:
    """Wall-clock seconds per call of ``fn`` over ``calls`` back-to-back calls; the
    device is synchronised once before and once after (never inside the loop)."""
    if calls < 1:
        raise ValueError(f"calls must be at least 1, got {calls}")
    sync_device(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync_device(device)
    return (time.perf_counter() - start) / calls


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed
    to ``path`` (``os.replace``), on an exception removed::

        with atomic_path(out) as tmp:
            torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=True) + "\n")

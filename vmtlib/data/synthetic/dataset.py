"""``SyntheticScenes``: the renderer as a torch Dataset with the PASCAL sample keys."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from vmtlib.data.samples import SampleDataset, task_labels
from vmtlib.data.synthetic.scene import SceneConfig, render_scene
from vmtlib.tasks import ALL_TASKS, parse_tasks


class SyntheticScenes(SampleDataset):
    """A torch Dataset of ``n`` procedurally rendered scenes (see ``vmtlib.data.synthetic``).

    Args:
        n: number of samples (indices 0..n-1).
        size: output resolution, int (square) or (H, W).
        seed: scene seed; (seed, index) fixes the sample.
        tasks: tasks whose labels are returned (default: all four).
        transform: optional callable on the sample dict (``vmtlib.data.transforms``).
        config: the scene distribution (``SceneConfig``).

    ``ds[i]`` is a dict with ``image`` (float32 3xHxW in [0, 1]), ``semseg``,
    ``human_parts``, ``sal`` (int64 HxW), ``normals`` (float32 3xHxW) and ``meta``.
    """

    def __init__(self, n: int, size: int | tuple[int, int] = 128, seed: int = 0,
                 tasks: Iterable[str] | str | None = None,
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 config: SceneConfig | None = None):
        if int(n) < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = int(n)
        self.size = size
        self.seed = int(seed)
        self.tasks = ALL_TASKS if tasks is None else parse_tasks(tasks)
        self.transform = transform
        self.config = config or SceneConfig()

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> dict[str, Any]:
        """The untransformed sample ``index`` (negative indices count from the end)."""
        index = int(index)
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} samples")
        index %= self.n
        sc = render_scene(self.seed, index, self.size, config=self.config)
        sample: dict[str, Any] = {"image": torch.from_numpy(sc.image)}
        sample.update(task_labels(self.tasks, {
            "semseg": lambda: sc.semseg.astype(np.int64),
            "human_parts": lambda: sc.human_parts.astype(np.int64),
            "sal": lambda: sc.sal.astype(np.int64),
            "normals": lambda: sc.normals,
        }))
        sample["meta"] = {"id": f"synthetic-{self.seed}-{index}", "seed": self.seed,
                          "index": index}
        return sample

    def __repr__(self) -> str:
        return (f"SyntheticScenes(n={self.n}, size={self.size}, seed={self.seed}, "
                f"tasks={self.tasks})")

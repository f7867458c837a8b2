"""What the two data sources share: a dataset of sample dicts.

``ds.load(index)`` is the untransformed sample (``image``, the labels of the
dataset's ``tasks``, ``meta``) and ``ds[index]`` the same passed through the
dataset's ``transform``; :func:`task_labels` reads only the labels of the tasks
asked for (a PASCAL-Context label is a file read, a synthetic one a conversion).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


class SampleDataset(Dataset, abc.ABC):
    """A torch Dataset of sample dicts with ``tasks`` and an optional ``transform``."""

    tasks: tuple[str, ...]
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None

    @abc.abstractmethod
    def load(self, index: int) -> dict[str, Any]:
        """The untransformed sample ``index``."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.load(index)
        if self.transform is not None:
            sample = self.transform(sample)
        return sample


def task_labels(tasks: Iterable[str], loaders: dict[str, Callable[[], np.ndarray]]
                ) -> dict[str, torch.Tensor]:
    """``{task: tensor}`` for each task of ``loaders`` that is in ``tasks``, in the order
    of ``loaders``; a loader runs only when its task is asked for."""
    tasks = set(tasks)
    return {t: torch.from_numpy(load()) for t, load in loaders.items() if t in tasks}

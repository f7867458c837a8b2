"""The random state of a run: seeding, and what a checkpoint keeps of it.

A resumed run continues the streams of the uninterrupted one: torch's CPU generator
(dropout, the course's augmentations with ``--num-workers 0``), the CUDA generator of
the run's device, and NumPy's global generator, saved exactly. Python's ``random`` is
re-seeded from ``(seed, step)`` instead (nothing in vmtlib draws from it while training).
DataLoader workers draw from their own generators, which restart at a resume
(``TrainConfig.num_workers`` says what that means for reproducibility).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclasses.dataclass
class RNGState:
    """The generators' states at one step, in the checkpoint's ``"rng"`` layout:
    ``{"torch", "numpy": {"keys", "pos", "has_gauss", "cached"}, "python_seed"[, "cuda"]}``.
    """

    torch: torch.Tensor
    numpy: dict[str, Any]
    python_seed: int
    cuda: torch.Tensor | None = None

    @classmethod
    def capture(cls, device: torch.device, python_seed: int) -> RNGState:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        return cls(
            torch=torch.get_rng_state(),
            numpy={"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached": float(cached)},
            python_seed=python_seed,
            cuda=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )

    def restore(self, device: torch.device, step: int) -> None:
        torch.set_rng_state(self.torch)
        if device.type == "cuda" and self.cuda is not None:  # the decoders' dropout
            torch.cuda.set_rng_state(self.cuda, device)
        d = self.numpy
        np.random.set_state(("MT19937", d["keys"].numpy().astype(np.uint32), d["pos"],
                             d["has_gauss"], d["cached"]))
        random.seed(int(self.python_seed) + step)

    def to_dict(self) -> dict[str, Any]:
        out = {"torch": self.torch, "numpy": self.numpy, "python_seed": self.python_seed}
        if self.cuda is not None:
            out["cuda"] = self.cuda
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RNGState:
        return cls(torch=d["torch"], numpy=d["numpy"], python_seed=d["python_seed"],
                   cuda=d.get("cuda"))

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def load_script() -> Callable[[str], ModuleType]:
    """Import a script of ``benchmarks/`` or ``scripts/`` (not a package) as a module:
    ``load_script("benchmarks/gpu_report.py")``."""

    def load(relative: str) -> ModuleType:
        path = ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def assert_tasks_see() -> Callable[..., None]:
    """``check(feats, want, tasks=ALL_TASKS)``: for every task, the encoder's stage
    features ``feats[task]`` equal ``want`` (one tensor per stage), stage by stage."""

    from vmtlib import ALL_TASKS

    def check(feats: dict[str, Sequence[torch.Tensor]], want: Sequence[torch.Tensor],
              tasks: Iterable[str] = ALL_TASKS) -> None:
        for t in tasks:
            assert len(feats[t]) == len(want), f"{t}: {len(feats[t])} stages, want {len(want)}"
            for a, b in zip(feats[t], want):
                torch.testing.assert_close(a, b)

    return check


@pytest.fixture(scope="session")
def plain_backbone_features() -> Callable[[torch.nn.Module, torch.Tensor], list[torch.Tensor]]:
    """``features(model, images)``: the stage features of the plain frozen backbone
    (``decoders_only`` at the images' size) loaded with ``model``'s backbone weights,
    names of wrapped blocks (``.block.``) unwrapped; every plain weight must be found."""

    from vmtlib import build_model

    def features(model: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
        reference = build_model("decoders_only", backbone=model.info["backbone"],
                                img_size=images.shape[-1]).eval()
        plain = {k.replace(".block.", "."): v
                 for k, v in model.encoder.backbone.state_dict().items()}
        missing = reference.encoder.backbone.load_state_dict(plain, strict=False).missing_keys
        assert not missing, f"plain backbone weights not in the model: {missing}"
        with torch.no_grad():
            return reference.encoder.backbone(images)

    return features

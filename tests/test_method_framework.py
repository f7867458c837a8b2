"""The method framework: registration by being in the package, declarations, config checks."""

import dataclasses
import importlib
import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vmtlib
from vmtlib.methods import METHOD_MODULES, TABLE_ORDER
from vmtlib.methods.base import Method, registered_methods

PACKAGE = Path(vmtlib.__file__).parent


def test_every_module_of_the_package_is_imported_and_registers_a_method() -> None:
    on_disk = {p.stem for p in (PACKAGE / "methods").glob("*.py")} - {"__init__", "base", "layers"}
    assert set(METHOD_MODULES) == on_disk
    homes = {cls.__module__.rsplit(".", 1)[-1] for cls in registered_methods().values()}
    assert homes == on_disk  # every module defines at least one method, and no method is elsewhere
    for name in METHOD_MODULES:
        module = importlib.import_module(f"vmtlib.methods.{name}")
        defined = [c for c in vars(module).values()
                   if isinstance(c, type) and issubclass(c, Method) and "method_id" in vars(c)]
        assert all(registered_methods()[c.method_id] is c for c in defined)


def test_every_registered_method_is_listed_in_the_table_order() -> None:
    assert list(vmtlib.METHODS) == list(TABLE_ORDER) == list(registered_methods())
    rows = [registered_methods()[m].table_row for m in TABLE_ORDER]
    assert rows == sorted(rows) and len(set(rows)) == len(rows) and math.inf not in rows


@pytest.mark.parametrize("method", list(vmtlib.METHODS))
def test_declarations_are_complete(method: str) -> None:
    cls = registered_methods()[method]
    assert cls.description and isinstance(cls.one_pass, bool)
    assert cls.Config.method_id == method
    assert dataclasses.is_dataclass(cls.Config) and cls.Config.__dataclass_params__.frozen
    fields = dataclasses.fields(cls.Config)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cls.Config(), fields[0].name, 1)
    with torch.device("meta"):
        model = vmtlib.build_model(method, backbone="swin_nano", img_size=64)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.encoder.named_parameters()}
    assert set(cls.task_indexed) <= names  # every declared per-task tensor exists


def _bad_values(kind: str) -> list:
    if kind == "int":
        return [0, -2, 1.5, True, "4"]
    if kind == "float":
        return [0, -1.0, float("nan"), True, "4"]
    return [1, "yes"]


CASES = [
    (m, f.name, bad)
    for m, cls in registered_methods().items()
    for f in dataclasses.fields(cls.Config)
    for bad in _bad_values(f.type)
]


@pytest.mark.parametrize(("method", "name", "value"), CASES)
def test_bad_hyper_parameters_name_the_method_the_value_and_what_was_expected(
    method: str, name: str, value
) -> None:
    with pytest.raises((ValueError, TypeError)) as err:
        vmtlib.build_model(method, backbone="swin_nano", **{name: value})
    message = str(err.value)
    assert message.startswith(f"{method}: {name} must be ")
    assert repr(value) in message


def test_config_checks_cover_every_kind_of_field() -> None:
    configs = [cls.Config for cls in registered_methods().values()]
    kinds = {f.type for config in configs for f in dataclasses.fields(config)}
    assert kinds == {"int", "float", "bool"}
    assert len(CASES) > 50


def test_polyhistor_lite_needs_an_even_k() -> None:
    with pytest.raises(ValueError, match="polyhistor_lite: k must be even .* got 7"):
        vmtlib.build_model("polyhistor_lite", backbone="swin_nano", k=7)


@pytest.mark.parametrize("method", list(vmtlib.METHODS))
def test_flop_counter_runs_under_no_grad(method: str) -> None:
    model = vmtlib.build_model(method, backbone="swin_nano", img_size=64).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    assert set(out) == set(model.tasks) and counter.get_total_flops() > 0


TOY = '''\
"""A toy method: one learned gain on every stage feature, shared by all tasks."""

import torch
from torch import nn

from vmtlib.methods.base import MethodConfig, OnePassMethod


class ToyConfig(MethodConfig):
    pass


class Toy(OnePassMethod):
    method_id = "toy"
    description = "a learned gain per stage (O(1))"

    def __init__(self, backbone, tasks, config):
        super().__init__(backbone, tasks, config)
        self.gains = nn.Parameter(torch.ones(len(backbone.dims)))

    def task_features(self, feats):
        return {t: [g * f for g, f in zip(self.gains, feats)] for t in self.tasks}
'''

PROBE = '''\
import json, torch, vmtlib
from vmtlib.params import parameter_row
model = vmtlib.build_model("toy", backbone="swin_nano", img_size=64)
out = model(torch.rand(1, 3, 64, 64))
print(json.dumps({
    "listed": list(vmtlib.METHODS)[-1],
    "row": parameter_row("toy", backbone="swin_nano"),
    "shapes": {t: list(o.shape) for t, o in out.items()},
}))
'''


def test_a_new_method_is_one_new_file(tmp_path: Path) -> None:
    """Drop a toy method module into a copy of the package: METHODS, params and
    build_model find it with no other change."""
    shutil.copytree(PACKAGE, tmp_path / "vmtlib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    (tmp_path / "vmtlib" / "methods" / "toy.py").write_text(textwrap.dedent(TOY))
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1",
                                         "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["listed"] == "toy"  # no table_row: listed after the papers' methods
    assert got["row"]["encoder"] == 4 and got["row"]["one_pass"] is True
    assert got["shapes"] == {t: [1, vmtlib.tasks.get_task(t).channels, 64, 64]
                             for t in vmtlib.ALL_TASKS}
    cli = subprocess.run([sys.executable, "-m", "vmtlib", "params", "--backbone", "swin_nano",
                          "--json"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1",
                              "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert cli.returncode == 0, cli.stderr
    assert [r["method"] for r in json.loads(cli.stdout)][-1] == "toy"


def test_the_analysis_name_lists_are_derived_from_the_declarations() -> None:
    from vmtlib.analysis import TASK_INDEXED_NAMES, TASK_MODULE_LISTS

    declared = {n for cls in registered_methods().values() for n in cls.task_indexed}
    assert set(TASK_INDEXED_NAMES) == declared == {
        "alpha", "gamma", "task_embeddings", "kernels", "pre_gain", "pre_shift", "post_gain",
        "post_shift", "prompts",
    }  # the list analysis kept by hand before the methods declared it
    assert TASK_MODULE_LISTS == ("tasks",)

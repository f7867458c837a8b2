"""``pip install .`` gives a working package (issue 17, item 6).

What is checked, offline (no package index is reached):

1. every runtime dependency of ``pyproject.toml`` has an exact pin in
   ``requirements.txt``, and the pin lies inside the declared range;
2. a wheel built from a copy of the sources (``pip wheel --no-deps
   --no-build-isolation``: the build uses this environment's setuptools) installs
   with ``--no-deps --no-index`` into a fresh venv. That venv reaches the already
   installed dependencies through one path line (the running environment's
   site-packages as a plain ``sys.path`` entry: its ``.pth`` files, and with them
   the repository's editable vmtlib, are not processed). In it, from a folder
   outside the repository and without ``PYTHONPATH``, ``python -m vmtlib params``
   prints the same table as the repository's code, vmtlib is imported from the
   venv, the shipped swin_nano weights are there byte for byte, and
   ``pip check`` finds the declared ranges satisfied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_runtime_dependencies_are_ranges_that_contain_the_pins() -> None:
    pins = _pins()
    deps = _dependencies()
    assert {d.name.lower() for d in deps} >= {"torch", "timm", "safetensors", "numpy", "pillow"}
    for dep in deps:
        assert dep.name.lower() in pins, f"{dep.name} has no pin in requirements.txt"
        assert str(dep.specifier), f"{dep.name} has no version range"
        assert dep.specifier.contains(pins[dep.name.lower()]), (
            f"requirements.txt pins {dep.name}=={pins[dep.name.lower()]}, outside {dep}")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.install
def test_pip_install_into_a_fresh_venv(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(HF_HUB_OFFLINE="1", MPLBACKEND="Agg", PIP_NO_INDEX="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "vmtlib", src / "vmtlib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w",
          str(tmp_path / "wheels"), str(src)], tmp_path, env)
    wheels = list((tmp_path / "wheels").glob("vmtlib-*.whl"))
    assert len(wheels) == 1

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path, env)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                         "'purelib'))"], tmp_path, env).strip())
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
          str(wheels[0])], tmp_path, env)

    where = json.loads(_run([str(python), "-c", (
        "import json, vmtlib, vmtlib.backbone as b; print(json.dumps({'file': vmtlib.__file__, "
        "'weights': str(b.NANO_WEIGHTS), 'exists': b.NANO_WEIGHTS.is_file()}))")],
        tmp_path, env))
    assert Path(where["file"]).is_relative_to(purelib), where
    assert where["exists"], where
    assert Path(where["weights"]).read_bytes() == (
        ROOT / "vmtlib" / "weights" / "swin_nano.safetensors").read_bytes()

    out = json.loads(_run([str(python), "-m", "vmtlib", "params", "--backbone", "swin_nano",
                           "--json"], tmp_path, env))
    from vmtlib.params import parameter_table

    expected = parameter_table("swin_nano", "semseg,human_parts,sal,normals", "segformer")
    assert [(r["method"], r["encoder"], r["all"]) for r in out] == [
        (r["method"], r["encoder"], r["all"]) for r in expected]

    check = subprocess.run([*pip, "--python", str(python), "check"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    problems = [line for line in check.stdout.splitlines() if line.startswith("vmtlib ")]
    assert not problems, check.stdout

"""Notebook 09's sliders in the front-end people use: ipywidgets 8 in JupyterLab 4.

Starts ``jupyter lab`` on 127.0.0.1 with the project's kernel ("vmtlib", registered by the
Makefile), opens a copy of notebook 09 (its outputs cleared) in headless Chromium, runs
all its cells in the quick setting (VMTLIB_QUICK=1), moves the rho slider with the
keyboard and checks that the count the widget shows changes to the count of the new
setting. Every wait has a timeout; the server is stopped at the end. Skipped without
Chromium or playwright (see tests/test_site.py).
"""

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_site import browser  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_S = 120
RUN_ALL_MS = 600_000
UI_MS = 60_000
COUNT = re.compile(r"encoder ([\d,]+) \(")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    """JupyterLab user settings: no autosave, no news or update checks (offline)."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"autosave": false}',
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
            '{"autoStartDefaultKernel": true}',
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            '{"fetchNews": "false", "checkForUpdates": false}',
    }
    for name, text in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def lab(tmp_path):
    """A running JupyterLab serving a copy of notebook 09: yields (base URL, token, name)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("vmtlib")
    except NoSuchKernel:
        pytest.skip("no 'vmtlib' kernel (the Makefile registers it into .venv)")
    notebook = next((ROOT / "notebooks").glob("09_*.ipynb"))
    work = tmp_path / "work"
    (work / "notebooks").mkdir(parents=True)
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # no committed outputs: what the test sees, this run made
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, work / "notebooks" / notebook.name)
    (work / "benchmarks").symlink_to(ROOT / "benchmarks")  # ../benchmarks/results/...
    write_settings(tmp_path / "settings")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "VMTLIB_QUICK": "1", "VMTLIB_FIGURES": str(tmp_path / "figures"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           f"--LabServerApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabServerApp.workspaces_dir={tmp_path / 'workspaces'}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI runs as root
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n"
                                + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(1)
        yield base, token, notebook.name
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()


def shown_count(page) -> int:
    text = page.locator(".widget-html pre").filter(has_text="trainable on").first.inner_text()
    return int(COUNT.search(text).group(1).replace(",", ""))


def test_the_rho_slider_responds_in_jupyterlab(lab, browser) -> None:  # noqa: F811
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from vmtlib.widgets import parameter_count

    base, token, name = lab
    offsite: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route(lambda url: not url.startswith(("http://127.0.0.1", "data:", "blob:")),
                  lambda route: (offsite.append(route.request.url), route.abort()))
    page = context.new_page()
    page.set_default_timeout(UI_MS)
    try:
        page.goto(f"{base}/lab/tree/notebooks/{name}?token={token}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()
        page.get_by_text(re.compile(r"Python \(vmtlib\) \| Idle")).wait_for()
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:  # a kernel chooser, if JupyterLab asks despite the setting: the notebook's own
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=5_000)
        except PlaywrightTimeout:
            pass
        # every code cell numbered: the whole notebook ran (the widget cell and the rest)
        page.wait_for_function(
            "() => { const p = Array.from(document.querySelectorAll("
            "'.jp-CodeCell .jp-InputArea-prompt')).map(e => e.textContent.trim());"
            " return p.length > 0 && p.every(t => /^\\[\\d+\\]:$/.test(t)); }",
            timeout=RUN_ALL_MS)
        assert page.locator(".jp-OutputArea-output[data-mime-type*='error']").count() == 0
        slider = page.locator(".widget-hslider").filter(has_text="ρ").first
        readout = slider.locator(".widget-readout")
        before_value, before = int(readout.inner_text()), shown_count(page)
        assert before == parameter_count("rho", before_value)["encoder"]
        slider.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowLeft")
        page.wait_for_function(
            "v => document.querySelector('.widget-hslider .widget-readout').textContent.trim()"
            " !== v", arg=str(before_value))
        after_value = int(readout.inner_text())
        page.wait_for_function(
            "n => Array.from(document.querySelectorAll('.widget-html pre'))"
            ".some(e => e.textContent.includes('encoder ' + n + ' ('))",
            arg=f"{parameter_count('rho', after_value)['encoder']:,}")
        after = shown_count(page)
        assert after_value != before_value and after != before
        assert after == parameter_count("rho", after_value)["encoder"]
        assert offsite == []
    finally:
        if os.environ.get("VMTLIB_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["VMTLIB_SCREENSHOTS"]) / "jupyterlab.png"))
        context.close()

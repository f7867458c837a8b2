"""The course site (``make site``, scripts/build_site.py): built from the committed
notebooks, offline, and checked in headless Chromium.

The site is built once per session into a temporary folder, or taken from
``$VMTLIB_SITE_DIR`` when ``make test`` has just built it there. The browser tests need
Debian's ``chromium`` (``.ci/run`` installs it) and the ``playwright`` package; without
them they are skipped with the reason, or fail where ``VMTLIB_REQUIRE_BROWSER=1``
(``.ci/run``).
"""

import html
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("VMTLIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAGE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def builder(load_script):
    return load_script("scripts/build_site.py")


@pytest.fixture(scope="module")
def site(builder, tmp_path_factory) -> Path:
    given = os.environ.get("VMTLIB_SITE_DIR")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"{path}: no index.html (run make site)"
        return path
    out = tmp_path_factory.mktemp("site") / "site"
    builder.build_site(out, log=lambda _: None)
    return out


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class Refs(HTMLParser):
    """The URLs of a page's <script src>, <link href>, <img src> and <a href>."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []
        self.links: list[str] = []
        self.nav: list[str] = []
        self._in_nav = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "nav":
            self._in_nav = True
        if tag in ("script", "img") and a.get("src") is not None:
            self.assets.append((tag, a["src"]))
        if tag == "link" and a.get("href") is not None:
            self.assets.append((tag, a["href"]))
        if tag == "a" and a.get("href") is not None:
            self.links.append(a["href"])
            if self._in_nav:
                self.nav.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False


def refs(page: Path) -> Refs:
    parser = Refs()
    parser.feed(page.read_text())
    return parser


def local_target(site: Path, page: Path, url: str) -> Path | None:
    """The file a relative URL of ``page`` names; None for external and fragment URLs."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def text_of(page_html: str) -> str:
    """A page's text, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


# ---------------------------------------------------------------------------------------
# The build itself


def test_one_page_per_notebook_in_course_order(site: Path) -> None:
    index = site / "index.html"
    assert index.is_file()
    slugs = [f"{p.stem}.html" for p in notebooks()]
    assert len(slugs) >= 10
    for slug in slugs:
        assert (site / slug).is_file(), slug
    nav = refs(index).nav
    assert [s for s in nav if s in slugs] == slugs
    for i, slug in enumerate(slugs):
        page = refs(site / slug)
        assert page.nav == nav  # the same navigation everywhere
        if i + 1 < len(slugs):
            assert slugs[i + 1] in page.links[len(nav):]  # "next" after the navigation


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    pages = sorted(site.glob("*.html"))
    assert len(pages) >= len(notebooks()) + 2
    for page in pages:
        for tag, url in refs(page).assets:
            assert not re.match(r"^\s*(https?:)?//", url, re.I), f"{page.name}: <{tag}> {url}"
            if not url.startswith("data:"):
                target = local_target(site, page, url)
                assert target is not None and target.is_file(), f"{page.name}: <{tag}> {url}"


def test_internal_links_resolve(site: Path) -> None:
    for page in sorted(site.glob("*.html")):
        for url in refs(page).links:
            target = local_target(site, page, url)
            if target is not None:
                assert target.is_file(), f"{page.name}: link {url}"
                assert target.is_relative_to(site.resolve()), f"{page.name}: {url} leaves the site"


def test_every_figure_and_table_of_the_notebooks_is_on_their_pages(site: Path) -> None:
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        text = (site / f"{path.stem}.html").read_text()
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        figures = sum("image/png" in o.get("data", {}) for o in outputs)
        assert text.count("<img") >= figures, path.name
        assert text.count('src="data:image/png;base64,') >= figures, path.name
        html_tables = sum("<table" in o.get("data", {}).get("text/html", "") for o in outputs)
        md_tables = sum(len(re.findall(r"^\|.*\|\s*$\n^\|[\s:|-]+\|\s*$", c.source, re.M))
                        for c in nb.cells if c.cell_type == "markdown")
        assert text.count("<table") >= html_tables + md_tables, path.name
        for cell in nb.cells:  # every printed table (stream text) is there, escaped
            for o in cell.get("outputs", []):
                if o.output_type == "stream" and o.text.strip():
                    first = o.text.strip().splitlines()[0].strip()
                    escaped = first.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                    assert escaped in text, (path.name, first)


def test_landing_page_and_the_readmes_results(site: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    index_html = (site / "index.html").read_text()
    index = text_of(index_html)
    title = re.search(r"^# (.+)$", readme, re.M).group(1)
    assert title in index
    assert "make test" in index and "make site" in index and "make handout" in index
    for path in notebooks():  # the table of notebooks links to the pages
        assert f'href="{path.stem}.html"' in index_html
    library = text_of((site / "library.html").read_text())
    headings = [re.sub(r"[`*]", "", h).strip() for h in re.findall(r"^##+ (.+)$", readme, re.M)]
    assert len(headings) > 5
    for heading in headings:  # every README section, a ledger included, is on one of the two
        assert heading in index or heading in library, heading
    assert library.index(headings[-1]) > library.index(headings[-2])  # in the README's order
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        assert f'id="{md.stem}"' in (site / "results.html").read_text()


def test_the_explorer_table_is_embedded_in_notebook_09(site: Path) -> None:
    page = next(site.glob("09_*.html")).read_text()
    assert page.count("data-vmt-explorer") == 1
    data = json.loads(re.search(r'<script[^>]*class="vmt-data"[^>]*>(.*?)'
                                r"</script>", page, re.S).group(1).replace("<\\/", "</"))
    assert set(data["settings"]) == {"rho=1", "rho=2", "rho=4", "rho=8", "m=3", "m=6", "m=12"}
    from vmtlib.widgets import describe_setting, parameter_count

    results = ROOT / "benchmarks" / "results" / "ablation.json"
    for entry in data["settings"].values():
        assert entry["encoder"] == parameter_count(entry["kind"], entry["value"])["encoder"]
        assert entry["text"] == describe_setting(entry["kind"], entry["value"], results)
    assert "explorer.js" in page


# ---------------------------------------------------------------------------------------
# The builder's parts, on made-up input


def test_split_readme_ends_the_landing_page_after_the_table_of_notebooks(builder) -> None:
    text = ("# T\nintro\n## Commands\n```\n## not a heading\n```\n## The notebooks\n"
            "| [00](notebooks/00_x.ipynb) |\n## Results\nnumbers\n## Ledger\nrows\n")
    opening, rest = builder.split_readme(text)
    assert opening.endswith("| [00](notebooks/00_x.ipynb) |\n")
    assert rest == "## Results\nnumbers\n## Ledger\nrows\n"
    with pytest.raises(ValueError, match="README.md: no section links"):
        builder.split_readme("# T\n## A\n")


def test_prepare_notebook_replaces_the_explorer_and_draws_other_widgets(builder) -> None:
    view = "application/vnd.jupyter.widget-view+json"
    state = {"box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_t",
                                                                        "IPY_MODEL_p"]}},
             "t": {"model_name": "HTMLModel", "state": {"value": "run: 100%"}},
             "p": {"model_name": "FloatProgressModel", "state": {"value": 5.0, "max": 5.0}}}
    nb = nbformat.v4.new_notebook(metadata={"widgets": {
        "application/vnd.jupyter.widget-state+json": {"state": state}}})
    out = nbformat.v4.new_output("display_data", data={view: {"model_id": "box"},
                                                       "text/plain": "0%"})
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1\nex = ablation_explorer(rows)  # changed",
                                  outputs=[nbformat.v4.new_output(
                                      "execute_result", data={view: {"model_id": "gone"},
                                                              "text/plain": "VBox()"})]),
        nbformat.v4.new_code_cell("train()", outputs=[out]),
        nbformat.v4.new_code_cell("w", outputs=[nbformat.v4.new_output(
            "display_data", data={view: {"model_id": "unknown"}, "text/plain": "Slider()"})]),
    ]
    page, has_explorer = builder.prepare_notebook(nb, lambda: "<div>EXPLORER</div>")
    assert has_explorer and "widgets" not in page.metadata and "widgets" in nb.metadata
    assert page.cells[0].outputs[0].data == {"text/html": "<div>EXPLORER</div>"}
    drawn = page.cells[1].outputs[0].data["text/html"]
    assert "run: 100%" in drawn and '<progress value="5.0" max="5.0">' in drawn
    assert page.cells[2].outputs[0].data == {"text/plain": "Slider()"}


def test_links_to_repository_files_are_copied_and_missing_ones_unlinked(builder,
                                                                       tmp_path) -> None:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "r.json").write_text("{}")
    nb = root / "notebooks" / "00_a.ipynb"
    nb.write_text("{}")
    out = tmp_path / "site"
    linker = builder.Linker(root, out, {nb.resolve(): "00_a.html"})
    page = builder.Page("p.html", "p")
    body = ('<a href="00_a.ipynb#Top">a</a> <a href="../benchmarks/r.json">r</a> '
            '<a href="nope.py">n</a> <a href="https://example.org">e</a> <a href="#x">x</a>')
    text = linker.rewrite(body, root / "notebooks", page)
    assert 'href="00_a.html#Top"' in text and 'href="files/benchmarks/r.json"' in text
    assert (out / "files" / "benchmarks" / "r.json").is_file()
    assert '<span class="missing-link">n</span>' in text and "nope.py" not in text
    assert 'href="https://example.org"' in text and 'href="#x"' in text
    assert page.warnings == ["p.html: link to a missing file 'nope.py'"]


# ---------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def browser():
    missing = None
    if not Path(CHROMIUM).is_file() and not shutil.which(CHROMIUM):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    else:
        try:
            import playwright.sync_api as playwright_api
        except ImportError:
            missing = "playwright is not installed (pip install -r requirements.txt)"
    if missing:
        if os.environ.get("VMTLIB_REQUIRE_BROWSER") == "1":  # set by .ci/run
            pytest.fail(missing)
        pytest.skip(missing)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                    timeout=PAGE_TIMEOUT_MS)
        yield browser
        browser.close()


class Watched:
    """A page with its console errors, uncaught exceptions, failed and off-site requests."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.context.route(lambda url: not url.startswith(("file:", "data:")), self._offsite)
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(
            f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))

    def _offsite(self, route) -> None:
        self.problems.append(f"off-site request: {route.request.url}")
        route.abort()

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise"
                                    " && document.readyState === 'complete'")
        self.page.evaluate("MathJax.startup.promise")

    def close(self) -> None:
        self.context.close()


def test_every_page_loads_cleanly_in_chromium(site: Path, browser) -> None:
    shots = os.environ.get("VMTLIB_SCREENSHOTS")
    watched = Watched(browser)
    try:
        for path in sorted(site.glob("*.html")):
            watched.open(path)
            images = watched.page.evaluate(
                "Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0,"
                " i.src.slice(0, 40)])")
            assert all(ok for ok, _ in images), (path.name, [s for ok, s in images if not ok])
            links = watched.page.evaluate("Array.from(document.links).map(a => a.href)")
            for url in links:
                parts = urlsplit(url)
                if parts.scheme == "file":
                    assert Path(unquote(parts.path)).is_file(), (path.name, url)
            assert watched.problems == [], path.name
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                watched.page.screenshot(path=str(Path(shots) / f"{path.stem}.png"))
    finally:
        watched.close()


def test_equations_are_typeset(site: Path, browser) -> None:
    watched = Watched(browser)
    try:
        watched.open(next(site.glob("09_*.html")))
        counts = watched.page.evaluate(
            "[document.querySelectorAll('mjx-container svg').length,"
            " document.querySelectorAll('mjx-container[display=\"true\"]').length,"
            " document.querySelectorAll('mjx-merror').length]")
        assert counts[0] >= 10 and counts[1] >= 1 and counts[2] == 0, counts
        prose = watched.page.evaluate(
            "Array.from(document.querySelectorAll('.jp-MarkdownOutput'))"
            ".map(e => e.innerText).join(' ')")
        assert "$\\rho$" not in prose and "\\frac" not in prose
        assert watched.problems == []
    finally:
        watched.close()


def test_moving_the_rho_slider_changes_the_shown_count(site: Path, browser) -> None:
    page_path = next(site.glob("09_*.html"))
    data = json.loads(re.search(r'class="vmt-data"[^>]*>(.*?)</script>', page_path.read_text(),
                                re.S).group(1).replace("<\\/", "</"))
    watched = Watched(browser)
    try:
        watched.open(page_path)
        page = watched.page
        count, info = page.locator(".vmt-count"), page.locator(".vmt-info")
        rho = page.locator('input[type="range"][data-kind="rho"]')
        start = data["settings"][f"rho={data['start']['rho']}"]
        assert count.inner_text() == f"{start['encoder']:,}"
        rho.focus()
        page.keyboard.press("ArrowRight")  # rho 4 -> 8
        nxt = data["settings"]["rho=8"]
        assert count.inner_text() == f"{nxt['encoder']:,}" != f"{start['encoder']:,}"
        assert info.inner_text() == nxt["text"]
        assert page.locator('output[data-kind="rho"]').inner_text() == "8"
        page.keyboard.press("Home")  # rho = 1
        assert count.inner_text() == f"{data['settings']['rho=1']['encoder']:,}"
        assert page.locator('input[data-kind="m"]').is_disabled()
        page.locator('input[name="vmt-kind"][value="m"]').check()
        assert rho.is_disabled()
        assert count.inner_text() == f"{data['settings']['m=3']['encoder']:,}"
        page.locator('input[data-kind="m"]').focus()
        page.keyboard.press("End")  # m = 12
        assert info.inner_text() == data["settings"]["m=12"]["text"]
        assert watched.problems == []
    finally:
        watched.close()

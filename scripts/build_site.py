"""Build the course website from the committed notebooks (``make site``).

Usage: ``python scripts/build_site.py [--out build/site]``

Nothing is executed: the notebooks' committed outputs are the content. The site has
a landing page (the README's opening: what the course is, the commands, the table of
notebooks), one page per notebook in course order with a navigation and previous /
next links, one page for the rest of the README (the library, the results tables and
whatever section it gains), one page per other top-level Markdown file, and one page
of the result tables in ``benchmarks/results/*.md``. Everything is found by globbing
and by headings, so re-executed notebooks and regenerated results rebuild as they are.

It works offline: MathJax 3 is served from the build (copied from the PyPI package
``django-static-mathjax``), the notebooks' styles are JupyterLab's own (nbconvert's
``lab`` template) in one local file, figures are embedded, and no page has a
``<script>``, ``<link>`` or ``<img>`` pointing to http(s). A relative link to a
repository file that is not a page (a results file, a script) is copied under
``files/``; a link to a file that does not exist is turned into plain text, with a
warning.

Notebook 09's rho / m explorer becomes a small page-side interactive: the output of
the cell that calls ``ablation_explorer(`` is replaced with sliders and a table of what
the widget's callbacks return for every setting (:func:`vmtlib.explorer.explorer_table`),
so the numbers have one source. Other widgets (tqdm's progress bars) are drawn from
their saved state.

Why a builder of our own instead of a site generator: nbconvert (installed with
JupyterLab) already turns a notebook into HTML with JupyterLab's look; what is left is
a navigation, a landing page and copying assets, the few hundred lines below.
MkDocs + mkdocs-jupyter and Sphinx + myst-nb / nbsphinx each add a dozen packages and
load MathJax, require.js or the widget manager from CDNs by default, which we would
switch off one setting at a time, and neither shows the explorer without a kernel.
The only addition to requirements.txt for the build is ``django-static-mathjax``
(MathJax 3.2 as plain files, no dependencies).
"""

import argparse
import copy
import html
import json
import re
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "site_assets"
SITE_TITLE = "vmtlib: the course"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
EXPLORER_CALL = "ablation_explorer("
MATHJAX_BUNDLE = "tex-svg.js"
# The README section that holds the table of notebooks ends the landing page.
NOTEBOOK_LINK = re.compile(r"\]\(notebooks/\d\d_[^)]*\.ipynb\)")


@dataclass
class Page:
    """One page of the site: ``slug`` is its file name, ``body`` its HTML content."""

    slug: str
    title: str
    body: str = ""
    source: Path | None = None
    explorer: bool = False
    nav: bool = True
    warnings: list[str] = field(default_factory=list)


def notebook_paths(root: Path = ROOT) -> list[Path]:
    """The course's notebooks in course order (``notebooks/NN_*.ipynb``)."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The first ``# `` heading of the notebook's first markdown cell, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, re.M)
            return match.group(1).strip() if match else fallback
    return fallback


def plain_title(title: str) -> str:
    """A heading as plain text for ``<title>``: ``$\\rho$`` becomes ``rho``."""
    return re.sub(r"[$\\`*]", "", title)


# ---------------------------------------------------------------------------------------
# Widgets: the explorer, and static drawings of the others from their saved state


def explorer_html(table: dict[str, Any]) -> str:
    """The page-side explorer for :func:`vmtlib.explorer.explorer_table`'s ``table``:
    radio buttons for the method, one range slider per kind, the selected setting's
    trainable encoder count and the callback's text; ``assets/explorer.js`` wires them.
    Without JavaScript it shows the starting setting."""
    from vmtlib.explorer import setting_id

    start = table["start"]
    first = table["settings"][setting_id(start["kind"], start[start["kind"]])]
    kinds, sliders = [], []
    for k in table["kinds"]:
        kind, values = k["kind"], k["values"]
        checked = " checked" if kind == start["kind"] else ""
        kinds.append(f'<label><input type="radio" name="vmt-kind" value="{kind}"{checked}> '
                     f"{html.escape(k['label'])}</label>")
        disabled = "" if kind == start["kind"] else " disabled"
        sliders.append(
            f'<label class="vmt-slider">{html.escape(k["symbol"])} <input type="range" '
            f'data-kind="{kind}" min="0" max="{len(values) - 1}" step="1" '
            f'value="{values.index(start[kind])}" aria-label="{html.escape(k["symbol"])}"'
            f'{disabled}> <output data-kind="{kind}">{start[kind]}</output></label>')
    data = json.dumps(table, ensure_ascii=False).replace("</", "<\\/")
    return (
        '<div class="vmt-explorer" data-vmt-explorer>\n'
        f'<p class="vmt-status"><i>{html.escape(table["status"])}</i></p>\n'
        f'<div class="vmt-kinds">{" ".join(kinds)}</div>\n'
        f'<div class="vmt-sliders">{" ".join(sliders)}</div>\n'
        f'<p class="vmt-count-line">trainable encoder parameters on {table["backbone"]}: '
        f'<output class="vmt-count">{first["encoder"]:,}</output></p>\n'
        f'<pre class="vmt-info">{html.escape(first["text"])}</pre>\n'
        '<p class="vmt-note">In the notebook a button trains the selected setting now; '
        "that needs a running kernel (open the notebook in Jupyter).</p>\n"
        f'<script type="application/json" class="vmt-data">{data}</script>\n</div>')


def widget_html(model_id: str, state: dict[str, Any]) -> str | None:
    """A static drawing of a saved widget (boxes, HTML and labels, progress bars, as
    tqdm draws them); ``None`` when the state lacks it or holds another kind."""
    model = state.get(model_id)
    if model is None:
        return None
    name, s = model.get("model_name", ""), model.get("state", {})
    if name.endswith("BoxModel"):
        parts = [widget_html(c.removeprefix("IPY_MODEL_"), state) for c in s.get("children", [])]
        if any(p is None for p in parts):
            return None
        return f'<div class="widget-box">{"".join(parts)}</div>'
    if name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        value = s.get("value", "")
        return f'<span>{value if name != "LabelModel" else html.escape(value)}</span>'
    if name in ("FloatProgressModel", "IntProgressModel"):
        return f'<progress value="{s.get("value", 0)}" max="{s.get("max", 100)}"></progress>'
    return None


def prepare_notebook(nb: nbformat.NotebookNode,
                     explorer: Callable[[], str]) -> tuple[nbformat.NotebookNode, bool]:
    """A copy of ``nb`` for the page: widget views replaced by the explorer (in a cell that
    calls ``ablation_explorer(``) or by static drawings, the widget state dropped.
    Returns the copy and whether it holds the explorer."""
    nb = copy.deepcopy(nb)
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    has_explorer = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            if EXPLORER_CALL in cell.source:
                drawn, has_explorer = explorer(), True
            else:
                drawn = widget_html(view.get("model_id", ""), state)
            data = {k: v for k, v in out.data.items() if k != WIDGET_VIEW}
            if drawn is not None:
                data = {"text/html": drawn}
            if data:
                out = copy.deepcopy(out)
                out.data = nbformat.from_dict(data)
                outputs.append(out)
        cell.outputs = outputs
    return nb, has_explorer


# ---------------------------------------------------------------------------------------
# Markdown files


def split_readme(text: str) -> tuple[str, str]:
    """The README's opening (up to and with the section holding the table of notebooks)
    and the rest; headings inside code fences do not count."""
    lines = text.splitlines(keepends=True)
    starts, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            starts.append(i)
    starts.append(len(lines))
    for a, b in zip(starts, starts[1:]):
        if NOTEBOOK_LINK.search("".join(lines[a:b])):
            return "".join(lines[:b]), "".join(lines[b:])
    raise ValueError("README.md: no section links to notebooks/NN_*.ipynb "
                     "(the landing page ends with the table of notebooks)")


def markdown_to_html(text: str) -> str:
    """Markdown as nbconvert renders a markdown cell (math left for MathJax)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


# ---------------------------------------------------------------------------------------
# Links


class Linker:
    """Rewrites relative ``href`` / ``src`` of a page: notebooks and Markdown files become
    their pages, other repository files are copied under ``files/``, missing ones become
    plain text (with a warning on the page)."""

    ATTR = re.compile(r'\b(href|src)="([^"]*)"')
    ANCHOR = re.compile(r'<a\b[^>]*\bhref="([^"]*)"[^>]*>(.*?)</a>', re.S)

    def __init__(self, root: Path, out: Path, pages_by_source: dict[Path, str]) -> None:
        self.root, self.out, self.pages = root.resolve(), out, pages_by_source

    def target(self, url: str, base: Path) -> str | None:
        """The site URL for ``url`` written in a file of folder ``base``; ``url`` itself
        for external, fragment and data URLs; ``None`` when it points nowhere."""
        if not url or re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", url, re.I):
            return url
        path, _, fragment = url.partition("#")
        resolved = (base / path).resolve()
        suffix = f"#{fragment}" if fragment else ""
        if resolved in self.pages:
            return self.pages[resolved] + suffix
        if resolved.is_file() and resolved.is_relative_to(self.root):
            rel = resolved.relative_to(self.root)
            dest = self.out / "files" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(resolved, dest)
            return f"files/{rel.as_posix()}{suffix}"
        return None

    def rewrite(self, body: str, base: Path, page: Page) -> str:
        def anchor(m: re.Match) -> str:
            if self.target(html.unescape(m.group(1)), base) is None:
                page.warnings.append(f"{page.slug}: link to a missing file {m.group(1)!r}")
                return f'<span class="missing-link">{m.group(2)}</span>'
            return m.group(0)

        def attr(m: re.Match) -> str:
            url = self.target(html.unescape(m.group(2)), base)
            if url is None:
                page.warnings.append(f"{page.slug}: {m.group(1)} of a missing file {m.group(2)!r}")
                url = ""
            return f'{m.group(1)}="{html.escape(url)}"'

        return self.ATTR.sub(attr, self.ANCHOR.sub(anchor, body))


# ---------------------------------------------------------------------------------------
# The build


def notebook_css(exporter: Any, pygments_css: str) -> str:
    """JupyterLab's notebook styles as nbconvert's ``lab`` template inlines them."""
    for folder in exporter.template_paths:
        index = Path(folder) / "static" / "index.css"
        theme = Path(folder) / "static" / "theme-light.css"
        if index.is_file() and theme.is_file():
            return "\n".join([index.read_text(), theme.read_text(), pygments_css])
    raise FileNotFoundError("nbconvert's lab template (static/index.css) was not found")


def copy_mathjax(dest: Path) -> None:
    """MathJax 3 (``tex-svg.js``: TeX input, SVG output, its fonts inside, so nothing is
    fetched, not even from ``file://``) with the TeX extensions it loads on demand and its
    menu, from the PyPI package ``django-static-mathjax`` (plain files; Django is not
    needed); the speech rule engine and the other bundles are left out."""
    try:
        import mathjax
    except ImportError as err:
        raise SystemExit("MathJax is missing (django-static-mathjax): "
                         "pip install -r requirements.txt") from err
    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(es5 / MATHJAX_BUNDLE, dest / MATHJAX_BUNDLE)
    for folder in ("input", "ui", "a11y"):
        shutil.copytree(es5 / folder, dest / folder, dirs_exist_ok=True)


def build_site(out: Path, root: Path = ROOT, log: Callable[[str], None] = print) -> list[Page]:
    """Write the site into ``out`` (emptied first) and return its pages."""
    from nbconvert import HTMLExporter

    from vmtlib.explorer import explorer_table

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    readme = (root / "README.md").read_text()
    opening, rest = split_readme(readme)
    course = re.search(r"^#\s+(.+)$", opening, re.M)

    home = Page("index.html", "Home", source=root / "README.md")
    nb_pages = []
    for path in notebook_paths(root):
        nb = nbformat.read(path, as_version=4)
        nb_pages.append(Page(f"{path.stem}.html", notebook_title(nb, path.stem), source=path))
    library = Page("library.html", "The library and the results")
    others = [Page(f"{p.stem.lower()}.html", p.stem.replace("_", " ").capitalize(), source=p)
              for p in sorted(root.glob("*.md")) if p.name != "README.md"]
    results = sorted((root / "benchmarks" / "results").glob("*.md"))
    tables = Page("results.html", "Results files")
    pages = [home, *nb_pages, library, *others] + ([tables] if results else [])
    linker = Linker(root, out, {p.source.resolve(): p.slug for p in pages
                                if p.source is not None})

    home.body = markdown_to_html(opening)
    library.body = f"<h1>{library.title}</h1>\n{markdown_to_html(rest)}"
    for page in others:
        page.body = markdown_to_html(page.source.read_text())
    tables.body = f"<h1>{tables.title}</h1>\n" + "\n".join(
        linker.rewrite(f'<h2 id="{p.stem}">{p.name}</h2>\n<p>From <a href="{p.name}"><code>'
                       f"{p.relative_to(root)}</code></a>.</p>\n{markdown_to_html(p.read_text())}",
                       p.parent, tables)
        for p in results)
    for page in (home, library, *others):
        page.body = linker.rewrite(page.body, root, page)
    for page in (home, library, *others, tables):
        page.body = f'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown">{page.body}</div>'

    table: dict[str, Any] = {}

    def explorer() -> str:
        if not table:
            table.update(explorer_table(root / "benchmarks" / "results" / "ablation.json",
                                        shown_path="benchmarks/results/ablation.json"))
        return explorer_html(table)

    exporter = HTMLExporter(template_name="lab", template_file="base.html.j2")
    pygments = ""
    for page in nb_pages:
        log(f"[site] {page.source.name}")
        nb, page.explorer = prepare_notebook(nbformat.read(page.source, as_version=4), explorer)
        body, resources = exporter.from_notebook_node(nb)
        pygments = pygments or "\n".join(resources.get("inlining", {}).get("css", []))
        page.body = linker.rewrite(body, page.source.parent, page)
    if not any(p.explorer for p in nb_pages):
        warnings.warn(f"no notebook cell calls {EXPLORER_CALL}: the site has no explorer",
                      stacklevel=1)

    (out / "assets" / "notebook.css").write_text(notebook_css(exporter, pygments))
    for name in ("site.css", "explorer.js"):
        shutil.copyfile(ASSETS / name, out / "assets" / name)
    copy_mathjax(out / "assets" / "mathjax")

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS), autoescape=False)
    layout = env.get_template("layout.html.j2")
    nav = [p for p in pages if p.nav]
    for i, page in enumerate(nav):
        html_text = layout.render(
            site_title=SITE_TITLE, course_title=course.group(1) if course else SITE_TITLE,
            page=page, plain_title=plain_title(page.title), nav=nav,
            prev=nav[i - 1] if i > 0 else None, next=nav[i + 1] if i + 1 < len(nav) else None,
            mathjax=f"assets/mathjax/{MATHJAX_BUNDLE}")
        (out / page.slug).write_text(html_text)
        for w in page.warnings:
            log(f"[site] warning: {w}")
    log(f"[site] {len(nav)} pages in {out}")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    args = parser.parse_args(argv)
    build_site(args.out)
    print(f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

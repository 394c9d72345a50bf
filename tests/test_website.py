"""The website as its readers meet it: the book built with the smoke profile, served on localhost and
opened page by page in headless Chromium.

Checks: the build has no warnings (-W -n --keep-going); every chapter page shows its figures (each image
loads with a non-zero natural size) and no error output; the next/previous links walk the table of
contents in order and every sidebar link resolves; search finds pages for "parity". A screenshot of every
page is saved (the folder is printed; LDRKIT_SCREENSHOTS overrides it).

The build is conftest.smoke_book (tests/smoke_book.py: nbmake executes every chapter notebook once, the site is
built from those executed notebooks without executing again, in a fresh temporary folder, once per test run and
shared with tests/test_chapters.py); LDRKIT_SMOKE_BUILD=DIR reuses a finished smoke build (DIR/_build/html).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest
import yaml

from browser import Browser, find_chromium
from test_chapters import toc_files

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (install the Debian package "
                                "`chromium`; .ci/run does this)")


TOC = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
_REPO = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
COLAB = ("https://colab.research.google.com/github/" + _REPO["url"].removeprefix("https://github.com/").strip("/")
         + f"/blob/{_REPO['branch']}/" + "{doc}.ipynb")
EXECUTABLE = {f for f in TOC if "kernelspec" in (ROOT / f"{f}.md").read_text()[:400]}


@pytest.fixture(scope="module")
def site(smoke_book):
    """The smoke build's site (conftest.smoke_book, shared with tests/test_chapters.py), served on localhost."""
    log = smoke_book.log
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    assert smoke_book.returncode == 0, "the book does not build cleanly:\n" + "\n".join(warnings[:40]) + log[-3000:]
    html = smoke_book.html
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = _QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield html, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the browser cancels requests when it navigates away
        pass


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    b = Browser(CHROMIUM, Path(profile))
    yield b
    b.close()


@pytest.fixture(scope="module")
def shots():
    folder = Path(os.environ.get("LDRKIT_SCREENSHOTS", ROOT / "_build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def page_url(base: str, docname: str) -> str:
    return urljoin(base, f"{docname}.html")


def resolves(url: str) -> bool:
    try:
        with urllib.request.urlopen(urldefrag(url)[0], timeout=10) as r:
            return r.status == 200
    except urllib.error.URLError:
        return False


PAGE_REPORT = """(async () => {
  const main = document.querySelector('main') || document.body;
  const imgs = [...main.querySelectorAll('img')];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const href = sel => { const a = document.querySelector(sel); return a ? a.href : null; };
  return {
    title: document.title,
    images: imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight})),
    outputs: [...main.querySelectorAll('.cell_output img')].length,
    figures: [...main.querySelectorAll('figure')].map(f => (f.querySelector('figcaption') || {}).textContent || ''),
    errors: main.querySelectorAll('.output.error, .output.traceback, .traceback').length,
    prev: href('a.left-prev'), next: href('a.right-next'),
    sidebar: [...document.querySelectorAll('.bd-sidebar-primary a.reference.internal')].map(a => a.href),
    colab: [...document.querySelectorAll('a')].map(a => a.href).filter(h => h.includes('colab.research.google.com')),
  };
})()"""


def test_every_page_shows_its_figures_and_the_navigation_walks_the_book(site, browser, shots):
    html, base = site
    browser.goto(page_url(base, TOC[0]))
    visited, reports = [], {}
    while True:
        here = browser.evaluate("location.pathname").lstrip("/").removesuffix(".html")
        visited.append(here)
        report = reports[here] = browser.evaluate(PAGE_REPORT)
        browser.screenshot(shots / f"{here.replace('/', '_')}.png")
        if here in EXECUTABLE and report["outputs"]:  # a second screenshot, scrolled to the first figure
            browser.evaluate("new Promise(r => { document.querySelector('main .cell_output img')"
                             ".scrollIntoView({block: 'center'}); requestAnimationFrame(() => requestAnimationFrame(r)); })")
            browser.screenshot(shots / f"{here.replace('/', '_')}-figure.png")
        if not report["next"] or len(visited) > len(TOC) + 2:
            break
        browser.click_and_wait("a.right-next")
    # the next links go through the table of contents in order (then maybe a generated page, e.g. genindex)
    assert visited[:len(TOC)] == TOC, f"next-link walk {visited} differs from _toc.yml {TOC}"
    for i, doc in enumerate(TOC):
        r = reports[doc]
        if i > 0:
            assert r["prev"] and urldefrag(r["prev"])[0] == page_url(base, TOC[i - 1]), (doc, r["prev"])
        missing = {page_url(base, d) for d in TOC[1:]} - {urldefrag(h)[0] for h in r["sidebar"]}
        assert not missing, f"{doc}: sidebar lacks {missing}"
        broken = [h for h in set(r["sidebar"]) if not resolves(h)]
        assert not broken, f"{doc}: sidebar links that do not resolve: {broken}"
        assert r["errors"] == 0, f"{doc}: {r['errors']} error output cells"
        bad = [im["src"] for im in r["images"] if im["w"] == 0 or im["h"] == 0]
        assert not bad, f"{doc}: images that did not load: {bad}"
        if doc in EXECUTABLE:
            assert r["outputs"], f"{doc}: a chapter page with no figure"
            # numbered figures whose captions name the paper's figure they reproduce (or say there is none)
            assert r["figures"], f"{doc}: no captioned figure"
            for caption in r["figures"]:
                assert re.match(r"\s*Fig\. \d+(\.\d+)*", caption), f"{doc}: an unnumbered figure: {caption[:80]}"
                assert "paper" in caption, f"{doc}: a caption that does not name the paper's figure: {caption[:80]}"
            # the Colab button opens this chapter's generated notebook in the repository
            assert COLAB.format(doc=doc) in r["colab"], f"{doc}: Colab links {r['colab']}"
            assert (ROOT / f"{doc}.ipynb").exists(), f"{doc}.ipynb is missing: run `make notebooks`"
    print("figures per page:", {d: reports[d]["outputs"] for d in TOC})


def test_search_finds_parity(site, browser, shots):
    html, base = site
    browser.goto(urljoin(base, "search.html?q=parity"))
    deadline = time.monotonic() + 30
    hits = []
    while time.monotonic() < deadline:
        hits = browser.evaluate("[...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href)")
        if hits:
            break
        time.sleep(0.25)
    browser.screenshot(shots / "search-parity.png")
    assert hits, "search.html?q=parity returned no results"
    assert any(urldefrag(h)[0] == page_url(base, "book/parity-mlp") for h in hits), hits
    assert all(resolves(h) for h in hits)


# --- offline: math, tables and interactive figures ---------------------------------------------------------

LOCAL = ("http://127.0.0.1:", "http://localhost:", "data:", "blob:", "about:")
INTERACTIVE_CALL = re.compile(r"(?<![\w.])interactive\.(saliency_explorer|training_explorer|k_explorer)\(")


def shown_code(docname: str) -> list[str]:
    """The chapter's code cells whose outputs the page shows (not tagged remove-output / remove-cell)."""
    import jupytext

    cells = jupytext.read(ROOT / f"{docname}.md").cells
    return [c.source for c in cells if c.cell_type == "code"
            and not {"remove-output", "remove-cell"} & set(c.get("metadata", {}).get("tags", []))]


def expected_tables(executed: Path) -> int:
    """Tables the chapter's kernel made, from the executed notebook: every shown output that is an HTML table
    (a DataFrame or Styler from ldrkit.analysis.tables.table) or a Markdown table (which must render as one too)."""
    import jupytext

    count = 0
    for cell in jupytext.read(executed).cells:
        if cell.cell_type != "code" or {"remove-output", "remove-cell"} & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            count += "<table" in data.get("text/html", "") or bool(re.search(r"\|\s*:?-{3,}", data.get("text/markdown", "")))
    return count


def expected_figures(docname: str) -> int:
    return sum(len(INTERACTIVE_CALL.findall(src)) for src in shown_code(docname))


OFFLINE_REPORT = """(async () => {
  const main = document.querySelector('main') || document.body;
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = [...main.querySelectorAll('.math')];
  const text = main.innerText;
  return {
    mathjax: !!(window.MathJax && MathJax.version), math: math.length,
    typeset: math.filter(m => m.querySelector('mjx-container')).length,
    raw: ['$$', '\\\\(', '\\\\['].filter(s => text.includes(s)),
    tables: main.querySelectorAll('.cell_output table').length,
    pipes: [...main.querySelectorAll('.cell_output p')].filter(p => p.textContent.trim().startsWith('|')).length,
    plotly: main.querySelectorAll('.plotly-graph-div').length,
    drawn: [...main.querySelectorAll('.plotly-graph-div')].filter(d => d._fullLayout).length,
  };
})()"""

# Moves the control of plotly figure i (the last slider: a click on its rail's far end; else the last of a
# row of buttons) and reports whether the drawn data changed and equal the precomputed data of the new position.
MOVE_CONTROL = """(async (i) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const gd = document.querySelectorAll('main .plotly-graph-div')[i];
  gd.scrollIntoView({block: 'center'});
  await sleep(100);
  const snap = () => JSON.stringify(gd.data.map(t => [t.y, t.visible]));
  const before = snap();
  const r = {kind: null};
  const sliders = gd.layout.sliders || [], menus = gd.layout.updatemenus || [];
  if (sliders.length) {
    const k = sliders.length - 1, s = sliders[k], from = s.active || 0, to = from === 0 ? s.steps.length - 1 : 0;
    const rail = gd.querySelectorAll('.slider-rail-touch-rect')[k], box = rail.getBoundingClientRect();
    const x = box.left + (to === 0 ? 2 : box.width - 2), y = box.top + box.height / 2;
    rail.dispatchEvent(new MouseEvent('mousedown', {bubbles: true, clientX: x, clientY: y, view: window, buttons: 1}));
    window.dispatchEvent(new MouseEvent('mouseup', {bubbles: true, clientX: x, clientY: y, view: window}));
    await sleep(400);
    Object.assign(r, {kind: 'slider', from: from, to: to, active: gd.layout.sliders[k].active});
    if (gd._ldrkitViews) {  // the explorer: the view its four sliders index
      const V = gd._ldrkitViews, a = V.start.slice();
      gd.layout.sliders.forEach(t => { a[V.dims.indexOf(t.name)] = t.active || 0; });
      const v = V.views[a.join(',')];
      r.matches = JSON.stringify([gd.data[0].y, gd.data[1].y]) === JSON.stringify([v[0], v[1]]);
    } else {
      const want = s.steps[r.active].args[0].y;
      r.matches = want.every((y, j) => JSON.stringify(gd.data[j].y) === JSON.stringify(y));
    }
  } else if (menus.length) {
    const buttons = gd.querySelectorAll('.updatemenu-button'), last = menus[0].buttons.length - 1;
    buttons[buttons.length - 1].dispatchEvent(new MouseEvent('click', {bubbles: true}));
    await sleep(400);
    Object.assign(r, {kind: 'buttons', to: last, active: gd.layout.updatemenus[0].active});
    r.matches = menus[0].buttons[last].args[0].visible.every((v, j) => gd.data[j].visible === v);
  }
  r.changed = snap() !== before;
  return r;
})"""


def test_pages_work_offline_with_typeset_math_real_tables_and_moving_figures(site, shots, smoke_book):
    """With every host but localhost unresolvable, each page typesets its math with the MathJax the site
    serves, shows as many HTML tables as its code makes, and each interactive figure answers its control."""
    html, base = site
    browser = Browser(CHROMIUM, Path(tempfile.mkdtemp(prefix="chromium-offline-")), offline=True)
    problems, summary = [], {}
    try:
        for doc in [d for d in TOC if (html / f"{d}.html").exists()]:  # a missing page: the walk test says so
            browser.goto(page_url(base, doc))
            r = browser.evaluate(OFFLINE_REPORT)
            summary[doc] = {k: r[k] for k in ("math", "tables", "plotly")}
            if "$" in (ROOT / f"{doc}.md").read_text():
                if not (r["mathjax"] and r["math"] and r["typeset"] == r["math"]):
                    problems.append(f"{doc}: math typeset {r['typeset']} of {r['math']} (MathJax loaded: {r['mathjax']})")
            if r["raw"]:
                problems.append(f"{doc}: raw TeX delimiters left on the page: {r['raw']}")
            if r["pipes"]:
                problems.append(f"{doc}: {r['pipes']} outputs are Markdown tables rendered as text")
            if doc in EXECUTABLE:
                made = expected_tables(smoke_book.executed(doc))
                if r["tables"] != made:
                    problems.append(f"{doc}: {r['tables']} HTML tables, the chapter's outputs hold {made}")
                if r["plotly"] != expected_figures(doc) or r["drawn"] != r["plotly"]:
                    problems.append(f"{doc}: {r['drawn']} of {r['plotly']} plotly figures drawn, the code makes "
                                    f"{expected_figures(doc)}")
            for i in range(r["plotly"]):
                moved = browser.evaluate(f"{MOVE_CONTROL}({i})")
                browser.screenshot(shots / f"{doc.replace('/', '_')}-interactive-{i}.png")
                if not (moved["kind"] and moved["active"] == moved["to"] and moved["changed"] and moved["matches"]):
                    problems.append(f"{doc}: plotly figure {i} did not answer its control: {moved}")
    finally:
        browser.close()
    outside = sorted({u for u in browser.requests if not u.startswith(LOCAL)})
    print("math / tables / interactive figures per page:", summary)
    assert not outside, f"pages asked for {len(outside)} URLs outside the site: {outside[:10]}"
    assert not problems, "\n".join(problems)


def page_weights(html: Path) -> dict[str, dict]:
    """Bytes a first visit of each page downloads (the HTML and the local scripts, styles and images it
    names; plotly.js only on pages with a figure), raw and gzip-compressed as a server would send them."""
    import gzip

    weights = {}
    for doc in TOC:
        page = html / f"{doc}.html"
        if not page.exists():
            continue
        text = page.read_text()
        refs = {m for m in re.findall(r'(?:src|href)="([^"#?]+)', text)
                if not m.startswith(("http", "mailto", "data:")) and m.endswith((".js", ".css", ".png", ".svg", ".woff2"))}
        files = [page] + [p for p in ((page.parent / m).resolve() for m in refs) if p.is_file()]
        raw = sum(p.stat().st_size for p in files)
        packed = sum(len(gzip.compress(p.read_bytes(), 6)) for p in files)
        weights[doc] = {"KB": round(raw / 1024), "gzip KB": round(packed / 1024)}
    return weights


def test_page_weight_is_reported_and_bounded(site):
    """Page weight per chapter; a page, plotly.js and MathJax included, stays under 4 MB compressed."""
    html, _ = site
    weights = page_weights(html)
    print("page weight (first visit, before fonts MathJax loads on demand):", weights)
    heavy = {d: w for d, w in weights.items() if w["gzip KB"] > 4096}
    assert not heavy, heavy

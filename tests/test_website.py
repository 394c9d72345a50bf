"""The website as its readers meet it: the book built with the smoke profile, served on localhost and
opened page by page in headless Chromium, driven by Playwright (Debian's chromium through `executable_path`: no
browser download).

Checks: the build has no warnings (-W -n --keep-going); every chapter page shows its figures (each image loads
with a non-zero natural size, one caption per figure, alt text from the caption) and no error output; the
next/previous links walk the table of contents in order and every sidebar link resolves; index.html is the front
page itself; search finds pages for "parity"; the Colab button opens the chapter's notebook when the repository
is public, and while it is not no page links to it. Reading checks at 1280 px: no table wider than the text
column, no 0..n row-number column, no console error, no "nan"/"None" in outputs, no step count with decimals, no
output line wider than the column, provenance folded; on a 390 px phone: no page wider than the screen and no
plotly title or control over another. Offline: math typeset by the MathJax the site serves (only the files pages
load are shipped), one HTML table per table the code shows, interactive figures that answer their controls. A
screenshot of every page is saved (the folder is printed; LDRKIT_SCREENSHOTS overrides it).

The build is conftest.smoke_book (tests/smoke_book.py: nbmake executes every chapter notebook once, the site is
built from those executed notebooks without executing again, in a fresh temporary folder, once per test run and
shared with tests/test_chapters.py); LDRKIT_SMOKE_BUILD=DIR reuses a finished smoke build (DIR/_build/html).
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urljoin

import pytest
import yaml

from test_chapters import toc_files

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (install the Debian package "
                                "`chromium`; .ci/run does this)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
PHONE = 390  # px: a phone's screen width (an iPhone 12-15)
DESKTOP = 1280


TOC = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
_REPO = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
PUBLIC = bool(_REPO.get("public"))  # book/_ext/repository.py: the Colab and repository links are on only then
COLAB = ("https://colab.research.google.com/github/" + _REPO["url"].removeprefix("https://github.com/").strip("/")
         + f"/blob/{_REPO['branch']}/" + "{doc}.ipynb")
EXECUTABLE = {f for f in TOC if "kernelspec" in (ROOT / f"{f}.md").read_text()[:400]}
LOCAL = ("http://127.0.0.1:", "http://localhost:", "data:", "blob:", "about:")


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
def chromium():
    """Debian's chromium, headless, driven by Playwright."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                             "--disable-dev-shm-usage"])
        yield browser
        browser.close()


class Tab:
    """One browser tab `width` px wide that records every URL its pages ask for and every console error; offline,
    it answers every request for a host other than localhost with a network error."""

    def __init__(self, browser, width: int = DESKTOP, height: int = 900, offline: bool = False):
        phone = width <= PHONE
        self.context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=phone,
                                           has_touch=phone, device_scale_factor=1)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        if offline:
            self.context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL)
                               else route.abort("namenotresolved"))
        self.page = self.context.new_page()
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"{self.here()}: {msg.text}"))
        self.page.on("pageerror", lambda error: self.errors.append(f"{self.here()}: {error}"))

    def here(self) -> str:
        return self.page.url.split("/", 3)[-1].removesuffix(".html")

    def goto(self, url: str):
        self.page.goto(url, wait_until="load", timeout=60_000)

    def evaluate(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def screenshot(self, path: Path):
        self.page.screenshot(path=str(path))

    def close(self):
        self.context.close()


@pytest.fixture
def tab(chromium):
    t = Tab(chromium)
    yield t
    t.close()


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
  const bare = f => { const c = f.querySelector('figcaption'); if (!c) return '';  // the caption's words, math left out
      const copy = c.cloneNode(true); copy.querySelectorAll('.math, mjx-container, script').forEach(m => m.remove());
      return copy.textContent.replace(/^\\s*Fig\\. [\\d.]+\\s*/, '').trim(); };
  return {
    title: document.title, refresh: !!document.querySelector('meta[http-equiv="Refresh" i]'),
    images: imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight, alt: i.alt,
                            caption: i.closest('figure') ? bare(i.closest('figure')) : null})),
    outputs: [...main.querySelectorAll('.cell_output img')].length,
    figures: [...main.querySelectorAll('figure')].map(f => (f.querySelector('figcaption') || {}).textContent || ''),
    errors: main.querySelectorAll('.output.error, .output.traceback, .traceback').length,
    prev: href('a.left-prev'), next: href('a.right-next'),
    sidebar: [...document.querySelectorAll('.bd-sidebar-primary a.reference.internal')].map(a => a.href),
    colab: [...document.querySelectorAll('a')].map(a => a.href).filter(h => h.includes('colab.research.google.com')),
    repository: [...document.querySelectorAll('a')].map(a => a.href).filter(h => h.startsWith(%s)),
    launch: (document.querySelector('.dropdown-launch-buttons') || {}).textContent || '',
    colab_note: !!main.querySelector('.ldrkit-colab-note'),
  };
})()""" % repr(_REPO["url"])


def made_from(alt: str, caption: str) -> bool:
    """Whether `alt` holds the caption's words in order (the page's caption with its math left out; the alt text
    keeps the math's source)."""
    words = iter(re.findall(r"\w+", alt.lower()))
    return all(any(w == v for v in words) for w in re.findall(r"\w+", caption.lower()))


def test_every_page_shows_its_figures_and_the_navigation_walks_the_book(site, tab, shots):
    html, base = site
    tab.goto(base)  # index.html: the front page itself, not a redirect
    front = tab.evaluate(PAGE_REPORT)
    tab.screenshot(shots / "index.png")
    tab.goto(page_url(base, TOC[0]))
    visited, reports = [], {}
    while True:
        here = tab.here()
        visited.append(here)
        report = reports[here] = tab.evaluate(PAGE_REPORT)
        tab.screenshot(shots / f"{here.replace('/', '_')}.png")
        if here in EXECUTABLE and report["outputs"]:  # a second screenshot, scrolled to the first figure
            tab.evaluate("new Promise(r => { document.querySelector('main .cell_output img')"
                         ".scrollIntoView({block: 'center'}); requestAnimationFrame(() => requestAnimationFrame(r)); })")
            tab.screenshot(shots / f"{here.replace('/', '_')}-figure.png")
        if not report["next"] or len(visited) > len(TOC) + 2:
            break
        with tab.page.expect_navigation(wait_until="load"):
            tab.page.click("a.right-next")
    assert not front["refresh"] and front["title"] == reports[TOC[0]]["title"], "index.html is not the front page"
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
        # alt text: the figure's caption, never the image's file name
        unlabelled = [im["src"] for im in r["images"] if not im["alt"] or re.search(r"\.(png|jpe?g|svg)$|[0-9a-f]{16}", im["alt"])
                      or (im["caption"] is not None and not made_from(im["alt"], im["caption"]))]
        assert not unlabelled, f"{doc}: images whose alt text is not their caption: {unlabelled[:5]}"
        if not PUBLIC:  # no public repository: no link to it, and the pages say so where the links would be
            assert not r["repository"] and not r["colab"], f"{doc}: links to {r['repository'] + r['colab']}"
        if doc in EXECUTABLE:
            assert r["outputs"], f"{doc}: a chapter page with no figure"
            # numbered figures whose captions name the paper's figure they reproduce (or say there is none)
            assert r["figures"], f"{doc}: no captioned figure"
            for caption in r["figures"]:
                assert re.match(r"\s*Fig\. \d+(\.\d+)*", caption), f"{doc}: an unnumbered figure: {caption[:80]}"
                assert "paper" in caption, f"{doc}: a caption that does not name the paper's figure: {caption[:80]}"
            bare = [re.sub(r"^\s*Fig\. [\d.]+\s*", "", c) for c in r["figures"]]
            assert len(set(bare)) == len(bare), f"{doc}: a caption under more than one figure"
            if PUBLIC:  # the Colab button opens this chapter's generated notebook in the repository
                assert COLAB.format(doc=doc) in r["colab"], f"{doc}: Colab links {r['colab']}"
            else:
                assert "no public repository" in r["launch"] and r["colab_note"], f"{doc}: launch menu {r['launch']!r}"
            assert (ROOT / f"{doc}.ipynb").exists(), f"{doc}.ipynb is missing: run `make notebooks`"
    print("figures per page:", {d: reports[d]["outputs"] for d in TOC})


def test_search_finds_parity(site, tab, shots):
    html, base = site
    tab.goto(urljoin(base, "search.html?q=parity"))
    deadline = time.monotonic() + 30
    hits = []
    while time.monotonic() < deadline:
        hits = tab.evaluate("[...document.querySelectorAll('#search-results ul.search li a')].map(a => a.href)")
        if hits:
            break
        time.sleep(0.25)
    tab.screenshot(shots / "search-parity.png")
    assert hits, "search.html?q=parity returned no results"
    assert any(urldefrag(h)[0] == page_url(base, "book/parity-mlp") for h in hits), hits
    assert all(resolves(h) for h in hits)


# --- reading: 1280 px and a phone ------------------------------------------------------------------------------

# What a reader at 1280 px trips over, per page (see the module docstring); each list names the offenders.
READING_REPORT = r"""(() => {
  const main = document.querySelector('main') || document.body || document.documentElement;
  const column = (main.querySelector('article') || main).getBoundingClientRect();
  const text = el => (el.innerText || '').trim().replace(/\s+/g, ' ').slice(0, 80);
  const scroller = el => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(a).overflowX)) return a; } return el; };
  const tables = [...main.querySelectorAll('table')];
  const caption = t => (t.closest('.ldrkit-table') || t).querySelector('.ldrkit-table-caption, caption');
  const cut = c => c && (c.getBoundingClientRect().right > column.right + 1 || c.scrollWidth > c.clientWidth + 1
                         || !['left', 'start'].includes(getComputedStyle(c).textAlign));
  const rangeIndex = t => { const h = t.querySelector('thead th'), rows = [...t.querySelectorAll('tbody tr')];
      return !!h && !h.textContent.trim() && rows.length > 1
             && rows.every((r, i) => (r.cells[0] || {}).textContent.trim() === String(i)); };
  const STEP = /^(?!κ)((\w+ )?(time)?steps?\b(?!\s*\/)|onsets?\b|.*\bonsets?$)/i;  // tables.STEP_COLUMN
  const decimalSteps = [];
  for (const t of tables) {
    const heads = [...t.querySelectorAll('thead th')].map(h => h.textContent.trim());
    for (const r of t.querySelectorAll('tbody tr'))
      [...r.cells].forEach((c, i) => { if (STEP.test(heads[i] || '') && /\d\.\d/.test(c.textContent))
                                         decimalSteps.push(`${heads[i]}: ${c.textContent.trim()}`); });
  }
  const outputs = [...main.querySelectorAll('.cell_output')];
  const shown = outputs.map(o => o.innerText).join('\n');
  for (const m of shown.matchAll(/\b(steps? \d+\.\d+|\d+\.\d+ steps?)\b/gi)) decimalSteps.push(m[0]);
  return {
    wide_tables: tables.filter(t => { const box = scroller(t).getBoundingClientRect();
                                      return box.right > column.right + 1 || box.left < column.left - 1 || cut(caption(t)); })
                       .map(t => text(caption(t) || t)),
    range_index: tables.filter(rangeIndex).map(t => text(caption(t) || t)),
    leaks: [...shown.matchAll(/.{0,40}\b(nan|NaN|None)\b.{0,20}/g)].map(m => m[0]),
    decimal_steps: decimalSteps,
    wide_lines: [...main.querySelectorAll('.cell_output pre')].filter(p => p.scrollWidth > p.clientWidth + 1
                   || p.getBoundingClientRect().right > column.right + 1).map(text),
    provenance: outputs.filter(o => /^Made with/.test(o.innerText.trim()) && o.innerText.split(/\s+/).length > 50)
                       .map(text),
    strips: [...main.querySelectorAll('.cell_output img')].filter(i => i.naturalWidth > 0
                   && i.getBoundingClientRect().height < 120 && i.naturalWidth / i.naturalHeight > 3).map(i => i.alt.slice(0, 60)),
  };
})()"""

# Boxes of each plotly figure's title, subplot titles, legend, menus, sliders and tool bar that overlap one another or stick
# out of the figure, and the page's width, on a phone.
PHONE_REPORT = r"""(() => {
  const box = el => el.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const figures = [...document.querySelectorAll('main .plotly-graph-div')].map((gd, i) => {
    const parts = [...gd.querySelectorAll('.g-gtitle, .annotation, .legend, .updatemenu-container, .slider-container, .modebar')]
      .filter(el => box(el).width > 0).map(el => ({name: el.getAttribute('class').split(' ')[0], r: box(el)}));
    const frame = box(gd), issues = [];
    parts.forEach((a, j) => { parts.slice(j + 1).forEach(b => { if (hit(a.r, b.r)) issues.push(`${a.name} over ${b.name}`); });
                              if (a.r.left < frame.left - 1 || a.r.right > frame.right + 1) issues.push(`${a.name} cut`); });
    return {figure: i, issues: issues};
  });
  return {width: document.documentElement.scrollWidth, plotly: figures.filter(f => f.issues.length)};
})()"""


def test_every_page_reads_well_at_1280_px_and_on_a_phone(site, chromium, shots):
    """At 1280 px: no table wider than the column (a wide one scrolls in its box under a whole caption), no 0..n
    row-number column, no "nan"/"None" in outputs, no step count with decimals, no output line past the column,
    provenance folded, no sample strip squeezed under 120 px, no console error; on a 390 px phone: no page wider
    than the screen, no plotly title or control over another."""
    html, base = site
    desk, phone = Tab(chromium), Tab(chromium, PHONE, 800)
    found, counts = [], {}
    try:
        for doc in ["index", *TOC]:
            desk.goto(page_url(base, doc))
            r = desk.evaluate(READING_REPORT)
            phone.goto(page_url(base, doc))
            p = phone.evaluate(PHONE_REPORT)
            phone.screenshot(shots / f"{doc.replace('/', '_')}-phone.png")
            r["phone_width"] = [p["width"]] if p["width"] > PHONE else []  # a phone widens its layout to fit
            r["plotly_overlaps"] = p["plotly"]
            for key, offenders in r.items():
                counts[key] = counts.get(key, 0) + len(offenders)
                found += [f"{doc}: {key}: {o}" for o in offenders[:3]]
    finally:
        desk.close()
        phone.close()
    counts["console_errors"] = len(desk.errors) + len(phone.errors)
    print("reading problems, all pages:", counts)
    assert not desk.errors and not phone.errors, "console errors:\n" + "\n".join((desk.errors + phone.errors)[:20])
    assert not found, "\n".join(found)


# --- offline: math, tables and interactive figures ---------------------------------------------------------

INTERACTIVE_CALL = re.compile(r"(?<![\w.])interactive\.(saliency_explorer|training_explorer|k_explorer)\(")


def shown_code(docname: str) -> list[str]:
    """The chapter's code cells whose outputs the page shows (not tagged remove-output / remove-cell)."""
    import jupytext

    cells = jupytext.read(ROOT / f"{docname}.md").cells
    return [c.source for c in cells if c.cell_type == "code"
            and not {"remove-output", "remove-cell"} & set(c.get("metadata", {}).get("tags", []))]


def expected_tables(executed: Path) -> int:
    """Tables the chapter's kernel made, from the executed notebook: every shown output that is an HTML table
    (ldrkit.analysis.tables.table) or a Markdown table (which must render as one too)."""
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
MOVE_CONTROL = """async (i) => {
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
}"""


def test_pages_work_offline_with_typeset_math_real_tables_and_moving_figures(site, chromium, shots, smoke_book):
    """With every host but localhost unresolvable, each page typesets its math with the MathJax the site
    serves (which holds the files pages load and no others), shows as many HTML tables as its code makes, and
    each interactive figure answers its control."""
    html, base = site
    tab = Tab(chromium, offline=True)
    problems, summary = [], {}
    try:
        for doc in [d for d in TOC if (html / f"{d}.html").exists()]:  # a missing page: the walk test says so
            tab.goto(page_url(base, doc))
            r = tab.evaluate(OFFLINE_REPORT)
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
                moved = tab.evaluate(MOVE_CONTROL, i)
                tab.screenshot(shots / f"{doc.replace('/', '_')}-interactive-{i}.png")
                if not (moved["kind"] and moved["active"] == moved["to"] and moved["changed"] and moved["matches"]):
                    problems.append(f"{doc}: plotly figure {i} did not answer its control: {moved}")
    finally:
        tab.close()
    outside = sorted({u for u in tab.requests if not u.startswith(LOCAL)})
    print("math / tables / interactive figures per page:", summary)
    assert not outside, f"pages asked for {len(outside)} URLs outside the site: {outside[:10]}"
    assert not problems, "\n".join(problems)
    # MathJax: every file a page asked for is shipped, and every shipped file but the fonts (fetched glyph set by
    # glyph set) was asked for
    mathjax = html / "_static" / "mathjax"
    asked = {u.split("/_static/mathjax/", 1)[1].split("?")[0] for u in tab.requests if "/_static/mathjax/" in u}
    shipped = {str(f.relative_to(mathjax)) for f in mathjax.rglob("*") if f.is_file()}
    print(f"MathJax: {len(asked)} files asked for, {len(shipped)} shipped, "
          f"{sum(f.stat().st_size for f in mathjax.rglob('*') if f.is_file())} bytes")
    assert asked <= shipped, f"pages ask for MathJax files the site lacks: {sorted(asked - shipped)}"
    unused = {f for f in shipped - asked if not f.endswith(".woff")}
    assert not unused, f"{len(unused)} MathJax files shipped that no page loads: {sorted(unused)[:10]}"


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

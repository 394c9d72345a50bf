"""The website as its readers meet it: the book built with the smoke profile, served on localhost and
opened page by page in headless Chromium.

Checks: the build has no warnings (-W -n --keep-going); every chapter page shows its figures (each image
loads with a non-zero natural size) and no error output; the next/previous links walk the table of
contents in order and every sidebar link resolves; search finds pages for "parity". A screenshot of every
page is saved (the folder is printed; LDRKIT_SCREENSHOTS overrides it).

The build is conftest.smoke_book (a fresh temporary --path-output, built once per test run and shared with
tests/test_chapters.py); LDRKIT_SMOKE_BUILD=DIR reuses a finished smoke build (DIR/_build/html).
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
    """The smoke build (conftest.smoke_book, shared with tests/test_chapters.py), served on localhost."""
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

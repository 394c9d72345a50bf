"""Sphinx extension: serve plotly.js from the site itself (no CDN) on the pages that hold a plotly figure.

The chapters' interactive figures (ldrkit.analysis.interactive.WebFigure) leave plotly.js out of their HTML;
this copies plotly.min.js from the installed plotly wheel into _static/ and adds it to the <head> of each page
whose body has a plotly div, so the browser fetches it once and caches it for every other page.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import plotly

SOURCE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
NAME = "plotly.min.js"


def add_to_plotly_pages(app, pagename, templatename, context, doctree):
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(NAME)


def copy_plotly(app, exc):
    if exc is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SOURCE, static / NAME)


def setup(app):
    app.connect("html-page-context", add_to_plotly_pages)
    app.connect("build-finished", copy_plotly)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

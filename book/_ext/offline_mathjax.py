"""Sphinx extension: MathJax 3 served by the site itself, only the files its pages load.

The sphinx-mathjax-offline wheel holds all of MathJax 3.2.2 (24 MB) and its own extension copies it whole. The
pages load `tex-chtml.js` (TeX input, HTML output and the menu in one file) and the CHTML fonts it fetches glyph
set by glyph set; this copies those (1.6 MB) into _static/mathjax and points Sphinx at them. tests/test_website.py
checks that every MathJax file a page asks for is here and that nothing else is.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

SOURCE = Path(importlib.util.find_spec("sphinx-mathjax-offline").submodule_search_locations[0]) / "static" / "mathjax"
FILES = ("tex-chtml.js", "output/chtml/fonts/woff-v2")  # a file or a folder, relative to SOURCE


def copy_mathjax(app, exc):
    if exc is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        shutil.rmtree(target, ignore_errors=True)  # an earlier build's full copy
        for name in FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            if (SOURCE / name).is_dir():
                shutil.copytree(SOURCE / name, target / name)
            else:
                shutil.copyfile(SOURCE / name, target / name)


def setup(app):
    app.config.mathjax_path = "mathjax/tex-chtml.js"
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

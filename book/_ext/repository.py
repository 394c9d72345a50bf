"""Sphinx extension: the book's repository links, all on or all off with one setting.

`repository.url` in _config.yml is the one home of the repository's address: Jupyter Book's repository and Colab
launch buttons read it, the intro's Colab paragraph is made from it here, and tests/test_colab.py checks that every
chapter's first cell (the Colab install line) installs from it. `repository.public` says whether that address has
a public copy of the book. While it is false, no page links to it: the repository and Colab buttons are left out,
a chapter's launch menu and its hidden install cell say that the book has no public repository yet, and so does the
intro. `public: true` turns the buttons, the install cell and the intro's install line on.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from docutils import nodes

NO_REPOSITORY = "this book has no public repository yet"


def repository(srcdir) -> dict:
    """The `repository` block of the book's _config.yml (url, branch, public, ...)."""
    return yaml.safe_load((Path(srcdir) / "_config.yml").read_text()).get("repository", {})


def theme_options(options: dict, public: bool) -> dict:
    """The theme options with the repository button and the launch buttons left out unless the repository is
    public (Jupyter Book fills them from _config.yml's html and launch_buttons)."""
    if public:
        return options
    return {**options, "use_repository_button": False, "launch_buttons": {}}


def colab_text(repo: dict) -> str:
    """The intro's paragraph on Colab, after "**In Colab**," (Markdown)."""
    if repo.get("public"):
        return (f"install the package from the repository in the first cell (`!pip install git+{repo['url']}`, or "
                "your fork), then open a chapter with the rocket button at the top of its page. Chapters run "
                "unchanged there and use a GPU when there is one. Every chapter's first cell does the install for "
                "you, only inside Colab (it is hidden on this website: click it to see it).")
    return (f"there is nothing to open: {NO_REPOSITORY}. Once it has one, `repository.public: true` in "
            "`_config.yml` puts a Colab entry in every chapter's rocket menu, and each chapter's first cell installs "
            "ldrkit from `repository.url` inside Colab; until then, run the chapters locally as above.")


def configure(app, config):
    repo = repository(app.srcdir)
    app.ldrkit_public = bool(repo.get("public"))
    config.html_theme_options = theme_options(dict(config.html_theme_options), app.ldrkit_public)
    config.myst_substitutions = {**(config.myst_substitutions or {}), "colab": colab_text(repo)}


def note_colab_cell(app, doctree):
    """Replace a chapter's hidden Colab install cell with a line that says it has nothing to install from yet."""
    if app.ldrkit_public:
        return
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") == "cell_code" and "google.colab" in cell.astext():
            note = nodes.paragraph(classes=["ldrkit-no-repository"])
            note += nodes.Text(f"Colab: {NO_REPOSITORY}, so this chapter's first cell, which installs ldrkit in Colab "
                               "from ")
            note += nodes.literal(text="repository.url")
            note += nodes.Text(", has nothing to install from; run the chapter locally (see the introduction).")
            cell.replace_self(nodes.container("", note, classes=["cell", "ldrkit-colab-note"]))
            return


def note_launch_button(app, pagename, templatename, context, doctree):
    """Where a chapter's launch (rocket) menu would be, the same menu with one entry that says why it is empty."""
    if app.ldrkit_public or "kernelspec" not in app.env.metadata.get(pagename, {}):
        return
    context["header_buttons"].append({
        "type": "group", "tooltip": "Launch interactive content", "icon": "fas fa-rocket", "label": "launch-buttons",
        "buttons": [{"type": "link", "text": "Colab: no public repository yet",
                     "tooltip": NO_REPOSITORY.capitalize(),
                     "url": context["pathto"]("book/intro") + "#running-the-chapters",
                     "icon": "fas fa-circle-info"}]})


def setup(app):
    app.connect("config-inited", configure)
    app.connect("doctree-read", note_colab_cell)
    app.connect("html-page-context", note_launch_button, priority=502)  # after the theme's buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""
Sphinx configuration of the xmppcomp documentation.

Build (from the top of the checkout, with the docs requirements installed:
C{pip install -r docs/requirements.txt}, or the C{test} extra)::

    sphinx-build -W -b html docs docs/_build/html

The build needs no network. Two optional parts depend on the machine:

  - state diagrams: with Graphviz's C{dot} on C{PATH}, the C{.dot} files of
    C{docs/state-machines/} are rendered as SVG (C{sphinx.ext.graphviz});
    without it (or with C{XMPPCOMP_DOCS_NO_DOT=1} in the environment) each
    C{graphviz} directive shows the C{.dot} source as a code block instead;
  - links into the Python, Twisted and wokkel documentation
    (C{sphinx.ext.intersphinx}) only with C{XMPPCOMP_DOCS_INTERSPHINX=1},
    since they fetch the inventories over the network.

The API reference is built separately by pydoctor: see C{docs/api.md}.
"""

from __future__ import annotations

import os
import shutil

from docutils.parsers.rst import directives

project = "xmppcomp"
author = "the xmppcomp authors"
copyright = "the xmppcomp authors"

try:
    from importlib.metadata import PackageNotFoundError, version as _version

    release = _version("xmppcomp")
except PackageNotFoundError:  # not installed: read the checkout's setup.cfg
    import configparser

    _cfg = configparser.ConfigParser()
    _cfg.read(os.path.join(os.path.dirname(__file__), os.pardir, "setup.cfg"))
    release = _cfg.get("metadata", "version", fallback="unknown")
version = release

#: Whether Graphviz can render the state diagrams on this machine.
HAVE_DOT = shutil.which("dot") is not None and not os.environ.get("XMPPCOMP_DOCS_NO_DOT")

#: Whether to link into other projects' docs (needs the network).
INTERSPHINX = bool(os.environ.get("XMPPCOMP_DOCS_INTERSPHINX"))

extensions = ["myst_parser"]
if HAVE_DOT:
    extensions.append("sphinx.ext.graphviz")
if INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "twisted": ("https://docs.twisted.org/en/stable/api/", None),
    }

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

graphviz_output_format = "svg"

html_theme = "alabaster"
html_title = f"xmppcomp {release}"
html_static_path: list[str] = []
# pygments: the .dot sources and TOML examples.
highlight_language = "none"


def _dotSourceDirective():  # type: ignore[no-untyped-def]
    """
    A stand-in for the C{graphviz} directive, used when C{dot} is missing:
    it shows the file as a C{dot} code block, with its caption.
    """
    from sphinx.directives.code import LiteralInclude

    class DotSource(LiteralInclude):
        has_content = False
        required_arguments = 1
        optional_arguments = 0
        option_spec = {
            "caption": directives.unchanged,
            "alt": directives.unchanged,
            "align": directives.unchanged,
            "layout": directives.unchanged,
            "class": directives.class_option,
            "name": directives.unchanged,
        }

        def run(self):  # type: ignore[no-untyped-def]
            caption = self.options.get("caption")
            self.options = {"language": "dot"}
            if caption:
                self.options["caption"] = caption + " (Graphviz source)"
            return super().run()

    return DotSource


def setup(app):  # type: ignore[no-untyped-def]
    if not HAVE_DOT:
        app.add_directive("graphviz", _dotSourceDirective(), override=True)
    return {"parallel_read_safe": True}

"""Laying out a graph: dot source in, a picture (svg, png, pdf) out.

The one place that runs graphviz's `dot`, or else `graphviz-pure` (a pip-installable port of
dot with the same flags and layouts, but no pdf), for every picture of a graph: viz's
computation graphs and the exercises' drawings alike.
"""

from __future__ import annotations

import shutil
import subprocess

# What to say where neither program is installed: one line, both ways to get one.
INSTALL_HINT = ("graphviz's `dot` program was not found: install it with "
                "`apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS), "
                "or `pip install graphviz-pure` (svg and png only)")


def layout(source: str, fmt: str) -> bytes | None:
    """The picture of dot `source` in `fmt` ("svg", "png" or "pdf"), from graphviz's `dot` or
    else from `graphviz-pure`; None if neither is installed (graphviz-pure draws no pdf), for
    the caller to say INSTALL_HINT in its own way."""
    if shutil.which("dot"):
        import graphviz
        # quiet: dot's warnings (a PNG scaled down to fit) are not the user's to read; the
        # command says what to do about a picture that big (viz.graph.at_png_limit).
        return graphviz.pipe("dot", fmt, source.encode("utf-8"), quiet=True)
    if shutil.which("graphviz-pure") and fmt != "pdf":
        done = subprocess.run(["graphviz-pure", f"-T{fmt}"], input=source.encode("utf-8"),
                              capture_output=True, check=True)
        return done.stdout
    return None

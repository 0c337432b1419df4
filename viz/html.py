"""Self-contained HTML pages: one file that a browser opens from disk, with nothing fetched.

Every page is put together the same way:

    <style>   viz/assets/page.css, then the page kind's own CSS
    <body>    the HTML the page kind writes (tables, inline SVG from graphviz, ...)
    <script type="application/json">   the numbers the page shows (`data`), as JSON
    <script>  viz/assets/page.js (what every page shares), then viz/assets/<kind>.js, which
              reads that JSON and makes the page interactive

The script and the styles are our own (no library, no CDN), and a Content-Security-Policy
forbids the page to load anything at all, so it works offline and shows the same thing
wherever it is opened; of scripts it runs the page's own alone, named by its hash.
`Page.save(path)` writes it; in a Jupyter notebook a Page shows itself inline, inside an
iframe, so its ids and styles cannot clash with the notebook's.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import re
from importlib import resources
from typing import Any, Literal, SupportsFloat

import numpy as np
from numpy.typing import ArrayLike

from tinyformer.files import StrPath, atomic_write

HISTOGRAM_BINS = 16     # bars in the small histogram of a tensor's values
SIGNIFICANT = 6         # digits kept of each number a page embeds


def policy(script: str) -> str:
    """The Content-Security-Policy of a page whose one script is `script` (the exact text
    inside its <script> element). Nothing may be loaded from anywhere: the inline styles apply,
    pictures may come from data: URLs, and of scripts only this one runs, named by its hash.
    So were a name ever to slip into the page as markup, an inline handler in it
    (`<img onerror=...>`) or a script of its own would not run."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            f"img-src data:")


# viridis at eleven even steps (dark violet for 0, yellow for 1), as matplotlib draws it.
VIRIDIS = ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884",
           "#44bf70", "#7ad151", "#bddf26", "#fde725"]


def viridis(t: float) -> str:
    """The colour ("#rrggbb") of `t` in [0, 1] on viridis (clipped), linearly between steps."""
    t = min(max(float(t), 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    a, b = (bytes.fromhex(c[1:]) for c in VIRIDIS[i:i + 2])
    return "#" + "".join(f"{round(x + (y - x) * (t - i)):02x}" for x, y in zip(a, b))


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours ("#rrggbb"), (L1 + 0.05) / (L2 + 0.05) of their
    relative luminances, the lighter's over the darker's: 1 to 21, and 4.5 for reading text."""
    def luminance(colour):
        r, g, b = (c / 255 for c in bytes.fromhex(colour[1:]))
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
                   for c in (r, g, b))
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    lighter, darker = sorted((luminance(a), luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def ink(background: str) -> str:
    """The colour of text on `background` ("#rrggbb"): black or white, whichever contrasts
    more with it; on any background one of them reaches 4.58:1, above the 4.5:1 that reading
    text needs."""
    black, white = contrast(background, "#000000"), contrast(background, "#ffffff")
    return "black" if black >= white else "white"


def asset(name: str) -> str:
    """The text of one of viz's asset files (viz/assets/NAME), shipped with the package."""
    return resources.files("viz").joinpath("assets", name).read_text(encoding="utf-8")


def script_json(data: object) -> str:
    """`data` as JSON that can sit inside a <script> element. Only '<' could end the element
    early (a name such as `</script>`); inside JSON it can only be in a string, where
    \\u003c means the same character."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c")


def number(value: SupportsFloat) -> float | None:
    """A float rounded to SIGNIFICANT digits (JSON has no NaN or infinity: those are None)."""
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT}g}")


def label(value: SupportsFloat) -> str:
    """A number as the graph's pictures write it in their labels, Python's "{:.4g}": 1.235,
    2e-05, 2.346e+04, and nan, inf and -inf as they are."""
    return f"{float(value):.4g}"


def summary(array: ArrayLike | None) -> dict[str, Any] | None:
    """What a page shows of an array: its size, dtype and shape, and over its finite values
    the norm, min, max and mean and a histogram of HISTOGRAM_BINS bars between min and max
    (`lo`, `hi`, `counts`). `nonfinite` counts the NaN and infinite values left out, `nan`
    the NaN among them. `text` is what the panel reads: the norm, min, max and mean of every
    value as the picture's label writes them (`label`: a NaN among them makes them nan, an
    infinity inf), and the histogram's `lo` and `hi`. None for None (a tensor without a
    gradient)."""
    if array is None:
        return None
    array = np.asarray(array)
    values = array.astype(np.float64).ravel()     # ints and bools too; float64 for the norm
    is_finite = np.isfinite(values)
    nonfinite = values.size - int(np.count_nonzero(is_finite))
    # Nearly always every value is finite: then they are the finite ones, not copied, and
    # their norm, min, max and mean are worked out once, not again for the finite ones.
    finite = values[is_finite] if nonfinite else values
    out = {"shape": list(array.shape), "dtype": str(array.dtype), "size": int(values.size),
           "nonfinite": nonfinite, "nan": int(np.isnan(values).sum()) if nonfinite else 0}
    if values.size == 0:
        return out
    # Formatted here, from the exact values: the numbers below are rounded to SIGNIFICANT
    # digits, and rounding those again to 4 gave a last digit other than the picture's (1.7185031
    # is 1.719, but 1.71850 rounds to 1.718), and JSON holds no nan or inf to write.
    with np.errstate(invalid="ignore", over="ignore"):      # the mean of -inf and inf is nan
        norm, low, high, mean = (np.linalg.norm(values), values.min(), values.max(),
                                 values.mean())
    out["text"] = {"norm": label(norm), "min": label(low), "max": label(high),
                   "mean": label(mean)}
    if finite.size == 0:
        return out
    if nonfinite:                       # the rest is of the finite values alone
        norm, low, high, mean = (np.linalg.norm(finite), finite.min(), finite.max(),
                                 finite.mean())
    # A constant array gets one bar in the middle of a range of width 1.
    edges = (low, high) if high > low else (low - 0.5, high + 0.5)
    with np.errstate(over="ignore", invalid="ignore"):
        bars = np.linspace(*edges, HISTOGRAM_BINS + 1)
    if np.isfinite(bars).all() and (np.diff(bars) > 0).all():
        counts, _ = np.histogram(finite, bins=HISTOGRAM_BINS, range=edges)
    else:
        # numpy cannot split a range a few steps of the float's precision wide (float64's
        # 0.1 + 0.2 and 0.3), nor one wider than the largest float (-1e308 to 1e308): it
        # raised, and the page was not written. Each value is binned by its place between
        # low and high instead, worked out in halves, which neither overflows nor rounds the
        # few steps between close values away (their difference is exact).
        # A constant array too large for 0.5 to widen its range (1e20 - 0.5 is 1e20) was
        # 0 / 0 here, NaN, and its bars empty: it goes in the middle bar, as a smaller one.
        if high > low:
            place = (finite / 2 - low / 2) / (high / 2 - low / 2)            # in [0, 1]
        else:
            place = np.full(finite.shape, 0.5)
        counts, _ = np.histogram(place, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    out.update(norm=number(norm), min=number(low), max=number(high), mean=number(mean),
               hist={"lo": number(edges[0]), "hi": number(edges[1]),
                     "counts": [int(c) for c in counts]})
    out["text"].update(lo=label(edges[0]), hi=label(edges[1]))
    return out


def page(title: str, kind: Literal["graph", "attention", "lens", "report"], body: str,
         data: dict[str, Any]) -> str:
    """The HTML text of a page of `kind` (which names its assets): `body` is HTML (already
    escaped), `data` what the page's script reads, as JSON."""
    script = f"\n{asset('page.js')}\n{asset(kind + '.js')}\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy(script)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="tinyformer">
<title>{html.escape(title)}</title>
<style>
{asset("page.css")}
{asset(kind + ".css")}
</style>
</head>
<body class="{kind}">
{body}
<script id="page-data" type="application/json">{script_json(data)}</script>
<script>{script}</script>
</body>
</html>
"""


# A code point of a UTF-16 surrogate: in a Python string it stands alone (a byte of a file
# name that is not UTF-8, a "\ud800" escape read from JSON), and UTF-8 cannot encode it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Page:
    """A finished page: `html` is its text; `save(path)` writes it; a notebook shows it.
    A lone surrogate anywhere in the text (a name, a token) is shown as U+FFFD, as a browser
    shows a bad byte, instead of failing to write."""

    def __init__(self, text: str, title: str) -> None:
        self.html = LONE_SURROGATE.sub("\ufffd", text)
        self.title = LONE_SURROGATE.sub("\ufffd", title)

    def save(self, path: StrPath) -> StrPath:
        """Write the page to `path`, atomically (a failure leaves no half-written file).
        Returns the path."""
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(self.html)
        return path

    def _repr_html_(self):
        # An iframe keeps the page's ids, styles and scripts apart from the notebook's.
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                f'title="{html.escape(self.title, quote=True)}" '
                f'style="width: 100%; height: 640px; border: 1px solid #ccc"></iframe>')

    def __repr__(self) -> str:
        return f"<Page {self.title!r}: {len(self.html.encode('utf-8')):,} bytes>"

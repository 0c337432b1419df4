"""The attention page: every layer and head of a model on one prompt, in one HTML file.

    maps = attention_maps(model, tokenizer, prompt, kind)     # viz.attention
    attention_page(maps, "my run").save("attention.html")

A menu picks the attention (an encoder-decoder has three: the encoder's self-attention, the
decoder's masked self-attention and the cross-attention from target to source), a layer and a
head; the chosen head is drawn large, queries down and keys across, and hovering a cell reads
its weight. Beside it the "model view": every head of every layer as a thumbnail, a click
choosing one. The colours are those of the PNG (viridis on a square-root scale); a weight of
exactly 0, a key the mask blocks, is left white, and a NaN weight (a model whose weights hold a
NaN or an infinity) is red. The script is viz/assets/attention.js.
"""

from __future__ import annotations

import html
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .attention import AttentionMap, TooBigForPage, check_page_size
from .graph import NAN_COLOUR
from .html import Page, page

# Weights are embedded as whole numbers of SCALE-ths (4 decimals): small JSON, and still
# finer than a colour can show. A blocked key (a weight of exactly 0) is BLOCKED, and a NaN
# weight (or an infinite one, which no softmax gives) is NAN: cast to an integer, it would be
# any number at all. A weight below 1 that rounds to 1 is NEAR_ONE (drawn as 1, read
# ">0.9999"), so that only an exact 1 reads 1.0000; one above 0 that rounds to 0 is 0, read
# "<0.0001", an exact 0 being BLOCKED. As the lens's cells say >99% and <1%: a head that
# reads other keys too does not look sure, nor a key it reads ruled out.
SCALE = 10_000
BLOCKED = -1
NAN = -2
NEAR_ONE = -3

# How far outside [0, 1] a weight may be and still be drawn (as 0 or 1): a softmax's rounding.
# float16's next number after 1 is 1 + 2**-10. Further out, a weight is no probability (scores
# before the softmax, say), and its code would be no colour: the page's script would fail.
ROUNDING = 1e-3

# The most weights a page holds, over all its maps, layers and heads: ten million make a page
# of about 30 MB (12 layers x 12 heads of a 256-token prompt), which a browser opens in about
# a second. Each weight is a number in the file, and in memory while it is written: GPT-2's
# 1,024 tokens would be 150 million of them.
MAX_WEIGHTS = 10_000_000

__all__ = ["MAX_WEIGHTS", "TooBigForPage", "attention_page", "encode_weights",
           "check_probabilities"]


def encode_weights(weights: ArrayLike) -> list[list[int]]:
    """One head's (T_q, T_k) weights as rows of integers: round(w * SCALE), BLOCKED where the
    weight is exactly 0, NAN where it is NaN, NEAR_ONE where it is below 1 but rounds to
    SCALE. A weight a rounding outside [0, 1] is coded as 0 or 1 (attention_page refuses
    those further out): every code is a colour of the page."""
    weights = np.asarray(weights, dtype=np.float64)
    nan = ~np.isfinite(weights)
    coded = np.rint(np.clip(np.where(nan, 0.0, weights), 0.0, 1.0) * SCALE).astype(np.int64)
    coded[(coded == SCALE) & (weights < 1.0)] = NEAR_ONE
    coded[weights == 0.0] = BLOCKED
    coded[nan] = NAN
    return coded.tolist()


def check_probabilities(name: str, weights: np.ndarray) -> None:
    """ValueError, in one line, if a weight of the map `name` (layers, heads, queries, keys) is
    outside [0, 1] by more than a rounding: it is no attention weight, and the page would have
    no colour for it. A NaN (or an infinity) is a model's own, drawn red."""
    outside = np.isfinite(weights) & ((weights < -ROUNDING) | (weights > 1 + ROUNDING))
    if outside.any():
        layer, head, query, key = where = tuple(np.argwhere(outside)[0])
        raise ValueError(f"attention_page: the weights of {name!r} must be in [0, 1], got "
                         f"{float(weights[where])} at layer {layer}, head {head}, query "
                         f"{query}, key {key}; give the softmax's weights, not the scores "
                         f"before it")


def attention_page(maps: Mapping[str, AttentionMap], title: str,
                   which: str | None = None) -> Page:
    """The page of `maps` (name -> AttentionMap, as viz.attention.attention_maps returns),
    opening on the map `which` (its first by default). TooBigForPage, a ValueError of one
    line, for more than MAX_WEIGHTS weights in all (a prompt too long for a page); ValueError
    for a weight outside [0, 1] (see check_probabilities)."""
    if not maps:
        raise ValueError("attention_page: no attention maps to show")
    which = which or next(iter(maps))
    if which not in maps:
        raise ValueError(f"attention_page: no map {which!r}; the maps are {', '.join(maps)}")
    # attention_maps(..., max_weights=MAX_WEIGHTS) refuses these before recording them.
    check_page_size(sum(np.size(chosen.weights) for chosen in maps.values()), MAX_WEIGHTS)
    data = {"title": title, "which": which, "scale": SCALE, "blocked": BLOCKED, "nan": NAN,
            "near_one": NEAR_ONE, "nan_colour": NAN_COLOUR, "maps": {}}
    for name, chosen in maps.items():
        weights = np.asarray(chosen.weights)
        if weights.ndim != 4:
            raise ValueError(f"attention_page: the weights of {name!r} must be (layers, heads, "
                             f"queries, keys), got shape {weights.shape}")
        n_layer, n_head, t_q, t_k = weights.shape
        if (len(chosen.queries), len(chosen.keys)) != (t_q, t_k):
            raise ValueError(f"attention_page: {len(chosen.queries)} query and "
                             f"{len(chosen.keys)} key labels for {t_q} queries and {t_k} keys")
        if chosen.first_query:
            raise ValueError(f"attention_page: the map {name!r} holds its last {t_q} queries "
                             f"only; a page shows every query: make the maps without "
                             f"last_queries")
        check_probabilities(name, weights)
        data["maps"][name] = {
            "description": chosen.description, "queries": list(chosen.queries),
            "keys": list(chosen.keys), "layers": n_layer, "heads": n_head,
            # weights[layer][head] = rows of coded weights
            "weights": [[encode_weights(weights[layer, head]) for head in range(n_head)]
                        for layer in range(n_layer)]}
    any_nan = any(not np.isfinite(chosen.weights).all() for chosen in maps.values())
    any_blocked = any((np.asarray(chosen.weights) == 0.0).any() for chosen in maps.values())
    return Page(page(title, "attention", _body(title, any_nan, any_blocked), data), title)


def _body(title, any_nan, any_blocked):
    # White and red are named only on a page that has them: a BERT's maps have no blocked key.
    blocked = "; white: blocked" if any_blocked else ""
    # The words in the legend's grey, after a swatch of the red: written in that red they
    # read at 4.3:1 on the header's grey, under the 4.5:1 that text needs.
    nan = (f'; <span class="swatch" style="background: {NAN_COLOUR}"></span>red: NaN'
           if any_nan else "")
    return f"""<header>
<h1>{html.escape(title)}</h1>
<label>attention <select id="map" aria-label="attention"></select></label>
<label>layer <select id="layer" aria-label="layer"></select></label>
<label>head <select id="head" aria-label="head"></select></label>
<span class="legend" aria-hidden="true"><span>0</span><span class="ramp"></span><span>1</span>
<span class="muted">(square-root scale{blocked}{nan})</span></span>
</header>
<main>
<section class="focus">
<h2 id="focus-title"></h2>
<p id="description" class="muted"></p>
<canvas id="heatmap" class="arrow-keys" role="img" tabindex="0"></canvas>
<p id="reading" class="muted" role="status"></p>
<p class="muted">Row i is how query token i spreads its attention over the keys (it sums to 1);
hover a cell to read its weight (or Tab to the map and move with the arrow keys).</p>
</section>
<section class="model-view">
<h2>model view: every layer (rows) and head (columns)</h2>
<div id="grid"></div>
</section>
</main>
<div id="tooltip" class="tooltip" hidden></div>"""

"""The logit lens as a page: the table of viz.lens, each cell coloured by its probability.

    lens, tokens = viz.lens_of_prompt(model, tokenizer, prompt, kind)
    viz.lens_page(lens, tokens, tokenizer, "my run").save("lens.html")

One row per position of the sequence (its token on the left), one column per state of the
residual stream (the embeddings, then each layer), each cell the token that state would
predict next (a BERT's: the token at that position) and its probability, on viridis as in the
PNG (dark for unsure, yellow for sure). Hovering a cell lists the k likeliest tokens there,
and so do the arrow keys, cell by cell, once Tab has reached the table (viz/assets/lens.js). A
cell whose probabilities are NaN (a model whose weights hold a NaN or an infinity) is red and
reads "NaN", as in the PNG, and lists no tokens: none of them is a prediction.
"""

from __future__ import annotations

import html
from typing import Sequence

from tinyformer.lens import Lens
from tinyformer.tokenizers import Tokenizer

from .graph import NAN_COLOUR
from .html import SIGNIFICANT, Page, ink, number, page, viridis
from .lens import NAN_TEXT, _guess, _is_nan, percent


def lens_page(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer, title: str) -> Page:
    """The page of `lens` (a tinyformer.lens.Lens) over `tokens` (one label a position), as
    `viz.lens_of_prompt(model, tokenizer, prompt, kind)` returns them."""
    n_states, n_positions, k = lens.top_ids.shape
    if len(tokens) != n_positions:
        raise ValueError(f"lens_page: {len(tokens)} tokens for a lens of {n_positions} positions")
    # Each cell's likeliest tokens and their probabilities, [token, p, what the tooltip
    # reads]; none where the probabilities are NaN: their order, and so the tokens, mean
    # nothing. The tooltip's percentage is written here, from the exact probability: the
    # page's script rounding p, itself rounded to html.number's digits, again to a tenth of
    # a percent was off by one in the last place (0.002499999 is 0.2%; 0.0025 read 0.3%).
    cells = [[[[_guess(tokenizer, int(lens.top_ids[s, t, r])),
                _probability(lens.top_probs[s, t, r]), percent(lens.top_probs[s, t, r], 1)]
               for r in range(k) if not _is_nan(lens.top_probs[s, t, r])]
              for s in range(n_states)] for t in range(n_positions)]
    data = {"title": title, "states": list(lens.rows), "tokens": list(tokens), "cells": cells}
    return Page(page(title, "lens", _body(title, lens, tokens, cells), data), title)


# The largest number below 1 that the page's digits (html.number's) write.
BELOW_ONE = float("0." + "9" * SIGNIFICANT)


def _probability(p):
    """A probability as the page's data holds it, to html.number's digits, but one below 1
    kept below 1: rounded, 0.9999996 was 1, a sure prediction, where the table reads >99%."""
    shown = number(p)
    return BELOW_ONE if shown == 1 and p < 1 else shown


def _body(title, lens, tokens, cells):
    head = "".join(f"<th>{html.escape(state)}</th>" for state in lens.rows)
    # Red is named only on a page that has it, as on the attention page.
    any_nan = any(not predictions for row in cells for predictions in row)
    # The words in the legend's grey, after a swatch of the red: written in that red they
    # read at 4.3:1 on the header's grey, under the 4.5:1 that text needs.
    nan = (f'; <span class="swatch" style="background: {NAN_COLOUR}"></span>red: NaN'
           if any_nan else "")
    rows = []
    for t, token in enumerate(tokens):
        row = [f'<th class="token">{html.escape(token)}</th>']
        for s, predictions in enumerate(cells[t]):
            if predictions:
                guess = predictions[0][0]
                # The exact probability, as the table's: rounded to the page's digits first,
                # float32's 0.13499999 was 0.135, and its cell read 14% beside the table's 13%.
                probability = lens.top_probs[s, t, 0]
                background = viridis(probability)
                shown = (f'<span class="guess">{html.escape(guess)}</span> '
                         f'<span class="p">{html.escape(percent(probability))}</span>')
            else:
                background, shown = NAN_COLOUR, f'<span class="guess">{NAN_TEXT}</span>'
            row.append(f'<td data-t="{t}" data-s="{s}" style="background: '
                       f'{background}; color: {ink(background)}">{shown}</td>')
        rows.append(f"<tr>{''.join(row)}</tr>")
    return f"""<header>
<h1>{html.escape(title)}</h1>
<span class="legend" aria-hidden="true"><span>0%</span><span class="ramp"></span>
<span>100%</span><span class="muted">probability of the top prediction{nan}</span></span>
</header>
<main>
<p class="muted">Each row is a position of the sequence the model reads (its token on the
left): the prompt, or for an encoder-decoder the translation its decoder has written so far;
each column a state of the residual stream (for an encoder-decoder, the decoder's), read by
the model's own final norm and head as if the model stopped there; each cell the token that
state would predict next (for a BERT, the token at that position), and its probability. The last
column is the model's own prediction.
Hover a cell for the {lens.top_ids.shape[2]} likeliest tokens (or Tab to the table and move with
the arrow keys).</p>
<div class="scroller arrow-keys" tabindex="0" role="region"
aria-label="the lens table: the arrow keys move from cell to cell and read its likeliest tokens">
<table id="lens">
<thead><tr><th>position</th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</div>
<p id="reading" class="muted" role="status"></p>
</main>
<div id="tooltip" class="tooltip" hidden></div>"""

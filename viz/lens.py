"""The logit lens as a table: one row per position of the sequence, one column per state of
the residual stream (the embeddings, then each layer), each cell the token that state would
predict next and its probability. Read a row left to right to watch the prediction settle.

`lens_of_prompt` runs a checkpoint's model on a prompt as `tinyformer lens` does;
`lens_text` gives the table as aligned text (for the terminal), `lens_figure` as a matplotlib
figure, each cell coloured by its probability (viridis: dark for unsure, yellow for sure).
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tinyformer.lens import Lens, logit_lens
from tinyformer.tokenizers import Tokenizer

from .attention import ModelKind, _check_kind, _encode, token_labels, translation
from .html import ink, viridis
from .plots import literal_text, new_figure, title_lines

if TYPE_CHECKING:              # matplotlib is imported when a figure is drawn, not before
    from matplotlib.figure import Figure

    from tinyformer.checkpoint import Model


def lens_of_prompt(model: Model, tokenizer: Tokenizer, prompt: str,
                   kind: ModelKind) -> tuple[Lens, list[str]]:
    """The logit lens of a checkpoint's model on `prompt`, and the token at each position: a
    GPT or a BERT reads the prompt (BERT with its <mask> tokens); an encoder-decoder
    translates it greedily, and the lens reads its decoder at each step of the translation.
    `kind` is 'gpt', 'bert' or 'transformer' (as in a checkpoint's config.json). What
    `lens_figure`, `lens_page` and `lens_text` take. ValueError (one line) for another kind:
    it was read as an encoder-decoder's, and said that '<bos>' is no token of the vocabulary."""
    _check_kind(kind)
    if kind in ("gpt", "bert"):
        ids = _encode(tokenizer, prompt, kind == "bert", model.context)
        return logit_lens(model, lambda m: m(np.array([ids]))), token_labels(tokenizer, ids)
    src, tgt = translation(model, tokenizer, prompt)
    lens = logit_lens(model, lambda m: m.decode(tgt, *m.encode(src)))
    return lens, token_labels(tokenizer, tgt[0])


def _guess(tokenizer: Tokenizer, token_id: int) -> str:
    """A predicted token labelled as the positions are (token_labels: control characters
    escaped, so that a cell never moves the terminal's cursor); an empty one as '∅'."""
    return token_labels(tokenizer, [token_id])[0] or "\u2205"


# What a label shows as one character: an escape as `visible` (Python's repr) and a byte-level
# BPE write it ('\\xe2', '\\u200b', '\\r'), or any one character.
_SHOWN_CHARACTER = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[rnt])|.", re.DOTALL)


def _cut(text: str, width: int) -> str:
    """`text` cut to at most `width` columns between the characters it shows, never inside
    an escape: GPT-2's piece b' \\xe2\\x80' cut inside one would read '␣\\xe2\\x8', another
    byte."""
    kept = ""
    for shown in _SHOWN_CHARACTER.findall(text):
        if _columns(kept + shown) > width:
            break
        kept += shown
    return kept


def _columns(text: str) -> int:
    """How many columns of a terminal `text` takes: two for a wide character (Chinese,
    Japanese, most emoji), none for a mark that combines with the one before it, one for any
    other. A table padded by len() alone ran one column further right for each wide character
    in a row."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF"
               else 0 if unicodedata.category(c) in ("Mn", "Me") else 1
               for c in text)


def lens_rows(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer,
              width: int = 8) -> list[list[tuple[str, float | None]]]:
    """The table as rows of (text, probability) cells: a header row, then one row per
    position: the token there, then for each state its top prediction and probability
    (probability None for the cells that are labels)."""
    header = [("position", None)] + [(row, None) for row in lens.rows]
    table = [header]
    for t, token in enumerate(tokens):
        cells = [(_cut(token, width), None)]
        for state in range(len(lens.rows)):
            guess = _cut(_guess(tokenizer, int(lens.top_ids[state, t, 0])), width)
            cells.append((f"{guess} {lens.top_probs[state, t, 0]:.0%}",
                          float(lens.top_probs[state, t, 0])))
        table.append(cells)
    return table


def lens_text(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer,
              colour: bool = False) -> str:
    """The table as aligned text; with `colour`, each prediction styled for a terminal by its
    probability: bright and bold when sure, dim when not."""
    table = lens_rows(lens, tokens, tokenizer)
    widths = [max(_columns(row[c][0]) for row in table) for c in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [(text if p is None or not colour else _styled(text, p))
                 + " " * (w - _columns(text))
                 for (text, p), w in zip(row, widths)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _styled(text, probability):
    """ANSI styles (which click.echo drops where the output is not a terminal)."""
    style = "1;92" if probability >= 0.8 else "32" if probability >= 0.4 else "2"
    return f"\x1b[{style}m{text}\x1b[0m"


@literal_text()
def lens_figure(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer,
                title: str = "") -> Figure:
    """A matplotlib figure of the table: cells coloured by the top prediction's probability,
    labelled with that token (shown inline when a Jupyter cell ends with it). `lens` and
    `tokens` are what `viz.lens_of_prompt(model, tokenizer, prompt, kind)` returns."""
    probs = lens.top_probs[:, :, 0].T                                   # (T, states)
    T, n = probs.shape
    # At least wide enough for the x label, in two lines where the columns are few (a one-layer
    # model has two), which is longer than so narrow a table; at least tall enough for the
    # colour bar's label and the axes' (a short sequence: a translation ended at once, a
    # one-token prompt), which would otherwise be cut off. new_figure, not pyplot: the user's
    # backend stays as it was, and no figure is left open.
    fig = new_figure(figsize=(max(4.0, 1.2 + 1.1 * n), max(3.6, 0.9 + 0.32 * T)))
    ax = fig.subplots()
    image = ax.imshow(probs, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for t in range(T):
        for s in range(n):
            # Black or white, whichever reads better on the cell's colour, as on the page.
            ax.text(s, t, _cut(_guess(tokenizer, int(lens.top_ids[s, t, 0])), 6), ha="center",
                    va="center", fontsize=8, color=ink(viridis(probs[t, s])))
    ax.set_xticks(range(n), lens.rows)
    ax.set_yticks(range(T), [_cut(token, 8) for token in tokens])
    # The x label goes at the top beside the ticks it names, and the title above both.
    if title:                            # wrapped: a run's long name ran off both edges
        ax.set_title(title_lines(title, fig.get_figwidth(), 10), fontsize=10, pad=10)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("the prediction after each state " + ("\n" if n <= 3 else "")
                  + "of the residual stream")
    ax.set_ylabel("position (its token)")
    fig.colorbar(image, ax=ax, label="probability of the top prediction", fraction=0.05)
    fig.tight_layout()
    return fig

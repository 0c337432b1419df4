"""The logit lens as a table: one row per position of the sequence, one column per state of
the residual stream (the embeddings, then each layer), each cell the token that state would
predict next and its probability. Read a row left to right to watch the prediction settle.

`lens_of_prompt` runs a checkpoint's model on a prompt as `tinyformer lens` does;
`lens_text` gives the table as aligned text (for the terminal), `lens_figure` as a matplotlib
figure, each cell coloured by its probability (viridis: dark for unsure, yellow for sure).

A model whose weights hold a NaN or an infinity (after training diverged) has NaN
probabilities from the state where it entered the stream on: no token is predicted there
(argsort merely puts token 0 first), so each of those cells reads "NaN", on the red the graph
gives a NaN gradient (in a terminal, in red).
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tinyformer.lens import Lens, logit_lens
from tinyformer.tokenizers import Tokenizer

from .attention import MAX_TOKENS, ModelKind, _check_kind, _encode, token_labels, translation
from .graph import NAN_COLOUR
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
        ids = _encode(model, tokenizer, prompt, kind)
        return logit_lens(model, lambda m: m(np.array([ids]))), token_labels(tokenizer, ids)
    src, tgt = translation(model, tokenizer, prompt)
    lens = logit_lens(model, lambda m: m.decode(tgt, *m.encode(src)))
    return lens, token_labels(tokenizer, tgt[0])


# What a cell of a NaN probability shows instead of a token and a percentage.
NAN_TEXT = "NaN"


def _is_nan(probability: float) -> bool:
    """Whether a probability of the lens is no number (NaN; infinite, which no softmax gives,
    alike): its state's stream held a NaN, and its token is no prediction."""
    return not math.isfinite(probability)


def percent(probability: float, decimals: int = 0) -> str:
    """A probability of the lens as a percentage to `decimals` places: whole for the table and
    the page's cells, to a tenth (1) for the page's tooltip. ">99%" (">99.9%") where rounding
    would say 100% of one below 1, and "<1%" ("<0.1%") where it would say 0% of one above 0.
    A rounded "100%" read as a sure prediction (a 99.7% did, beside its tooltip's 99.7%), and
    a "0%" as an impossible one."""
    shown = f"{probability:.{decimals}%}"
    least = f"{10.0 ** -decimals:.{decimals}f}"            # 1, 0.1: the last place's step
    if shown == f"{100:.{decimals}f}%" and probability < 1:
        return f">{100 - float(least):.{decimals}f}%"
    if shown == f"{0:.{decimals}f}%" and probability > 0:
        return f"<{least}%"
    return shown


def _guess(tokenizer: Tokenizer, token_id: int) -> str:
    """A predicted token labelled as the positions are (token_labels: control characters
    escaped, so that a cell never moves the terminal's cursor); an empty one as '∅'."""
    return token_labels(tokenizer, [token_id])[0] or "\u2205"


# What a label shows as one character: an escape as `visible` (Python's repr) and a byte-level
# BPE write it ('\\xe2', '\\u200b', '\\r'), a backslash of the text (token_labels doubles
# it), or any one character.
_SHOWN_CHARACTER = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|[rnt\\])|.",
                              re.DOTALL)


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
    (probability None for the cells that are labels; a NaN probability's cell reads "NaN")."""
    header = [("position", None)] + [(row, None) for row in lens.rows]
    table = [header]
    for t, token in enumerate(tokens):
        cells = [(_cut(token, width), None)]
        for state in range(len(lens.rows)):
            probability = float(lens.top_probs[state, t, 0])
            if _is_nan(probability):
                cells.append((NAN_TEXT, probability))
                continue
            guess = _cut(_guess(tokenizer, int(lens.top_ids[state, t, 0])), width)
            cells.append((f"{guess} {percent(probability)}", probability))
        table.append(cells)
    return table


def lens_text(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer,
              colour: bool = False) -> str:
    """The table as aligned text; with `colour`, each prediction styled for a terminal by its
    probability: bright and bold when sure, dim when not, red where it is NaN."""
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
    # Every comparison with NaN is false: a NaN cell would be styled as an unsure one.
    style = ("1;31" if _is_nan(probability) else "1;92" if probability >= 0.8
             else "32" if probability >= 0.4 else "2")
    return f"\x1b[{style}m{text}\x1b[0m"


def shown_positions(n_positions: int, max_positions: int) -> tuple[int, str]:
    """The first position a picture of the lens shows, of `n_positions`, to show at most
    `max_positions`, the last ones; and a note for its title saying what is left out ("" if
    nothing is), worded as a masked attention map's."""
    # None (or 2.5) failed as a comparison's TypeError, or a slice's. A picture of every
    # position of a long prompt is too tall to open: a page shows them all.
    if not isinstance(max_positions, numbers.Integral) or isinstance(max_positions, bool):
        raise ValueError(f"lens_figure: max_positions must be a whole number, got "
                         f"{max_positions!r} (lens_page shows every position)")
    if max_positions < 1:
        raise ValueError(f"lens_figure: max_positions must be at least 1, got {max_positions}")
    first = max(0, n_positions - max_positions)
    note = "" if first == 0 else (f"showing the last {n_positions - first} of {n_positions} "
                                  f"positions: the first {first} are left out (a page, .html, "
                                  f"shows them all)")
    return first, note


@literal_text()
def lens_figure(lens: Lens, tokens: Sequence[str], tokenizer: Tokenizer,
                title: str = "", max_positions: int = MAX_TOKENS) -> Figure:
    """A matplotlib figure of the table: cells coloured by the top prediction's probability,
    labelled with that token (shown inline when a Jupyter cell ends with it); a cell whose
    probability is NaN is red and reads "NaN". `lens` and `tokens` are what
    `viz.lens_of_prompt(model, tokenizer, prompt, kind)` returns.

    A long sequence is shown by its last `max_positions` positions (by default as many as a
    masked attention map shows, viz.attention.MAX_TOKENS), and the title says how many are
    left out: a row a position, 1,000 tokens made a picture 38,508 pixels tall, which many
    viewers refuse to open. lens_page shows every position."""
    import matplotlib

    first, note = shown_positions(len(tokens), max_positions)
    if note:
        title = f"{title}\n({note})" if title else f"({note})"
    tokens = tokens[first:]
    probs = lens.top_probs[:, first:, 0].T                              # (T, states)
    top_ids = lens.top_ids[:, first:, 0]                                # (states, T)
    T, n = probs.shape
    # At least wide enough for the x label, in two lines where the columns are few (a one-layer
    # model has two), which is longer than so narrow a table; at least tall enough for the
    # colour bar's label and the axes' (a short sequence: a translation ended at once, a
    # one-token prompt), which would otherwise be cut off. new_figure, not pyplot: the user's
    # backend stays as it was, and no figure is left open.
    fig = new_figure(figsize=(max(4.0, 1.2 + 1.1 * n), max(3.6, 0.9 + 0.32 * T)))
    ax = fig.subplots()
    # imshow masks a NaN, which takes the colour map's "bad" colour.
    colours = matplotlib.colormaps["viridis"].with_extremes(bad=NAN_COLOUR)
    image = ax.imshow(probs, cmap=colours, vmin=0.0, vmax=1.0, aspect="auto")
    for t in range(T):
        for s in range(n):
            if _is_nan(probs[t, s]):
                text, background = NAN_TEXT, NAN_COLOUR
            else:
                text = _cut(_guess(tokenizer, int(top_ids[s, t])), 6)
                background = viridis(probs[t, s])
            # Black or white, whichever reads better on the cell's colour, as on the page.
            ax.text(s, t, text, ha="center", va="center", fontsize=8, color=ink(background))
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

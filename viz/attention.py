"""Attention maps: what each head of each layer looks at, for one prompt, drawn as a picture.

    attention_layers(model)                             a model's MultiHeadAttentions, by kind
    check_prompt(model, tokenizer, prompt, kind)        ValueError for a prompt the model
                                                         cannot read, before running it
    attention_maps(model, tokenizer, prompt, kind)      runs the model once, recording every
                                                         MultiHeadAttention's weights (or, for
                                                         a picture, its last queries' only; for
                                                         a page, none if they are too many)
    plot_attention(weights, row_labels, col_labels, out_path, title)
                                                         one heatmap per layer (rows) and head
                                                         (columns), queries down, keys across
    shown_tokens(weights)                               which queries and keys a picture of a
                                                         long prompt keeps, and what it says
                                                         of those left out

A heatmap's row i is query token i's softmax over the keys: it sums to 1, and a bright cell
(i, j) means token i took much of its output from token j. GPT's maps are lower triangles (a
token never sees later ones); BERT's are full squares; an encoder-decoder has three kinds: the
encoder's self-attention over the source, the decoder's masked self-attention over the
translation so far, and the cross-attention from each target position to the source (for the
`reverse` task, an anti-diagonal once trained: target t reads source S - 1 - t).

The weights come from `MultiHeadAttention.record_weights` (tinyformer's public switch); the
models know nothing of this module. The attention layers are found by the names every model
gives them (tinyformer/blocks.py), whatever the model. matplotlib is imported inside
`plot_attention` only.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Callable, Iterable, Literal, NamedTuple, Sequence

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import nn, no_grad
from tinyformer.attention import MultiHeadAttention
from tinyformer.decoding import inference
from tinyformer.files import StrPath
from tinyformer.schema import BadInput, check_whole
from tinyformer.tokenizers import Tokenizer, encode_prompt

from .graph import NAN_COLOUR
from .plots import (figure_format, literal_text, new_figure, save_figure, title_lines,
                    visible)

if TYPE_CHECKING:              # matplotlib is imported when a figure is drawn, not before
    from matplotlib.figure import Figure

    from tinyformer.checkpoint import Model
    from tinyformer.transformer import Transformer

# The kinds of model a checkpoint holds (its config.json's "model").
ModelKind = Literal["gpt", "bert", "transformer"]

# A masked (causal) map of a longer prompt shows only its last MAX_TOKENS queries and keys:
# beyond that the labels of a character-level prompt grow small, and the end of the prompt is
# what a GPT acts on; the square stays a triangle. A map without that mask (BERT's, an
# encoder's, cross-attention) is shown whole up to MAX_TOKENS_UNMASKED tokens a side, the
# built-in BERT's context: each of its queries reads the first words as much as the last, and
# the last MAX_TOKENS keys alone would hide what a masked word was filled from. Beyond that it
# shows its last queries against the keys they attend to most. The title says what is left out.
MAX_TOKENS = 48
MAX_TOKENS_UNMASKED = 128
# The most queries a picture shows by default: attention_maps(..., last_queries=SHOWN_QUERIES)
# records no more, whatever the prompt's length.
SHOWN_QUERIES = max(MAX_TOKENS, MAX_TOKENS_UNMASKED)
# The lines that mark where keys are left out of a map: red, a colour viridis never takes.
LEFT_OUT_COLOUR = "#e31a1c"

# The kinds of attention a model may have, the default first, and what each is in words. A
# model with one stack (GPT: a decoder, BERT: an encoder) has one kind, called "self".
DESCRIPTIONS = {"cross": "decoder cross-attention (target -> source)",
                "encoder": "encoder self-attention (source)",
                "decoder": "decoder masked self-attention (target)"}
ONE_STACK = {"encoder": "bidirectional self-attention", "decoder": "masked self-attention"}


class TooBigForPage(BadInput):
    """More attention weights than a page holds (attention_page.MAX_WEIGHTS): a prompt too
    long for a page, the fault of the input, not of the code. Its own class, so that a caller
    (`tinyformer attention`) tells it from any other ValueError in making the page, which is
    a bug."""


def check_page_size(total: int, max_weights: int) -> None:
    """TooBigForPage, one line, if `total` weights are more than the `max_weights` a page
    holds."""
    if total > max_weights:
        raise TooBigForPage(f"{total:,} attention weights are more than a page holds "
                            f"({max_weights:,}); use a shorter prompt, or draw a PNG, which "
                            f"shows part of a long prompt and says which")


class AttentionMap(NamedTuple):
    """One kind of attention of a model, for one prompt: `weights` (L, H, T_q, T_k), the
    labels of its queries (rows) and keys (columns), and what it is, in words.
    `first_query` is 0, or, where the weights hold the last queries only (attention_maps's
    `last_queries`), the position in the prompt of the first query they hold."""
    weights: np.ndarray
    queries: list
    keys: list
    description: str
    first_query: int = 0

    def __repr__(self) -> str:
        # The weights' shape, not their numbers (a notebook printed screens of them), and the
        # first labels of each axis.
        def labels(tokens):
            more = f", ... {len(tokens)} in all" if len(tokens) > 8 else ""
            return "[" + ", ".join(map(repr, tokens[:8])) + more + "]"
        first = f", first_query={self.first_query}" if self.first_query else ""
        return (f"AttentionMap(weights=<array {np.shape(self.weights)} (layers, heads, "
                f"queries, keys)>, queries={labels(self.queries)}, keys={labels(self.keys)}, "
                f"description={self.description!r}{first})")


def token_labels(tokenizer: Tokenizer, ids: Iterable[int]) -> list[str]:
    """A readable label for each token: spaces as '␣' and newlines as '⏎', since a blank tick
    label cannot be told from a missing one; other control characters escaped ('\\r',
    '\\x1b'), which a terminal would act on (a carriage return moves the cursor back), and
    a byte that is no whole character (part of "你") as '\\xe4'; special tokens (<bos>) keep
    their names. A backslash of the token's own text is doubled, as `tokenize show` shows it,
    so that an escape always means what it says: the text \\r of a program's source is
    '\\\\r', not a carriage return's '\\r'."""
    labels = []
    for i in ids:
        # The bytes that are no whole character kept apart (as surrogates) until the text's
        # own backslashes are doubled, then written as \xNN.
        text = tokenizer.id_to_bytes(int(i)).decode("utf-8", "surrogateescape")
        text = re.sub("[\udc80-\udcff]", lambda cut: f"\\x{ord(cut.group()) - 0xdc00:02x}",
                      text.replace("\\", "\\\\"))
        text = text.replace(" ", "␣").replace("\n", "⏎").replace("\t", "⇥")
        labels.append(visible(text))
    return labels


def _stacks(model):
    """{"encoder", "decoder", "cross"} -> the model's MultiHeadAttentions of that kind, one a
    layer, bottom up. Every model names them alike: in a layer, self-attention is `attn` and
    cross-attention `cross_attn`; the stack (`encoder` or `decoder`) is on the path, as in
    `decoder.layers.0.cross_attn`."""
    found = {}
    for path, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            parts = path.split(".")
            stack = "encoder" if "encoder" in parts else "decoder"
            found.setdefault("cross" if parts[-1] == "cross_attn" else stack, []).append(module)
    if not found:
        raise ValueError(f"a {type(model).__name__} has no MultiHeadAttention to draw")
    return {name: found[name] for name in DESCRIPTIONS if name in found}    # default first


def attention_layers(model: nn.Module) -> dict[str, list[MultiHeadAttention]]:
    """name -> the model's MultiHeadAttentions of one kind, one a layer, bottom up: "cross",
    "encoder" and "decoder" for an encoder-decoder, "self" for a model with one stack."""
    stacks = _stacks(model)
    return {"self": next(iter(stacks.values()))} if len(stacks) == 1 else stacks


def _description(model, name):
    stacks = _stacks(model)
    return ONE_STACK[next(iter(stacks))] if name == "self" else DESCRIPTIONS[name]


def _weight_count(groups, sizes, last_queries=None):
    """How many weights _record would keep of `groups` (name -> list of MultiHeadAttentions),
    each group's queries and keys being `sizes[name]` = (T_q, T_k): known from the shapes,
    before anything runs."""
    total = 0
    for name, layers in groups.items():
        t_q, t_k = sizes[name]
        if last_queries is not None:
            t_q = min(t_q, last_queries)
        total += sum(attn.n_head for attn in layers) * t_q * t_k
    return total


def _record(groups, run, last_queries=None):
    """Run `run()` with every MultiHeadAttention of `groups` (name -> list of them, one a
    layer) recording its weights; return name -> (L, H, T_q, T_k) for the first (only)
    sequence of the batch, or (L, H, last_queries, T_k), its last queries' rows only.

    Each layer's weights are cut to those rows as soon as the layer has run, and the rest let
    go: kept whole until the end, every layer's at once, a GPT-2's 1,024 tokens hold 600 MB
    of weights, where a picture shows 128 rows of them."""
    recorded = {}

    def keep(attn, args, output):              # a forward hook: right after each layer runs
        weights = attn.last_weights[0]         # (H, T_q, T_k)
        if last_queries is not None:
            weights = weights[:, -last_queries:].copy()     # a copy: the whole is freed
        recorded[attn], attn.last_weights = weights, None

    modules = [attn for layers in groups.values() for attn in layers]
    hooks = [attn.register_forward_hook(keep) for attn in modules]
    for attn in modules:
        attn.record_weights, attn.last_weights = True, None
    try:
        with no_grad():
            run()
        return {name: np.stack([recorded[attn] for attn in layers])
                for name, layers in groups.items()}
    finally:                                   # recording costs a second softmax: switch it off
        for hook in hooks:
            hook.remove()
        for attn in modules:
            attn.record_weights, attn.last_weights = False, None


def _check_kind(kind: str) -> None:
    """ValueError (one line) unless `kind` is a checkpoint's kind of model: what
    attention_maps and lens_of_prompt take, each of which reads a prompt its own way."""
    if kind not in ("gpt", "bert", "transformer"):
        raise BadInput(f"unknown model kind {kind!r}; choose one of gpt, bert, transformer")


def _encode(model, tokenizer, prompt, kind, name=str):
    """The prompt's ids as a `kind` of model reads it (BERT with its special tokens, its
    <mask>, but not the <pad> it hides), or a one-line ValueError: empty, unknown characters,
    too long. `name` as check_prompt's."""
    if not prompt:
        raise BadInput(f"{name('prompt')} is empty; give some text")
    bert = kind == "bert"
    return encode_prompt(tokenizer, prompt, bert, model.context, name,
                         pad_id=model.pad_id if bert else None)


def check_prompt(model: Model, tokenizer: Tokenizer, prompt: str, kind: ModelKind,
                 name: Callable[[str], str] = str) -> None:
    """ValueError (one line) for a prompt that `attention_maps` and `lens_of_prompt` refuse,
    without running the model: an unknown `kind`, or a prompt that is empty, cannot be encoded
    or does not fit the context (an encoder-decoder's source as a GPT's prompt: no special
    tokens). A caller that checks first can tell a fault of the input from one that shows
    only as the model runs: logits that leave no token to pick while an encoder-decoder
    translates (decoding.NoTokenToPick). Anything else from the run is a bug. `name(key)` says
    how the prompt is called to the caller's user: `prompt` in Python, `--prompt` on the
    command line."""
    _check_kind(kind)
    _encode(model, tokenizer, prompt, kind, name)


def attention_maps(model: Model, tokenizer: Tokenizer, prompt: str, kind: ModelKind,
                   last_queries: int | None = None,
                   max_weights: int | None = None) -> dict[str, AttentionMap]:
    """name -> AttentionMap for `prompt`, `kind` being 'gpt', 'bert' or 'transformer' (as in
    a checkpoint's config.json): what the model does with a prompt. The names are those of
    `attention_layers(model)`.

    Every query's weights are kept, or with `last_queries` the last that many queries' only
    (against every key; AttentionMap.first_query says where they start): all that a picture
    of a long prompt shows, with SHOWN_QUERIES, at a fraction of the memory.

    GPT and BERT read the prompt (BERT with its special tokens, e.g. <mask>). The
    encoder-decoder reads it as the source and translates it greedily; its decoder maps are
    then those of a second pass over <bos> and the translation, all of it at once, which gives
    the weights each step of the translation saw (the decoder is causal). ValueError (one
    line) for a prompt that is empty, cannot be encoded or does not fit the context.

    With `max_weights` (for a page, attention_page.MAX_WEIGHTS), TooBigForPage if the maps
    would hold more weights than that, all of them together: counted from the prompt's length
    (and an encoder-decoder's translation's) before anything is recorded, so that a prompt
    too long for a page costs neither the memory nor the time of recording its weights."""
    _check_kind(kind)
    if last_queries is not None:           # 2.5 and True would pass a comparison with 1
        check_whole("attention_maps", 1, last_queries=last_queries)
    layers = attention_layers(model)
    # What the model does with the prompt is what it does when it decodes: in eval mode even
    # where it was left training, since dropout before a layer would change what that layer
    # sees and so the weights it records (each layer records its weights before its own).
    with inference(model):
        return _maps(model, layers, tokenizer, prompt, kind, last_queries, max_weights)


def _map(weights, queries, keys, description):
    """The AttentionMap of `weights`, which may hold the last queries' rows only: `queries`
    (a label for every query) is cut to theirs."""
    first_query = len(queries) - weights.shape[2]
    return AttentionMap(weights, queries[first_query:], keys, description, first_query)


def _maps(model, layers, tokenizer, prompt, kind, last_queries, max_weights):
    def check_size(sizes):                   # before recording: see attention_maps
        if max_weights is not None:
            check_page_size(_weight_count(layers, sizes, last_queries), max_weights)

    if kind in ("gpt", "bert"):
        ids = _encode(model, tokenizer, prompt, kind)
        check_size({"self": (len(ids), len(ids))})
        weights = _record(layers, lambda: model(np.array([ids])), last_queries)["self"]
        labels = token_labels(tokenizer, ids)
        return {"self": _map(weights, labels, labels, _description(model, "self"))}

    # The translation's length is known once it is made (which records nothing).
    src, tgt = translation(model, tokenizer, prompt)
    source, target = src.shape[1], tgt.shape[1]
    check_size({"encoder": (source, source), "decoder": (target, target),
                "cross": (target, source)})
    encoded = {}

    def encode():
        encoded["memory"], encoded["src_mask"] = model.encode(src)

    weights = _record({"encoder": layers["encoder"]}, encode, last_queries)
    # One pass of the decoder records both of its attentions.
    weights.update(_record(
        {"decoder": layers["decoder"], "cross": layers["cross"]},
        lambda: model.decode(tgt, encoded["memory"], encoded["src_mask"]), last_queries))
    source, target = token_labels(tokenizer, src[0]), token_labels(tokenizer, tgt[0])
    return {"cross": _map(weights["cross"], target, source, DESCRIPTIONS["cross"]),
            "encoder": _map(weights["encoder"], source, source, DESCRIPTIONS["encoder"]),
            "decoder": _map(weights["decoder"], target, target, DESCRIPTIONS["decoder"])}


def translation(model: Transformer, tokenizer: Tokenizer,
                prompt: str) -> tuple[np.ndarray, np.ndarray]:
    """(src (1, S), tgt (1, T)): the prompt as an encoder-decoder's source, and the decoder's
    inputs while it translated it greedily: <bos> and every token it wrote but the last (whose
    position would predict the token after it, never asked for). It writes as many tokens as
    `tinyformer generate` does, the context's worth: a translation of context - 1 symbols
    then has its <eos>, and its last symbol's row, which chose that <eos>, is shown."""
    src = np.array([_encode(model, tokenizer, prompt, "transformer")])        # (1, S)
    bos, eos = tokenizer.token_to_id("<bos>"), tokenizer.token_to_id("<eos>")
    out = model.greedy_decode(src, model.context, bos, eos)                   # (1, 1 + n)
    return src, out[:, :-1]


def choose_map(model: nn.Module,
               which: Literal["self", "cross", "encoder", "decoder"] | None) -> str:
    """The map name `which` (self, cross, encoder, decoder, or None for the default) stands for
    in `model`; ValueError (one line) if it has no such attention."""
    stacks = _stacks(model)
    if len(stacks) == 1:
        # GPT is a decoder and BERT an encoder: their one self-attention answers to that name too.
        (stack,) = stacks
        if which in (None, "self", stack):
            return "self"
        other = "decoder" if stack == "encoder" else "encoder"
        raise BadInput(f"--which {which}: this model has self-attention only (no {other} "
                       f"and no cross-attention)")
    if which is None:
        return next(iter(stacks))
    if which in stacks:
        return which
    raise BadInput(f"--which {which}: an encoder-decoder has three attentions; choose "
                   f"cross, encoder (source self-attention) or decoder (target "
                   f"self-attention)")


def plot_attention(weights: ArrayLike, row_labels: Sequence[str], col_labels: Sequence[str],
                   out_path: StrPath, title: str, max_tokens: int | None = None,
                   first_query: int = 0) -> int:
    """Write attention_figure(...) to `out_path`, atomically, in the format its suffix says
    (.png, .svg or .pdf; ValueError for another); returns the number of heatmaps (layers x
    heads)."""
    fmt = figure_format("plot_attention", out_path)            # before the drawing: fail fast
    fig = attention_figure(weights, row_labels, col_labels, title, max_tokens, first_query)
    save_figure(fig, out_path, fmt, dpi=100)
    return len(fig.axes) - 1                                   # the colour bar is an axes too


def _is_causal(weights: np.ndarray, first_query: int = 0) -> bool:
    """Whether (L, H, T_q, T_k) `weights` are a masked self-attention's: square (but for the
    `first_query` rows left out), and every weight to a key after its query exactly 0.
    Softmax gives an unmasked key a weight above 0, so a bidirectional map is never taken for
    one (but for a single token)."""
    t_q, t_k = weights.shape[-2:]
    return first_query + t_q == t_k and not np.triu(weights, k=first_query + 1).any()


class ShownTokens(NamedTuple):
    """What a map of too many tokens shows: the rows (queries) and columns (keys) of its
    weights kept, in order, and a note for the title saying what is left out ("" if
    nothing is)."""
    queries: np.ndarray
    keys: np.ndarray
    note: str


def shown_tokens(weights: ArrayLike, max_tokens: int | None = None,
                 first_query: int = 0) -> ShownTokens:
    """Which queries and keys of (L, H, T_q, T_k) `weights` a picture shows, at most
    `max_tokens` of each (by default MAX_TOKENS for a masked map, MAX_TOKENS_UNMASKED for
    another). A masked map keeps its last queries and keys (a window at the end of the
    triangle); another keeps its last queries and, of the keys, those the queries kept attend
    to most (summed over every layer and head), in their order: cutting its keys at the end
    would drop the first words, which every query reads. `first_query` is that of an
    AttentionMap holding the last queries only: the first_query before them are left out."""
    weights = np.asarray(weights)
    t_q, t_k = weights.shape[-2:]
    if first_query < 0:
        raise ValueError(f"plot_attention: first_query must be at least 0, got {first_query}")
    every_query = first_query + t_q
    causal = _is_causal(weights, first_query)
    if max_tokens is None:
        max_tokens = MAX_TOKENS if causal else MAX_TOKENS_UNMASKED
    if max_tokens < 1:
        raise ValueError(f"plot_attention: max_tokens must be at least 1, got {max_tokens}")
    rows, cols = min(t_q, max_tokens), min(t_k, max_tokens)
    queries = np.arange(t_q - rows, t_q)
    if causal:                     # the window's keys are its queries: the last `rows` tokens
        keys = np.arange(t_k - rows, t_k)
        note = "" if rows == t_k else (f"showing the last {rows} of {t_k} tokens: the first "
                                       f"{t_k - rows}, which these queries also read, are left "
                                       f"out")
        return ShownTokens(queries, keys, note)
    # The keys most attended to; of two alike, the earlier. A head of NaN weights says
    # nothing of that (summed in, every key's total would be NaN, and the first kept).
    read = np.nansum(weights[:, :, queries, :].astype(np.float64), axis=(0, 1, 2))
    keys = np.sort(np.argsort(-read, kind="stable")[:cols])
    notes = []
    if rows < every_query:
        notes.append(f"the last {rows} of {every_query} queries")
    if cols < t_k:
        whose = "they" if rows < every_query else "the queries"
        notes.append(f"the {cols} of {t_k} keys {whose} attend to most, in order (the "
                     f"{t_k - cols} others are left out where a red line splits the keys)")
    return ShownTokens(queries, keys, "showing " + " and ".join(notes) if notes else "")


def _left_out_edges(keys, t_k):
    """Where keys are left out between the columns of `keys` (positions kept, in order, of
    `t_k`): the x of each border between two columns, or before the first or after the last,
    with keys missing there."""
    edges = [i - 0.5 for i in range(1, len(keys)) if keys[i] > keys[i - 1] + 1]
    if keys[0] > 0:
        edges.insert(0, -0.5)
    if keys[-1] < t_k - 1:
        edges.append(len(keys) - 0.5)
    return edges


@literal_text()
def attention_figure(weights: ArrayLike, row_labels: Sequence[str], col_labels: Sequence[str],
                     title: str, max_tokens: int | None = None,
                     first_query: int = 0) -> Figure:
    """Draw `weights` (L, H, T_q, T_k) as a grid of heatmaps, layer i in row i and head j in
    column j, query tokens `row_labels` down and key tokens `col_labels` across, with a
    colour bar. Returns the matplotlib Figure (shown inline when a Jupyter cell ends with it).

    A long prompt is shown in part, as shown_tokens chooses (`max_tokens` queries and keys at
    most), and the title says what is left out; a red line marks where keys are missing
    between two columns. The colours are on a square-root scale from 0 to 1: a weight of 1/T
    (attention spread evenly over T keys) stays visible next to a weight near 1. A weight of
    exactly 0 (a key the mask blocks) is left white, and a NaN one is red.

    Weights of the last queries only (an AttentionMap's of attention_maps(...,
    last_queries=n)) are drawn as the whole map's would be, given its `first_query`."""
    weights = np.asarray(weights)
    if weights.ndim != 4:
        raise ValueError(f"plot_attention: weights must be (layers, heads, queries, keys), got "
                         f"shape {weights.shape}")
    n_layer, n_head, t_q, t_k = weights.shape
    if (len(row_labels), len(col_labels)) != (t_q, t_k):
        raise ValueError(f"plot_attention: {len(row_labels)} row and {len(col_labels)} column "
                         f"labels for {t_q} queries and {t_k} keys")
    shown = shown_tokens(weights, max_tokens, first_query)
    weights = weights[:, :, shown.queries][:, :, :, shown.keys]
    row_labels = [row_labels[i] for i in shown.queries]
    col_labels = [col_labels[i] for i in shown.keys]
    rows, cols = len(shown.queries), len(shown.keys)
    left_out = _left_out_edges(shown.keys, t_k)
    if shown.note:
        title += f"\n({shown.note})"
    # A weight of exactly 0 is a blocked key (a later token, padding): left blank, so that
    # the mask's shape stands apart from weights that are merely small. A NaN (a model whose
    # weights hold a NaN or an infinity) is painted red over it: matplotlib would leave it
    # blank too, as if the mask had blocked it.
    nan = ~np.isfinite(weights)
    weights = np.ma.masked_where((weights == 0.0) | nan, weights)

    import matplotlib
    from matplotlib.colors import ListedColormap, PowerNorm

    # Each token gets about 0.14 inch (a 7-point label), and each heatmap 1.2 inches along its
    # longer side at least, with 0.6 for its labels; the whole figure stays under about 40
    # inches wide, with labels made smaller (down to 5 points) and only then thinned out if
    # need be: every second character of a text reads as nonsense.
    # The cells are square (imshow), so a map of few queries and many keys (a short
    # translation's cross-attention) is a strip: its row of the grid is as tall as the strip
    # and its labels, not 1.8 inches, which left each strip far from the next and its
    # "query (attending)" floating between them. 1.1 inches: that label's length.
    cell = 0.14
    side = max(cell, 1.2 / max(rows, cols))           # inches a cell: 1.2 the longer side
    width = max(1.8, side * cols + 0.6)
    height = max(1.1, side * rows + 0.6)
    scale = min(1.0, 40 / (n_head * width))
    width, height = width * scale, height * scale
    fig_width = n_head * width + 1.5
    fig = new_figure(figsize=(fig_width, n_layer * height + 1.0), layout="constrained")
    axes = fig.subplots(n_layer, n_head, squeeze=False)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    # Single characters read best upright; longer tokens (<bos>, BPE pieces) need turning.
    rotation = 0 if all(len(label) <= 1 for label in col_labels) else 90
    room = cell * scale * 72                                    # points per token
    fontsize = max(5.0, min(7.0, room))     # a label stacks by its height: about its size
    every = max(1, math.ceil(fontsize / room))                  # label every n-th token

    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer, head]
            image = ax.imshow(weights[layer, head], cmap=colours, norm=norm,
                              interpolation="nearest")
            if nan[layer, head].any():
                ax.imshow(np.ma.masked_where(~nan[layer, head], nan[layer, head]),
                          cmap=ListedColormap([NAN_COLOUR]), interpolation="nearest")
            ax.set_title(f"layer {layer + 1} head {head + 1}", fontsize=9)   # as the lens counts
            # Every heatmap has the same queries and keys: as in any grid of small multiples,
            # the left column names the queries and the bottom row the keys. Labelling every
            # heatmap crowded the grid and took most of the time to draw it (a 12 x 4 grid
            # of 48 tokens: 4,608 labels instead of 768).
            ax.set_xticks([])
            ax.set_yticks([])
            if head == 0:
                ax.set_yticks(range(0, rows, every), row_labels[::every], fontsize=fontsize)
                ax.set_ylabel("query (attending)", fontsize=8)
            if layer == n_layer - 1:
                ax.set_xticks(range(0, cols, every), col_labels[::every], rotation=rotation,
                              fontsize=fontsize)
                ax.set_xlabel("key (attended to)", fontsize=8)
            ax.tick_params(length=0, pad=1)
            for x in left_out:
                ax.axvline(x, color=LEFT_OUT_COLOUR, linewidth=1.5)
    # The bar is a fixed 0.2 inch wide: matplotlib makes it a twentieth of its height, which
    # on a tall grid (12 layers) is wider than a heatmap and crowds the query labels off the
    # left edge.
    shrink = min(1.0, 4 / n_layer + 0.2)
    fig.colorbar(image, ax=axes, shrink=shrink, pad=0.01, aspect=shrink * n_layer * height / 0.2,
                 label="attention weight\n(square-root scale)"
                       + ("\nred: NaN" if nan.any() else ""), ticks=[0, 0.05, 0.2, 0.5, 1])
    # A title wider than the figure (one or two heads) is cut off at both ends: wrapped.
    fig.suptitle(title_lines(title, fig_width, 11), fontsize=11)
    return fig

"""Pictures of what the learner's own code computes: `tinyformer exercises draw N`.

Each drawer below runs the learner's file on a small, fixed example and returns a `Picture`;
`render` writes it to a .png or .svg. A drawer shows what the code does, right or wrong: a
wrong mask looks wrong, a gradient that differs from tinyautograd's is marked so. Only a result
that cannot be drawn at all (a TODO still in place, a crash, an array of the wrong shape) stops
it, with a message worded as a check's.

    chapter 1   table_lookup          one_hot(ids), the table, and the rows their product picks
    chapter 2   markov_first_order    the table of next-word probabilities
    chapter 3   attention_as_matmul   which earlier positions each position attends to
    chapter 4   scalar_engine         the graph of a neuron in your Value engine, data and grad
                broadcast_gradients, matmul_backward, softmax_cross_entropy_backward,
                layer_norm_backward   the op's backward pass: upstream gradient in, yours out
    chapter 5   embedding (backward), sinusoidal_positions (the table)
    chapter 6   scaled_dot_product, causal_mask, multi_head_attention   attention maps
    chapter 7   feed_forward          your GELU beside ReLU
    chapter 8   warmup_schedule       the learning rate, step by step
    chapter 9   temperature_top_k     one distribution at several temperatures and a top-k
    chapter 10  bpe_train             the merges, as a tree of tokens
    chapter 11  attend_to_first, previous_token, induction_head   the heads' attention maps
    chapter 12  padding_mask          a padded batch and its mask
    chapter 13  attention_masks       the four masks of the three families
    chapter 14  your_gpt              the loss of your GPT while it trains
    chapter 15  induction_scores      the trained model's maps, with your scores

The pictures are drawn here with matplotlib, and graphs laid out by tinyformer.graph_layout
as viz lays out its own (viz draws tinyautograd's graphs and trained models; these are a
learner's scalars and small matrices, with their numbers written in).
"""

from __future__ import annotations

import errno
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor, functional, no_grad

from ..files import StrPath, atomic_write, command_line
from ..graph_layout import INSTALL_HINT, layout
from .catalogue import Exercise
from .checking import (CheckFailure, Learner, as_array, error_line, load_learner_file,
                       of_shape, run_learner_code)

# ---------------------------------------------------------------------------------------------
# What a drawer returns, and how it is rendered
# ---------------------------------------------------------------------------------------------


@dataclass
class Panel:
    """One plot of a picture. `kind` is "heatmap" (`values` a 2-D array, `rows` and `cols`
    its tick labels, `numbers` to write each value in its cell, `colorbar` the label of a
    colour bar beside it), "lines" (`lines`: (label, xs, ys) each) or "bars" (`values` 1-D,
    `cols` its labels). `xlabel` and `ylabel` name the axes."""
    title: str
    kind: str = "heatmap"
    values: np.ndarray | None = None
    rows: list[str] | None = None
    cols: list[str] | None = None
    numbers: bool = False
    lines: list[tuple[str, ArrayLike, ArrayLike]] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    colorbar: str = ""


@dataclass
class Picture:
    """What a drawer made: panels side by side under a title, or a graphviz graph (`dot`,
    a graphviz.Digraph)."""
    title: str
    panels: list[Panel] = field(default_factory=list)
    dot: object = None
    caption: str = ""


DrawFunction = Callable[[Learner], Picture]     # draw(learner) -> Picture


@dataclass
class Drawer:
    what: str                     # "the graph of a neuron in your Value engine": for messages
    draw: DrawFunction


def render(picture: Picture, path: StrPath) -> Path:
    """Write `picture` to `path`, a .png or a .svg, all or nothing."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if picture.dot is not None:
        picture.dot.attr(label="\n".join(filter(None, (picture.title, picture.caption))),
                         labelloc="t", fontsize="12")
        image = layout(picture.dot.source, fmt)
        if image is None:               # the machine's answer, not the learner's code
            raise OSError(errno.ENOENT, f"{INSTALL_HINT}; this picture is a graph: draw it "
                          f"again once one is installed")
        with atomic_write(path, "wb") as f:
            f.write(image)
        return path
    figure = _figure(picture)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format=fmt, dpi=110)
    return path


def _figure(picture):
    # The object-oriented API, without pyplot: no window, no global state (see viz/plots.py).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    widths = [_panel_width(panel) for panel in picture.panels]
    height = max(_panel_height(panel) for panel in picture.panels)
    width = sum(widths) + 0.6 * len(widths)
    figure = Figure(figsize=(width, height + 1.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(picture.panels), squeeze=False,
                           gridspec_kw={"width_ratios": widths})[0]
    for ax, panel in zip(axes, picture.panels):
        {"heatmap": _heatmap, "lines": _lines, "bars": _bars}[panel.kind](ax, panel)
        ax.set_title(panel.title, fontsize=9)
    # The width comes from the panels; a title or caption longer than that would be cut off at
    # both edges, so each is wrapped to it instead.
    figure.suptitle(_wrapped(picture.title, width, 11), fontsize=11)
    if picture.caption:
        figure.supxlabel(_wrapped(picture.caption, width, 8), fontsize=8)
    return figure


def _wrapped(text, width, fontsize):
    """`text` broken between words into lines no wider than `width` inches (less a margin) at
    `fontsize` points, each line measured as matplotlib will draw it."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath
    font, measure = FontProperties(size=fontsize), TextToPath()

    def points(line):
        return measure.get_text_width_height_descent(line, font, ismath=False)[0]

    room = (width - 0.2) * 72
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            longer = f"{line} {word}" if line else word
            if line and points(longer) > room:
                lines.append(line)
                line = word
            else:
                line = longer
        lines.append(line)
    return "\n".join(lines)


def _panel_width(panel):
    if panel.kind == "heatmap":
        return min(7.0, max(1.6, 0.42 * panel.values.shape[1] + 0.8))
    return 3.0 if panel.kind == "bars" else 5.0


def _panel_height(panel):
    if panel.kind == "heatmap":
        return min(7.0, max(1.6, 0.42 * panel.values.shape[0] + 0.8))
    return 3.0


def _heatmap(ax, panel):
    values = np.asarray(panel.values, dtype=np.float64)
    # A wrong answer may hold NaN or infinities (a row whose every key is masked, say): they
    # are written in as they are, and the finite values alone set the colours.
    finite = values[np.isfinite(values)]
    low, high = min(0.0, finite.min(initial=0.0)), max(1.0, finite.max(initial=1.0))
    image = ax.imshow(values, cmap="Blues" if low >= 0 else "RdBu_r",
                      vmin=-high if low < 0 else low, vmax=high, aspect="auto")
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    if panel.colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8).set_label(panel.colorbar, fontsize=8)
    for labels, set_ticks, set_labels, rotation in (
            (panel.rows, ax.set_yticks, ax.set_yticklabels, 0),
            (panel.cols, ax.set_xticks, ax.set_xticklabels, 90)):
        if labels is None:
            set_ticks([])
        else:
            set_ticks(range(len(labels)))
            set_labels(labels, fontsize=7, rotation=rotation)
    if panel.numbers and values.size <= 400:
        # Rounding leaves a weight that should be 0 at 1.9e-16: written as the 0 it is.
        tiny = 1e-9 * max(1.0, float(np.abs(finite).max(initial=0.0)))
        for (i, j), value in np.ndenumerate(np.where(np.abs(values) < tiny, 0.0, values)):
            if value == 0 and values.size > 36:     # a big table reads better without them
                continue
            if not math.isfinite(value):
                text = str(value)                               # nan, inf or -inf
            else:
                text = f"{value:.2g}" if value != int(value) else f"{int(value)}"
            dark = abs(value) > 0.6 * high
            ax.text(j, i, text, ha="center", va="center", fontsize=6,
                    color="white" if dark else "black")


def _lines(ax, panel):
    for label, xs, ys in panel.lines:
        ax.plot(xs, ys, label=label, linestyle="--" if label.startswith("(") else "-")
    ax.set_xlabel(panel.xlabel, fontsize=8)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _bars(ax, panel):
    ax.bar(range(len(panel.values)), panel.values, color="#4a7ab5")
    ax.set_xticks(range(len(panel.values)))
    ax.set_xticklabels(panel.cols, fontsize=7)
    ax.set_ylim(0, 1)
    for i, value in enumerate(panel.values):
        ax.text(i, value + 0.02, f"{value:.2f}", ha="center", fontsize=6)


# ---------------------------------------------------------------------------------------------
# Drawing an exercise: the entry point of the fresh process
# ---------------------------------------------------------------------------------------------

DRAWERS: dict[str, Drawer] = {}


def drawer(slug: str, what: str) -> Callable[[DrawFunction], DrawFunction]:
    """Register the decorated function as the drawer of exercise `slug`."""
    def register(draw: DrawFunction) -> DrawFunction:
        DRAWERS[slug] = Drawer(what, draw)
        return draw
    return register


def draw(exercise: Exercise, path: StrPath, picture_path: StrPath) -> str | None:
    """Load the learner's file of `exercise` from `path`, draw it, and write the picture to
    `picture_path`. Returns None, or the message saying why it could not be drawn."""
    try:
        learner = load_learner_file(path, number=exercise.number)
        picture = DRAWERS[exercise.slug].draw(learner)
    except CheckFailure as failure:
        return str(failure)
    except Exception as error:
        # What the learner's code returned tripped the drawer (a list where an array was due,
        # say): say so, as a check does, rather than show the drawer's traceback.
        return (f"the picture could not use what your code returned:\n"
                f"    {error_line(error)}\n"
                f"`{command_line('exercises', 'check', exercise.slug)}` says what is wrong.")
    try:
        render(picture, picture_path)
    except CheckFailure as failure:
        return str(failure)
    return None


def _matrix(got: Any, shape: tuple[int, ...], call: str, what: str = "returned") -> np.ndarray:
    """The learner's result as a float array of `shape`, or a CheckFailure saying it cannot
    be drawn (a check says more about the values)."""
    if got is None:
        raise CheckFailure(f"{call} {what} None. Did you forget a `return`?")
    try:
        array = np.asarray(as_array(got), dtype=np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(f"{call} {what} something that is not an array of numbers.") \
            from None
    if array.shape != tuple(shape):
        raise CheckFailure(f"{call} {what} {of_shape(got, array.shape)}; the picture needs "
                           f"{tuple(shape)}. `{command_line('exercises', 'check')}` says "
                           f"more.")
    return array


def _labels(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Chapters 1 to 3: tables and masks
# ---------------------------------------------------------------------------------------------

@drawer("table_lookup", "one_hot(ids), the table, and the rows their product picks")
def _draw_table_lookup(learner: Learner) -> Picture:
    one_hot, lookup = learner.function("one_hot"), learner.function("lookup_by_matmul")
    ids = np.array([2, 0, 3, 2])
    table = np.arange(1.0, 13.0).reshape(4, 3)                         # (V=4, d=3)
    rows = [f"id {i}" for i in ids]
    return Picture("A one-hot row times a table is one row of the table", [
        Panel("one_hot(ids, 4)  (N, V)", values=_matrix(one_hot(ids, 4), (4, 4),
                                                        one_hot.last_call),
              rows=rows, cols=_labels("", 4), numbers=True),
        Panel("table  (V, d)", values=table, rows=_labels("row ", 4), cols=_labels("", 3),
              numbers=True),
        Panel("lookup_by_matmul(ids, table)  (N, d)",
              values=_matrix(lookup(ids, table), (4, 3), lookup.last_call), rows=rows,
              cols=_labels("", 3), numbers=True)])


@drawer("markov_first_order", "the table of next-word probabilities")
def _draw_markov_first_order(learner: Learner) -> Picture:
    corpus = learner.attribute("CORPUS")
    vocab = learner.function("vocabulary")(corpus)
    counts = learner.function("transition_counts")
    normalise = learner.function("normalise_rows")
    V = len(vocab)
    table = _matrix(counts(corpus, vocab), (V, V), counts.last_call)
    probs = _matrix(normalise(table), (V, V), normalise.last_call)
    return Picture("After each word (row), how likely each next word is (column)", [
        Panel("normalise_rows(transition_counts(CORPUS, vocab))", values=probs, rows=vocab,
              cols=vocab, numbers=True)],
        caption="A row with two cells of 0.5 is a word after which counting cannot choose.")


@drawer("attention_as_matmul", "which earlier positions each position attends to")
def _draw_attention_as_matmul(learner: Learner) -> Picture:
    from .checks.ch02_counting import reference_skip_weights, vocabulary
    from .checks.ch03_masking import LONG_CORPUS, reference_mask
    vocab = vocabulary(LONG_CORPUS)
    mask_table = reference_mask(reference_skip_weights(LONG_CORPUS, vocab))
    words = LONG_CORPUS[2].split()
    ids = np.array([vocab.index(w) for w in words])
    scores = learner.function("attention_scores")
    T = len(ids)
    return Picture("attention_scores: position t (row) hears position s (column)", [
        Panel("attention_scores(ids, mask_table)",
              values=_matrix(scores(ids, mask_table), (T, T), scores.last_call),
              rows=words, cols=words, numbers=True)],
        caption="Only earlier positions (below the diagonal), and of those only the words "
                "that the current word's mask finds informative.")


# ---------------------------------------------------------------------------------------------
# Chapter 4: the scalar engine's graph, and the backward passes of the gradient exercises
# ---------------------------------------------------------------------------------------------

def _digraph(rankdir="LR"):
    import graphviz
    dot = graphviz.Digraph()
    dot.attr(rankdir=rankdir, fontname="Helvetica")
    dot.attr("node", fontname="Helvetica", fontsize="10")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    return dot


@drawer("scalar_engine", "the graph of a neuron in your Value engine, with .data and .grad")
def _draw_scalar_engine(learner: Learner) -> Picture:
    """o = tanh(x1*w1 + x2*w2 + b), as micrograd draws it: a box per Value (its name, data
    and grad), an oval per op, after o.backward()."""
    Value = learner.attribute("Value")
    leaves = {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "b": 6.8813735870195432}
    v = {name: Value(x) for name, x in leaves.items()}
    names = {id(value): name for name, value in v.items()}

    def forward():
        x1w1, x2w2 = v["x1"] * v["w1"], v["x2"] * v["w2"]
        both = x1w1 + x2w2
        n = both + v["b"]
        o = n.tanh()
        names.update({id(x1w1): "x1*w1", id(x2w2): "x2*w2", id(both): "x1*w1 + x2*w2",
                      id(n): "n", id(o): "o"})
        return o

    o = run_learner_code(learner.path, forward, "computing o = tanh(x1*w1 + x2*w2 + b)")
    caption = "After o.backward(): each box is a Value, its data and its gradient d o / d it."
    try:
        run_learner_code(learner.path, o.backward, "o.backward()")
    except CheckFailure as failure:          # the forward graph is worth seeing already
        caption = (f"No gradients yet: {str(failure).splitlines()[0]}")
    dot = _digraph()
    seen, stack = set(), [o]
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        node = str(id(value))
        name = names.get(id(value), "")
        dot.node(node, f"{name} | data {value.data:.4f} | grad {value.grad:.4f}", shape="record",
                 style="filled", fillcolor="#cfe2f3" if name in leaves else "#ffffff")
        children = getattr(value, "_children", ())
        if children:
            op = node + "op"
            dot.node(op, str(getattr(value, "_op", "")) or "?", shape="ellipse",
                     style="filled", fillcolor="#fff2cc")
            dot.edge(op, node)
            for child in children:
                dot.edge(str(id(child)), op)
                stack.append(child)
    return Picture("o = tanh(x1*w1 + x2*w2 + b)", dot=dot, caption=caption)


def _array_label(name, array):
    """`name (2, 3)` and, for a small array, its numbers."""
    array = np.asarray(array, dtype=np.float64)
    head = f"{name}  {array.shape}"
    if array.size > 12:
        return f"{head}\\nnorm {np.linalg.norm(array):.3g}"
    rows = np.atleast_2d(array) if array.ndim <= 2 else array.reshape(-1, array.shape[-1])
    body = "\\n".join(" ".join(f"{x:7.3f}" for x in row) for row in rows)
    return f"{head}\\n{body}"


def _backward_picture(title, inputs, output, upstream, op, yours, expected, function):
    """The backward pass of one op: the forward inputs and output, the upstream gradient
    coming back, the learner's `function` and each gradient it returned (`yours`), marked
    against tinyautograd's (`expected`)."""
    dot = _digraph()
    dot.attr("node", shape="box", style="rounded,filled", fontname="Courier", fontsize="9")
    for name, array in inputs.items():
        dot.node(f"in_{name}", _array_label(name, array), fillcolor="#d9ead3")
        dot.edge(f"in_{name}", "forward")
    dot.node("forward", op, shape="ellipse", fillcolor="#fff2cc", fontname="Helvetica")
    dot.node("out", _array_label("out", output), fillcolor="#eeeeee")
    dot.edge("forward", "out")
    dot.node("upstream", _array_label("upstream grad", upstream), fillcolor="#f4cccc")
    dot.node("backward", f"your {function}", shape="ellipse", fillcolor="#fff2cc",
             fontname="Helvetica")
    dot.edge("out", "upstream", style="dashed", label="d loss / d out")
    dot.edge("upstream", "backward")
    for name, got in yours.items():
        if got is None:
            label, colour = f"d loss / d {name}\\nNone", "#eeeeee"
        elif np.shape(got) != np.shape(expected[name]):
            label = (_array_label(f"d loss / d {name}", got)
                     + f"\\nshape should be {np.shape(expected[name])}")
            colour = "#f4cccc"
        else:
            right = np.allclose(got, expected[name], rtol=1e-4, atol=1e-6)
            label = _array_label(f"d loss / d {name}", got) + (
                "\\nmatches tinyautograd" if right else
                f"\\ndiffers from tinyautograd by up to "
                f"{np.abs(np.asarray(got) - expected[name]).max():.3g}")
            colour = "#cfe2f3" if right else "#f4cccc"
        dot.node(f"grad_{name}", label, fillcolor=colour)
        dot.edge("backward", f"grad_{name}")
        dot.edge(f"in_{name}", f"grad_{name}", style="dotted", arrowhead="none")
    return Picture(title, dot=dot)


def _engine_gradients(forward, inputs, upstream):
    """tinyautograd's gradients of sum(upstream * forward(*inputs)), for each input."""
    tensors = {k: Tensor(np.asarray(v, dtype=np.float64), requires_grad=True, dtype=np.float64)
               for k, v in inputs.items()}
    forward(*tensors.values()).backward(Tensor(np.asarray(upstream, dtype=np.float64),
                                               dtype=np.float64))
    return {k: t.grad for k, t in tensors.items()}


@drawer("broadcast_gradients", "the backward pass of a * b, with b broadcast over a's rows")
def _draw_broadcast_gradients(learner: Learner) -> Picture:
    mul_backward = learner.function("mul_backward")
    a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    b = np.array([0.5, -1.0, 2.0])
    upstream = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    got = mul_backward(upstream, a, b)
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise CheckFailure(f"{mul_backward.last_call} should return two arrays: "
                           f"`return grad_a, grad_b`.")
    yours = {name: None if g is None else np.asarray(as_array(g), dtype=np.float64)
             for name, g in zip("ab", got)}
    expected = _engine_gradients(lambda x, y: x * y, {"a": a, "b": b}, upstream)
    return _backward_picture("a * b with b (3,) broadcast over a (2, 3): b's gradient sums "
                             "over the rows", {"a": a, "b": b}, a * b, upstream, "a * b",
                             yours, expected, "mul_backward")


def _function_backward(learner, wrapper, function, inputs, extra, upstream, n_inputs):
    """Run the learner's op through its given `wrapper` on `inputs` (Tensors, then `extra`
    arguments), and call `function`.backward on the result with `upstream`. Returns (the
    output array, {name: gradient or None})."""
    from .checks.ch04_autograd import _Apply, _returned_gradients, _tensor
    apply = _Apply(learner, wrapper)
    tensors = [_tensor(v) for v in inputs.values()]
    out = apply(*tensors, *extra)
    if getattr(out, "grad_fn", None) is None:
        raise CheckFailure(f"{apply.last_call} did not return a Tensor made by "
                           f"{function.__name__}.apply.")
    got = _returned_gradients(learner, function, out, upstream, n_inputs, apply.last_call)
    return as_array(out), dict(zip(inputs, got))


@drawer("matmul_backward", "the backward pass of your MatMul")
def _draw_matmul_backward(learner: Learner) -> Picture:
    a = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0]])
    b = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    upstream = np.array([[1.0, -2.0], [0.5, 1.0]])
    out, yours = _function_backward(learner, "matmul", learner.attribute("MatMul"),
                                    {"a": a, "b": b}, (), upstream, 2)
    expected = {"a": upstream @ b.T, "b": a.T @ upstream}
    return _backward_picture("a @ b: each gradient is the upstream gradient times the other "
                             "operand, transposed", {"a": a, "b": b}, out, upstream, "a @ b",
                             yours, expected, "MatMul.backward")


@drawer("softmax_cross_entropy_backward", "the backward pass of your SoftmaxCrossEntropy")
def _draw_softmax_cross_entropy_backward(learner: Learner) -> Picture:
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]]))
    targets = np.array([0, 2])
    upstream = np.float64(1.0)
    out, yours = _function_backward(learner, "softmax_cross_entropy",
                                    learner.attribute("SoftmaxCrossEntropy"),
                                    {"logits": logits}, (targets,), upstream, 1)
    expected = _engine_gradients(lambda t: functional.cross_entropy(t, targets),
                                 {"logits": logits}, upstream)
    return _backward_picture(f"cross-entropy of softmax(logits), targets {targets.tolist()}: "
                             f"(p - onehot(target)) / N", {"logits": logits}, out, upstream,
                             "softmax_cross_entropy", yours, expected,
                             "SoftmaxCrossEntropy.backward")


@drawer("layer_norm_backward", "the backward pass of your LayerNormFunction")
def _draw_layer_norm_backward(learner: Learner) -> Picture:
    x = np.array([[1.0, 2.0, 3.0, 6.0], [0.0, -1.0, 1.0, 0.5]])
    gamma, beta = np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 0.1, 0.2, 0.3])
    upstream = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 1.0, 0.0, -2.0]])
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    out, yours = _function_backward(learner, "layer_norm", learner.attribute("LayerNormFunction"),
                                    inputs, (), upstream, 3)
    expected = _engine_gradients(functional.layer_norm, inputs, upstream)
    return _backward_picture("layer norm over the last axis: gradients for x, gamma and beta",
                             inputs, out, upstream, "layer_norm", yours, expected,
                             "LayerNormFunction.backward")


# ---------------------------------------------------------------------------------------------
# Chapter 5: embeddings and positions
# ---------------------------------------------------------------------------------------------

@drawer("embedding", "the backward pass of your Embedding, where a repeated id's gradients add up,")
def _draw_embedding(learner: Learner) -> Picture:
    table = np.arange(10.0).reshape(5, 2)
    ids = np.array([1, 3, 1, 1])
    upstream = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])
    out, yours = _function_backward(learner, "embed", learner.attribute("Embedding"),
                                    {"table": table}, (ids,), upstream, 1)
    expected = _engine_gradients(lambda t: functional.embedding(ids, t), {"table": table},
                                 upstream)
    return _backward_picture(f"the rows of ids {ids.tolist()}: id 1, looked up three times, "
                             f"gets three gradients added", {"table": table}, out, upstream,
                             "embed", yours, expected, "Embedding.backward")


@drawer("sinusoidal_positions", "the table of sinusoidal positions")
def _draw_sinusoidal_positions(learner: Learner) -> Picture:
    positions = learner.function("sinusoidal_positions")
    context, d_model = 48, 32
    table = _matrix(positions(context, d_model), (context, d_model), positions.last_call)
    return Picture("sinusoidal_positions(48, 32): a position (row) is a point on every wave", [
        Panel("the (context, d_model) table", values=table, rows=None, cols=None,
              xlabel=f"dimension (0 to {d_model - 1})",
              ylabel=f"position (0 to {context - 1})", colorbar="value")],
        caption="Columns 0 and 1 change fastest; the last ones barely change over 48 "
                "positions.")


# ---------------------------------------------------------------------------------------------
# Chapters 6 and 11: attention maps
# ---------------------------------------------------------------------------------------------

_WORDS = ["the", "cat", "sat", "on", "the", "mat"]
_QUERY_KEY = dict(ylabel="query (row)", xlabel="key (column)")   # an attention map's axes


def _queries_and_keys(T, d, seed):
    rng = np.random.default_rng(seed)
    return (Tensor(rng.normal(size=(1, T, d)) * 1.5, dtype=np.float64),
            Tensor(rng.normal(size=(1, T, d)) * 1.5, dtype=np.float64))


def _weights_by_identity(attend, q, k, T, call):
    """The attention weights of the learner's `attend(q, k, v)` (`call` shows the call, for
    a message): with v the identity, the output softmax(...) @ v is the weights themselves."""
    v = Tensor(np.broadcast_to(np.eye(T), q.shape[:-1] + (T,)).copy(), dtype=np.float64)
    with no_grad():
        out = attend(q, k, v)
    return _matrix(out, q.shape[:-1] + (T,), call)


@drawer("scaled_dot_product", "the attention weights of your scaled_dot_product")
def _draw_scaled_dot_product(learner: Learner) -> Picture:
    attention = learner.function("scaled_dot_product")
    T = len(_WORDS)
    q, k = _queries_and_keys(T, 4, seed=0)
    causal = np.tril(np.ones((1, T, T), dtype=bool))
    plain = _weights_by_identity(lambda q, k, v: attention(q, k, v, None), q, k, T,
                                 "scaled_dot_product(q, k, v)")
    masked = _weights_by_identity(lambda q, k, v: attention(q, k, v, causal), q, k, T,
                                  "scaled_dot_product(q, k, v, mask)")
    return Picture("softmax(q k^T / sqrt(d_k)): each query's row sums to 1", [
        Panel("no mask", values=plain[0], rows=_WORDS, cols=_WORDS, numbers=True, **_QUERY_KEY),
        Panel("a causal mask", values=masked[0], rows=_WORDS, cols=_WORDS, numbers=True,
              **_QUERY_KEY)],
        caption="Random queries and keys; v is the identity, so the output is the weights.")


@drawer("causal_mask", "your causal mask and the attention it allows")
def _draw_causal_mask(learner: Learner) -> Picture:
    from .checks.ch06_attention import expect_boolean_mask
    mask_fn, attend = learner.function("causal_mask"), learner.function("causal_attention")
    T = len(_WORDS)
    got = mask_fn(T)
    mask = _matrix(got, (T, T), mask_fn.last_call)
    # A mask of 0.0 and 1.0 draws, but causal_attention's `~mask` fails on it: said as the
    # check says it, not as numpy's TypeError.
    expect_boolean_mask(got, mask_fn.last_call)
    q, k = _queries_and_keys(T, 4, seed=1)
    weights = _weights_by_identity(attend, q, k, T, "causal_attention(q, k, v)")
    return Picture("A position reads itself and what came before it, never what comes after", [
        Panel(f"causal_mask({T}): True = may attend", values=mask, rows=_WORDS, cols=_WORDS,
              numbers=True, **_QUERY_KEY),
        Panel("causal_attention's weights", values=weights[0], rows=_WORDS, cols=_WORDS,
              numbers=True, **_QUERY_KEY)])


@drawer("multi_head_attention", "each head's attention weights, through your split_heads")
def _draw_multi_head_attention(learner: Learner) -> Picture:
    split_heads, attention = learner.function("split_heads"), learner.function("attention")
    T, C, n_head = len(_WORDS), 8, 2
    rng = np.random.default_rng(2)
    x = Tensor(rng.normal(size=(1, T, C)), dtype=np.float64)
    w_q, w_k = (Tensor(rng.normal(size=(C, C)), dtype=np.float64) for _ in range(2))
    q, k = split_heads(x @ w_q, n_head), split_heads(x @ w_k, n_head)
    _matrix(q, (1, n_head, T, C // n_head), split_heads.last_call)
    causal = np.tril(np.ones((T, T), dtype=bool))
    weights = _weights_by_identity(lambda q, k, v: attention(q, k, v, causal), q, k, T,
                                   "attention(q, k, v, mask)")
    return Picture("Multi-head attention: each head attends in its own way", [
        # Counted from 1, as every other picture counts; the exercise indexes them from 0.
        Panel(f"head {h + 1} (index {h})", values=weights[0, h], rows=_WORDS, cols=_WORDS,
              numbers=True, **_QUERY_KEY) for h in range(n_head)],
        caption="x @ w_q and x @ w_k split into 2 heads of 4 features by your split_heads; "
                "causal mask.")


def _hand_set_heads(learner, layers, ids, title):
    from .checks.ch11_by_hand import _run, _weights
    make_weights = learner.function("make_weights")
    vocab_size, context = 6, 12
    weights = _weights(make_weights, vocab_size, context, layers)
    logits, patterns = _run(weights, ids, layers)
    labels = [f"{t}:{i}" for t, i in enumerate(ids)]
    predicted = " ".join(str(int(i)) for i in logits.argmax(axis=-1))
    return Picture(title, [
        Panel(f"layer {n}" if layers > 1 else "the head", values=pattern, rows=labels,
              cols=labels) for n, pattern in enumerate(patterns, start=1)],
        caption=f"position:token; row t is where position t looks. Predictions: {predicted}")


@drawer("attend_to_first", "where your hand-set head looks: the first token")
def _draw_attend_to_first(learner: Learner) -> Picture:
    return _hand_set_heads(learner, 1, np.array([3, 1, 4, 1, 5, 2, 0, 3]),
                           "Attend to the first token: every row has its weight in column 0")


@drawer("previous_token", "where your hand-set head looks: the previous token")
def _draw_previous_token(learner: Learner) -> Picture:
    return _hand_set_heads(learner, 1, np.array([3, 1, 4, 1, 5, 2, 0, 3]),
                           "A previous-token head: the weight sits just below the diagonal")


@drawer("induction_head", "where your two hand-set layers look on a repeated pattern")
def _draw_induction_head(learner: Learner) -> Picture:
    return _hand_set_heads(learner, 2, np.array([0, 3, 1, 4, 5, 3, 1, 4, 5]),
                           "An induction head: layer 1 looks back one token; layer 2 looks "
                           "after the earlier copy of the current token")


# ---------------------------------------------------------------------------------------------
# Chapters 7 to 10: curves, distributions and merges
# ---------------------------------------------------------------------------------------------

@drawer("feed_forward", "your GELU beside ReLU")
def _draw_feed_forward(learner: Learner) -> Picture:
    gelu = learner.function("gelu")
    xs = np.linspace(-4.0, 4.0, 161)
    with no_grad():
        ys = _matrix(gelu(Tensor(xs, dtype=np.float64)), xs.shape, gelu.last_call)
    return Picture("GELU: smooth near 0, almost ReLU far from it", [
        Panel("gelu(x)", kind="lines", xlabel="x", ylabel="output",
              lines=[("your gelu", xs, ys), ("(relu)", xs, np.maximum(xs, 0.0))])])


@drawer("warmup_schedule", "the learning rate your schedule gives at every step")
def _draw_warmup_schedule(learner: Learner) -> Picture:
    schedule = learner.function("warmup_schedule")
    steps = np.arange(0, 121)
    rates = np.array([_matrix(schedule(int(s), 3e-3, 20, 100, 3e-4), (), schedule.last_call)
                      for s in steps])
    return Picture("Warmup for 20 steps, cosine decay until step 100, then min_lr", [
        Panel("warmup_schedule(step, 3e-3, 20, 100, min_lr=3e-4)", kind="lines",
              xlabel="step", ylabel="learning rate", lines=[("your schedule", steps, rates)])])


@drawer("temperature_top_k", "one distribution at several temperatures, and a top-k")
def _draw_temperature_top_k(learner: Learner) -> Picture:
    probs = learner.function("next_token_probs")
    logits = np.array([2.0, 1.5, 1.0, 0.0, -0.5, -1.0])
    tokens = _labels("t", len(logits))
    settings = [(1.0, None), (0.5, None), (2.0, None), (1.0, 3)]
    return Picture(f"next_token_probs of the logits {logits.tolist()}", [
        Panel(f"temperature {t}" + (f", top_k {k}" if k else ""), kind="bars",
              values=_matrix(probs(logits, t, k), logits.shape, probs.last_call), cols=tokens)
        for t, k in settings])


@drawer("bpe_train", "the merges your BPE learns, as a tree of tokens")
def _draw_bpe_train(learner: Learner) -> Picture:
    train = learner.function("bpe_train")
    text = learner.attribute("TEXT")
    merges = train(text, 10)
    if not isinstance(merges, (list, tuple)):
        raise CheckFailure(f"{train.last_call} returned {type(merges).__name__}; it should "
                           f"return the list of merged pairs.")
    pieces = {i: bytes([i]) for i in range(256)}
    dot = _digraph(rankdir="BT")
    dot.attr("node", shape="box", style="rounded,filled", fontname="Courier")
    used = set()
    for rank, pair in enumerate(merges):
        a, b = (int(i) for i in pair)
        new = 256 + rank
        pieces[new] = pieces.get(a, b"?") + pieces.get(b, b"?")
        dot.node(str(new), f"{new}: {_shown(pieces[new])!r}", fillcolor="#cfe2f3")
        for part in (a, b):
            if part < 256 and part not in used:
                dot.node(str(part), f"{part}: {_shown(pieces[part])!r}", fillcolor="#eeeeee")
                used.add(part)
            dot.edge(str(part), str(new))
    return Picture(f"bpe_train(TEXT, 10) on {text!r}", dot=dot)


def _shown(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace").replace(" ", "\u2423")


# ---------------------------------------------------------------------------------------------
# Chapters 12 to 15: masks, and models that train
# ---------------------------------------------------------------------------------------------

@drawer("padding_mask", "a padded batch and your padding mask")
def _draw_padding_mask(learner: Learner) -> Picture:
    pad, mask = learner.function("pad_batch"), learner.function("padding_mask")
    sequences = [[5, 6, 7, 8], [9, 4], [3, 2, 1]]
    ids = _matrix(pad(sequences, 0), (3, 4), pad.last_call)
    allowed = _matrix(mask(ids.astype(np.int64), 0), (3, 1, 1, 4), mask.last_call)
    return Picture("A batch of three sequences, padded with id 0", [
        Panel("pad_batch(sequences, 0)  (B, T)", values=ids, rows=_labels("seq ", 3),
              cols=_labels("", 4), numbers=True),
        Panel("padding_mask(ids, 0): keys to read", values=allowed[:, 0, 0],
              rows=_labels("seq ", 3), cols=_labels("key ", 4), numbers=True)],
        caption="The mask is (B, 1, 1, T): the same row of keys for every head and query.")


@drawer("attention_masks", "the masks of GPT, BERT and the encoder-decoder")
def _draw_attention_masks(learner: Learner) -> Picture:
    src = np.array([[4, 5, 6, 0, 0]])
    tgt = np.array([[7, 8, 9, 0]])
    masks = [("GPT: causal", "gpt_mask", (tgt,), 4, 4),
             ("BERT: the padding", "bert_mask", (tgt, 0), 4, 4),
             ("decoder self-attention: both", "decoder_self_mask", (tgt, 0), 4, 4),
             ("cross-attention: the source's padding", "cross_mask", (src, tgt, 0), 4, 5)]
    panels = []
    for title, name, args, t_q, t_k in masks:
        fn = learner.function(name)
        got = fn(*args)
        if got is None:             # numpy would make it a mask of NaN, and draw that
            raise CheckFailure(f"{fn.last_call} returned None. Did you forget a `return`?")
        try:
            full = np.broadcast_to(np.asarray(as_array(got)), (1, 2, t_q, t_k))
        except (TypeError, ValueError):
            raise CheckFailure(f"{fn.last_call} returned {np.shape(got)}, which does not "
                               f"broadcast against the scores (1, n_head, {t_q}, {t_k}).") \
                from None
        panels.append(Panel(title, values=full[0, 0].astype(np.float64),
                            rows=[f"q{i}" for i in range(t_q)],
                            cols=[f"k{i}" for i in range(t_k)], numbers=True))
    return Picture("1 = may attend; source [4 5 6 pad pad], target [7 8 9 pad]", panels)


@drawer("your_gpt", "the loss of your GPT over its first training steps")
def _draw_your_gpt(learner: Learner, steps: int = 120) -> Picture:
    from threadpoolctl import threadpool_limits

    from tinyautograd import manual_seed, optim
    from tinyformer.data import builtin_corpus
    GPT, batch = learner.function("GPT"), learner.function("teacher_forcing_batch")
    text = builtin_corpus(n_chars=20_000, seed=0)
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    manual_seed(0)
    model = GPT(len(vocab), 64, 32, 2, 2)
    optimiser = optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    rng = np.random.default_rng(0)
    losses = []
    with threadpool_limits(1):       # small matrices: one BLAS thread is fastest
        for _ in range(steps):
            x, y = batch(ids, rng.integers(0, len(ids) - 65, size=16), 64)
            loss = functional.cross_entropy(learner.call_method(model, "forward", x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    uniform = math.log(len(vocab))
    return Picture("Your GPT learning the built-in stories", [
        Panel("d_model 32, 2 layers, 2 heads, AdamW 1e-2", kind="lines", xlabel="step",
              ylabel="cross-entropy",
              lines=[("your GPT", np.arange(1, steps + 1), np.array(losses)),
                     ("(a uniform guess)", [1, steps], [uniform, uniform])])])


@drawer("induction_scores", "the trained model's attention maps, scored by your functions")
def _draw_induction_scores(learner: Learner) -> Picture:
    previous = learner.function("previous_token_score")
    induction = learner.function("induction_score")
    train, run_model = learner.attribute("train"), learner.attribute("run_model")
    ids = np.array([0, 3, 1, 4, 6, 3, 1, 4, 6])
    learned = run_learner_code(learner.path, lambda: train(300), "train(300)")
    with no_grad():
        _, patterns = run_learner_code(learner.path, lambda: run_model(learned, ids[None]),
                                       "run_model(learned, ids)")
    panels = []
    for layer, pattern in enumerate(patterns, start=1):
        A = np.asarray(as_array(pattern)[0], dtype=np.float64)
        scores = (f"previous-token {_score(previous(A), previous.last_call):.2f}, "
                  f"induction {_score(induction(A, ids), induction.last_call):.2f}")
        labels = [f"{t}:{i}" for t, i in enumerate(ids)]
        panels.append(Panel(f"layer {layer}: {scores}", values=A, rows=labels, cols=labels))
    return Picture("After 300 steps of training, scored by your two functions", panels,
                   caption="position:token; layer 1 should score as a previous-token head, "
                           "layer 2 as an induction head.")


def _score(got: Any, call: str) -> float:
    return float(_matrix(got, (), call))

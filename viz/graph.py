"""Draw the computation graph that produced a tensor, and the graph that computed its gradients.

Every op result remembers how it was made: `tensor.grad_fn` is a node (a `Context`) with the
op's `name` and its `inputs`, and each input that was itself computed has a `grad_fn` of its
own. Following those links from the result back to tensors without one (the leaves: parameters,
inputs, constants) visits the whole graph. We only read those public attributes: the engine
knows nothing of this module.

    from viz import draw_graph, render
    loss = model(x) ...
    render(draw_graph(loss, params=model, inputs={"x": x}), "graph.svg")

The picture flows with the data: leaves at the top, each op below its inputs, the result last.
Note that `backward()` frees the graph as it goes (unless `retain_graph=True`), so draw before
calling it, or keep the graph when you want to see gradients with `show_grad=True` or
`color_by_grad=True` (gradient flow: each node filled by the size of its gradient).

`draw_backward(loss)` draws the backward pass itself: the ops that `grad(create_graph=True)`
records while it applies the chain rule, grouped by the forward op whose backward they are (the
engine stamps them: `Context.backward_of`).

Both pictures box their ops by module when the forward ran inside `viz.record(model)`, and
fold them with the same machinery (_ModuleTree, _fold): `depth=N` collapses each module N
levels down into one node, `fold_repeats=True` a stack of blocks into
`decoder.layers: DecoderLayer x N`.
"""

from __future__ import annotations

import html
import math
import shutil
import subprocess
from collections import deque
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, NamedTuple

import graphviz
import numpy as np

import tinyautograd as ta
from tinyformer.files import StrPath, atomic_write
from tinyformer.graph_layout import INSTALL_HINT, layout
from tinyformer.schema import counted

from .html import Page, ink
from .plots import DRAWN, FIGURE_FORMATS, NAN_COLOUR, title_lines, visible

# Fill colours of the kinds of node, so a reader sees at once what is learned.
OP_COLOUR = "#fff2cc"         # pale yellow: an operation
PARAM_COLOUR = "#cfe2f3"      # pale blue: a parameter (a leaf that is learned)
INPUT_COLOUR = "#d9ead3"      # pale green: a named input
CONSTANT_COLOUR = "#eeeeee"   # grey: any other leaf (constants made by `x * 2`, masks, ...)
MODULE_COLOUR = "#fce5cd"     # pale orange: a whole module folded into one node
# In the backward graph: where the chain rule starts, what it reuses from the forward pass, and
# the gradients it delivers.
SEED_COLOUR = "#f4cccc"       # pale red: the upstream gradient dL/dL = 1
SAVED_COLOUR = "#d9d2e9"      # pale violet: a forward tensor a backward formula reads
GRAD_OUT_COLOUR = "#cfe2f3"   # pale blue, like the parameter it is the gradient of

# Gradient flow: a gradient norm is placed on a log scale and coloured along viridis (dark
# violet = small, yellow = large). Its brightness rises steadily, so the order of sizes can be
# read even in greyscale. Five of viridis' colours, interpolated linearly between.
_VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
NO_GRAD_COLOUR = "#ffffff"    # white: a node without a gradient to show
# A NaN gradient is filled NAN_COLOUR (red, outside viridis): it has no size, and the darkest
# fill would call it vanished.
# A folded module hiding a NaN, or a gradient with an infinity: a border of NAN_COLOUR, and the
# lines that count them bold in a darker red that reads on its pale fill (as on the page:
# graph.css). A value's infinities (a mask's -inf) get a plain line.
ALARM_INK = "#a50f15"

# The directions graphviz lays a graph out in: top to bottom, left to right, and back.
Rankdir = Literal["TB", "LR", "BT", "RL"]

# Why neither the gradients nor the backward graph of a loss can be had once backward() ran.
FREED = ("backward() has freed the graph: draw it before backward, or call "
         "backward(retain_graph=True)")


# cairo, which draws dot's PNGs, makes them at most this many pixels a side: dot scales a
# bigger graph down to fit, its labels then too small to read.
PNG_SIDE_LIMIT = 32767

# A picture's title is wrapped at about this many inches (plots.title_lines): wider than most
# graphs drawn by module, narrower than a screen.
TITLE_WIDTH = 16


class DotNotFoundError(RuntimeError):
    """`render` needed graphviz's `dot` program and it is not installed."""


class NodeCapError(ValueError):
    """draw_backward's `max_nodes` left no room for any op beside the dL/d boxes, which are
    all drawn: `needed` is the least cap that draws one, `gradients` how many boxes there are."""

    def __init__(self, max_nodes: int, needed: int, gradients: int) -> None:
        self.max_nodes, self.needed, self.gradients = max_nodes, needed, gradients
        super().__init__(f"draw_backward: {self.sentence()}")

    def sentence(self, name: Callable[[str], str] = lambda key: key) -> str:
        """What was wrong and what to do, each argument called what `name` calls it (a command
        line's: max_nodes -> --max-nodes), as TrainConfig.check(name=...) does."""
        return (f"{name('max_nodes')}={self.max_nodes} leaves no room for any op beside the "
                f"{self.gradients} dL/d boxes, which are all drawn: raise {name('max_nodes')} "
                f"({self.needed} draws the first ops) or use {name('depth')} to fold modules")


class Graph(graphviz.Digraph):
    """What draw_graph and draw_backward return: a graphviz.Digraph (render it, or show it in a
    notebook as it is) that also remembers what it was drawn from, to make the interactive
    page of the same graph: `page()` (a notebook shows it inline) or `save_html(path)`.
    It keeps the graph's tensors alive while it lives."""

    # draw_graph's or draw_backward's arguments, and the view
    page_options: dict[str, Any] | None = None

    def page(self, **changes: Any) -> Page:
        """The interactive page of this graph (viz.graph_page), `changes` to its options."""
        if self.page_options is None:
            raise ValueError("only a graph returned by draw_graph or draw_backward has a page")
        from .graph_page import graph_page          # graph_page builds on this module
        return graph_page(**{**self.page_options, **changes})

    def save_html(self, path: StrPath) -> StrPath:
        """Write the interactive page of this graph to `path` (.html); returns the path."""
        return self.page().save(path)

    def _repr_mimebundle_(self, include=None, exclude=None, **_):
        """The picture a notebook shows for the graph (an SVG; a PNG if asked), laid out as
        `render` lays it out: graphviz.Digraph's own display runs `dot` only, and without it
        showed graphviz's long ExecutableNotFound traceback rather than how to install it."""
        wanted = set(include) if include is not None else {"image/svg+xml"}
        wanted -= set(exclude or ())
        bundle = {}
        for mimetype, fmt in (("image/svg+xml", "svg"), ("image/png", "png")):
            if mimetype in wanted:
                image = layout(self.source, fmt)
                if image is None:
                    raise DotNotFoundError(INSTALL_HINT)
                bundle[mimetype] = image.decode("utf-8") if fmt == "svg" else image
        return bundle


class DrawnNode(NamedTuple):
    """What one node of a picture shows, for the interactive page: its `kind` ("op", "param",
    "input", "constant", "module"; in the backward graph also "seed", "saved" and "gradient"),
    its `title`, the `tensor` it stands for (an op's output, a leaf, a gradient), the op's
    Context `node`, the `module` path it belongs to, and for a gradient the leaf it is `of`
    (for a saved value, the forward tensor whose numbers it shows: itself, or the one it views).
    `is_gradient`: its tensor is a gradient (in the backward graph, computed from the seed; not
    a forward value that a backward formula recomputes, as attention's scores)."""
    kind: str
    title: str
    tensor: object
    node: object
    module: object
    of: object = None
    is_gradient: bool = False


class Drawing(NamedTuple):
    """A picture and what is in it: the Digraph, `nodes` (node id -> DrawnNode), `boxes` (node
    id -> the keys of the boxes it is drawn in, outermost first), `clusters` (the key of each
    box, `cluster_i` being item i), `ids` (graph key -> node id) and the module tree, and the
    graph's `edges` as (graph key, graph key)."""
    dot: Graph
    nodes: dict
    boxes: dict
    clusters: list
    ids: dict
    tree: object
    edges: list


# --------------------------------------------------------------------------------------------
# Labels. Names come from users (dict keys, module attributes) and may hold any character, so
# every piece of text goes through `_text`. We use graphviz's HTML-like labels: html.escape
# makes `< > & "` harmless; dot still reads a backslash there as in a "quoted" label (`\N` is
# the node's id, `\G` the graph's name, `\\` one backslash), so each one is doubled; and dot
# refuses control characters (they are not XML), so they are written as escapes.


def _text(value):
    """Any value as safe HTML-label text, shown as written: line breaks become <BR/> so they
    still show, characters that would not show are written as escapes (viz.plots.visible),
    and a backslash is doubled."""
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<BR/>".join(html.escape(visible(line), quote=True).replace("\\", "\\\\")
                        for line in lines)


def _tooltip(value):
    """Any value as the text of a node's tooltip (a quoted attribute, which the graphviz
    package quotes): on one line, every character that would not show written as an escape,
    and each backslash written as four: dot reads a backslash there twice, once as in any
    quoted string and again as an escape of its own (`\\N`, the node's id)."""
    return visible(str(value)).replace("\\", "\\" * 4)


def _whole_name_tooltip(shown, whole):
    """The attributes of a node drawn as `shown`, a shortened `whole` (a parameter in its
    module's box, see _parameter_place): its tooltip says the whole of it; none where the
    name drawn is the whole one."""
    return {"tooltip": _tooltip(whole)} if shown != whole else {}


def _label(title, lines=(), number=None, alarms=(), alarm_ink=ALARM_INK):
    """An HTML-like label: a bold title (followed by `#number`, a forward op's number), then
    smaller lines of detail, then `alarms` bold in `alarm_ink` (None: the node's font colour).
    graphviz (the Python package) passes a string that starts with '<' and ends with '>' to
    dot unquoted."""
    body = f"<B>{_text(title)}</B>" + (f" #{number}" if number is not None else "")
    for line in lines:
        body += f'<BR/><FONT POINT-SIZE="10">{_text(line)}</FONT>'
    ink = f' COLOR="{alarm_ink}"' if alarm_ink else ""
    for line in alarms:
        body += f'<BR/><FONT POINT-SIZE="10"{ink}><B>{_text(line)}</B></FONT>'
    return f"<{body}>"


def _shape(array):
    return str(tuple(array.shape))     # Python's spelling: (), (10,), (2, 5, 8)


def _summary(kind, array):
    """One line that says what is in an array: its norm and its range."""
    if array is None:
        return f"{kind}: none"
    if array.size == 0:
        return f"{kind}: empty {_shape(array)}"
    values = np.asarray(array, dtype=np.float64)   # ints and bools too; float64 for the norm
    return (f"{kind}: norm {np.linalg.norm(values):.4g}, "
            f"min {values.min():.4g}, max {values.max():.4g}")


# --------------------------------------------------------------------------------------------
# Walking the graph


def _walk(roots, stop=None):
    """The graph behind the tensors `roots`, breadth first from them back to the leaves.

    Returns `order`, a list of ("op", node, output) and ("leaf", tensor, None), each graph node
    once, nearest the result first (so cutting the list keeps the part next to the result), and
    `edges`, a list of (input key, op key): one per input of each op, so `x * x` has two.
    A key is ("op", id(node)) or ("leaf", id(tensor)): two ops can never share an id while both
    are alive, and the graph keeps them all alive while we look.

    `stop(t)`, when given, makes more tensors leaves: the backward graph stops at the forward
    tensors its formulas read, rather than drawing the forward graph behind them again.
    """
    order, edges, seen = [], [], set()

    def is_leaf(t):
        return t.grad_fn is None or (stop is not None and stop(t))

    def key_of(t):
        return ("leaf", id(t)) if is_leaf(t) else ("op", id(t.grad_fn))

    def visit(t):
        key = key_of(t)
        if key not in seen:
            seen.add(key)
            queue.append(t)
            if key[0] == "op":
                # `output` is the tensor we reached the node through: the node itself holds
                # only a weak reference to it.
                order.append(("op", t.grad_fn, t))
            else:
                order.append(("leaf", t, None))
        return key

    queue = deque()
    for root in roots:
        visit(root)
    while queue:
        t = queue.popleft()
        if is_leaf(t):
            continue
        node_key = key_of(t)
        for inp in t.grad_fn.inputs:     # empty once backward has freed the node
            edges.append((visit(inp), node_key))
    return order, edges


def _run_order(tensor):
    """The ops of the graph behind `tensor` in an order they could have run in: each after the
    ops that made its inputs. A depth-first walk from `tensor` that numbers an op once all its
    inputs are numbered, the inputs taken in order, so `(a * b) + c` numbers the mul before
    the add, as ordinary code runs them. (The distance from the result, which `_walk` sorts
    by, is no such order once a tensor is used twice: in `L = (h * 2) + h` h is as near L as
    the mul that reads it.) A loop, not recursion: a deep model's graph is thousands deep."""
    if tensor.grad_fn is None:
        return []
    order, done = [], {id(tensor.grad_fn)}
    stack = [(tensor.grad_fn, iter(tensor.grad_fn.inputs))]
    while stack:
        node, inputs = stack[-1]
        for t in inputs:
            if t.grad_fn is not None and id(t.grad_fn) not in done:
                done.add(id(t.grad_fn))
                stack.append((t.grad_fn, iter(t.grad_fn.inputs)))
                break
        else:                               # every input's op is numbered: this one is next
            stack.pop()
            order.append(node)
    return order


def _op_numbers(tensor):
    """id(node) -> its number, from 1, in the order the ops ran: the one numbering both graphs
    show (draw_graph's "mul #3", draw_backward's "of forward op #3")."""
    return {id(node): i for i, node in enumerate(_run_order(tensor), start=1)}


def _leaf_names(caller, params, inputs):
    """id(tensor) -> (name, kind) for the leaves the caller named. A TypeError (one line) for
    `params` or `inputs` that hold no names, such as `model.parameters()` or a list: the
    names are what the picture shows."""
    if params is not None and not hasattr(params, "named_parameters") and \
            not hasattr(params, "items"):
        raise TypeError(f"{caller}: params must be a Module or a dict name -> Tensor, such as "
                        f"dict(model.named_parameters()), got a {_type_name(params)}")
    if inputs is not None and not hasattr(inputs, "items"):
        raise TypeError(f"{caller}: inputs must be a dict name -> Tensor, such as "
                        f"{{'x': x}}, got a {_type_name(inputs)}")
    names = {}
    if inputs:
        for name, t in inputs.items():
            names[id(t)] = (str(name), "input")
    if params is not None:
        # A Module names its parameters with dotted paths (`decoder.layers.0.attn.q.weight`);
        # a dict is taken as it is. Parameters win over inputs if a tensor is in both.
        pairs = params.named_parameters() if hasattr(params, "named_parameters") else \
            params.items()
        for name, t in pairs:
            names[id(t)] = (str(name), "param")
    return names


def _cluster_of(name):
    """The group a parameter is drawn in: the first item of a list of modules on its path
    (`decoder.layers.0`), or else its top-level module (`embed`, `decoder`). None for a
    parameter that sits at the top level itself."""
    parts = name.split(".")
    if len(parts) < 2:
        return None
    items = [i for i, part in enumerate(parts[:-1]) if part.isdigit()]
    return ".".join(parts[:items[0] + 1]) if items else parts[0]


def _recorded(order):
    """Whether some op of the graph knows the module that made it: the forward ran inside
    `viz.record(model)`, and the picture boxes its ops by module."""
    return any(kind == "op" and obj.module_path is not None for kind, obj, _ in order)


def _parameter_place(name, tree, depth, fold_repeats):
    """Where the parameter called `name` (a dotted path, `decoder.layers.0.attn.q.weight`) is
    drawn in a graph boxed by module, and what it is called there: inside the box of the
    module that owns it (`decoder.layers.0.attn.q`), under the rest of its path (`weight`),
    beside the ops that use it rather than far outside every box. A parameter of a module
    folded into one node, drawn all the same because another module uses it too (a tied
    embedding), sits beside that node. Returns (boxes for _add_clusters, the name drawn);
    the box says the rest of the path, and the node's tooltip the whole of it."""
    owner = name.rpartition(".")[0]
    folded_into = tree.fold_target(owner, depth, fold_repeats)
    boxes = tree.boxes(owner) if folded_into is None else tree.boxes(folded_into, inside=False)
    inner = boxes[-1][0] if boxes else ""
    return boxes, name[len(inner) + 1:] if inner and name.startswith(inner + ".") else name


# --------------------------------------------------------------------------------------------
# Drawing


def draw_graph(tensor: ta.Tensor,
               params: ta.nn.Module | Mapping[str, ta.Tensor] | None = None,
               inputs: Mapping[str, ta.Tensor] | None = None, show_data: bool = False,
               show_grad: bool = False, max_nodes: int = 500, rankdir: Rankdir = "TB",
               cluster_params: bool = False, color_by_grad: bool = False,
               grad_range: tuple[float, float] | None = None,
               modules: ta.nn.Module | None = None, depth: int | None = None,
               fold_repeats: bool = False, title: str | None = None) -> Graph:
    """The forward computation graph that produced `tensor`, as a `graphviz.Digraph`, with a
    key to its fills (the legend of gradient flow instead) and `title` at its top, if given.

    One box per op (its name, its number, the one draw_backward's "of forward op #N" cites,
    and its output shape) and one per leaf tensor; an arrow from each input to the op that
    consumed it (two for `x * x`). The ops are numbered in an order they could have run in:
    each after the ops its inputs came from, those of its first input before its second's
    (the order they did run in, unless the code computed a later input first).

    Leaves take their names from `params` (a Module, whose dotted parameter names are used, or
    a dict name -> tensor) and `inputs` (a dict name -> tensor), then from `tensor.name` (a
    cross entropy names its class indices "targets"); others read "tensor" and their shape,
    or their value if they hold one number (the 2 of `x * 2` reads "= 2"). Parameters, and
    any other leaf that requires a gradient, are blue boxes; named inputs green ellipses,
    other leaves (constants, masks) grey ones. `cluster_params=True` draws a dashed box around
    the parameters of each top-level module (`embed`, `decoder`, ...), and inside it one
    around those of each block of a list (`decoder.layers.0`); off by default, because a box
    pulls its parameters together, away from the ops that use them, and the picture grows
    wide.

    `show_data` and `show_grad` add the norm, min and max of each node's `.data` / `.grad`
    (an op's result keeps its `.grad` only if asked: `retain_grads(loss)` before backward).
    At most `max_nodes` nodes are drawn: the ones nearest the result, and a note saying how
    many ops, leaves and modules were left out. `rankdir="LR"` lays the graph out left to right.
    Render it with `render(digraph, "graph.svg")`, or show it in a notebook as it is.
    The graph of a gradient taken with `grad(..., create_graph=True)` holds the ops its
    backward formulas recorded: each is drawn in a dashed box "<op> backward", as
    draw_backward draws it, naming the op whose backward it is.

    Large graphs, by module: run the forward inside `viz.record(model)` and each op knows the
    module that made it (`Context.module_path`; without it, `depth` and `fold_repeats` are
    refused, having nothing to fold by). Its ops are then drawn in nested dashed boxes,
    one per module path (`decoder`, inside it `decoder.layers.0`, ...), and each parameter
    in the box of the module that owns it, under the rest of its name (`weight`, its whole
    dotted name as its tooltip; `cluster_params` then has no effect). `depth=N` also collapses
    every module N levels below the root (`depth=1`: its children) into one node, labelled
    with its path, class, parameter count and how many ops it stands for; the leaves only it
    uses (its parameters, its constants) go inside it, and the arrows in and out are kept, one
    per pair of nodes. `fold_repeats=True` collapses a list of blocks of one class (a GPT's
    `decoder.layers.0` to `decoder.layers.3`) into one node, `decoder.layers: DecoderLayer x 4`,
    with their summed parameter and op counts, whatever the depth. `modules` is the root
    Module, for the class names, parameter counts and lists of blocks; it defaults to `params`
    when that is a Module. A collapsed module counts the values (with `show_data`) and the
    gradients (with `show_grad` or `color_by_grad`) of the nodes inside it that hold a NaN or
    an infinity: those with a NaN, and gradients with an infinity, are faults, in red lines
    under a red border; values with an infinity and no NaN (a causal mask's -inf) in a plain
    line.

    `color_by_grad=True` shows gradient flow, after `backward(retain_graph=True)`: each node is
    filled by log10 of the norm of its gradient, dark violet for small and yellow for large,
    on the scale `grad_range` (norms outside it take the end colours; by default the powers
    of ten around the graph's own smallest and largest norms), and a legend shows the scale.
    Leaves get their `.grad`; an op gets its result's `.grad`, which the engine keeps only for
    tensors that asked (`retain_grads(loss)` asks for all of them before backward).
    Nodes without a gradient are white. Vanishing gradients show as a dark start of the graph.

    The Digraph returned also makes the interactive page of the same graph:
    `.save_html("graph.html")`, or `.page()` to show it in a notebook (see `viz.graph_page`).
    """
    options = dict(params=params, inputs=inputs, show_data=show_data, show_grad=show_grad,
                   max_nodes=max_nodes, rankdir=rankdir, color_by_grad=color_by_grad,
                   grad_range=grad_range, modules=modules, depth=depth,
                   fold_repeats=fold_repeats)
    drawing = _draw_forward(tensor, cluster_params=cluster_params, **options)
    _caption(drawing, None if color_by_grad else FORWARD_KEY, title)
    dot = drawing.dot
    dot.page_options = dict(tensor=tensor, view="forward", **options)
    return dot


def _draw_forward(tensor, params=None, inputs=None, show_data=False, show_grad=False,
                  max_nodes=500, rankdir="TB", cluster_params=False, color_by_grad=False,
                  grad_range=None, modules=None, depth=None, fold_repeats=False):
    """draw_graph's picture, as a Drawing: the Digraph and what each of its nodes shows."""
    _check_tensor("draw_graph", tensor)
    if max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be at least 1, got {max_nodes}")
    _check_depth("draw_graph", depth)
    order, edges = _walk([tensor])
    _check_recorded("draw_graph", order, depth, fold_repeats)
    if color_by_grad and grad_range is not None:
        _check_range(grad_range)
    names = _leaf_names("draw_graph", params, inputs)
    if modules is None and isinstance(params, ta.nn.Module):
        modules = params
    tree = _ModuleTree(modules)
    recorded = _recorded(order)
    # An op folds into the module it was made in (at `depth`, or its list of blocks); the
    # named inputs and the result stay drawn, so the picture still says where it starts and ends.
    folded = _fold(order, edges,
                   lambda node: tree.fold_target(node.module_path, depth, fold_repeats),
                   keep=lambda i: names.get(i, ("", ""))[1] == "input" or i == id(tensor))
    units, module_ops = _fold_units(order, folded)
    kept, dropped = _cap(units, max_nodes)
    dot = _digraph("computation_graph", rankdir)
    if color_by_grad:
        # A leaf that requires no gradient is drawn white, whatever its .grad.
        norms = _drawn_norms(order, kept, folded, lambda kind, obj, output: (
            output.grad if kind == "op" else obj.grad if obj.requires_grad else None))
        grad_range = grad_range or _norm_range(norms.values())

    # The ops numbered as the backward graph numbers them ("of forward op #3", "mul #3
    # output"), so that a backward box can be found in the forward picture.
    op_number = _op_numbers(tensor)
    # The NaN and infinities that the nodes folded into a module would show: their values
    # with show_data, their gradients with show_grad or gradient flow.
    broken = _nonfinite_inside(
        order, folded,
        lambda kind, obj, output: (output if kind == "op" else obj).data if show_data else None,
        lambda kind, obj, output: (
            None if not (show_grad or color_by_grad) else output.grad if kind == "op"
            else obj.grad if obj.requires_grad else None))
    ids = {}                # graph key -> node id, for every graph node drawn or folded
    placed = []             # (boxes, node id, label, attrs); see _add_clusters
    drawn = {}              # node id -> DrawnNode
    box_titles = {}         # a backward box's key -> its title; see _backward_box
    for kind, obj, output in kept:
        if kind == "module":
            lines = [_count(module_ops[obj], "op")]
            if color_by_grad:
                lines.append(_largest_norm_line(norms[("module", obj)]))
            placed.append(_module_node(obj, tree, folded, ids, len(placed), lines,
                                       penwidth="2.5" if _is_result(tensor, obj, folded)
                                       else "1", broken=broken.get(obj, NO_NONFINITE),
                                       color_by_grad=color_by_grad))
            if color_by_grad:
                placed[-1][3].update(_norm_fill(norms[("module", obj)], grad_range))
            drawn[placed[-1][1]] = DrawnNode("module", obj, None, None, obj)
            continue
        if kind == "op":
            node_id = ids[("op", id(obj))] = f"op{len(ids)}"
            label = _op_label(obj, output, show_data, show_grad, color_by_grad,
                              op_number[id(obj)])
            colours = (_norm_fill(norms[("op", id(obj))], grad_range) if color_by_grad
                       else {"fillcolor": OP_COLOUR})
            # the result's op gets a thick border: that is where the arrows lead
            colours["penwidth"] = "2.5" if output is tensor else "1"
            boxes = tree.boxes(obj.module_path)
            if obj.backward_of is not None:
                # Recorded by a backward formula (a graph of grad(create_graph=True)): boxed
                # as draw_backward boxes it, so the ops of the first backward stand out.
                boxes += (_backward_box(obj.backward_of, op_number, box_titles),)
            placed.append((boxes, node_id, label, colours))
            drawn[node_id] = DrawnNode("op", obj.name, output, obj, obj.module_path)
            continue
        node_id = ids[("leaf", id(obj))] = f"leaf{len(ids)}"
        name, leaf_kind = names.get(id(obj), (obj.name, None))
        if leaf_kind is None:
            # Unnamed by the caller: a leaf that requires a gradient is learned all the same.
            leaf_kind = "param" if obj.requires_grad else "constant"
        colour = {"param": PARAM_COLOUR, "input": INPUT_COLOUR}.get(leaf_kind, CONSTANT_COLOUR)
        attrs = dict(fillcolor=colour, shape="box" if leaf_kind == "param" else "ellipse",
                     style="filled")
        if color_by_grad:
            attrs.update(_norm_fill(norms[(kind, id(obj))], grad_range))
        boxes, shown = (), name
        if leaf_kind == "param" and name and recorded:
            boxes, shown = _parameter_place(name, tree, depth, fold_repeats)
            attrs.update(_whole_name_tooltip(shown, name))
        elif leaf_kind == "param" and name and cluster_params:
            boxes = tree.boxes(_cluster_of(name))
        label = _leaf_label(obj, shown, show_data, show_grad, color_by_grad)
        placed.append((boxes, node_id, label, attrs))
        drawn[node_id] = DrawnNode(leaf_kind, name or "tensor", obj, None, None)

    clusters = _add_clusters(dot, placed)
    _add_edges(dot, edges, ids, folded)

    if dropped:
        n_ops = sum(kind == "op" for kind, _, _ in dropped)
        n_modules = sum(kind == "module" for kind, _, _ in dropped)
        n_leaves = len(dropped) - n_ops - n_modules
        ops, leaves = _count(n_ops, "op"), _count(n_leaves, "leaf", "leaves")
        what = f"{ops} and {leaves}"
        if n_modules:
            what = f"{ops}, {leaves} and {_count(n_modules, 'collapsed module')}"
        dot.node("omitted", _label(f"{len(dropped)} more nodes not drawn",
                                   [f"{what} left out (max_nodes={max_nodes})"]),
                 shape="note", style="filled", fillcolor="#f4cccc")
    if color_by_grad:
        _add_legend(dot, grad_range, modules=any(kind == "module" for kind, _, _ in kept),
                    nan=_any_nan(norms.values()))
    return Drawing(dot, drawn, _box_keys(placed), clusters, ids, tree, edges)


def _check_tensor(caller, tensor):
    """A TypeError (one line) unless `tensor` is a Tensor: the graph is read from its
    `grad_fn`, which a number or a numpy array has not."""
    if not isinstance(tensor, ta.Tensor):
        raise TypeError(f"{caller}: expects the Tensor a computation produced (a loss, a "
                        f"model's output), got a {_type_name(tensor)}")


def _type_name(value):
    """The name of `value`'s type, for a message: `list`, `numpy.ndarray`."""
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__}.{kind.__qualname__}"


def _check_depth(caller, depth):
    if depth is not None and depth < 0:
        raise ValueError(f"{caller}: depth must be 0 or more, got {depth}")


def _check_recorded(caller, order, depth, fold_repeats):
    """A ValueError (one line) when `depth` or `fold_repeats` asks to fold modules and no op
    of the graph knows the module that made it: the forward did not run inside
    `viz.record(model)`, and the picture would come out whole without saying why."""
    if depth is None and not fold_repeats:
        return
    if any(kind == "op" for kind, _, _ in order) and not _recorded(order):
        raise ValueError(f"{caller}: depth and fold_repeats fold the ops by the module that "
                         f"made them, and no op of this graph knows its module: run the "
                         f"model's forward inside `with viz.record(model):`")


def _add_edges(dot, edges, ids, folded):
    """Arrows between drawn nodes. Folding turns many arrows into the same pair, and the arrows
    inside a folded module into loops: those are drawn once, and not at all."""
    drawn = set()
    for source, target in edges:
        if source in ids and target in ids:
            pair = (ids[source], ids[target])
            if source in folded or target in folded:
                if pair[0] == pair[1] or pair in drawn:
                    continue
                drawn.add(pair)
            dot.edge(*pair)


# --------------------------------------------------------------------------------------------
# Modules: boxes around the ops of each module, and whole modules folded into one node


def _classes(module):
    """(path, class) of a module and of every module inside it: what a repeat repeats."""
    return tuple((path, type(m)) for path, m in module.named_modules())


class _ModuleTree:
    """The module paths of a root Module, and their ancestors: the levels that `depth` counts.

    A ModuleList is no level of its own: it runs nothing, and `layers.0`, `layers.1` say more
    than one `layers` would (a plain list of modules is no level either). Without a root (paths
    were recorded, but the caller did not pass the model), a path's ancestors are its dotted
    prefixes, a list index kept with its list in the same way.

    A ModuleList of two or more modules of one class, holding modules of the same classes
    under the same names, is a stack of repeated blocks, which `fold_repeats` draws as one
    node: `lists` maps its path to its items' paths, `repeats` each item's path to the list's.
    (Blocks of one class that hold other modules, one with a feed-forward of the user's own,
    say, are not repeats: one node would say they are.)"""

    def __init__(self, root):
        named = [] if root is None else list(root.named_modules())
        self.modules = {name: module for name, module in named
                        if type(module) is not ta.nn.ModuleList}
        self.lists, self.repeats = {}, {}
        for name, module in named:
            if type(module) is ta.nn.ModuleList and len(module) > 1 and \
                    len({_classes(item) for item in module}) == 1:
                items = [f"{name}.{i}" if name else str(i) for i in range(len(module))]
                if all(item in self.modules for item in items):   # not shared elsewhere
                    self.lists[name] = items
                    self.repeats.update((item, name) for item in items)
        self._ancestors = {}

    def ancestors(self, path):
        """The root "" and each module path from the top down to `path` itself."""
        if path not in self._ancestors:
            parts = path.split(".") if path else []
            prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            if self.modules:
                chain = [p for p in prefixes if p in self.modules] or prefixes[-1:]
            else:
                chain = [p for i, p in enumerate(prefixes)
                         if i + 1 == len(parts) or not parts[i + 1].isdigit()]
            self._ancestors[path] = [""] + chain
        return self._ancestors[path]

    def fold_target(self, path, depth, fold_repeats):
        """The node that the ops made in module `path` are folded into, or None (drawn as
        they are): going down from the root, the first list of repeated blocks (with
        `fold_repeats`) or the module `depth` levels down, whichever comes first (a block
        `depth` levels down goes into its list)."""
        if path is None:                        # made outside every module
            return None
        for level, ancestor in enumerate(self.ancestors(path)):
            if fold_repeats and ancestor in self.repeats:
                return self.repeats[ancestor]
            if level == depth:
                return ancestor
        return None

    def boxes(self, path, inside=True):
        """The boxes a node of module `path` is drawn in, outermost first, as (key, label)
        pairs for _add_clusters: one per module from the top down to `path` (`inside=False`:
        to its parent, for the node that stands for `path` itself). None and "" (the root)
        get no box; a list of blocks sits where its first block would."""
        if not path:
            return ()
        chain = self.ancestors(self.lists[path][0] if path in self.lists else path)[1:]
        if not inside:
            chain = chain[:-1]
        return tuple((p, _label(p)) for p in chain)

    def label(self, path, lines, **alarms):
        """The label of the node that stands for module `path`: its path, its class (for a
        list of blocks, `DecoderLayer x N`) and parameter count, then `lines` (and _label's
        `alarms` and `alarm_ink`)."""
        items = [self.modules[p] for p in self.lists.get(path, [path]) if p in self.modules]
        title = path or "(root)"
        details = []
        if items:
            kind = type(items[0]).__name__
            if path in self.lists:
                title = f"{title}: {kind} x {len(items)}"
            else:
                details.append(kind)
            details.append(f"{sum(m.num_parameters() for m in items):,} params")
        return _label(title, details + list(lines), **alarms)


def _fold(order, edges, target, keep):
    """{graph key: module path} for every graph node that a folded module stands for: each op
    for which `target(node)` names a module, and each leaf only that module uses (its
    parameters and constants), unless `keep(id(leaf))` says it stays drawn."""
    folded = {}
    for kind, obj, _ in order:
        if kind == "op":
            path = target(obj)
            if path is not None:
                folded[("op", id(obj))] = path
    users = {}
    for source, user in edges:
        if source[0] == "leaf":
            users.setdefault(source, set()).add(folded.get(user))
    for key, paths in users.items():
        only = next(iter(paths)) if len(paths) == 1 else None    # the one module using it
        if only is not None and not keep(key[1]):
            folded[key] = only
    return folded


def _fold_units(order, folded):
    """What is drawn: the graph nodes not folded, and one ("module", path, None) per folded
    module where its first member would have been (so the node cap still keeps what is
    nearest the result); and how many ops each folded module stands for."""
    units, module_ops = [], {}
    for kind, obj, output in order:
        path = folded.get((kind, id(obj)))
        if path is None:
            units.append((kind, obj, output))
            continue
        if path not in module_ops:
            module_ops[path] = 0
            units.append(("module", path, None))
        module_ops[path] += kind == "op"
    return units, module_ops


class Nonfinite(NamedTuple):
    """How many of the nodes folded into a module hold a NaN or an infinity: `nan_values`,
    values with a NaN; `inf_values`, values with an infinity and no NaN (a mask's -inf, which
    is no fault: softmax makes it a weight of 0); `bad_grads`, gradients with either (a
    blocked key's gradient is 0, never infinite)."""
    nan_values: int = 0
    inf_values: int = 0
    bad_grads: int = 0


NO_NONFINITE = Nonfinite()


def _module_node(path, tree, folded, ids, number, lines, penwidth="1", broken=NO_NONFINITE,
                 color_by_grad=False):
    """A folded module's node, as an entry for _add_clusters; every graph key folded into it
    gets its id in `ids`, so arrows from and to its members lead to it. `broken`: the values
    and gradients hidden in it that hold a NaN or an infinity (_nonfinite_inside), said in
    lines of their own: the faults in red under a red border, the infinities of a value (a
    mask's -inf) in a plain line."""
    node_id = f"module{number}"
    for key, into in folded.items():
        if into == path:
            ids[key] = node_id
    plain, alarms = _nonfinite_lines(broken)
    # Filled by its gradient, the node's text has the ink that reads on that fill.
    label = tree.label(path, list(lines) + plain, alarms=alarms,
                       alarm_ink=None if color_by_grad else ALARM_INK)
    attrs = dict(fillcolor=MODULE_COLOUR, shape="box3d", style="filled", penwidth=penwidth)
    if alarms:
        attrs.update(color=NAN_COLOUR, penwidth="3")
    return (tree.boxes(path, inside=False), node_id, label, attrs)


def _nonfinite_inside(order, folded, value_of, grad_of):
    """{module path: Nonfinite}: how many of the graph nodes folded into each module have a
    value, and how many a gradient, that holds a NaN or an infinity.
    `value_of(kind, obj, output)` and `grad_of(...)` give a node's array, or None where the
    picture shows none (its unfolded node would say no "norm nan" either)."""
    counts = {}
    for kind, obj, output in order:
        path = folded.get((kind, id(obj)))
        if path is None:
            continue
        value, grad = value_of(kind, obj, output), grad_of(kind, obj, output)
        nan_value = _has_nan(value)
        before = counts.get(path, NO_NONFINITE)
        counts[path] = Nonfinite(before.nan_values + nan_value,
                                 before.inf_values + (not nan_value and _has_nonfinite(value)),
                                 before.bad_grads + _has_nonfinite(grad))
    return counts


def _has_nonfinite(array):
    return array is not None and not np.isfinite(np.asarray(array, dtype=np.float64)).all()


def _has_nan(array):
    return array is not None and np.isnan(np.asarray(array, dtype=np.float64)).any()


def _nonfinite_lines(broken):
    """What a folded module says of the NaN and infinities hidden in it, as (plain lines, alarm
    lines): the nodes inside are out of sight, so their "norm nan" would be. A NaN is always a
    fault, and so is an infinite gradient; an infinite value is not by itself (a causal mask
    blocks a key with -inf), so it is said plainly. The page's folded box says the same in the
    same words (describeFold in assets/graph.js)."""
    plain, alarms = [], []
    if broken.inf_values:
        plain.append(f"{counted(broken.inf_values, 'value')} with ±inf (masks use -inf)")
    if broken.nan_values:
        alarms.append(f"{counted(broken.nan_values, 'value')} with NaN")
    if broken.bad_grads:
        alarms.append(f"{counted(broken.bad_grads, 'gradient')} with NaN or inf")
    return plain, alarms


def _count(n, what, plural=None):
    return f"{n} {what}" if n == 1 else f"{n} {plural or what + 's'}"


def _is_result(tensor, path, folded):
    return tensor.grad_fn is not None and folded.get(("op", id(tensor.grad_fn))) == path


def _box_keys(placed):
    """node id -> the keys of its boxes, outermost first, from _add_clusters' entries."""
    return {node_id: tuple(key for key, _ in boxes) for boxes, node_id, _, _ in placed}


def _add_clusters(dot, placed):
    """Add the nodes, each inside its nested boxes: `placed` holds (boxes, node id, label,
    attrs), `boxes` a tuple of (key, label) from the outermost box in, so that
    `decoder.layers.0.attn` sits in a box inside `decoder.layers.0`'s box. graphviz draws a
    subgraph whose name starts with "cluster" as a box around its nodes; the name is ours (a
    counter), the text goes in the escaped label. Returns the box keys in the order of
    those names: the key of `cluster_i` is item i."""
    # children: box -> the boxes inside it, as a dict's keys (in the order first met), not
    # a list: each op of a backward has its own box, and asking a list whether it already
    # held one walked all its siblings, thousands of times in a long backward graph.
    members, children, labels = {None: []}, {}, {}
    for boxes, node_id, label, attrs in placed:
        parent = None
        for key, box_label in boxes:
            labels[key] = box_label
            children.setdefault(parent, {})[key] = None
            members.setdefault(key, [])
            parent = key
        members[parent].append((node_id, label, attrs))
    counter = []
    _fill_box(dot, None, members, children, labels, counter)
    return counter


def _fill_box(graph, box, members, children, labels, counter):
    """Add box's nodes to `graph`, then each box inside it as a subgraph, filled in turn;
    `counter` gets each box's key as its cluster is named. (A function of its own, not a
    closure inside _add_clusters: a closure that calls itself is a reference cycle, left to
    the garbage collector with everything it holds at every picture drawn.)"""
    for node_id, label, attrs in members[box]:
        graph.node(node_id, label, **attrs)
    for child in children.get(box, []):
        with graph.subgraph(name=f"cluster_{len(counter)}") as sub:
            counter.append(child)
            sub.attr(label=labels[child], style="dashed", color="#999999",
                     fontname="Helvetica")
            _fill_box(sub, child, members, children, labels, counter)


def _op_label(node, output, show_data, show_grad, color_by_grad=False, number=None):
    lines = [_shape(output.data)]
    if node.freed:
        lines.append("inputs freed by backward (use retain_graph=True)")
    if show_data:
        lines.append(_summary("data", output.data))
    if show_grad and output.grad is not None:     # non-leaves keep .grad only if retain_grad()
        lines.append(_summary("grad", output.grad))     # (its norm too: the colour's)
    elif color_by_grad:
        lines.append(_norm_line(output.grad))
    return _label(node.name, lines, number)


def _leaf_line(t, name):
    """The line under a leaf's title, in both pictures: its shape, or for an unnamed leaf of
    one element, a constant such as the 2 of `x * 2`, its value ("= 2"), which says more."""
    if name or t.size != 1:
        return _shape(t.data)
    return f"= {t.data.item():.4g}" if t.dtype.kind in "fc" else f"= {t.data.item()}"


def _leaf_label(t, name, show_data, show_grad, color_by_grad=False):
    title = name if name else "tensor"
    lines = [_leaf_line(t, name)]
    if show_data:
        lines.append(_summary("data", t.data))
    if show_grad and t.requires_grad:
        lines.append(_summary("grad", t.grad))          # (its norm too: the colour's)
    elif color_by_grad and t.requires_grad:
        lines.append(_norm_line(t.grad))
    return _label(title, lines)


# --------------------------------------------------------------------------------------------
# The backward graph


def draw_backward(loss: ta.Tensor,
                  params: ta.nn.Module | Mapping[str, ta.Tensor] | None = None,
                  inputs: Mapping[str, ta.Tensor] | None = None, show_data: bool = False,
                  show_grad: bool = False, max_nodes: int = 500, rankdir: Rankdir = "TB",
                  color_by_grad: bool = False, grad_range: tuple[float, float] | None = None,
                  modules: ta.nn.Module | None = None, depth: int | None = None,
                  fold_repeats: bool = False, title: str | None = None) -> Graph:
    """The graph of the backward pass of `loss` (one number), as a `graphviz.Digraph`, with a
    key and `title` as draw_graph's.

    Backward formulas are Tensor ops, so `grad(loss, leaves, create_graph=True)` records them
    like any computation; this draws what it recorded. The chain rule reads from the top:

      * the seed, dL/dL = 1: the upstream gradient everything starts from (pale red);
      * saved forward values: forward tensors that backward formulas read, such as the inputs
        of a mul or the output of a tanh (pale violet, named like the forward graph's nodes);
      * the backward ops, each in a dashed box "<op> backward" naming the forward op whose
        gradient it helps compute (the engine stamps them: `Context.backward_of`), and, outside
        those boxes, the `add` that sums the gradients reaching a tensor along several paths;
        the `sum` that takes a broadcast input's gradient back to its shape says so
        ("undoes broadcasting b (3,) to (2, 3)");
      * one output per leaf, dL/d<name> (pale blue; dL/d(<name>) for a dotted name such as
        `out.weight`), fed by the op that computed it; boxed by module (below), a parameter's
        comes out in its module's box, dL/dweight, as the parameter is drawn there when a
        backward formula reads it (its whole name is the node's tooltip).

    For `L = (x * w).sum()`: the sum's backward spreads the seed into ones of x's shape, and
    the mul's backward multiplies them by the saved w to give dL/dx, and by x to give dL/dw.

    The gradients are taken of the leaves in `params` (a Module or a dict name -> tensor) and
    `inputs` (a dict) that require a gradient, or of every leaf that requires one when both
    are None. They are returned by `grad`, not accumulated: `.grad` is left as it was, and the
    forward graph is kept. `show_data` adds the norm and range of every drawn tensor,
    `show_grad` those of every gradient (each backward op's result is one, or a part of one);
    at most `max_nodes` nodes are drawn: every dL/d box, then the nodes nearest the gradients.
    A cap that leaves no room for any op beside the dL/d boxes (fewer than their number
    plus 2) would draw them unconnected: a NodeCapError (a ValueError) says what cap draws the
    first ops; `depth` folds the modules, and the gradients they compute with them.

    Large graphs, by module, as draw_graph does: when the forward ran inside
    `viz.record(model)`, a backward op belongs to the module of the forward op whose backward
    it is, and an `add` summing paths to the module that made the tensor it sums for. The
    "<op> backward" boxes are drawn inside nested boxes per module; `depth=N` collapses every
    module N levels down into one node (with the gradients only it computes, and, as
    draw_graph's, a count of the values and gradients inside that hold a NaN or an infinity,
    the values computed from the seed, gradients, counted as gradients)
    and `fold_repeats=True` a list of blocks of one class into `decoder.layers: DecoderLayer x N`.

    `color_by_grad=True` fills each node by the norm of the gradient it computes, on the same
    log scale and legend as draw_graph's gradient flow (`grad_range`; by default the powers of
    ten around the drawn gradients' norms). Saved values and constants are no gradients: white.

    Like draw_graph's, the Digraph returned makes the interactive page (`.save_html(path)`,
    `.page()`), which opens on this backward view.
    """
    options = dict(params=params, inputs=inputs, show_data=show_data, show_grad=show_grad,
                   max_nodes=max_nodes, rankdir=rankdir, color_by_grad=color_by_grad,
                   grad_range=grad_range, modules=modules, depth=depth,
                   fold_repeats=fold_repeats)
    drawing = _draw_backward(loss, bare=False, **options)
    _caption(drawing, None if color_by_grad else BACKWARD_KEY, title)
    dot = drawing.dot
    dot.page_options = dict(tensor=loss, view="backward", **options)
    return dot


def _draw_backward(loss, params=None, inputs=None, show_data=False, show_grad=False,
                   max_nodes=500, rankdir="TB", color_by_grad=False, grad_range=None,
                   modules=None, depth=None, fold_repeats=False, bare=True):
    """draw_backward's picture, as a Drawing: the Digraph and what each of its nodes shows.
    `bare=False`: a NodeCapError rather than a picture of the dL/d boxes alone (graph_page
    takes that picture: its forward view is worth having all the same)."""
    _check_tensor("draw_backward", loss)
    if loss.size != 1:
        raise ValueError(f"draw_backward: loss has shape {loss.shape}; reduce it to one number")
    if max_nodes < 1:
        raise ValueError(f"draw_backward: max_nodes must be at least 1, got {max_nodes}")
    _check_depth("draw_backward", depth)
    forward_order, _ = _walk([loss])
    if any(kind == "op" and obj.freed for kind, obj, _ in forward_order):
        raise ValueError(f"draw_backward: {FREED}")
    _check_recorded("draw_backward", forward_order, depth, fold_repeats)
    forward = {}                            # id(tensor) -> tensor, for every forward tensor
    for kind, obj, output in forward_order:
        t = output if kind == "op" else obj
        forward[id(t)] = t
    # A backward formula that takes a view of a forward value outside any graph (x.T in
    # matmul's, where x needs no gradient) records no op for it: the view is a leaf here, named
    # after the forward tensor whose numbers it shows, the first to hold that memory.
    viewed = {}                             # id(the array that owns the memory) -> tensor
    for t in forward.values():
        viewed.setdefault(id(_owner(t.data)), t)
    names = _leaf_names("draw_backward", params, inputs)
    if params is None and inputs is None:
        wanted = [t for t in forward.values() if t.grad_fn is None and t.requires_grad]
    else:
        wanted = [t for t in forward.values() if id(t) in names and t.requires_grad]
    if not wanted:
        raise ValueError("draw_backward: no leaf of the graph requires a gradient")

    # A seed that requires a gradient makes every op downstream of it recorded, even those
    # whose other operands are constants (a plain `ones` seed would leave `L = x + w` with
    # nothing recorded to draw).
    seed = ta.Tensor(np.ones_like(loss.data), requires_grad=True, dtype=loss.dtype)
    # Which forward tensor each of the chain rule's sums is the gradient of, for
    # _backward_modules: a hook on a tensor is called with its gradient once the share of
    # every path is summed in. The hooks are removed as soon as the gradients are taken.
    summed_for, handles = {}, []

    def noting(t):
        def note(g):
            # A tensor that passes its gradient on unchanged (an add's inputs) is handed the
            # same sum later, in the engine's order: the first tensor to see a sum made it.
            if g.grad_fn is not None:
                summed_for.setdefault(id(g.grad_fn), t)
        return note

    try:
        handles = [t.register_hook(noting(t)) for t in forward.values() if t.requires_grad]
        grads = ta.grad(loss, wanted, grad_outputs=seed, create_graph=True)
    finally:
        for handle in handles:
            handle.remove()
    outputs = [(t, g) for t, g in zip(wanted, grads) if g is not None]

    order, edges = _walk([g for _, g in outputs], stop=lambda t: id(t) in forward)
    # A gradient is what is computed from the seed. A backward op that reads forward values
    # only (the 1 - y*y of tanh's, the scores that attention's recomputes) computes none.
    from_seed = _downstream(("leaf", id(seed)), edges)

    def gradient(key, array):
        return array if key in from_seed else None

    if color_by_grad and grad_range is not None:
        _check_range(grad_range)
    if modules is None and isinstance(params, ta.nn.Module):
        modules = params
    tree = _ModuleTree(modules)
    recorded = _recorded(forward_order)
    module_of = _backward_modules(order, edges, summed_for)
    # Number the forward ops, so that two muls' backward boxes can be told apart.
    op_number = _op_numbers(loss)

    def broadcast_input_name(t, sum_op):
        """What the sum `sum_op` calls the broadcast input `t` it undoes: where the sum is drawn
        in the box of the module that owns the parameter `t`, the name the parameter's own
        node has in that box (`bias`), as beside it; its whole name anywhere else."""
        title = _forward_title(t, names, op_number)
        if recorded and names.get(id(t), ("", ""))[1] == "param":
            place, short = _parameter_place(title, tree, depth, fold_repeats)
            sum_boxes = tree.boxes(module_of[id(sum_op)])
            if place and sum_boxes and place[-1] == sum_boxes[-1]:
                return short
        return title
    broadcasts = _broadcast_sums(order, edges, summed_for, broadcast_input_name)
    # The seed and the named inputs stay drawn, as draw_graph keeps its inputs and result.
    folded = _fold(order, edges,
                   lambda node: tree.fold_target(module_of[id(node)], depth, fold_repeats),
                   keep=lambda i: i == id(seed) or names.get(i, ("", ""))[1] == "input")

    # Each gradient is an output node of its own, or part of the module that computes it.
    def source_of(g):
        return ("leaf", id(g)) if id(g) in forward or g.grad_fn is None else ("op", id(g.grad_fn))
    shown = [(t, g) for t, g in outputs if source_of(g) not in folded]
    module_grads = {}
    for _, g in outputs:
        path = folded.get(source_of(g))
        module_grads[path] = module_grads.get(path, 0) + 1

    units, module_ops = _fold_units(order, folded)
    kept, dropped = _cap(units, max(max_nodes - len(shown), 1))   # the dL/d's always drawn
    if not kept and not bare:
        # _cap keeps one place for its note: an op is drawn from 2 places beside the dL/d's.
        needed = len(shown) + 2
        raise NodeCapError(max_nodes, needed, len(shown))
    dot = _digraph("backward_graph", rankdir)
    if color_by_grad:
        norms = _drawn_norms(order, kept, folded, lambda kind, obj, output: gradient(
            (kind, id(obj)), (output if kind == "op" else obj).data))
        grad_range = grad_range or _norm_range(
            list(norms.values()) + [_norm(g.data) for _, g in shown])

    def fill(array):
        return _grad_fill(array, grad_range) if color_by_grad else {}

    def gradient_lines(array):
        if show_grad:
            return [_summary("grad", array)]           # (its norm too: the colour's)
        return [_norm_line(array)] if color_by_grad else []

    # The NaN and infinities that the nodes folded into a module would show: their values
    # with show_data, the gradients they compute with show_grad or gradient flow. A value
    # that is a gradient is judged as one, shown either way: an infinity in it is a fault,
    # where one in a forward value recomputed (a mask's -inf in attention's scores) is not.
    def value_of(kind, obj, output):
        return (output if kind == "op" else obj).data

    def shown_value(kind, obj, output):
        is_gradient = (kind, id(obj)) in from_seed
        return value_of(kind, obj, output) if show_data and not is_gradient else None

    def shown_gradient(kind, obj, output):
        if not (show_data or show_grad or color_by_grad):
            return None
        return gradient((kind, id(obj)), value_of(kind, obj, output))

    broken = _nonfinite_inside(order, folded, shown_value, shown_gradient)
    ids, placed, drawn = {}, [], {}
    box_titles = {}                     # a backward box's key -> its title; see _backward_box
    for kind, obj, output in kept:
        if kind == "module":
            lines = [_count(module_ops[obj], "op")]
            if module_grads.get(obj):
                lines.append(f"computes {_count(module_grads[obj], 'gradient')}")
            if color_by_grad:
                lines.append(_largest_norm_line(norms[("module", obj)]))
            placed.append(_module_node(obj, tree, folded, ids, len(placed), lines,
                                       broken=broken.get(obj, NO_NONFINITE),
                                       color_by_grad=color_by_grad))
            if color_by_grad:
                placed[-1][3].update(_norm_fill(norms[("module", obj)], grad_range))
            drawn[placed[-1][1]] = DrawnNode("module", obj, None, None, obj)
            continue
        if kind == "op":
            node_id = ids[("op", id(obj))] = f"op{len(ids)}"
            lines = [_shape(output.data)]
            boxes = tree.boxes(module_of[id(obj)])
            if obj.backward_of is None:
                lines.append("sums the gradients of several paths")
            else:
                if id(obj) in broadcasts:
                    lines.append(broadcasts[id(obj)])
                boxes += (_backward_box(obj.backward_of, op_number, box_titles),)
            if show_data:
                lines.append(_summary("data", output.data))
            grad = gradient(("op", id(obj)), output.data)
            lines += gradient_lines(grad)
            colours = _norm_fill(norms[("op", id(obj))], grad_range) if color_by_grad else {}
            placed.append((boxes, node_id, _label(obj.name, lines),
                           {"fillcolor": OP_COLOUR, **colours}))
            drawn[node_id] = DrawnNode("op", obj.name, output, obj, module_of[id(obj)],
                                       is_gradient=("op", id(obj)) in from_seed)
            continue
        node_id = ids[("leaf", id(obj))] = f"leaf{len(ids)}"
        title, lines, attrs = _backward_leaf(obj, seed, forward, viewed, names, op_number)
        # A saved value is a forward tensor, or a view of one: the page links it to that one.
        shows = obj if id(obj) in forward else _viewed_from(obj, viewed)
        role = "seed" if obj is seed else "saved" if shows is not None else "constant"
        drawn[node_id] = DrawnNode(role, title, obj, None, None,
                                   of=shows if role == "saved" else None,
                                   is_gradient=obj is seed)
        if show_data:
            lines.append(_summary("data", obj.data))
        if obj is seed:
            lines += gradient_lines(obj.data)
            attrs.update(fill(obj.data))
        elif color_by_grad:
            attrs["fillcolor"] = NO_GRAD_COLOUR
        boxes = ()
        if role == "saved" and recorded and names.get(id(shows), ("", ""))[1] == "param":
            # A parameter the backward reads sits in its module's box, as in draw_graph.
            whole = names[id(shows)][0]
            boxes, title = _parameter_place(whole, tree, depth, fold_repeats)
            attrs.update(_whole_name_tooltip(title, whole))
        placed.append((boxes, node_id, _label(title, lines), attrs))

    for i, (t, g) in enumerate(shown):
        name, kind = names.get(id(t), (t.name or "tensor", None))
        title, boxes, attrs = _gradient_title(name), (), {}
        if kind == "param" and recorded:
            # The gradient of a parameter comes out in its module's box, next to the
            # backward that computes it: dL/dweight there, its whole name as its tooltip.
            boxes, short = _parameter_place(name, tree, depth, fold_repeats)
            title = _gradient_title(short)
            attrs = _whole_name_tooltip(title, _gradient_title(name))
        placed.append((boxes, f"grad{i}",
                       _label(title, [_shape(g.data)] + gradient_lines(g.data)),
                       {"fillcolor": GRAD_OUT_COLOUR, "penwidth": "2.5", **fill(g.data),
                        **attrs}))
        drawn[f"grad{i}"] = DrawnNode("gradient", _gradient_title(name), g, None, None, of=t,
                                       is_gradient=True)

    clusters = _add_clusters(dot, placed)
    _add_edges(dot, edges, ids, folded)

    for i, (_, g) in enumerate(shown):          # its arrow, now that both ends are drawn
        if source_of(g) in ids:
            dot.edge(ids[source_of(g)], f"grad{i}")
            edges = edges + [(source_of(g), ("grad", i))]
            ids[("grad", i)] = f"grad{i}"

    if dropped:
        dot.node("omitted", _label(f"{len(dropped)} more nodes not drawn",
                                   [f"max_nodes={max_nodes}"]),
                 shape="note", style="filled", fillcolor="#f4cccc")
    if color_by_grad:
        _add_legend(dot, grad_range, modules=any(kind == "module" for kind, _, _ in kept),
                    nan=_any_nan(list(norms.values()) + [_norm(g.data) for _, g in shown]))
    return Drawing(dot, drawn, _box_keys(placed), clusters, ids, tree, edges)


def _gradient_title(name):
    """dL/dx for a plain name; dL/d(0.weight), dL/d(decoder.norm.bias) for any other, which
    would run into the d (dL/ddecoder...) or read as a number (dL/d0.weight)."""
    return f"dL/d{name}" if name.isidentifier() else f"dL/d({name})"


def _broadcast_sums(order, edges, summed_for, input_name):
    """id(backward op) -> the line that says which broadcast it undoes, for each `sum` that
    takes a gradient back to the shape of a forward input that was broadcast: in `a * b` with
    b of shape (3,) and a of (2, 3), dL/db is the (2, 3) product summed over the axis b was
    repeated along. The engine sums every input's gradient so (a `sum` keeping its axes, then
    a `reshape` where axes were added in front), inside the op's backward box; without a word
    it reads as one more step of the op's own formula.

    Told by what the picture shows: a `sum` that keeps its axes, whose result (or that of the
    `reshape` it alone feeds) leaves its box with the shape of an input of the forward op and
    came from a bigger one. A backward that sums a broadcast input's gradient itself gets the
    same line: it undoes the same broadcast. The input is named where only one has that shape,
    or where `summed_for` (see _backward_modules) says whose gradient the result is: a layer
    norm's weight and bias are both (d,); `input_name(input, sum op)` says what it is called."""
    ops = {id(obj): obj for kind, obj, _ in order if kind == "op"}
    users = {}                              # id(op) -> the ops that read its result
    for source, target in edges:
        if source[0] == "op":
            users.setdefault(source[1], []).append(ops[target[1]])
    found = {}
    for node in ops.values():
        forward_op = node.backward_of
        if node.fn is not ta.ops.Sum or forward_op is None:
            continue
        summed, result = node.inputs[0].shape, node.output.shape
        if len(summed) != len(result) or summed == result:
            continue                        # not the engine's keepdims sum
        last = node
        after = users.get(id(node), [])
        if len(after) == 1 and after[0].fn is ta.ops.Reshape and after[0].backward_of is forward_op:
            last, after = after[0], users.get(id(after[0]), [])
        if any(user.backward_of is forward_op for user in after):
            continue                        # a step inside the formula, not its end
        shape = last.output.shape
        broadcast = [t for t in forward_op.inputs if t.shape == shape]
        if not broadcast:
            continue
        if len(broadcast) > 1:
            broadcast = [t for t in broadcast if summed_for.get(id(last)) is t] or broadcast
        # Two inputs of one shape, a gradient that others join before it reaches its input:
        # not told apart.
        what = f"{input_name(broadcast[0], node)} " if len(broadcast) == 1 else ""
        found[id(node)] = f"undoes broadcasting {what}{tuple(shape)} to {tuple(summed)}"
    return found


def _downstream(start, edges):
    """The graph keys reachable from `start` along the arrows, `start` included."""
    after = {}
    for source, target in edges:
        after.setdefault(source, []).append(target)
    reached, stack = {start}, [start]
    while stack:
        for target in after.get(stack.pop(), []):
            if target not in reached:
                reached.add(target)
                stack.append(target)
    return reached


def _backward_modules(order, edges, summed_for):
    """id(backward op) -> the module path it belongs to (None: outside every module).

    An op of a backward formula belongs to the module of the forward op whose backward it is.
    An `add` that sums the gradients reaching a forward tensor along several paths belongs to
    the module that made that tensor (`summed_for`: id(sum) -> the tensor), and to none if the
    tensor is a leaf (a parameter, an input). The sum's result feeds the backward of the op
    that made the tensor, so the sum sits with it: a residual stream's h = x + attn(x), made
    inside a block, has its gradient summed inside the block, and a folded block is never
    both before and after one of its sums. The stream's x, made by the block below, has its
    sum in that block: the gradient that skips a block reaches it unchanged (an add's backward
    passes it on without an op). A tensor reached by three paths is summed by a chain of adds,
    `(g1 + g2) + g3`: the earlier ones belong where the last one does."""
    ops = {id(obj): obj for kind, obj, _ in order if kind == "op"}
    users = {}                              # id(op) -> {id: op} of the ops that read its result
    for source, target in edges:
        if source[0] == "op":
            users.setdefault(source[1], {})[target[1]] = ops[target[1]]

    def tensor_summed(node):
        while id(node) not in summed_for:   # an earlier add of a chain: on to the next one
            after = list(users.get(id(node), {}).values())
            if len(after) != 1 or after[0].backward_of is not None:
                return None
            node = after[0]
        return summed_for[id(node)]

    found = {}
    for node in ops.values():
        if node.backward_of is not None:
            found[id(node)] = node.backward_of.module_path
        else:
            t = tensor_summed(node)
            found[id(node)] = None if t is None or t.grad_fn is None else t.grad_fn.module_path
    return found


def _backward_box(node, op_number, titles):
    """The box around the backward of forward op `node`, as _add_clusters takes it: (its key,
    its title). `titles` keeps each box's title, made once: every op of the backward's formula
    is drawn in that box."""
    key = ("backward", id(node))
    if key not in titles:
        titles[key] = _backward_box_label(node, op_number)
    return key, titles[key]


def _backward_box_label(node, op_number):
    """The title of the box around the backward of forward op `node`: "<op> backward"."""
    detail = [f"of forward op #{op_number[id(node)]}"] if id(node) in op_number else []
    if node.output is not None:
        detail.append(f"output {_shape(node.output.data)}")
    return _label(f"{node.name} backward", detail)


def _owner(array):
    """The numpy array that owns `array`'s memory: itself, or the base its view was taken of."""
    while array.base is not None and isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _viewed_from(t, viewed):
    """The forward tensor whose memory `t`, a leaf of the backward graph, is a view of, or None."""
    return viewed.get(id(_owner(t.data))) if t.data.base is not None else None


def _forward_title(t, names, op_number):
    """What a forward tensor is called in the backward graph: its name, or the op it came from."""
    if t.grad_fn is not None:
        return f"{t.grad_fn.name} #{op_number[id(t.grad_fn)]} output"
    return names.get(id(t), (t.name or "tensor",))[0]


def _backward_leaf(t, seed, forward, viewed, names, op_number):
    """Title, detail lines and graphviz attributes of a leaf of the backward graph."""
    if t is seed:
        return "dL/dL = 1", ["the upstream gradient (seed)"], {"fillcolor": SEED_COLOUR,
                                                              "shape": "ellipse",
                                                              "style": "filled"}
    attrs = {"shape": "ellipse", "style": "filled"}
    if id(t) in forward:
        # A forward tensor: a named leaf, or the output of a forward op, saved for backward.
        line = _shape(t.data) if t.grad_fn is not None else \
            _leaf_line(t, names.get(id(t), (t.name,))[0])
        return (_forward_title(t, names, op_number), ["saved forward value", line],
                dict(attrs, fillcolor=SAVED_COLOUR))
    shown = _viewed_from(t, viewed)
    if shown is not None:
        return (_forward_title(shown, names, op_number),
                [f"saved forward value, viewed as {_shape(t.data)}"],
                dict(attrs, fillcolor=SAVED_COLOUR))
    # A constant a backward formula made: the 1 of `1 - y * y`, the mask of relu, ...
    return "constant", [_leaf_line(t, None)], dict(attrs, fillcolor=CONSTANT_COLOUR)


# --------------------------------------------------------------------------------------------
# Gradient flow: colours for gradient norms on a log scale


def retain_grads(tensor: ta.Tensor) -> None:
    """Ask every op result in the graph behind `tensor` to keep its `.grad` after backward, so
    that `draw_graph(..., color_by_grad=True)` can colour the ops as well as the parameters.
    Call it before `backward`."""
    order, _ = _walk([tensor])
    for kind, _, output in order:
        if kind == "op":
            output.retain_grad()


def _drawn_norms(order, kept, folded, gradient_of):
    """The gradient norm that each node drawn (`kept`) is coloured by, None for a node without
    a gradient, keyed by graph key, ("module", path) for a folded module: an op's or a leaf's
    own (`gradient_of(kind, obj, output)`, an array or None), a folded module's the largest of
    those folded into it, so that a vanishing gradient inside it still shows somewhere."""
    largest = {}
    for kind, obj, output in order:
        path = folded.get((kind, id(obj)))
        grad = gradient_of(kind, obj, output) if path is not None else None
        if grad is not None:
            norm, before = _norm(grad), largest.get(path, 0.0)
            # max() keeps whichever comes first of a NaN and a number: a NaN inside always shows
            largest[path] = norm if math.isnan(norm) else before if math.isnan(before) else \
                max(before, norm)
    norms = {}
    for kind, obj, output in kept:
        if kind == "module":
            norms[("module", obj)] = largest.get(obj)
        else:
            grad = gradient_of(kind, obj, output)
            norms[(kind, id(obj))] = None if grad is None else _norm(grad)
    return norms


def _norm_range(norms):
    """The powers of ten that bracket `norms` (None for a node without a gradient), so that
    the colours of the nodes drawn use the whole scale; (1e-8, 1) if none is above zero. An
    infinite norm is off every scale (it takes the top colour) and a NaN has its own."""
    norms = [n for n in norms if n is not None and 0 < n < math.inf]
    if not norms:
        return (1e-8, 1.0)
    low = 10.0 ** math.floor(math.log10(min(norms)))
    high = 10.0 ** math.ceil(math.log10(max(norms)))
    return (low, high if high > low else low * 10)


def _check_range(grad_range):
    low, high = grad_range
    if not 0 < low < high:
        raise ValueError(f"grad_range must be two norms 0 < low < high, got {grad_range}")


def _scale_position(norm, grad_range):
    """Where `norm` sits on the log10 scale of `grad_range`: 0 at the low end, 1 at the high
    end, clipped to [0, 1] (a zero gradient is as vanished as can be: 0)."""
    low, high = (math.log10(v) for v in grad_range)
    if not norm > 0:
        return 0.0
    return min(max((math.log10(norm) - low) / (high - low), 0.0), 1.0)


def grad_colour(norm: float, grad_range: tuple[float, float] = (1e-8, 1.0)) -> str:
    """The colour ("#rrggbb") that gradient flow gives a gradient of this norm: red for NaN."""
    _check_range(grad_range)
    if math.isnan(norm):
        return NAN_COLOUR
    scaled = _scale_position(norm, grad_range) * (len(_VIRIDIS) - 1)
    i = min(int(scaled), len(_VIRIDIS) - 2)        # the segment of the ramp it falls in
    frac = scaled - i
    a, b = (bytes.fromhex(c[1:]) for c in _VIRIDIS[i:i + 2])
    return "#" + "".join(f"{round(x + (y - x) * frac):02x}" for x, y in zip(a, b))


def _norm(array):
    return float(np.linalg.norm(np.asarray(array, dtype=np.float64)))


def _grad_fill(grad, grad_range):
    """graphviz attributes that fill a node by its gradient, its text black or white,
    whichever reads better on that colour."""
    return _norm_fill(None if grad is None else _norm(grad), grad_range)


def _norm_fill(norm, grad_range):
    """_grad_fill's attributes for a gradient of this norm (None: no gradient, white)."""
    if norm is None:
        return {"fillcolor": NO_GRAD_COLOUR}
    fill = grad_colour(norm, grad_range)
    return {"fillcolor": fill, "fontcolor": ink(fill)}


def _norm_line(grad):
    return "no gradient" if grad is None else f"grad norm {_norm(grad):.2e}"


def _largest_norm_line(norm):
    """A folded module's line: the norm it is coloured by."""
    return "no gradient" if norm is None else f"largest grad norm {norm:.2e}"


# What each kind of node is, in the key of a picture, with its fill: a kind is listed where
# the picture has one (DrawnNode.kind), in this order.
FORWARD_KEY = {"box": (None, "a module"),
               "input": (INPUT_COLOUR, "an input"),
               "param": (PARAM_COLOUR, "a parameter (learned)"),
               "constant": (CONSTANT_COLOUR, "a constant (targets, a mask)"),
               "op": (OP_COLOUR, "an op and its output's shape; #n: the nth to run"),
               "module": (MODULE_COLOUR, "a module folded into one node")}
BACKWARD_KEY = {"box": (None, "a module, or an op's backward"),
                "seed": (SEED_COLOUR, "the seed dL/dL = 1, where backward starts"),
                "saved": (SAVED_COLOUR, "a value the forward saved for backward"),
                "constant": (CONSTANT_COLOUR, "a constant of a backward formula"),
                "op": (OP_COLOUR, "an op of a backward formula"),
                "module": (MODULE_COLOUR, "a module's backward folded into one node"),
                "gradient": (GRAD_OUT_COLOUR, "a gradient the backward computes")}


def _caption(drawing, key=None, title=None):
    """What a picture says of itself: its `title` (the graph's own label, at the top left),
    and a key saying what each fill means (`key`: FORWARD_KEY or BACKWARD_KEY; None with
    gradient flow, whose legend reads the fills) for the kinds of node `drawing` has, and
    the dashed box if it has one: the picture read without the README, on a slide, say. The
    page has neither: it has its heading, its panel says what a node is, and folding a box
    there moves the nodes under where a key would stand."""
    if title:
        # Wrapped, as a matplotlib picture's title is: on one line, a long one (a prompt of a
        # thousand characters) made a small graph's picture thousands of pixels wide, the
        # graph a speck in it. Wrapped as shown (visible: a tab as \t, not spaces); each line
        # ends left-aligned, as the title stands.
        lines = str(title).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        shown = "\n".join(visible(line) for line in lines)
        wrapped = title_lines(shown, TITLE_WIDTH, 18, bold=True).split("\n")
        text = "".join(f'{_text(line)}<BR ALIGN="LEFT"/>' for line in wrapped)
        drawing.dot.attr(label=f"<<FONT POINT-SIZE=\"18\"><B>{text}</B></FONT>>",
                         labelloc="t", labeljust="l", fontname="Helvetica")
    rows = ""
    for kind, (fill, text) in (key or {}).items():
        if kind == "box" and drawing.clusters:
            swatch = '<TD STYLE="dashed" WIDTH="24"> </TD>'
            if any(isinstance(box, tuple) for box in drawing.clusters):
                text = BACKWARD_KEY["box"][1]   # a forward graph that holds a backward's ops
        elif any(node.kind == kind for node in drawing.nodes.values()):
            swatch = f'<TD BGCOLOR="{fill}" WIDTH="24"> </TD>'
        else:
            continue
        rows += (f'<TR>{swatch}<TD BORDER="0" ALIGN="LEFT">'
                 f'<FONT POINT-SIZE="10">{_text(text)}</FONT></TD></TR>')
    if rows:
        table = ('<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="2">'
                 f'<TR><TD BORDER="0" COLSPAN="2" ALIGN="LEFT"><B>key</B></TD></TR>{rows}</TABLE>')
        drawing.dot.node("key", f"<{table}>", shape="plaintext", style="")


def _any_nan(norms):
    return any(n is not None and math.isnan(n) for n in norms)


def _add_legend(dot, grad_range, modules=False, nan=False):
    """A strip of colour cells, one per power of ten of `grad_range`, as an HTML table; with
    `nan`, a last cell in NaN's colour; with `modules`, a line saying what colours a folded
    module. A range of a few decades would have too few cells to show the colours of the nodes
    between them: it gets cells at 2 and 5 times each power too, and a range of one decade at
    2, 3, 5 and 7 times."""
    low, high = grad_range
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    steps = (1, 2, 3, 5, 7) if len(decades) <= 2 else (1, 2, 5) if len(decades) < 5 else (1,)
    marks = [(m * 10.0 ** e, f"{m}e{e}") for e in decades for m in steps
             if low * (1 - 1e-9) <= m * 10.0 ** e <= high * (1 + 1e-9)]
    if len(marks) < 2:                  # a range inside one step: its two ends
        marks = [(low, f"{low:.2g}"), (high, f"{high:.2g}")]
    marks = marks[::max(1, math.ceil(len(marks) / 12))]  # at most about a dozen cells
    if nan:
        marks.append((math.nan, "NaN"))
    cells = ""
    for norm, text in marks:
        fill = grad_colour(norm, grad_range)
        cells += (f'<TD BGCOLOR="{fill}"><FONT COLOR="{ink(fill)}" '
                  f'POINT-SIZE="10">{_text(text)}</FONT></TD>')
    title = f'<TD COLSPAN="{len(marks)}"><B>gradient norm (log scale)</B></TD>'
    note = ""
    if modules:
        note = (f'<TR><TD COLSPAN="{len(marks)}"><FONT POINT-SIZE="10">a folded '
                f"module: the largest norm inside it</FONT></TD></TR>")
    table = (f'<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0"><TR>{title}</TR>'
             f"<TR>{cells}</TR>{note}</TABLE>")
    dot.node("legend", f"<{table}>", shape="plaintext", style="")


# --------------------------------------------------------------------------------------------
# Files

def render(digraph: graphviz.Digraph, path: StrPath) -> Path:
    """Write `digraph` to `path`: an image chosen by the suffix (.svg, .png, .pdf), or the dot
    source itself for .dot or .gv. Returns the path written.

    Images need graphviz's `dot` program. Without it, the source is written next to `path`
    (same name, .dot; never over an existing file) so nothing is lost, and DotNotFoundError
    says how to install it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        return _write(path, digraph.source.encode("utf-8"))
    if suffix not in FIGURE_FORMATS:
        raise ValueError(f"render: cannot tell the format of {str(path)!r}; "
                         f"use one of .svg .png .pdf .dot .gv")
    image = layout(digraph.source, FIGURE_FORMATS[suffix])
    if image is None:                  # the source instead, unless that replaces a file
        fallback = path.with_suffix(".dot")
        if fallback.exists():
            raise DotNotFoundError(f"{INSTALL_HINT}; {fallback} exists, so the source was not "
                                   f"written (name another .dot file to get it)")
        _write(fallback, digraph.source.encode("utf-8"))
        raise DotNotFoundError(f"{INSTALL_HINT}; wrote the source to {fallback}") from None
    return _write(path, image)


def _write(path, data):
    """Write the bytes `data` to `path`, all or nothing (a failed write leaves what was there)."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path


def at_png_limit(path: StrPath) -> bool:
    """Whether the PNG at `path` is as big as dot makes one, PNG_SIDE_LIMIT pixels a side
    (give or take its rounding): a graph bigger than that was drawn smaller to fit."""
    with open(path, "rb") as f:
        header = f.read(24)                 # the signature, then IHDR: width, height
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    return max(width, height) >= PNG_SIDE_LIMIT * 0.99


def font_characters() -> list[tuple[int, int]] | None:
    """The code points that the installed fonts have, as (first, last) ranges, from
    fontconfig, whose fonts dot draws its PNGs and PDFs with (taking each character from the
    first font that has it); None where fontconfig's `fc-list` is not there to ask."""
    if not shutil.which("fc-list"):
        return None
    try:
        listing = subprocess.run(["fc-list", "--format", "%{charset}\n"], capture_output=True,
                                 text=True, check=True, timeout=60).stdout
        # Each font's characters as hexadecimal ranges: "20-7e a0-17f 192 ...".
        return [(int(first, 16), int(last or first, 16))
                for first, _, last in (part.partition("-") for part in listing.split())]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def unshown_in_graph(text: str) -> str:
    """The characters of `text` (a graph's title) that no installed font has, which dot draws
    as boxes in a PNG or PDF, each once, in order; "" when every one is drawn, or where
    fontconfig cannot say (no `fc-list`). As plots.unshown_characters, for a matplotlib
    picture's texts: spaces and marks drawn as nothing are not counted, nor ASCII, which
    every font dot may fall back on has."""
    wanted = dict.fromkeys(c for c in text if not c.isascii() and DRAWN.match(c))
    ranges = font_characters() if wanted else None
    if ranges is None:
        return ""
    return "".join(c for c in wanted if not any(first <= ord(c) <= last
                                                for first, last in ranges))


def _cap(items, limit):
    """(kept, dropped): at most `limit` items in all, one place kept for the note that says
    what was left out."""
    if len(items) <= limit:
        return items, []
    return items[:limit - 1], items[limit - 1:]


def _digraph(name, rankdir):
    dot = Graph(name)
    dot.attr(rankdir=rankdir)
    dot.attr("node", shape="box", style="rounded,filled", fontname="Helvetica")
    dot.attr("edge", color="#666666")
    return dot

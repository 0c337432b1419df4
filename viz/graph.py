"""Draw the forward computation graph that produced a tensor, with graphviz.

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
calling it, or keep the graph when you want to see gradients with `show_grad=True`.
"""

import html
from collections import deque
from pathlib import Path

import graphviz
import numpy as np

# Fill colours of the three kinds of node, so a reader sees at once what is learned.
OP_COLOUR = "#fff2cc"         # pale yellow: an operation
PARAM_COLOUR = "#cfe2f3"      # pale blue: a parameter (a leaf that is learned)
INPUT_COLOUR = "#d9ead3"      # pale green: a named input
CONSTANT_COLOUR = "#eeeeee"   # grey: any other leaf (constants made by `x * 2`, masks, ...)

INSTALL_HINT = ("graphviz's `dot` program was not found: install it with "
                "`apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS)")


class DotNotFoundError(RuntimeError):
    """`render` needed graphviz's `dot` program and it is not installed."""


# --------------------------------------------------------------------------------------------
# Labels. Names come from users (dict keys, module attributes) and may hold any character, so
# every piece of text goes through `_text`. We use graphviz's HTML-like labels, where the only
# special characters are the HTML ones: html.escape makes `< > & "` harmless, and a backslash
# means nothing there (in an ordinary "quoted" label `\n` or `\N` would be interpreted).


def _text(value):
    """Any value as safe HTML-label text; line breaks become <BR/> so they still show."""
    escaped = html.escape(str(value), quote=True)
    return "<BR/>".join(escaped.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _label(title, lines=()):
    """An HTML-like label: a bold title, then smaller lines of detail. graphviz (the Python
    package) passes a string that starts with '<' and ends with '>' to dot unquoted."""
    body = f"<B>{_text(title)}</B>"
    for line in lines:
        body += f'<BR/><FONT POINT-SIZE="10">{_text(line)}</FONT>'
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


def _walk(tensor):
    """The graph behind `tensor`, breadth first from the result back to the leaves.

    Returns `order`, a list of ("op", node, output) and ("leaf", tensor, None), each graph node
    once, nearest the result first (so cutting the list keeps the part next to the result), and
    `edges`, a list of (input key, op key): one per input of each op, so `x * x` has two.
    A key is ("op", id(node)) or ("leaf", id(tensor)): two ops can never share an id while both
    are alive, and the graph keeps them all alive while we look.
    """
    order, edges, seen = [], [], set()

    def key_of(t):
        return ("op", id(t.grad_fn)) if t.grad_fn is not None else ("leaf", id(t))

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
    visit(tensor)
    while queue:
        t = queue.popleft()
        if t.grad_fn is None:
            continue
        node_key = key_of(t)
        for inp in t.grad_fn.inputs:     # empty once backward has freed the node
            edges.append((visit(inp), node_key))
    return order, edges


def _leaf_names(params, inputs):
    """id(tensor) -> (name, kind) for the leaves the caller named."""
    names = {}
    if inputs:
        for name, t in inputs.items():
            names[id(t)] = (str(name), "input")
    if params is not None:
        # A Module names its parameters with dotted paths (`blocks.0.attn.q.weight`);
        # a dict is taken as it is. Parameters win over inputs if a tensor is in both.
        pairs = params.named_parameters() if hasattr(params, "named_parameters") else \
            params.items()
        for name, t in pairs:
            names[id(t)] = (str(name), "param")
    return names


def _cluster_of(name):
    """The group a parameter is drawn in: its top-level module (`tok`, `norm`), or one item of
    a list of modules (`blocks.0`). None for a parameter that sits at the top level itself."""
    parts = name.split(".")
    if len(parts) < 2:
        return None
    if len(parts) >= 3 and parts[1].isdigit():
        return ".".join(parts[:2])
    return parts[0]


# --------------------------------------------------------------------------------------------
# Drawing


def draw_graph(tensor, params=None, inputs=None, show_data=False, show_grad=False,
               max_nodes=500, rankdir="TB", cluster_params=False):
    """The forward computation graph that produced `tensor`, as a `graphviz.Digraph`.

    One box per op (its name and output shape) and one per leaf tensor; an arrow from each
    input to the op that consumed it. Leaves take their names from `params` (a Module, whose
    dotted parameter names are used, or a dict name -> tensor) and `inputs` (a dict name ->
    tensor), then from `tensor.name`; others read "tensor" and their shape. Parameters are
    blue, named inputs green, other leaves grey. `cluster_params=True` draws a dashed box around
    the parameters of each top-level module (`tok`, `blocks.0`, ...); off by default, because
    a box pulls its parameters together, away from the ops that use them, and the picture
    grows wide.

    `show_data` and `show_grad` add the norm, min and max of each node's `.data` / `.grad`.
    At most `max_nodes` nodes are drawn: the ones nearest the result, and a note saying how
    many ops and leaves were left out. `rankdir="LR"` lays the graph out left to right.
    Render it with `render(digraph, "graph.svg")`, or show it in a notebook as it is.
    """
    if max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be at least 1, got {max_nodes}")
    order, edges = _walk(tensor)
    if len(order) > max_nodes:
        # Keep one place for the note, so that the picture holds max_nodes nodes in all.
        kept, dropped = order[:max_nodes - 1], order[max_nodes - 1:]
    else:
        kept, dropped = order, []
    names = _leaf_names(params, inputs)

    dot = graphviz.Digraph("computation_graph")
    dot.attr(rankdir=rankdir)
    dot.attr("node", shape="box", style="rounded,filled", fontname="Helvetica")
    dot.attr("edge", color="#666666")

    ids, clusters = {}, {}
    for kind, obj, output in kept:
        if kind == "op":
            node_id = ids[("op", id(obj))] = f"op{len(ids)}"
            dot.node(node_id, _op_label(obj, output, show_data, show_grad), fillcolor=OP_COLOUR,
                     # the result's op gets a thick border: that is where the arrows lead
                     penwidth="2.5" if output is tensor else "1")
            continue
        node_id = ids[("leaf", id(obj))] = f"leaf{len(ids)}"
        name, leaf_kind = names.get(id(obj), (obj.name, None))
        if leaf_kind is None:
            # Unnamed by the caller: a leaf that requires a gradient is learned all the same.
            leaf_kind = "param" if obj.requires_grad else "constant"
        colour = {"param": PARAM_COLOUR, "input": INPUT_COLOUR}.get(leaf_kind, CONSTANT_COLOUR)
        attrs = dict(fillcolor=colour, shape="box" if leaf_kind == "param" else "ellipse",
                     style="filled")
        label = _leaf_label(obj, name, show_data, show_grad)
        group = _cluster_of(name) if cluster_params and leaf_kind == "param" and name else None
        if group is None:
            dot.node(node_id, label, **attrs)
        else:
            clusters.setdefault(group, []).append((node_id, label, attrs))

    # graphviz draws a subgraph whose name starts with "cluster" as a box around its nodes.
    # The name is ours (a counter); the module path goes in the escaped label.
    for i, (group, members) in enumerate(clusters.items()):
        with dot.subgraph(name=f"cluster_{i}") as sub:
            sub.attr(label=_label(group), style="dashed", color="#999999", fontname="Helvetica")
            for node_id, label, attrs in members:
                sub.node(node_id, label, **attrs)

    for source, target in edges:
        if source in ids and target in ids:
            dot.edge(ids[source], ids[target])

    if dropped:
        n_ops = sum(kind == "op" for kind, _, _ in dropped)
        n_leaves = len(dropped) - n_ops
        dot.node("omitted", _label(f"{len(dropped)} more nodes not drawn",
                                   [f"{n_ops} ops and {n_leaves} leaves left out "
                                    f"(max_nodes={max_nodes})"]),
                 shape="note", style="filled", fillcolor="#f4cccc")
    return dot


def _op_label(node, output, show_data, show_grad):
    lines = [_shape(output.data)]
    if node.freed:
        lines.append("inputs freed by backward (use retain_graph=True)")
    if show_data:
        lines.append(_summary("data", output.data))
    if show_grad and output.grad is not None:     # non-leaves keep .grad only if retain_grad()
        lines.append(_summary("grad", output.grad))
    return _label(node.name, lines)


def _leaf_label(t, name, show_data, show_grad):
    title = name if name else "tensor"
    lines = [_shape(t.data)]
    if not name and t.size == 1:
        # A constant such as the 2 of `x * 2`: its value says more than its shape.
        lines = [f"= {t.data.item():.4g}" if t.dtype.kind in "fc" else f"= {t.data.item()}"]
    if show_data:
        lines.append(_summary("data", t.data))
    if show_grad and t.requires_grad:
        lines.append(_summary("grad", t.grad))
    return _label(title, lines)


# --------------------------------------------------------------------------------------------
# Files

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def render(digraph, path):
    """Write `digraph` to `path`: an image chosen by the suffix (.svg, .png, .pdf), or the dot
    source itself for .dot or .gv. Returns the path written.

    Images need graphviz's `dot` program. Without it, the source is written next to `path`
    (same name, .dot) so nothing is lost, and DotNotFoundError says how to install it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dot", ".gv"):
        path.write_text(digraph.source, encoding="utf-8")
        return path
    if suffix not in _FORMATS:
        raise ValueError(f"render: cannot tell the format of {str(path)!r}; "
                         f"use one of .svg .png .pdf .dot .gv")
    try:
        image = digraph.pipe(format=_FORMATS[suffix])
    except graphviz.ExecutableNotFound:
        fallback = path.with_suffix(".dot")
        fallback.write_text(digraph.source, encoding="utf-8")
        raise DotNotFoundError(f"{INSTALL_HINT}; wrote the source to {fallback}") from None
    path.write_bytes(image)
    return path

"""The interactive page of a computation graph: its forward graph and its backward graph in one
self-contained HTML file, to pan, zoom, search, fold by module and inspect node by node.

    page = graph_page(loss, params=model)           # or draw_graph(loss, params=model).page()
    page.save("graph.html")                         # a notebook shows `page` inline

The pictures are the ones draw_graph and draw_backward make (graphviz lays them out, as SVG);
the page adds, as JSON for its script (viz/assets/graph.js):

  * for each node: what it is (op, parameter, input, constant; in the backward graph also the
    seed, the saved forward values and the gradients dL/d<leaf>), the op's formula (its
    Function's docstring), its output's shape and dtype, a summary of its values (norm, min,
    max, mean, histogram) and what its forward saved for backward; in the forward graph also
    the summary of its gradient dL/d(output) and the ratio of the gradient's norm to the
    value's;
  * for each dashed module box: its path, class, parameter count and ops, so that a click folds
    it into one box (a stack of blocks of one class folds into `decoder.layers: DecoderLayer
    x 4`) and a second click opens it again; a folded box says how many of the values and
    gradients hidden in it hold a NaN or an infinity, as the picture's folded module says it
    (outlined in red for a NaN or an infinite gradient, a plain line for the infinities of a
    value, as a mask's -inf), and with gradient flow is coloured as the picture colours a
    folded module, red for a NaN inside;
  * the links between the two graphs: the backward ops that compute a forward op's gradients
    (the engine stamps them, `Context.backward_of`), and the forward tensors that the backward
    graph reads.

The gradients are taken by the page itself, with `tinyautograd.grad(tensor, every tensor of
the graph, retain_graph=True)`: nothing's `.grad` is touched, and the result must be one
number (a loss). The graph must still be whole: draw before `backward()`, or call it with
`retain_graph=True`.
"""

from __future__ import annotations

import html
import inspect
import re
from typing import Literal, Mapping

import numpy as np

import tinyautograd as ta
from tinyformer.graph_layout import layout

from .graph import (FREED, NAN_COLOUR, DotNotFoundError, INSTALL_HINT, Rankdir, _check_depth,
                    _check_recorded, _draw_backward, _draw_forward, _walk)
from .html import Page, label, page, summary

# What the panel says of the ops that are no Function's own formula.
PATH_SUM = ("The chain rule's sum: a tensor that reaches the loss along several paths gets the "
            "sum of the gradients that each path brings back.")
# Context attributes the engine sets; the others are what an op's forward saved for backward.
ENGINE_ATTRIBUTES = {"fn", "inputs", "needs_input_grad", "freed", "backward_of", "module_path",
                     "created_at"}
VIEWS = ("forward", "backward")


def graph_page(tensor: ta.Tensor,
               params: ta.nn.Module | Mapping[str, ta.Tensor] | None = None,
               inputs: Mapping[str, ta.Tensor] | None = None,
               modules: ta.nn.Module | None = None,
               view: Literal["forward", "backward"] = "forward", depth: int | None = None,
               fold_repeats: bool = False, max_nodes: int = 2000, show_data: bool = False,
               show_grad: bool = False, color_by_grad: bool = False,
               grad_range: tuple[float, float] | None = None, rankdir: Rankdir = "TB",
               title: str | None = None) -> Page:
    """The interactive page of the graph behind `tensor`, as a Page (`.save(path)`, `.html`).

    `params`, `inputs`, `modules`, `max_nodes`, `rankdir` and the labels' `show_data`,
    `show_grad`, `color_by_grad` and `grad_range` are those of draw_graph and draw_backward
    (`color_by_grad` needs the `.grad`s that a `backward(retain_graph=True)` leaves, as
    draw_graph does). The page opens on `view` ("forward" or "backward") with the modules
    `depth` levels down folded and, with `fold_repeats`, each stack of blocks folded; a click
    opens them (depth=0, the model as one node, is draw_graph's alone: a ValueError). When
    `tensor` is one number, the page holds its backward graph as well, and
    the gradient of every node of the forward one."""
    if view not in VIEWS:
        raise ValueError(f"graph_page: view must be 'forward' or 'backward', got {view!r}")
    _check_depth("graph_page", depth)
    if depth == 0:
        # The page folds the boxes drawn around modules, and the model itself has none: the
        # page would open unfolded, the opposite of the one node asked for.
        raise ValueError("graph_page: depth=0 would fold the whole model into one node, which "
                         "the page has no box for: give depth=1 or more (its children), or "
                         "draw_graph(..., depth=0) for the one-node picture")
    if depth is not None or fold_repeats:                      # the walk only to check it
        _check_recorded("graph_page", _walk([tensor])[0], depth, fold_repeats)
    labels = dict(show_data=show_data, show_grad=show_grad, color_by_grad=color_by_grad,
                  grad_range=grad_range, rankdir=rankdir, max_nodes=max_nodes)
    # The page folds modules itself, so the pictures are drawn whole.
    forward = _draw_forward(tensor, params=params, inputs=inputs, modules=modules, **labels)
    # What each forward op kept for backward, read before the gradients are taken: a backward
    # may take what it reads (GELU's dy/dx) to reuse its memory.
    saved = {id(n.node): _saved(n.node) for n in forward.nodes.values() if n.node is not None}
    grads, missing = _gradients(tensor, forward)
    backward = None
    if missing is None:
        backward = _draw_backward(tensor, params=params, inputs=inputs, modules=modules,
                                  **labels)
    if view == "backward" and backward is None:
        raise ValueError(f"graph_page: no backward graph to show: {missing}")

    docs = {}
    # With gradient flow a node whose gradient norm is NaN is filled NAN_COLOUR: a folded box
    # holding one takes that colour too, as the picture's folded module does.
    data = {"view": view, "depth": depth, "missing": missing, "docs": docs, "views": {},
            "flow": color_by_grad, "nan_colour": NAN_COLOUR, "rankdir": rankdir}
    svgs = {}
    summaries = {}                      # see _summary_of
    for name, drawing in (("forward", forward), ("backward", backward)):
        if drawing is None:
            continue
        data["views"][name] = _view_data(name, drawing, forward, grads, saved, docs, tensor,
                                         depth, fold_repeats, summaries)
        svgs[name] = _svg(drawing.dot, name, rankdir)
    _link(data["views"], forward, backward)
    title = title or f"computation graph of {_what(tensor, 'loss' if grads else 'tensor')}"
    data["title"] = title
    return Page(page(title, "graph", _body(title, svgs, view, rankdir), data), title)


def _what(tensor, kind):
    """"a scalar loss", "a tensor of shape (2,)": the result, as the page's title names it."""
    if tensor.ndim == 0:
        return f"a scalar {kind}"
    return f"a {kind} of shape {tuple(tensor.shape)}"


# --------------------------------------------------------------------------------------------
# Gradients


def _gradients(tensor, forward):
    """id(tensor) -> dL/d(tensor) (a numpy array) for every tensor of the forward picture that
    requires a gradient, and None; or {} and the reason why there are none."""
    if tensor.size != 1:
        return {}, (f"the result has shape {tensor.shape}: gradients are taken of one number "
                    f"(a loss)")
    if not tensor.requires_grad:
        return {}, "nothing in the graph requires a gradient"
    if any(n.node is not None and n.node.freed for n in forward.nodes.values()):
        return {}, FREED
    wanted = {}
    for drawn in forward.nodes.values():
        if drawn.tensor is not None and drawn.tensor.requires_grad:
            wanted[id(drawn.tensor)] = drawn.tensor
    found = ta.grad(tensor, list(wanted.values()), retain_graph=True)
    return {key: None if g is None else g.data for key, g in zip(wanted, found)}, None


# --------------------------------------------------------------------------------------------
# What the page's script reads


def _reflowed(doc: str) -> str:
    """A docstring as the panel shows it, where the page wraps its lines to the panel's width:
    each paragraph's lines joined into one (their line ends were for an 80-column editor, and
    wrapped again they read "classes on / the / last axis"), indented lines (formulas) kept
    as they are."""
    lines: list[str] = []
    for line in doc.splitlines():
        joins = (_prose(line) and lines and _prose(lines[-1])
                 and not _LIST_ITEM.match(line))
        if joins:
            lines[-1] += " " + line
        else:
            lines.append(line)
    return "\n".join(lines)


# Lines that keep their own line: a list's item (- a, * a, 1. a, 2) a) and an underline of
# a heading (----, ====), which no line joins either.
_LIST_ITEM = re.compile(r"[-*\u2022] |\d+[.)] ")
_UNDERLINE = re.compile(r"[-=~]{3,}\s*$")


def _prose(line):
    return bool(line) and not line[0].isspace() and not _UNDERLINE.match(line)


def _view_data(view, drawing, forward, grads, saved, docs, result, depth, fold_repeats,
               summaries):
    """The JSON of one view: its nodes, its boxes (clusters), its stacks of repeated blocks and
    the boxes folded when the page opens. `saved`: id(forward op) -> what _saved read of it
    before any backward ran; `summaries`: _summary_of's, shared by the two views."""
    inputs = {node_id: [] for node_id in drawing.nodes}
    for source, target in drawing.edges:
        if source in drawing.ids and target in drawing.ids:
            inputs.setdefault(drawing.ids[target], []).append(drawing.ids[source])
    cluster_name = {key: f"cluster_{i}" for i, key in enumerate(drawing.clusters)}

    nodes = {}
    for node_id, drawn in drawing.nodes.items():
        info = {"kind": drawn.kind, "title": str(drawn.title), "module": drawn.module,
                "boxes": [cluster_name[key] for key in drawing.boxes.get(node_id, ())],
                "inputs": inputs.get(node_id, [])}
        t = drawn.tensor
        if t is not None:
            info["value"] = _summary_of(t.data, summaries)
        if drawn.is_gradient:       # a backward node whose value is a gradient it computes
            info["is_gradient"] = True
        if drawn.node is not None:
            info["op"] = drawn.node.name
            docs.setdefault(drawn.node.name, _reflowed(inspect.getdoc(drawn.node.fn) or ""))
            key = id(drawn.node)                # a backward op: no backward has run through it
            info["saved"] = saved[key] if key in saved else _saved(drawn.node)
            if view == "backward" and drawn.node.backward_of is None:
                info["note"] = PATH_SUM
        if view == "forward" and t is not None and grads:
            gradient = grads.get(id(t))
            info["grad"] = _summary_of(gradient, summaries)
            if gradient is not None:
                value_norm = float(np.linalg.norm(np.asarray(t.data, dtype=np.float64)))
                grad_norm = float(np.linalg.norm(np.asarray(gradient, dtype=np.float64)))
                # As the panel reads it (nan where a norm is nan, inf where the gradient's
                # is); none for a value of zeros, which no gradient is large or small beside.
                info["ratio"] = label(grad_norm / value_norm) if value_norm != 0 else None
        # Folding a box never hides where the graph starts and ends.
        info["keep"] = (drawn.kind in ("input", "seed")
                        or (view == "forward" and t is result))
        nodes[node_id] = info

    # The nodes in each box, and the forward op of each backward box, gathered in one pass
    # over the nodes: looked for again for each box (a box for every op's backward), they
    # took a time that grew with the square of the graph's size.
    box_members = {name: [] for name in cluster_name.values()}
    for info in nodes.values():
        for name in info["boxes"]:
            box_members[name].append(info)
    differentiated = {id(drawn.node.backward_of): drawn.node.backward_of
                      for drawn in drawing.nodes.values()
                      if drawn.node is not None and drawn.node.backward_of is not None}
    clusters = {}
    for key, name in cluster_name.items():
        clusters[name] = _cluster_data(key, drawing, box_members[name], name, differentiated)
    repeats = []
    for path, items in drawing.tree.lists.items():
        names = [cluster_name[item] for item in items if item in cluster_name]
        if len(names) >= 2:
            members = [drawing.tree.modules[item] for item in items]
            repeats.append({"path": path, "items": names,
                            "label": f"{path}: {type(members[0]).__name__} x {len(names)}",
                            "params": sum(m.num_parameters() for m in members),
                            "ops": sum(clusters[n]["ops"] for n in names)})
    collapsed = [name for name, c in clusters.items()
                 if depth is not None and c.get("level") == depth]
    folded = [r["path"] for r in repeats] if fold_repeats else []
    return {"nodes": nodes, "clusters": clusters, "repeats": repeats,
            "collapsed": collapsed, "folded": folded}


def _summary_of(array, summaries):
    """summary(array), made once for each array: the backward view shows again many values
    the forward one shows (each parameter, each input an op saved), often the largest.
    `summaries`: id(array) -> (the array, its summary); the array is kept, so that its id is
    no other's while the page is made."""
    if array is None:
        return None
    if id(array) not in summaries:
        summaries[id(array)] = (array, summary(array))
    return summaries[id(array)][1]


def _cluster_data(key, drawing, members, name, differentiated):
    """One dashed box: a module's (its path as key) or an op's backward (("backward", id)).
    `members`: the nodes inside it; `differentiated`: id(forward op) -> the op, for each op
    whose backward the view draws."""
    outer = []
    for n in members:                       # the boxes around it: those before it in a chain
        outer = n["boxes"][:n["boxes"].index(name)]
        break
    info = {"boxes": outer, "ops": sum("op" in n for n in members)}
    if isinstance(key, tuple):              # ("backward", id(forward op)): _link links it
        of = differentiated.get(key[1])
        info.update(kind="backward", path=None, of=None,
                    label="backward" if of is None else f"{of.name} backward")
        return info
    module = drawing.tree.modules.get(key)
    info.update(kind="module", path=key, level=len(drawing.tree.ancestors(key)) - 1,
                label=key if module is None else f"{key}: {type(module).__name__}",
                params=None if module is None else module.num_parameters())
    return info


def _saved(node):
    """What an op's forward kept on its Context for backward, besides its inputs and output:
    name, and shape and dtype (arrays) or the value (settings)."""
    saved = []
    for name, value in vars(node).items():
        if name.startswith("_") or name in ENGINE_ATTRIBUTES:
            continue
        if isinstance(value, ta.Tensor):
            value = value.data
        if isinstance(value, np.ndarray):
            saved.append({"name": name, "shape": list(value.shape), "dtype": str(value.dtype)})
        else:
            text = _setting_text(value)
            saved.append({"name": name, "value": text if len(text) <= 60 else text[:57] + "..."})
    return saved


def _setting_text(value):
    """A saved setting as the panel writes it: its repr, but a numpy number as the number
    (cross-entropy's row weight read "np.float32(0.032258064)"), and an array inside a tuple
    or a list (a fancy index's rows and columns) by its shape and dtype, as an array saved
    alone is, not by its first numbers cut off at the 60th character."""
    if isinstance(value, ta.Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        return f"array {value.shape} {value.dtype}"
    if isinstance(value, np.generic):
        return str(value)
    if type(value) in (tuple, list):            # exactly: a named tuple keeps its own repr
        parts = [_setting_text(item) for item in value]
        if type(value) is list:
            return "[" + ", ".join(parts) + "]"
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    return repr(value)


def _link(views, forward, backward):
    """Tie the two graphs together: a forward op lists the backward ops that compute its
    gradients (`backward`) and the box they are drawn in (`backward_box`); a backward op names
    the forward op it differentiates (`of`), a saved value or a gradient the forward node it
    is the value or the gradient of (`forward`)."""
    if backward is None:
        return

    def forward_id(t):
        key = ("leaf", id(t)) if t.grad_fn is None else ("op", id(t.grad_fn))
        return forward.ids.get(key)

    fwd, bwd = views["forward"]["nodes"], views["backward"]["nodes"]
    clusters = views["backward"]["clusters"]
    box_of = {key[1]: f"cluster_{i}" for i, key in enumerate(backward.clusters)
              if isinstance(key, tuple)}           # id(forward op) -> its "backward" box
    for node_id, drawn in backward.nodes.items():
        target = None if drawn.node is None else drawn.node.backward_of
        if target is not None:
            of = forward.ids.get(("op", id(target)))
            box = box_of.get(id(target))
            if box is not None:
                clusters[box]["of"] = of            # its label: _cluster_data's
            if of in fwd:
                bwd[node_id]["of"] = of
                fwd[of].setdefault("backward", []).append(node_id)
                fwd[of]["backward_box"] = box
        elif drawn.kind in ("saved", "gradient"):     # x.T in matmul's backward: x's node
            bwd[node_id]["forward"] = forward_id(drawn.of)


# --------------------------------------------------------------------------------------------
# The page's HTML


# The arrow keys that walk the picture (graph.js), by the way its arrows go: the key that
# points back up an arrow goes to an input, the one that points along it to a node the input
# feeds, the two across to the nodes beside (the other inputs of the node it came from).
ARROW_KEYS = {"TB": ("\u2191", "\u2193", "\u2190 and \u2192"),
              "BT": ("\u2193", "\u2191", "\u2190 and \u2192"),
              "LR": ("\u2190", "\u2192", "\u2191 and \u2193"),
              "RL": ("\u2192", "\u2190", "\u2191 and \u2193")}


def _keys(rankdir):
    """What the keys do in the picture, as the panel's hint and the picture's description
    say it."""
    back, along, across = ARROW_KEYS[rankdir]
    return (f"{back} goes to an input of the node (the op that made it), {along} to a node "
            f"that uses it, {across} to the others beside it; Home and End to where the graph "
            f"starts and where it ends; Page Up to the module box around it, Page Down back "
            f"in; Enter or Space clicks")


def _svg(dot, view, rankdir):
    """The picture as an inline <svg> element: graphviz's SVG without its XML prologue, its
    element ids prefixed by the view (two pictures share one document)."""
    image = layout(dot.source, "svg")
    if image is None:
        raise DotNotFoundError(INSTALL_HINT)
    svg = image.decode("utf-8")
    svg = re.sub(r"<!--.*?-->\n?", "", svg[svg.index("<svg"):], flags=re.S)   # node names
    # A name for the picture as a whole, and its keys. Not role="img": that would hide its
    # nodes, which the keyboard reaches as buttons, from a screen reader.
    svg = re.sub(r'<svg width="[^"]*" height="[^"]*"',
                 f'<svg id="svg-{view}" role="group" aria-label="the {view} graph" '
                 f'aria-description="{_keys(rankdir)}"', svg, count=1)
    return re.sub(r' id="(graph|node|edge|clust|a_)', rf' id="{view}-\1', svg)


def _body(title, svgs, view, rankdir):
    buttons = "".join(
        f'<button type="button" data-view="{name}" aria-pressed="{str(name == view).lower()}">'
        f'{name}</button>' for name in VIEWS)
    pictures = "".join(f'<div class="picture{"" if name == view else " inactive"}" '
                       f'data-view="{name}">{svg}</div>' for name, svg in svgs.items())
    return f"""<header>
<h1>{html.escape(title)}</h1>
<div class="views" role="group" aria-label="view">{buttons}</div>
<div class="finder"><input id="search" type="search" placeholder="find a node or module"
 autocomplete="off" aria-label="find a node or module" role="combobox" aria-controls="matches"
 aria-expanded="false" aria-autocomplete="list">
<div id="matches" role="listbox" aria-label="matches" hidden></div></div>
<label>fold <select id="depth" aria-label="fold modules"></select></label>
<button type="button" id="fold-repeats">fold repeated blocks</button>
<button type="button" id="unfold">unfold all</button>
<button type="button" id="zoom-in" aria-label="zoom in" title="zoom in (+)">+</button>
<button type="button" id="zoom-out" aria-label="zoom out" title="zoom out (-)">&minus;</button>
<button type="button" id="fit">fit</button>
</header>
<main>
<div id="canvas">{pictures}</div>
<aside id="panel"><p class="hint">Click a node to see its values and gradient; click a dashed
module box to fold it (and the folded box to open it). Drag to pan; zoom with the wheel,
two fingers, the + and &minus; buttons or keys. Tab goes to the picture, then to this panel;
in the picture {_keys(rankdir)}. / goes to the search box, where the arrow keys pick a match;
Escape lets go.</p></aside>
</main>
<footer id="status" aria-live="polite"></footer>"""

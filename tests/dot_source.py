"""Reading the dot source that viz writes, for the tests: one statement per line, as
`op3 [label=...]`, `leaf0 -> op3` or `op1 -> grad0`, clusters as `subgraph cluster_N {...}`."""

import html
import re

NODE = re.compile(r"^\s*(op\d+|leaf\d+|grad\d+|module\d+|omitted) \[", re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+) -> (\w+)", re.MULTILINE)


def nodes(dot, prefix=""):
    """The ids of the nodes drawn, those starting with `prefix` ("op", "leaf", ...)."""
    return [n for n in NODE.findall(dot.source) if n.startswith(prefix)]


def node_lines(dot):
    """The statements of the nodes drawn, one a line (not the key, the graph's own label)."""
    return [line for line in dot.source.splitlines() if NODE.match(line)]


def edges(dot):
    """(source id, target id) for every arrow."""
    return EDGE.findall(dot.source)


def titles(dot):
    """node id -> its bold title, for the nodes (not the clusters)."""
    return {m[1]: m[2] for m in re.finditer(r"^\s*(\w+) \[label=<<B>(.*?)</B>", dot.source,
                                            re.MULTILINE)}


def clusters(dot):
    """cluster title -> the op ids directly inside its box (not in a box nested in it); the
    boxes of one title (two `mul backward`s) merged."""
    found = {}
    for title, _, members in boxes(dot):
        found.setdefault(title, []).extend(m for m in members if m.startswith("op"))
    return found


def boxes(dot):
    """(title, the title of the box it is nested in or None, the ids of the nodes directly
    inside it) for every box, in the order of the source."""
    found, open_boxes = [], []          # open_boxes: the boxes we are inside, innermost last
    for line in dot.source.splitlines():
        if re.match(r"\s*subgraph cluster_\d+ \{", line):
            parent = open_boxes[-1][0] if open_boxes else None
            open_boxes.append([None, parent, []])       # its title comes on its label line
            found.append(open_boxes[-1])
        elif re.match(r"\s*\}", line) and open_boxes:
            open_boxes.pop()
        elif open_boxes and open_boxes[-1][0] is None and "label=<<B>" in line:
            open_boxes[-1][0] = re.search(r"label=<<B>(.*?)</B>", line)[1]
        elif open_boxes and NODE.match(line):
            open_boxes[-1][2].append(NODE.match(line)[1])
    return [tuple(box) for box in found]


def svg_clusters(svg):
    """The titles of the boxes of a rendered svg."""
    return re.findall(r'<g id="clust\d+" class="cluster">\s*<title>.*?</title>\s*<[^>]*>\s*'
                      r'<text[^>]*>(.*?)</text>', svg)


def svg_titles(svg):
    """The titles (first lines) of the nodes of a rendered svg."""
    return re.findall(r'<g id="node\d+" class="node">\s*<title>.*?</title>\s*(?:<[^t][^>]*>'
                      r'\s*)*<text[^>]*>(.*?)</text>', svg)


def feeds(dot):
    """target id -> the ids of the nodes with an arrow into it."""
    into = {}
    for source, target in edges(dot):
        into.setdefault(target, []).append(source)
    return into


def tooltips(dot):
    """node id -> its tooltip, for the nodes that have one (a parameter drawn in its module's
    box: its whole dotted name), as written in the source (names here hold no escapes)."""
    return dict(re.findall(r'^\s*(\w+) \[.*\btooltip="([^"]*)"', dot.source, re.MULTILINE))


def svg_tooltips(svg):
    """The tooltips of the nodes of a rendered svg, as they read."""
    return [html.unescape(t) for t in re.findall(r'<a xlink:title="([^"]*)"', svg)]


def ops_behind(tensor):
    """The distinct op nodes of the graph behind `tensor` (its grad_fn and those before it)."""
    found, stack = {}, [tensor]
    while stack:
        t = stack.pop()
        if t.grad_fn is not None and id(t.grad_fn) not in found:
            found[id(t.grad_fn)] = t.grad_fn
            stack.extend(t.grad_fn.inputs)
    return list(found.values())

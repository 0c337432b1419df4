"""Reading the dot source that viz writes, for the tests: one statement per line, as
`op3 [label=...]`, `leaf0 -> op3` or `op1 -> grad0`, clusters as `subgraph cluster_N {...}`."""

import re

NODE = re.compile(r"^\s*(op\d+|leaf\d+|grad\d+|module\d+|omitted) \[", re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+) -> (\w+)", re.MULTILINE)


def nodes(dot, prefix=""):
    """The ids of the nodes drawn, those starting with `prefix` ("op", "leaf", ...)."""
    return [n for n in NODE.findall(dot.source) if n.startswith(prefix)]


def edges(dot):
    """(source id, target id) for every arrow."""
    return EDGE.findall(dot.source)


def titles(dot):
    """node id -> its bold title, for the nodes (not the clusters)."""
    return {m[1]: m[2] for m in re.finditer(r"^\s*(\w+) \[label=<<B>(.*?)</B>", dot.source,
                                            re.MULTILINE)}


def clusters(dot):
    """cluster title -> the op ids inside its box."""
    found = {}
    for body in re.findall(r"subgraph cluster_\d+ \{(.*?)\n\t\}", dot.source, re.DOTALL):
        title = re.search(r"label=<<B>(.*?)</B>", body)[1]
        found.setdefault(title, []).extend(re.findall(r"^\s*(op\d+) \[", body, re.MULTILINE))
    return found


def feeds(dot):
    """target id -> the ids of the nodes with an arrow into it."""
    into = {}
    for source, target in edges(dot):
        into.setdefault(target, []).append(source)
    return into

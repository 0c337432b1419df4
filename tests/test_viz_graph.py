"""viz.draw_graph and viz.render: the drawn graph matches the one the engine recorded (counted
here independently through the public API), names are escaped, the node cap holds, and real
svg/png/pdf files come out of graphviz's `dot`."""

import gc
import html
import os
import re
import shutil
import time

import numpy as np
import pytest

import tinyautograd as ta
import tinyautograd.functional as F
from tinyautograd import nn
import viz
from tinyformer.gpt import GPT
from dot_source import boxes, edges, node_lines, nodes, titles, tooltips
from viz import DotNotFoundError, draw_graph, render

# CI installs dot: there, a missing dot fails the tests rather than skipping them.
needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                               reason="graphviz's dot is not installed")

def recorded_graph(tensor):
    """The graph as the engine holds it: the distinct Context nodes reachable from `tensor`,
    the distinct leaf tensors, and how many (input, op) links there are."""
    contexts, leaves, links = {}, {}, 0
    stack = [tensor]
    while stack:
        t = stack.pop()
        if t.grad_fn is None:
            leaves[id(t)] = t
            continue
        if id(t.grad_fn) in contexts:
            continue
        contexts[id(t.grad_fn)] = t.grad_fn
        links += len(t.grad_fn.inputs)
        stack.extend(t.grad_fn.inputs)
    return contexts, leaves, links


class MLP(nn.Module):
    def __init__(self):
        self.hidden = nn.Linear(3, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.hidden(x).relu())


@pytest.fixture
def mlp_loss():
    ta.manual_seed(0)
    model = MLP()
    x = ta.Tensor(np.arange(6.0).reshape(2, 3))
    return model, x, model(x).sum()


@pytest.fixture(scope="module")
def gpt_loss():
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=1, n_head=2, d_model=8)
    idx = np.random.default_rng(0).integers(0, 7, (2, 5))
    logits = model(idx)
    return model, F.cross_entropy(logits.reshape(-1, 7), idx.reshape(-1))


def test_hand_built_mlp_has_one_node_per_op_and_leaf():
    x = ta.Tensor(np.ones((2, 3)))
    W = ta.Tensor(np.ones((3, 4)), requires_grad=True)
    b = ta.Tensor(np.zeros(4), requires_grad=True)
    loss = (x @ W + b).relu().sum()
    dot = draw_graph(loss, params={"W": W, "b": b}, inputs={"x": x})
    # matmul, add, relu, sum; leaves x, W, b; edges x->matmul, W->matmul, matmul->add,
    # b->add, add->relu, relu->sum.
    assert len(nodes(dot, "op")) == 4 and len(nodes(dot, "leaf")) == 3
    assert len(edges(dot)) == 6
    for op in ("matmul", "add", "relu", "sum"):
        assert f"<B>{op}</B>" in dot.source
    assert "<B>W</B>" in dot.source and "<B>x</B>" in dot.source
    assert "(2, 4)" in dot.source                       # an op's output shape
    # the result's op, where the arrows lead, and it alone, has a thick border
    thick = [line for line in dot.source.splitlines() if "penwidth=2.5" in line]
    assert len(thick) == 1 and "<B>sum</B>" in thick[0]
    # W and b require a gradient: parameters (boxes); x is the named input (an ellipse)
    shapes = {re.search(r"<B>(\w+)</B>", line)[1]: re.search(r"shape=(\w+)", line)[1]
              for line in dot.source.splitlines() if re.match(r"\s*leaf\d+ \[", line)}
    assert shapes == {"W": "box", "b": "box", "x": "ellipse"}
    unnamed = draw_graph(loss)
    assert sum(viz.graph.PARAM_COLOUR in line for line in node_lines(unnamed)) == 2


def test_edges_follow_the_data_from_inputs_to_the_op_that_used_them():
    x = ta.Tensor(np.ones(3), requires_grad=True)
    y = (x * x).exp()
    dot = draw_graph(y, params={"x": x})
    ids = {re.search(r"<B>(\w+)</B>", line).group(1): line.split()[0]
           for line in node_lines(dot)}
    # x is used twice by mul: two arrows, both into mul, and mul's result flows into exp
    assert edges(dot).count((ids["x"], ids["mul"])) == 2
    assert (ids["mul"], ids["exp"]) in edges(dot)


def test_mlp_module_names_every_parameter_by_its_dotted_path(mlp_loss):
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model, inputs={"x": x})
    contexts, leaves, links = recorded_graph(loss)
    assert len(nodes(dot, "op")) == len(contexts)
    assert len(nodes(dot, "leaf")) == len(leaves)
    assert len(edges(dot)) == links
    for name, _ in model.named_parameters():
        assert f"<B>{name}</B>" in dot.source
    # parameters, inputs and unnamed leaves are filled differently
    fill = {line.split("<B>")[1].split("</B>")[0]: re.search(r'fillcolor="(#\w+)"', line)[1]
            for line in node_lines(dot)}
    assert fill["hidden.weight"] == fill["out.bias"] != fill["x"] != fill["relu"]


def test_tiny_gpt_graph_matches_the_recorded_graph(gpt_loss):
    model, loss = gpt_loss
    dot = draw_graph(loss, params=model, show_data=True)
    contexts, leaves, links = recorded_graph(loss)
    assert len(nodes(dot, "op")) == len(contexts) > 20
    assert len(nodes(dot, "leaf")) == len(leaves)
    assert len(edges(dot)) == links
    assert "<B>decoder.layers.0.attn.q.weight</B>" in dot.source
    assert "omitted" not in dot.source
    assert "data: norm" in dot.source


def test_clusters_group_parameters_by_top_level_module(gpt_loss):
    model, loss = gpt_loss
    dot = draw_graph(loss, params=model, cluster_params=True)
    assert "subgraph cluster_" in dot.source
    for group in ("embed", "decoder.layers.0", "decoder"):
        assert f"label=<<B>{group}</B>>" in dot.source
    assert len(nodes(dot)) == len(nodes(draw_graph(loss, params=model)))


def test_show_data_and_show_grad_summaries(mlp_loss):
    model, x, loss = mlp_loss
    before = draw_graph(loss, params=model, show_grad=True).source
    assert "grad: none" in before                       # parameters, before any backward
    loss.backward(retain_graph=True)                    # keep the graph so it can be drawn
    dot = draw_graph(loss, params=model, show_data=True, show_grad=True)
    w = model.hidden.weight
    assert f"norm {np.linalg.norm(w.grad):.4g}" in dot.source
    assert f"max {w.data.max():.4g}" in dot.source
    assert f"min {w.data.min():.4g}" in dot.source
    assert "grad: none" not in dot.source


def test_show_grad_gives_an_ops_result_its_gradient_summed_over_its_uses():
    # h = 3x is used twice by h * h: dL/dh = h + h = (6, 12), its values being (3, 6).
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3.0
    loss = (h * h).sum()
    viz.retain_grads(loss)
    loss.backward(retain_graph=True)
    dot = draw_graph(loss, params={"x": x}, show_grad=True)
    lines = {re.search(r"<B>\w+</B> #\d+", line)[0]: line
             for line in dot.source.splitlines() if re.match(r"\s*op\d+ \[", line)}
    made_h, squared = (lines[title].split()[0] for title in ("<B>mul</B> #1", "<B>mul</B> #2"))
    assert f"grad: norm {np.linalg.norm([6.0, 12.0]):.4g}, min 6, max 12" in lines[
        "<B>mul</B> #1"]
    assert edges(dot).count((made_h, squared)) == 2          # both uses drawn


def test_show_data_of_an_empty_tensor_says_so():
    x = ta.Tensor(np.zeros((0, 3)), requires_grad=True)
    dot = draw_graph(x.sum(), params={"x": x}, show_data=True, show_grad=True)
    assert "data: empty (0, 3)" in dot.source and "grad: none" in dot.source


def test_hostile_names_are_escaped(tmp_path):
    hostile = 'm<i>.w<script>&"\\N\nline2 ]; x -> y {'   # m<i> is its module: a cluster
    w = ta.Tensor(np.ones(2), requires_grad=True)
    c = ta.Tensor(np.ones(2))
    y = (w * c).sum()
    dot = draw_graph(y, params={hostile: w}, inputs={'a "b" <c>': c}, cluster_params=True)
    source = dot.source
    assert "m&lt;i&gt;.w&lt;script&gt;&amp;&quot;\\\\N<BR/>line2 ]; x -&gt; y {" in source
    assert "label=<<B>m&lt;i&gt;</B>>" in source                 # the cluster's label
    assert "a &quot;b&quot; &lt;c&gt;" in source
    assert "<script>" not in source and '"b"' not in source
    assert len(nodes(dot)) == 4 and len(edges(dot)) == 3 and "subgraph cluster_0" in source
    if shutil.which("dot"):
        svg = render(dot, tmp_path / "hostile.svg").read_text()
        assert "w&lt;script&gt;" in svg and "<script>" not in svg


def svg_texts(path):
    """The lines of text a picture that graphviz drew shows, as they read."""
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", path.read_text())]


@needs_dot
def test_a_backslash_in_a_name_is_drawn_as_written(tmp_path):
    # dot reads a backslash even in an HTML-like label: `\N` was drawn as the node's id,
    # `\G` as the graph's name and `\\` as one backslash.
    w = ta.Tensor(np.ones(2), requires_grad=True)
    name = "w\\N \\G \\\\ \\"
    forward = draw_graph((w * 2).sum(), params={name: w})
    backward = viz.draw_backward((w * w).sum(), params={name: w})
    assert name in svg_texts(render(forward, tmp_path / "forward.svg"))
    assert f"dL/d({name})" in svg_texts(render(backward, tmp_path / "backward.svg"))


@needs_dot
def test_control_characters_and_lone_surrogates_in_a_name_are_drawn_as_escapes(tmp_path):
    # dot refused a label with a control character in it (the picture failed with dot's own
    # error), and a lone surrogate (a byte of a file name that is not UTF-8) could not even be
    # written to the .dot file.
    w = ta.Tensor(np.ones(2), requires_grad=True)
    x = ta.Tensor(np.ones(2))
    dot = draw_graph((w * x).sum(), params={"w\x00\x08\x0b\x0c\x1f\x1b": w},
                     inputs={"x\udcff\u202e": x})
    texts = svg_texts(render(dot, tmp_path / "graph.svg"))
    assert "w\\x00\\x08\\x0b\\x0c\\x1f\\x1b" in texts and "x\\udcff\\u202e" in texts
    assert "x\\\\udcff" in render(dot, tmp_path / "graph.dot").read_text(encoding="utf-8")


def test_a_parameter_is_drawn_in_its_modules_box_by_the_rest_of_its_name(mlp_loss):
    # It sat outside every box under its whole dotted name, a long arrow away from its op.
    model, x, _ = mlp_loss
    with viz.record(model):
        loss = model(x).sum()
    dot = draw_graph(loss, params=model)
    box_of = {node: title for title, _, members in boxes(dot) for node in members}
    tips = tooltips(dot)
    for name, _ in model.named_parameters():            # hidden.weight, out.bias, ...
        (node,) = [node for node, tip in tips.items() if tip == name]
        assert (box_of[node], titles(dot)[node]) == tuple(name.split("."))


def test_a_parameter_another_module_uses_too_is_drawn_beside_its_folded_module():
    class Tied(nn.Module):
        def __init__(self):
            self.a = nn.Linear(2, 2)

        def forward(self, x):
            return self.a(x) @ self.a.weight
    ta.manual_seed(0)
    model = Tied()
    with viz.record(model):
        loss = model(ta.Tensor(np.ones((1, 2)))).sum()
    dot = draw_graph(loss, params=model, depth=1)
    (weight,) = [node for node, title in titles(dot).items() if title == "a.weight"]
    assert boxes(dot) == [] and "tooltip" not in dot.source and weight.startswith("leaf")


def test_a_top_level_parameter_is_in_no_box():
    w = ta.Tensor(np.ones(2), requires_grad=True)
    v = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_graph((w * v).sum(), params={"w": w, "layer.v": v}, cluster_params=True)
    assert "label=<<B>layer</B>>" in dot.source and dot.source.count("subgraph cluster_") == 1


def test_every_kind_of_line_break_in_a_name_shows_as_one():
    c = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_graph((c * 2).sum(), inputs={"a\rb\r\nc\nd": c})
    assert "a<BR/>b<BR/>c<BR/>d" in dot.source and "\r" not in dot.source


def test_a_tensor_named_as_a_parameter_and_an_input_is_drawn_as_the_parameter():
    w = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_graph((w * 2).sum(), params={"w": w}, inputs={"x": w})
    assert "<B>w</B>" in dot.source and "<B>x</B>" not in dot.source
    assert viz.graph.PARAM_COLOUR in dot.source and viz.graph.INPUT_COLOUR not in dot.source


def test_node_cap_keeps_the_nodes_nearest_the_result_and_says_what_is_missing():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(30):                                 # 30 ops, 1 param, 30 constants
        y = y * 1.5
    dot = draw_graph(y, params={"x": x}, max_nodes=10)
    assert len(nodes(dot)) == 10 and "omitted" in nodes(dot)
    assert "52 more nodes not drawn" in dot.source           # 61 nodes, 9 drawn
    assert "25 ops and 27 leaves left out" in dot.source
    assert all(a != "omitted" for edge in edges(dot) for a in edge)
    full = draw_graph(y, params={"x": x}, max_nodes=61)
    assert "omitted" not in full.source and len(nodes(full)) == 61
    one_over = draw_graph(y, params={"x": x}, max_nodes=60)     # the cap holds at its edge
    assert len(nodes(one_over)) == 60 and "2 more nodes not drawn" in one_over.source


def test_node_cap_keeps_the_nearest_nodes_of_every_branch_not_one_branch_deep():
    # Two chains of 3 muls (#1-#3 and #4-#6) added (#7): a cap of 7 keeps the add and the two
    # nearest muls of each chain. Walked depth first, it kept one chain down to #4 and dropped
    # #2, as near the result as #5.
    a, b = (ta.Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    ya, yb = a, b
    for _ in range(3):
        ya = ya * 1.5
    for _ in range(3):
        yb = yb * 2.5
    dot = draw_graph(ya + yb, params={"a": a, "b": b}, max_nodes=7)
    drawn = {int(n) for n in re.findall(r"</B> #(\d+)", dot.source)}
    assert drawn == {7, 3, 6, 2, 5}


class Sum(nn.Module):
    def forward(self, x):
        return x.sum()


def test_the_cap_note_counts_one_of_a_kind_in_the_singular():
    # It read "2 more nodes not drawn: 0 ops, 1 leaves and 1 collapsed modules left out".
    model = Sum()
    x = ta.Tensor(np.ones(3), requires_grad=True)
    with viz.record(model):
        loss = model(x) * 2.0                    # the module, its leaf x, the mul and its 2
    dot = draw_graph(loss, params=model, depth=0, max_nodes=2)
    assert "2 more nodes not drawn" in dot.source
    assert "0 ops, 1 leaf and 1 collapsed module left out" in dot.source


def test_a_leaf_is_drawn_alone_and_a_freed_graph_says_so(mlp_loss):
    model, x, loss = mlp_loss
    assert len(nodes(draw_graph(x, inputs={"x": x}))) == 1
    loss.backward()                                     # frees the graph
    dot = draw_graph(loss, params=model)
    assert len(nodes(dot)) == 1 and "freed by backward" in dot.source


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG\r\n\x1a\n"),
                                           (".pdf", b"%PDF-")])
def test_render_writes_real_files(mlp_loss, tmp_path, suffix, magic):
    model, x, loss = mlp_loss
    path = render(draw_graph(loss, params=model, inputs={"x": x}), tmp_path / f"g{suffix}")
    data = path.read_bytes()
    assert data.startswith(magic) or (suffix == ".svg" and data.lstrip().startswith(b"<svg"))
    if suffix == ".svg":
        assert b"hidden.weight" in data


@needs_dot
def test_render_the_tiny_gpt(gpt_loss, tmp_path):
    model, loss = gpt_loss
    path = render(draw_graph(loss, params=model), tmp_path / "gpt.png")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_render_dot_source_and_unknown_suffix(mlp_loss, tmp_path):
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model)
    assert render(dot, tmp_path / "g.dot").read_text() == dot.source
    with pytest.raises(ValueError, match="format"):
        render(dot, tmp_path / "g.jpeg2000")
    with pytest.raises(ValueError, match="max_nodes must be at least 1, got 0"):
        draw_graph(loss, params=model, max_nodes=0)


@pytest.mark.parametrize("given, said", [(3.0, "a float"), (np.ones(3), "a numpy.ndarray"),
                                         (None, "a NoneType")])
def test_something_other_than_a_tensor_is_a_type_error_saying_what_was_given(given, said):
    # draw_graph(3.0) was AttributeError: 'float' object has no attribute 'grad_fn' (and
    # draw_backward's: no attribute 'size').
    for draw in (draw_graph, viz.draw_backward):
        with pytest.raises(TypeError, match=rf"^{draw.__name__}: expects the Tensor a "
                                            rf"computation produced .*, got {said}$"):
            draw(given)


def test_params_or_inputs_without_names_are_a_type_error_saying_what_to_give(mlp_loss):
    # params=model.parameters() (an optimizer's argument) was AttributeError: 'generator'
    # object has no attribute 'items'; inputs=x, "The truth value of an array ... ambiguous".
    model, x, loss = mlp_loss
    for draw in (draw_graph, viz.draw_backward):
        for wrong, said in ((dict(params=model.parameters()), "params must be a Module or a "
                             r"dict name -> Tensor, such as dict\(model.named_parameters\(\)\), "
                             "got a generator"),
                            (dict(inputs=[x]), "inputs must be a dict name -> Tensor, such as "
                             r"\{'x': x\}, got a list"),
                            (dict(inputs=x), "inputs must be a dict .*, got a tinyautograd")):
            with pytest.raises(TypeError, match=rf"^{draw.__name__}: {said}"):
                draw(loss, **wrong)


@needs_dot
def test_render_reads_the_suffix_in_any_case(mlp_loss, tmp_path):
    model, x, loss = mlp_loss
    assert render(draw_graph(loss), tmp_path / "g.SVG").read_bytes()[:5] == b"<?xml"


def test_render_without_dot_writes_the_source_and_says_how_to_install(mlp_loss, tmp_path,
                                                                       monkeypatch):
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere on PATH
    with pytest.raises(DotNotFoundError, match="apt-get install graphviz") as info:
        render(dot, tmp_path / "g.svg")
    assert "\n" not in str(info.value)
    assert (tmp_path / "g.dot").read_text() == dot.source
    assert not (tmp_path / "g.svg").exists()


def test_a_notebook_without_dot_is_told_how_to_install_it(mlp_loss, tmp_path, monkeypatch):
    # A notebook shows a Digraph through _repr_mimebundle_: graphviz's own ran dot and, without
    # it, showed graphviz's long ExecutableNotFound traceback instead of the install hint.
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere on PATH
    with pytest.raises(DotNotFoundError, match="apt-get install graphviz") as info:
        dot._repr_mimebundle_()
    assert "\n" not in str(info.value)


@needs_dot
def test_a_notebook_shows_the_graph_as_render_draws_it(mlp_loss, tmp_path):
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model)
    shown = dot._repr_mimebundle_()
    assert list(shown) == ["image/svg+xml"]
    assert shown["image/svg+xml"].encode() == render(dot, tmp_path / "g.svg").read_bytes()
    assert dot._repr_mimebundle_(include=["image/png"])["image/png"].startswith(b"\x89PNG")
    assert dot._repr_mimebundle_(exclude=["image/svg+xml"]) == {}


@needs_dot                                               # the stand-in below runs dot
def test_render_falls_back_to_graphviz_pure_for_svg_and_png(mlp_loss, tmp_path, monkeypatch):
    """Without dot, a `graphviz-pure` on PATH renders (here a stand-in that runs dot, so the
    test needs no extra package); it has no pdf, so pdf still says what to install."""
    model, x, loss = mlp_loss
    dot = draw_graph(loss, params=model)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "graphviz-pure"
    stand_in.write_text(f'#!/bin/sh\nexec {shutil.which("dot")} "$@"\n')
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert render(dot, tmp_path / "g.svg").read_bytes().startswith(b"<?xml")
    assert render(dot, tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(DotNotFoundError, match="graphviz-pure"):
        render(dot, tmp_path / "g.pdf")


# --------------------------------------------------------------------------------------------
# Large graphs by module: boxes per module path, modules collapsed below a depth


@pytest.fixture(scope="module")
def recorded_gpt():
    """A 2-layer GPT of nanoGPT's character-level size, its forward and loss recorded."""
    ta.manual_seed(0)
    model = GPT(vocab_size=65, context=64, n_layer=2, n_head=4, d_model=128)
    idx = np.random.default_rng(0).integers(0, 65, (4, 65))
    with viz.record(model):
        loss = F.cross_entropy(model(idx[:, :-1]), idx[:, 1:])
    return model, loss


def test_ops_are_boxed_by_module_path(recorded_gpt):
    model, loss = recorded_gpt
    dot = draw_graph(loss, params=model)
    contexts = recorded_graph(loss)[0].values()
    paths = {node.module_path for node in contexts} - {None, ""}
    assert paths                                         # recording worked
    for path in paths:                                   # a box for each, and its parents
        assert f"label=<<B>{path}</B>>" in dot.source
    assert "label=<<B>decoder.layers.1.attn</B>>" in dot.source
    assert len(nodes(dot, "op")) == len(contexts)        # nothing collapsed without depth


def test_drawing_leaves_no_garbage_for_the_cycle_collector(mlp_loss):
    # A closure that called itself to fill the nested boxes was a reference cycle at every
    # picture drawn, freed only when the collector next ran.
    model, x, loss = mlp_loss
    gc.collect()
    draw_graph(loss, params=model)
    assert gc.collect() == 0


@needs_dot
def test_depth_collapses_each_module_into_one_node(recorded_gpt, tmp_path):
    model, loss = recorded_gpt
    start = time.perf_counter()
    dot = draw_graph(loss, params=model, depth=2)
    render(dot, tmp_path / "gpt.svg")
    print(f"2-layer GPT, depth=2: drawn and rendered in {time.perf_counter() - start:.3f} s")
    contexts = recorded_graph(loss)[0].values()
    # The modules two levels down that made ops, a ModuleList's items counting as a level.
    top = {".".join(p.split(".")[:3 if p.startswith("decoder.layers.") else 2])
           for p in (n.module_path for n in contexts) if p and "." in p}
    expected = {"embed.tok", "embed.pos", "decoder.layers.0", "decoder.layers.1",
                "decoder.final_norm"}
    assert top == expected
    collapsed = nodes(dot, "module")
    assert len(collapsed) == len(expected)
    block = model.decoder.layers[0]
    label = next(line for line in dot.source.splitlines() if "<B>decoder.layers.0</B>" in line
                 and line.lstrip().startswith("module"))
    n_ops = sum(1 for n in contexts if (n.module_path or "") == "decoder.layers.0"
                or (n.module_path or "").startswith("decoder.layers.0."))
    assert f"{block.num_parameters():,} params" in label and f"{n_ops} ops" in label
    assert type(block).__name__ in label
    # Its parameters went inside it; the tied embedding, used by two modules, stays drawn.
    assert "decoder.layers.0.attn.q.weight" not in dot.source
    assert "embed.tok.weight" in dot.source
    assert len(edges(dot)) == len(set(edges(dot)))       # arrows kept, one per pair
    assert all(a != b for a, b in edges(dot))            # none from a module to itself
    assert len(nodes(dot)) < 30 < len(nodes(draw_graph(loss, params=model)))
    svg = (tmp_path / "gpt.svg").read_text()      # its nodes, and the key to their colours
    assert svg.count("<g id=\"node") == len(nodes(dot)) + svg.count("<title>key</title>") == \
        len(nodes(dot)) + 1


def test_depth_zero_is_the_whole_model_and_the_cap_counts_modules(recorded_gpt):
    model, loss = recorded_gpt
    dot = draw_graph(loss, params=model, depth=0)
    assert len(nodes(dot, "module")) == 1 and "GPT" in dot.source
    capped = draw_graph(loss, params=model, depth=2, max_nodes=5)
    assert len(nodes(capped)) == 5
    whole = draw_graph(loss, params=model, depth=2)
    left = {kind: len(nodes(whole, kind)) - len(nodes(capped, kind))
            for kind in ("op", "leaf", "module")}
    assert left == {"op": 1, "leaf": 1, "module": 4}
    assert "1 op, 1 leaf and 4 collapsed modules left out (max_nodes=5)" in capped.source
    with pytest.raises(ValueError, match="depth"):
        draw_graph(loss, depth=-1)


@pytest.mark.parametrize("fold", [dict(depth=1), dict(fold_repeats=True)])
def test_folding_a_forward_not_recorded_by_module_says_to_record_it(mlp_loss, fold):
    # Without viz.record no op knows its module: the picture would come out whole, unfolded,
    # with nothing to say why.
    model, x, loss = mlp_loss
    for draw in (draw_graph, viz.draw_backward, viz.graph_page):
        with pytest.raises(ValueError, match=r"inside `with viz\.record\(model\):`"):
            draw(loss, params=model, **fold)


def test_without_the_model_the_boxes_nest_as_the_models_modules_do(recorded_gpt):
    # Only the recorded paths to go by: `decoder.layers.0` is a box inside `decoder`, and no
    # box `decoder.layers` (a list runs nothing), as when the model is given.
    model, loss = recorded_gpt
    nesting = {(title, parent) for title, parent, _ in boxes(draw_graph(loss))}
    assert ("decoder.layers.0.attn", "decoder.layers.0") in nesting
    assert nesting == {(title, parent) for title, parent, _ in
                       boxes(draw_graph(loss, modules=model))}


def test_a_folded_module_that_made_the_result_has_the_thick_border():
    ta.manual_seed(0)
    model = Stack([nn.Linear(3, 3)])
    with viz.record(model):
        out = model(ta.Tensor(np.ones((2, 3))))
    thick = [line for line in draw_graph(out, params=model, depth=0).source.splitlines()
             if "penwidth=2.5" in line]
    assert len(thick) == 1 and thick[0].lstrip().startswith("module")


class SqrtAtZero(nn.Module):
    """sqrt at 0: a finite value, but an infinite derivative times the zero in front of it,
    NaN gradients below it."""

    def __init__(self):
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return (self.lin(x) * 0.0).sqrt() + x


class NaNInside(nn.Module):
    def __init__(self):
        self.inner = SqrtAtZero()
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(self.inner(x)).sum()


def module_label(dot, title):
    (line,) = [line for line in node_lines(dot)
               if line.lstrip().startswith("module") and f"<B>{title}</B>" in line]
    return line


def test_a_folded_module_counts_the_nan_and_infinities_hidden_in_it():
    # Unfolded, the nodes of `inner` say "grad: norm nan"; folded, it said nothing of them.
    from viz import draw_backward
    ta.manual_seed(0)
    model = NaNInside()
    with viz.record(model):
        loss = model(ta.Tensor(np.array([[1.0, -2.0, 3.0]])))
    with np.errstate(divide="ignore", invalid="ignore"):
        viz.retain_grads(loss)
        loss.backward(retain_graph=True)
        shown = dict(params=model, depth=1, show_data=True, show_grad=True)
        forward, backward = draw_graph(loss, **shown), draw_backward(loss, **shown)
        flow = draw_graph(loss, params=model, depth=1, color_by_grad=True)
    red = viz.graph.NAN_COLOUR
    alarm = '<FONT POINT-SIZE="10" COLOR="{}"><B>{}</B></FONT>'.format
    # the weight's, the bias's and the linear's gradients (NaN), the mul's (infinite): as the
    # page's folded box counts them
    inner = module_label(forward, "inner")
    assert alarm(viz.graph.ALARM_INK, "4 gradients with NaN or inf") in inner
    assert "values with NaN" not in inner and f'color="{red}"' in inner
    # the backward ops' outputs, the gradients they compute (all of them NaN or inf): counted
    # as gradients, not again as values
    inner = module_label(backward, "inner")
    assert alarm(viz.graph.ALARM_INK, "6 gradients with NaN or inf") in inner
    assert "values with" not in inner
    # on the gradient's own fill, in the node's ink; that fill is NaN's red, whatever the
    # infinite gradient beside the NaN ones, and the legend has NaN's cell
    assert "<B>4 gradients with NaN or inf</B>" in module_label(flow, "inner")
    assert f'fillcolor="{red}"' in module_label(flow, "inner") and ">NaN<" in flow.source
    for dot in (forward, backward, flow):
        assert "NaN or inf" not in module_label(dot, "out") and red not in module_label(dot, "out")
    # not asked to show values or gradients, a folded module says nothing of them
    assert "NaN or inf" not in draw_graph(loss, params=model, depth=1).source


def test_a_folded_module_counts_one_infinite_value_in_the_singular():
    # Its input is finite (in float32) and its one op's sum overflows: "1 value", not "1 values".
    model = Sum()
    with viz.record(model), np.errstate(over="ignore"):
        doubled = model(ta.Tensor(np.array([3e38, 3e38]), requires_grad=True)) * 2.0
    label = module_label(draw_graph(doubled, params=model, depth=0, show_data=True), "(root)")
    assert '<FONT POINT-SIZE="10">1 value with ±inf (masks use -inf)</FONT>' in label
    # without show_data its values are out of the picture, their infinity too
    assert "inf" not in module_label(draw_graph(doubled, params=model, depth=0), "(root)")


def test_a_gpts_folded_blocks_say_their_masks_infinities_plainly():
    # Attention's backward recomputes its weights from the scores, -inf where the causal mask
    # blocks a key (the constant -inf and the `where` that puts it in): each folded block was a
    # red alarm, "2 values with NaN or inf", on a healthy model.
    from viz import draw_backward
    from viz.examples import gpt
    with viz.record():
        step = gpt()
    backward = draw_backward(step.loss, params=step.params, depth=2, show_data=True,
                             show_grad=True)
    block = module_label(backward, "decoder.layers.0")
    assert '<FONT POINT-SIZE="10">2 values with ±inf (masks use -inf)</FONT>' in block
    assert "NaN" not in block and viz.graph.NAN_COLOUR not in block
    assert viz.graph.ALARM_INK not in backward.source


class NaNWeight(nn.Module):
    """A linear whose weight holds a NaN: every value after it is NaN."""

    def __init__(self):
        self.inner = nn.Linear(3, 3)
        self.inner.weight.data[0, 0] = np.nan
        self.out = nn.Linear(3, 1)

    def forward(self, x):
        return self.out(self.inner(x)).sum()


def test_a_folded_module_still_raises_the_alarm_for_a_nan_value():
    from viz import draw_backward
    ta.manual_seed(0)
    model = NaNWeight()
    x = ta.Tensor(np.array([[1.0, -2.0, 3.0]]), requires_grad=True)
    with viz.record(model):
        loss = model(x)
    alarm = '<FONT POINT-SIZE="10" COLOR="{}"><B>{}</B></FONT>'.format(viz.graph.ALARM_INK,
                                                                       "{}")
    red = f'color="{viz.graph.NAN_COLOUR}"'
    shown = dict(params=model, inputs={"x": x}, depth=1, show_data=True)
    # its weight and the linear op's output
    inner = module_label(draw_graph(loss, **shown), "inner")
    assert alarm.format("2 values with NaN") in inner and red in inner
    assert "±inf" not in inner
    # the dL/dx that its backward computes with the NaN weight: a gradient, judged as one
    inner = module_label(draw_backward(loss, **shown), "inner")
    assert alarm.format("1 gradient with NaN or inf") in inner and red in inner


class InfiniteSlope(nn.Module):
    """sqrt of a parameter at 0: a finite value, an infinite gradient and no NaN."""

    def __init__(self):
        self.scale = nn.Parameter(np.array([0.0, 1.0]))

    def forward(self):
        return (self.scale * 1.0).sqrt()


class InfiniteInside(nn.Module):
    def __init__(self):
        self.inner = InfiniteSlope()

    def forward(self):
        return self.inner().sum()


def test_a_folded_module_still_raises_the_alarm_for_an_infinite_gradient():
    # A masked key's gradient is 0, never infinite: an infinity in a gradient is a fault,
    # whichever way the picture shows it; in the backward graph, where the gradients are
    # the values, judged as a gradient (it was "2 values with NaN or inf").
    from viz import draw_backward
    model = InfiniteInside()
    with viz.record(model):
        loss = model()
    alarm = '<FONT POINT-SIZE="10" COLOR="{}"><B>{}</B></FONT>'.format
    red = f'color="{viz.graph.NAN_COLOUR}"'
    with np.errstate(divide="ignore"):
        viz.retain_grads(loss)
        loss.backward(retain_graph=True)
        forward = module_label(draw_graph(loss, params=model, depth=1, show_grad=True), "inner")
        backward = module_label(draw_backward(loss, params=model, depth=1, show_data=True),
                                "inner")
    # the scale's gradient and the mul's output's: infinite at 0
    assert alarm(viz.graph.ALARM_INK, "2 gradients with NaN or inf") in forward
    # the sqrt's backward and the mul's (dL/dscale, drawn as its own node), infinite at 0
    assert alarm(viz.graph.ALARM_INK, "2 gradients with NaN or inf") in backward
    for label in (forward, backward):
        assert red in label and "value" not in label


def test_rankdir_lays_out_both_pictures_left_to_right():
    from viz import draw_backward
    w = ta.Tensor(np.ones(2), requires_grad=True)
    loss = (w * 2.0).sum()
    for draw in (draw_graph, draw_backward):
        assert "rankdir=LR" in draw(loss, params={"w": w}, rankdir="LR").source
        assert "rankdir=TB" in draw(loss, params={"w": w}).source


def forward_ops_under(loss, prefix):
    return sum(1 for n in recorded_graph(loss)[0].values()
               if (n.module_path or "").startswith(prefix))


@pytest.mark.parametrize("depth", [None, 2, 3])
def test_fold_repeats_draws_a_stack_of_blocks_as_one_node(recorded_gpt, depth):
    model, loss = recorded_gpt
    dot = draw_graph(loss, params=model, fold_repeats=True, depth=depth)
    (label,) = [line for line in dot.source.splitlines() if line.lstrip().startswith("module")
                and "<B>decoder.layers: DecoderLayer x 2</B>" in line]
    layers = model.decoder.layers
    assert f"{sum(b.num_parameters() for b in layers):,} params" in label
    assert f"{forward_ops_under(loss, 'decoder.layers.')} ops" in label
    assert "decoder.layers.0" not in dot.source and "decoder.layers.1" not in dot.source
    # outside the blocks, the modules are collapsed as depth alone collapses them
    alone = module_titles(draw_graph(loss, params=model, depth=depth))
    assert module_titles(dot) == sorted(["decoder.layers: DecoderLayer x 2"] + [
        title for title in alone if not title.startswith("decoder.layers.")])


def module_titles(dot):
    return sorted(re.findall(r"^\s*module\d+ \[label=<<B>(.*?)</B>", dot.source, re.M))


def test_fold_repeats_needs_two_blocks_of_one_class():
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=1, n_head=2, d_model=8)
    with viz.record(model):
        loss = model(np.zeros((1, 4), dtype=np.int64)).sum()
    assert draw_graph(loss, params=model, fold_repeats=True).source == \
        draw_graph(loss, params=model).source


class Stack(nn.Module):
    def __init__(self, layers):
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def test_fold_repeats_folds_a_list_of_one_class_only():
    # One class all the way down: blocks of one class holding other modules (a block whose
    # feed-forward was replaced by one of the user's own) are not repeats.
    ta.manual_seed(0)
    x = ta.Tensor(np.ones((2, 3)))
    for layers, title, folds in (
            ([nn.Linear(3, 3), nn.Linear(3, 3)], "layers: Linear x 2", True),
            ([nn.Linear(3, 3), nn.LayerNorm(3)], "layers: Linear x 2", False),
            ([nn.Sequential(nn.Linear(3, 3), nn.GELU()), nn.Sequential(nn.Linear(3, 3),
                                                                       nn.ReLU())],
             "layers: Sequential x 2", False)):
        model = Stack(layers)
        with viz.record(model):
            loss = model(x).sum()
        folded = draw_graph(loss, params=model, fold_repeats=True)
        assert (f"<B>{title}</B>" in folded.source) == folds
        assert (folded.source == draw_graph(loss, params=model).source) != folds


def test_a_named_input_stays_drawn_when_the_module_using_it_is_folded():
    ta.manual_seed(0)
    model = Stack([nn.Linear(3, 3)])
    x = ta.Tensor(np.ones((2, 3)))
    with viz.record(model):
        loss = model(x).sum()
    dot = draw_graph(loss, params=model, inputs={"x": x}, depth=0)
    assert "<B>x</B>" in dot.source and len(nodes(dot, "module")) == 1
    assert "<B>layers.0.weight</B>" not in dot.source       # its parameters went inside it


class Tied(nn.Module):
    """Two layers that share one weight matrix, as a GPT's embedding and head do."""

    def __init__(self):
        self.first = nn.Linear(3, 3, bias=False)
        self.second = nn.Linear(3, 3, bias=False)
        self.second.weight = self.first.weight

    def forward(self, x):
        return self.second(self.first(x))


def test_a_weight_two_folded_modules_share_stays_drawn_with_an_arrow_into_each():
    # Folded into one of them, the picture would say that module alone uses it.
    ta.manual_seed(0)
    model = Tied()
    with viz.record(model):
        loss = model(ta.Tensor(np.ones((2, 3)))).sum()
    dot = draw_graph(loss, params=model, depth=1)
    ids = {title: node for node, title in titles(dot).items()}
    assert "first.weight" in ids and {"first", "second"} <= set(ids)
    assert (ids["first.weight"], ids["first"]) in edges(dot)
    assert (ids["first.weight"], ids["second"]) in edges(dot)


def test_a_named_scalar_shows_its_shape_and_an_unnamed_one_its_value():
    w = ta.Tensor(np.array(3.0), requires_grad=True)
    dot = draw_graph(w * 2.5, params={"w": w})
    assert '<B>w</B><BR/><FONT POINT-SIZE="10">()</FONT>' in dot.source
    assert '<B>tensor</B><BR/><FONT POINT-SIZE="10">= 2.5</FONT>' in dot.source
    # attention's scale 1/sqrt(8): four figures, as the summaries give, not a rounded 0.35
    scaled = draw_graph(w * (1 / np.sqrt(8)), params={"w": w})
    assert '<FONT POINT-SIZE="10">= 0.3536</FONT>' in scaled.source


def test_a_gradient_summary_and_the_colour_by_gradient_say_its_norm_once():
    # With both, every node read "grad: norm 0.2321, min ..., max ..." then "grad norm 2.32e-01".
    from viz import draw_backward
    ta.manual_seed(0)
    model = MLP()
    loss = model(ta.Tensor(np.arange(6.0).reshape(2, 3))).sum()
    loss.backward(retain_graph=True)
    for picture in (draw_graph(loss, params=model, show_grad=True, color_by_grad=True),
                    draw_backward(loss, params=model, show_grad=True, color_by_grad=True)):
        assert "grad: norm" in picture.source
        assert "grad norm " not in picture.source.replace("largest grad norm ", "")
    assert "grad norm " in draw_graph(loss, params=model, color_by_grad=True).source


def test_the_text_on_a_gradients_colour_reads_on_it_in_the_nodes_and_the_legend():
    # White was written on the whole darker half of the scale: on its teal, 3.95 to 4.4:1,
    # under the 4.5:1 that reading needs. Norms across four decades, every one a node.
    from test_html_pages import contrast
    weights = [ta.Tensor(np.full(4, 10.0 ** (k / 4)), requires_grad=True) for k in range(-8, 9)]
    loss = sum((w * w).sum() for w in weights)
    loss.backward(retain_graph=True)
    source = draw_graph(loss, params={f"w{i}": w for i, w in enumerate(weights)},
                        color_by_grad=True).source
    pairs = re.findall(r'fillcolor="(#[0-9a-f]{6})" fontcolor=(black|white)', source)
    pairs += [(fill, ink) for fill, ink in
              re.findall(r'BGCOLOR="(#[0-9a-f]{6})"><FONT COLOR="(black|white)"', source)]
    assert len(pairs) > 20
    assert min(contrast(ink, fill) for fill, ink in pairs) >= 4.5


def test_the_class_indices_a_cross_entropy_reads_are_named_targets():
    # A loss passes them as a plain array, which read "tensor" like any unnamed constant.
    logits = ta.Tensor(np.zeros((4, 3)), requires_grad=True)
    dot = draw_graph(F.cross_entropy(logits * 2.0, np.array([0, 1, 2, 0])),
                     params={"logits": logits})
    assert '<B>targets</B><BR/><FONT POINT-SIZE="10">(4,)</FONT>' in dot.source
    assert "<B>tensor</B>" in dot.source                    # the 2.0: still a plain constant


def test_ropes_cos_and_sin_tables_are_drawn_by_name():
    # A Llama's or a Qwen3's attention turns q and k by constant tables; unnamed, they were
    # eight leaves a layer that read "tensor", with nothing to say what they were.
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=1, n_head=2, d_model=8, positions="rope",
                n_kv_head=1)
    idx = np.random.default_rng(0).integers(0, 7, (2, 5))
    dot = draw_graph(F.cross_entropy(model(idx[:, :-1]), idx[:, 1:]), params=model)
    leaves = [titles(dot)[leaf] for leaf in nodes(dot, "leaf")]
    assert "tensor" not in leaves
    assert leaves.count("rope cos") == leaves.count("rope sin") == 2     # q's and k's


KEY_ROW = re.compile(r'<TD BGCOLOR="(#\w+)" WIDTH="24"> </TD><TD BORDER="0" ALIGN="LEFT">'
                     r'<FONT POINT-SIZE="10">([^<]+)</FONT>')


@pytest.mark.parametrize("name, depth", [("mlp", None), ("gpt", None), ("gpt", 2),
                                         ("transformer", 1)])
@pytest.mark.parametrize("what", ["forward", "backward"])
def test_a_pictures_key_says_what_each_of_its_fills_is(name, depth, what):
    # The fills (blue for a parameter, violet for a value the forward saved, ...) were
    # explained nowhere: a picture on a slide could not be read without the code.
    from tinyautograd.nn import record_module_paths
    from viz.examples import example
    with record_module_paths():
        shown = example(name)
    draw = viz.draw_graph if what == "forward" else viz.draw_backward
    dot = draw(shown.loss, params=shown.params, inputs=shown.inputs, depth=depth)
    key = dict(KEY_ROW.findall(dot.source))
    fills = {re.search(r'fillcolor="(#\w+)"', line)[1] for line in node_lines(dot)}
    assert fills <= set(key)                      # every fill in the picture is in the key
    assert set(key) <= fills                      # and the key lists no fill it lacks
    assert ("dashed" in dot.source.split("<B>key</B>")[1]) == bool(boxes(dot))
    assert (viz.graph.MODULE_COLOUR in key) == (depth is not None)
    if what == "backward":
        assert "dL/dL = 1" in key[viz.graph.SEED_COLOUR]


@pytest.mark.parametrize("what", ["forward", "backward"])
def test_a_title_given_heads_the_picture_its_markup_shown_as_text(what):
    # The command titles its pictures through draw_graph and draw_backward, as code may.
    loss = (ta.Tensor([1.0, 2.0], requires_grad=True) ** 2).sum()
    draw = viz.draw_graph if what == "forward" else viz.draw_backward
    assert "labelloc" not in draw(loss).source                          # untitled: none
    titled = draw(loss, title='x <b> & "y"').source
    assert ('label=<<FONT POINT-SIZE="18"><B>x &lt;b&gt; &amp; &quot;y&quot;<BR ALIGN="LEFT"/>'
            '</B></FONT>> labeljust=l labelloc=t') in titled, titled


@pytest.mark.parametrize("what", ["forward", "backward"])
def test_a_long_title_is_wrapped_into_left_aligned_lines_its_words_all_kept(what):
    # `tinyformer graph --checkpoint` titles its picture with the prompt: one of a thousand
    # characters, on one line, made a small graph's picture 13,000 pixels wide.
    loss = (ta.Tensor([1.0, 2.0], requires_grad=True) ** 2).sum()
    draw = viz.draw_graph if what == "forward" else viz.draw_backward
    title = "run: the graph of the loss on '" + "eve has a red kite. " * 50 + "'\ttabbed"
    label = re.search(r'label=<<FONT POINT-SIZE="18"><B>(.*?)</B></FONT>>',
                      draw(loss, title=title).source)[1]
    lines = label.split('<BR ALIGN="LEFT"/>')
    assert lines[-1] == ""                              # every line ends left-aligned
    lines = [html.unescape(line) for line in lines[:-1]]
    assert len(lines) > 10
    assert max(len(line) for line in lines) <= 100      # as wide as a screen, at most
    assert " ".join(lines).split() == title.replace("\t", "\\\\t").split()


def test_gradient_flow_has_its_legend_and_the_page_no_key(tmp_path):
    # With --flow the fills are gradient norms, which the legend reads; the page's panel says
    # what a node is, and folding a box there moves nodes under where a key would stand.
    model = nn.Sequential(nn.Linear(3, 2))
    loss = model(ta.Tensor(np.ones((1, 3)))).sum()
    viz.retain_grads(loss)
    loss.backward(retain_graph=True)
    assert "<B>key</B>" not in draw_graph(loss, params=model, color_by_grad=True).source
    assert "<B>key</B>" in draw_graph(loss, params=model).source
    page = draw_graph(loss, params=model).save_html(tmp_path / "graph.html")
    assert "a parameter (learned)" not in open(page, encoding="utf-8").read()

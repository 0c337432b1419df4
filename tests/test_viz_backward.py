"""viz.draw_backward: the backward graph recorded by grad(create_graph=True), drawn with the
seed, the saved forward values and the dL/d outputs as their own nodes, and each backward op
boxed with the forward op it belongs to; and gradient flow (draw_graph(color_by_grad=True))."""

import os
import re
import shutil

import graphviz
import numpy as np
import pytest

import tinyautograd as ta
import tinyautograd.functional as F
import viz
from tinyautograd import nn
from dot_source import boxes, clusters, edges, feeds, nodes, ops_behind, titles, tooltips
from tinyformer.gpt import GPT
from viz import draw_backward, draw_graph, grad_colour, render, retain_grads
from viz.graph import NO_GRAD_COLOUR


def test_chain_rule_example_dl_dx_is_ones_times_w_and_dl_dw_is_ones_times_x():
    x = ta.Tensor(np.arange(3.0), requires_grad=True)
    w = ta.Tensor(np.full(3, 2.0), requires_grad=True)
    dot = draw_backward((x * w).sum(), params={"x": x, "w": w})
    title, into, boxes = titles(dot), feeds(dot), clusters(dot)
    by_title = {}
    for node_id, t in title.items():
        by_title.setdefault(t, []).append(node_id)
    # the seed, two saved values, sum's backward (reshape, broadcastto), mul's backward (two
    # muls), and the two gradients
    assert len(nodes(dot)) == 9 and len(edges(dot)) == 8
    (seed,) = by_title["dL/dL = 1"]
    (saved_x,), (saved_w,) = by_title["x"], by_title["w"]
    (dx,), (dw,) = by_title["dL/dx"], by_title["dL/dw"]
    assert "saved forward value" in dot.source and "upstream gradient" in dot.source
    # sum backward: the seed is spread into ones of x's shape
    (reshape,), (ones,) = by_title["reshape"], by_title["broadcastto"]
    assert sorted(boxes["sum backward"]) == sorted([reshape, ones])
    assert into[reshape] == [seed] and into[ones] == [reshape]
    # mul backward: dL/dx = ones * w and dL/dw = ones * x
    (mul_x,) = into[dx]
    (mul_w,) = into[dw]
    assert sorted(boxes["mul backward"]) == sorted([mul_x, mul_w])
    assert sorted(into[mul_x]) == sorted([ones, saved_w])
    assert sorted(into[mul_w]) == sorted([ones, saved_x])
    # each box names its forward op by number and the shape of that op's output
    for box, number, shape in (("sum", 2, "()"), ("mul", 1, "(3,)")):
        assert (f'<B>{box} backward</B><BR/><FONT POINT-SIZE="10">of forward op #{number}'
                f'</FONT><BR/><FONT POINT-SIZE="10">output {shape}</FONT>') in dot.source
    # the gradients were returned, not accumulated: .grad is untouched
    assert x.grad is None and w.grad is None


def test_forward_ops_are_numbered_in_the_order_they_ran():
    x = ta.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    w = ta.Tensor(np.array([3.0, 4.0]), requires_grad=True)
    dot = draw_backward((x * w).exp().sum(), params={"w": w}, inputs={"x": x})
    for number, op in enumerate(("mul", "exp", "sum"), start=1):
        assert f'<B>{op} backward</B><BR/><FONT POINT-SIZE="10">of forward op #{number}' \
            in dot.source
    assert "<B>exp #2 output</B>" in dot.source        # the saved value exp's backward reads


def test_the_forward_graph_shows_the_numbers_the_backward_graph_cites():
    # The backward graph says "of forward op #2" and "exp #2 output"; the forward graph must
    # show which op that is, by the same numbers.
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x.exp()
    loss = ((h * 2.0) * 3.0 + h).sum()
    cited = backward_box_numbers(draw_backward(loss, inputs={"x": x}))
    forward = draw_graph(loss, inputs={"x": x}).source
    shown = {}
    for op, number in re.findall(r"<B>(\w+)</B> #(\d+)", forward):
        shown.setdefault(op, []).append(int(number))
    assert {op: sorted(numbers) for op, numbers in shown.items()} == \
        {"exp": [1], "mul": [2, 3], "add": [4], "sum": [5]}
    assert all(set(numbers) <= set(shown[op]) for op, numbers in cited.items())



def test_the_results_own_op_numbers_its_left_operand_first():
    # Both operands of the result's add are ops: the mul, written (and run) first, is #1.
    a, b, c = (ta.Tensor(np.array([1.0, 2.0]), requires_grad=True) for _ in range(3))
    forward = draw_graph(a * b + c.exp(), params={"a": a, "b": b, "c": c}).source
    assert dict(re.findall(r"<B>(\w+)</B> #(\d+)", forward)) == \
        {"mul": "1", "exp": "2", "add": "3"}


def backward_box_numbers(dot):
    """forward op name -> the numbers of the "<op> backward" boxes drawn for it, sorted."""
    found = {}
    for op, number in re.findall(r'<B>(\w+) backward</B><BR/><FONT POINT-SIZE="10">'
                                 r'of forward op #(\d+)', dot.source):
        found.setdefault(op, []).append(int(number))
    return {op: sorted(numbers) for op, numbers in found.items()}


def test_forward_ops_are_numbered_in_the_order_they_ran_when_a_tensor_is_reused():
    # h is read by the first mul and, as a residual, by the add: by distance from the loss
    # exp would come after the mul that reads its output
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x.exp()
    k = h * 2.0
    m = k * 3.0
    dot = draw_backward((m + h).sum(), inputs={"x": x})
    assert backward_box_numbers(dot) == {"exp": [1], "mul": [2, 3], "sum": [5]}
    assert "<B>exp #1 output</B>" in dot.source
    # the first op numbered reads no other: a GPT's embedding lookups, not its last blocks
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=4, n_layer=2, n_head=2, d_model=8)
    logits = model(np.array([[1, 2, 3]]))
    numbers = backward_box_numbers(draw_backward((logits * logits).mean(), params=model))
    assert numbers["getitem"][:2] == [1, 2]


def test_a_view_of_a_saved_input_is_named_after_it_not_called_a_constant():
    # dL/dw = x.T @ dL/dy: x needs no gradient, so its transpose is a leaf of the backward graph
    x = ta.Tensor(np.arange(6.0).reshape(2, 3))
    w = ta.Tensor(np.ones((3, 4)), requires_grad=True)
    dot = draw_backward((x @ w).sum(), params={"w": w}, inputs={"x": x})
    title, into = titles(dot), feeds(dot)
    (dw,) = [node for node, t in title.items() if t == "dL/dw"]
    (matmul,) = into[dw]
    assert sorted(title[leaf] for leaf in into[matmul] if leaf.startswith("leaf")) == ["x"]
    assert "saved forward value, viewed as (3, 2)" in dot.source
    assert "constant" not in title.values()


def test_a_gradient_of_a_dotted_name_is_written_with_brackets_a_plain_one_without():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    w = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_backward((x * w).sum(), params={"0.weight": w}, inputs={"x": x})
    assert sorted(titles(dot)[n] for n in nodes(dot, "grad")) == ["dL/d(0.weight)", "dL/dx"]


def test_a_saved_scalar_shows_its_value_unless_named_as_in_the_forward_picture():
    w = ta.Tensor(np.array(3.0), requires_grad=True)
    x = ta.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (x * 2.5 * w).sum()                # mul's backward reads the 2.5 and w
    for dot in (draw_backward(loss, params={"w": w}, inputs={"x": x}),
                draw_graph(loss, params={"w": w}, inputs={"x": x})):
        assert re.search(r'<B>w</B><BR/>(<FONT POINT-SIZE="10">saved forward value</FONT>'
                         r'<BR/>)?<FONT POINT-SIZE="10">\(\)</FONT>', dot.source)
        assert re.search(r'<B>tensor</B><BR/>(<FONT POINT-SIZE="10">saved forward value</FONT>'
                         r'<BR/>)?<FONT POINT-SIZE="10">= 2.5</FONT>', dot.source)


class MLP(nn.Module):
    def __init__(self):
        self.hidden = nn.Linear(3, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


def backward_graph(grads, forward_ids):
    """Counted independently: the ops reachable from the gradients, stopping at forward
    tensors and at leaves, and the distinct leaves where it stopped."""
    ops, leaves, stack = set(), set(), list(grads)
    while stack:
        t = stack.pop()
        if t.grad_fn is None or id(t) in forward_ids:
            leaves.add(id(t))
        elif id(t.grad_fn) not in ops:
            ops.add(id(t.grad_fn))
            stack.extend(t.grad_fn.inputs)
    return ops, leaves


def forward_ids(loss):
    ids, stack = set(), [loss]
    while stack:
        t = stack.pop()
        if id(t) not in ids:
            ids.add(id(t))
            stack.extend(t.grad_fn.inputs if t.grad_fn is not None else ())
    return ids


def test_mlp_backward_graph_matches_the_recorded_one_and_names_every_gradient():
    ta.manual_seed(0)
    model = MLP()
    x = ta.Tensor(np.arange(6.0).reshape(2, 3))
    x.requires_grad = True
    loss = (model(x) ** 2).mean()
    dot = draw_backward(loss, params=model, inputs={"x": x})
    assert "<B>dL/dx</B>" in dot.source                   # a plain name, and dotted ones
    for name, _ in model.named_parameters():
        assert f"<B>dL/d({name})</B>" in dot.source
    assert len(nodes(dot, "grad")) == 5
    # Draw's grads and a second grad call record the same graph, so the counts agree.
    seed = ta.Tensor(1.0, requires_grad=True)
    wanted = [p for _, p in model.named_parameters()] + [x]
    grads = ta.grad(loss, wanted, grad_outputs=seed, create_graph=True)
    ops, leaves = backward_graph(grads, forward_ids(loss))
    assert len(nodes(dot, "op")) == len(ops) > 10
    assert len(nodes(dot, "leaf")) == len(leaves)
    boxes = clusters(dot)
    for forward_op in ("linear", "tanh", "pow", "sum", "div"):      # nn.Linear: one op
        assert f"{forward_op} backward" in boxes
    assert "tanh #" in dot.source          # tanh's output is saved for its backward


def test_paths_that_meet_are_summed_by_an_add_outside_the_boxes():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_backward((x * x).sum(), params={"x": x})
    title, into, boxes = titles(dot), feeds(dot), clusters(dot)
    (dx,) = [n for n, t in title.items() if t == "dL/dx"]
    (total,) = into[dx]
    assert title[total] == "add" and "sums the gradients of several paths" in dot.source
    assert all(total not in members for members in boxes.values())
    assert sorted(into[total]) == sorted(boxes["mul backward"])


class Residual(nn.Module):
    """h = x + f(x), read twice: h's gradient is summed, and passed on unchanged to f(x)."""

    def __init__(self):
        super().__init__()
        self.f = nn.Linear(3, 3)

    def forward(self, x):
        h = x + self.f(x)
        return h * h


def lines_of(dot, node_id):
    """The detail lines under a node's title."""
    label = re.search(rf"^\s*{node_id} \[label=<(.*?)>\s", dot.source, re.MULTILINE)[1]
    return re.findall(r'<FONT POINT-SIZE="10">(.*?)</FONT>', label)


def test_the_sum_that_undoes_broadcasting_says_which_input_was_broadcast():
    a = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    b = ta.Tensor(np.ones(3), requires_grad=True)          # repeated along a's rows
    c = ta.Tensor(np.ones((2, 1)), requires_grad=True)     # repeated along a's columns
    dot = draw_backward((a * b + c).sum(), inputs={"a": a, "b": b, "c": c})
    title, into = titles(dot), feeds(dot)
    by_title = {t: n for n, t in title.items()}
    # dL/db: the (2, 3) product summed over the rows, (1, 3), then reshaped to (3,)
    (reshape,) = into[by_title["dL/db"]]
    (sum_b,) = into[reshape]
    assert title[sum_b] == "sum"
    assert lines_of(dot, sum_b) == ["(1, 3)", "undoes broadcasting b (3,) to (2, 3)"]
    (sum_c,) = into[by_title["dL/dc"]]
    assert lines_of(dot, sum_c) == ["(2, 1)", "undoes broadcasting c (2, 1) to (2, 3)"]
    assert dot.source.count("undoes broadcasting") == 2          # not a's: never broadcast


class TwiceTheProduct(ta.Function):
    """y = 2 a b, b (2, 1) repeated along a's columns; its backward sums b's gradient itself
    and then doubles it: the sum is a step of the formula, not the box's last."""

    @staticmethod
    def forward(ctx, a, b):
        return 2 * a * b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.operands
        return grad * b * 2, (grad * a).sum(axis=1, keepdims=True) * 2


def test_a_sum_that_a_formula_goes_on_from_is_not_said_to_undo_broadcasting():
    a = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    b = ta.Tensor(np.ones((2, 1)), requires_grad=True)
    dot = draw_backward(TwiceTheProduct.apply(a, b).sum(), inputs={"a": a, "b": b})
    assert "sum" in titles(dot).values() and "undoes broadcasting" not in dot.source


def test_inputs_of_one_shape_are_told_apart_by_whose_gradient_the_sum_is():
    norm = nn.LayerNorm(4)
    x = ta.Tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
    dot = draw_backward((norm(x) * x).sum(), params=norm, inputs={"x": x})
    # weight and bias are both (4,): the engine sums bias's gradient over the rows
    assert "undoes broadcasting bias (4,) to (2, 4)" in dot.source


def one_linear_recorded():
    """A model of one Linear(3, 3), its input x (2, 3) and its output y, recorded by module."""
    ta.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3))
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    with viz.record(model):
        y = model(x)
    return model, x, y


def test_a_sum_in_the_box_of_the_parameters_module_names_it_as_its_node_there():
    # Inside module 0's box, its parameter 0.bias is drawn as `bias`: the sum that undoes the
    # bias's broadcast in the linear's backward there names it so. The mul outside every
    # module's box has no box to say whose bias it is: its sum names the whole of it.
    model, x, y = one_linear_recorded()
    dot = draw_backward((y * model[0].bias).sum(), params=model, inputs={"x": x})
    box_of = {node: (title, parent) for title, parent, members in boxes(dot) for node in members}
    said = sorted((box_of[node], line) for node in nodes(dot, "op")
                  for line in lines_of(dot, node) if "undoes broadcasting" in line)
    assert said == [(("linear backward", "0"), "undoes broadcasting bias (3,) to (2, 3)"),
                    (("mul backward", None), "undoes broadcasting 0.bias (3,) to (2, 3)")]


def test_a_gradient_sum_sits_in_the_box_of_the_module_that_made_the_tensor_it_sums_for():
    ta.manual_seed(0)
    model = nn.Sequential(Residual())
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    with viz.record(model):
        y = model(x)
    dot = draw_backward(y.sum(), params=model, inputs={"x": x})
    title, into, box = titles(dot), feeds(dot), clusters(dot)
    # h's sum adds the two shares of mul's backward; h was made by the block, not by f, though
    # the sum reaches f(x) too (an add's backward hands it on unchanged)
    (h_sum,) = [n for n, t in title.items()
                if t == "add" and sorted(into[n]) == sorted(box["mul backward"])]
    assert h_sum in box["0"]
    assert all(h_sum not in members for name, members in box.items() if name != "0")


def test_parameters_default_to_every_leaf_that_requires_a_gradient():
    a = ta.Tensor(np.ones(2), requires_grad=True)
    a.name = "a"
    b = ta.Tensor(np.ones(2), requires_grad=True)
    c = ta.Tensor(np.ones(2))                       # a constant: no gradient drawn
    dot = draw_backward((a + b * c).sum())
    assert "dL/da" in dot.source and "dL/dtensor" in dot.source
    assert len(nodes(dot, "grad")) == 2
    with pytest.raises(ValueError, match="one number"):
        draw_backward(a * 2)
    with pytest.raises(ValueError, match="requires a gradient"):
        draw_backward((a * 2).sum(), params={"c": c})


def test_hostile_names_are_escaped_in_backward_labels(tmp_path):
    hostile = 'w<script>&"\\N\nline2 ]; x -> y {'
    w = ta.Tensor(np.ones(2), requires_grad=True)
    dot = draw_backward((w * w).sum(), params={hostile: w})    # w is saved: its name shows
    source = dot.source
    escaped = "w&lt;script&gt;&amp;&quot;\\\\N<BR/>line2 ]; x -&gt; y {"
    assert f"<B>dL/d({escaped})</B>" in source and f"<B>{escaped}</B>" in source
    assert "<script>" not in source
    if shutil.which("dot"):
        svg = render(dot, tmp_path / "hostile.svg").read_text()
        assert "w&lt;script&gt;" in svg and "<script>" not in svg


def test_node_cap_keeps_the_gradients_and_says_what_is_missing():
    x = ta.Tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(20):
        y = (y * 1.5).tanh()
    dot = draw_backward(y.sum(), params={"x": x}, max_nodes=12)
    assert len(nodes(dot)) == 12 and "omitted" in nodes(dot) and "dL/dx" in dot.source


def test_a_cap_that_leaves_no_room_for_an_op_is_refused(gpt2):
    model, loss = gpt2
    n = len(list(model.parameters()))
    with pytest.raises(ValueError, match=rf"max_nodes={n + 1} leaves no room for any op beside "
                                         rf"the {n} dL/d boxes.*raise max_nodes \({n + 2} "):
        draw_backward(loss, params=model, max_nodes=n + 1)
    dot = draw_backward(loss, params=model, max_nodes=n + 2)
    assert len(nodes(dot, "op")) == 1 and "omitted" in nodes(dot)
    # the page draws the backward view all the same: its forward view is worth having
    assert "backward" in viz.graph_page(loss, params=model, max_nodes=n + 1).html


@pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                    reason="graphviz's dot is not installed (CI installs it)")
def test_render_the_backward_graph_as_svg(tmp_path):
    ta.manual_seed(0)
    model = MLP()
    loss = model(ta.Tensor(np.ones((2, 3)))).sum()
    svg = render(draw_backward(loss, params=model, show_data=True), tmp_path / "bw.svg")
    text = svg.read_text()
    assert text.lstrip().startswith(("<?xml", "<svg"))
    assert "dL/d(hidden.weight)" in text and "tanh backward" in text and "data: norm" in text


# -------------------------------------------------------------------------- gradient flow


class Deep(nn.Module):
    """`depth` tanh layers, optionally each with a residual connection x + tanh(layer(x))."""

    def __init__(self, depth, width, residual):
        self.layers = nn.ModuleList([nn.Linear(width, width) for _ in range(depth)])
        self.residual = residual

    def forward(self, x):
        for layer in self.layers:
            y = layer(x).tanh()
            x = x + y if self.residual else y
        return x


def brightness(colour):
    r, g, b = bytes.fromhex(colour[1:])
    return 0.299 * r + 0.587 * g + 0.114 * b


def fills(dot):
    """node title -> fill colour."""
    return {m[1]: re.search(r'fillcolor="(#\w+)"', m[0])[1]
            for m in re.finditer(r"^\s*\w+ \[label=<<B>(.*?)</B>.*$", dot.source, re.MULTILINE)}


def test_the_colour_scale_is_logarithmic_and_brightens_with_the_norm():
    scale = [grad_colour(10.0 ** e) for e in range(-9, 2)]
    assert scale[0] == scale[1] == "#440154" and scale[-1] == scale[-2] == "#fde725"  # clipped
    assert grad_colour(0.0) == "#440154" and grad_colour(1e-4) == "#21918c"           # middle
    assert all(brightness(a) < brightness(b) for a, b in zip(scale[1:-2], scale[2:-1]))
    with pytest.raises(ValueError, match="grad_range"):
        grad_colour(1.0, grad_range=(1.0, 1e-3))



def test_nearby_norms_get_nearby_colours():
    # The ramp is interpolated within the segment a norm falls in: no jump between segments.
    colours = [grad_colour(norm) for norm in 10.0 ** np.linspace(-8, 0, 401)]
    channels = np.array([list(bytes.fromhex(colour[1:])) for colour in colours], dtype=int)
    assert np.abs(np.diff(channels, axis=0)).max() <= 4


def test_flow_colours_each_op_by_the_gradient_of_its_own_result():
    x = ta.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    w = ta.Tensor(np.array([3.0, 0.1, -2.0]), requires_grad=True)
    loss = (x * w).tanh().sum()
    retain_grads(loss)
    loss.backward(retain_graph=True)
    tanh = loss.grad_fn.inputs[0]
    mul = tanh.grad_fn.inputs[0]
    grad_range = (1e-3, 10.0)
    fill = fills(draw_graph(loss, params={"w": w}, inputs={"x": x}, color_by_grad=True,
                            grad_range=grad_range))
    for title, result in (("sum", loss), ("tanh", tanh), ("mul", mul)):
        assert fill[title] == grad_colour(np.linalg.norm(result.grad), grad_range), title
    # a leaf frozen since its gradient was taken has no gradient to show: white
    w.requires_grad = False
    assert fills(draw_graph(loss, params={"w": w}, color_by_grad=True))["w"] == NO_GRAD_COLOUR


def test_gradient_flow_writes_white_on_dark_fills_and_a_legend_of_at_most_a_dozen_cells():
    x = ta.Tensor(np.array([1e-20, 1.0]), requires_grad=True)
    w = ta.Tensor(np.array([1.0, 1e-20]), requires_grad=True)
    loss = (x * w).sum()
    loss.backward(retain_graph=True)                     # dL/dx = w, dL/dw = x: both norm 1
    dot = draw_graph(loss, params={"x": x, "w": w}, color_by_grad=True, grad_range=(1e-30, 1))
    bright = [line for line in dot.source.splitlines() if "<B>x</B>" in line]
    assert "fontcolor=black" in bright[0]
    dim = draw_graph(loss, params={"x": x, "w": w}, color_by_grad=True, grad_range=(1, 1e30))
    assert "fontcolor=white" in [line for line in dim.source.splitlines() if "<B>x</B>" in line][0]
    assert 1 < dot.source.count("<TD BGCOLOR") <= 12     # 31 powers of ten, every third shown
    backward = draw_backward(loss, params={"x": x, "w": w}, color_by_grad=True)
    saved = [line for line in backward.source.splitlines() if "saved forward value" in line]
    assert saved and all(f'fillcolor="{NO_GRAD_COLOUR}"' in line for line in saved)


@pytest.mark.parametrize("grad_range, cells", [((0.1, 1.0), 6), ((1e-3, 1.0), 10),
                                                ((1e-6, 1.0), 7)])
def test_the_gradient_flow_legend_has_enough_cells_to_read_the_colours_of_a_narrow_range(
        grad_range, cells):
    # Norms within one decade had a legend of two cells, dark violet and yellow: the nodes'
    # greens and blues were in no cell. Each cell is the colour of the norm it is labelled.
    x = ta.Tensor(np.array([0.3, 0.5]), requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    dot = draw_graph(loss, params={"x": x}, color_by_grad=True, grad_range=grad_range)
    legend = re.findall(r'<TD BGCOLOR="(#\w+)"><FONT COLOR="\w+" POINT-SIZE="10">([^<]+)<',
                        dot.source)
    assert len(legend) == cells
    for colour, label in legend:
        assert colour == grad_colour(float(label), grad_range), label
    assert legend[0][1] == f"1e{round(np.log10(grad_range[0]))}" and legend[-1][1] == "1e0"


def test_the_default_gradient_flow_scale_brackets_every_norm_by_powers_of_ten():
    # Norms 0.05 and 5: the scale runs from 1e-2 to 1e1, so the larger is no end colour. A top
    # rounded down to 1e0 painted it as the largest the legend shows, 1.
    x = ta.Tensor(np.array([0.03, 0.04]), requires_grad=True)
    w = ta.Tensor(np.array([3.0, 4.0]), requires_grad=True)
    loss = (x * w).sum()
    loss.backward(retain_graph=True)                     # dL/dx = w (norm 5), dL/dw = x (0.05)
    dot = draw_graph(loss, params={"x": x, "w": w}, color_by_grad=True)
    legend = re.findall(r'<TD BGCOLOR="(#\w+)"><FONT COLOR="\w+" POINT-SIZE="10">([^<]+)<',
                        dot.source)
    assert (legend[0][1], legend[-1][1]) == ("1e-2", "1e1")
    fill = {line.split("<B>")[1].split("</B>")[0]: re.search(r'fillcolor="(#\w+)"', line)[1]
            for line in dot.source.splitlines() if "<B>x</B>" in line or "<B>w</B>" in line}
    assert fill == {"x": grad_colour(5.0, (1e-2, 10.0)), "w": grad_colour(0.05, (1e-2, 10.0))}


@pytest.mark.parametrize("residual", [False, True])
def test_gradient_flow_shows_vanishing_gradients_without_residuals(residual):
    ta.manual_seed(0)
    model = Deep(depth=12, width=16, residual=residual)
    x = ta.Tensor(np.random.default_rng(0).standard_normal((4, 16)))
    loss = (model(x) ** 2).mean()
    retain_grads(loss)
    loss.backward(retain_graph=True)
    grad_range = (1e-6, 1e2)
    dot = draw_graph(loss, params=model, color_by_grad=True, grad_range=grad_range)
    fill = fills(dot)
    norms = [np.linalg.norm(layer.weight.grad) for layer in model.layers]
    for i, norm in enumerate(norms):
        assert fill[f"layers.{i}.weight"] == grad_colour(norm, grad_range)
        assert f"grad norm {norm:.2e}" in dot.source
    first, last = (brightness(fill[f"layers.{i}.weight"]) for i in (0, 11))
    if residual:
        # the skip path carries the gradient down unchanged: every layer learns alike
        assert 0.3 < norms[0] / norms[-1] < 3 and abs(first - last) < 40
    else:
        # each tanh layer shrinks it: the first layer's is a hundredth of the last's, darker
        assert norms[0] < 1e-2 * norms[-1] and first < last - 40
        assert all(a < b for a, b in zip(norms, norms[1:]))
    # ops are coloured by their retained gradients, and the legend shows the scale
    assert fill["tanh"] != "#ffffff" and fill["tensor"] == "#ffffff"   # x has no gradient
    assert "gradient norm (log scale)" in dot.source
    for e in range(-6, 3):
        assert f'BGCOLOR="{grad_colour(10.0 ** e, grad_range)}"' in dot.source
    assert f">1e{-6}<" in dot.source and ">1e2<" in dot.source


def test_gradient_flow_draws_an_infinite_gradient_at_the_top_and_a_nan_one_in_red():
    # sqrt's derivative at 0 is infinite: the default scale took log10(inf) and raised
    # OverflowError. A NaN gradient (sqrt of -1) was filled as the smallest, "vanished".
    x = ta.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    v = ta.Tensor(np.array([-1.0, 4.0]), requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = (x.sqrt() + v.sqrt()).sum()
        loss.backward(retain_graph=True)
        flows = [draw(loss, params={"x": x, "v": v}, color_by_grad=True)
                 for draw in (draw_graph, draw_backward)]
    top, vanished = grad_colour(1.0, (0.1, 1.0)), grad_colour(0.0)
    assert grad_colour(float("nan")) not in (top, vanished)
    for dot, (inf_name, nan_name) in zip(flows, (("x", "v"), ("dL/dx", "dL/dv"))):
        fill = fills(dot)
        assert fill[inf_name] == "#fde725"                            # viridis' top
        assert fill[nan_name] == grad_colour(float("nan"))
        assert f'<TD BGCOLOR="{fill[nan_name]}"' in dot.source and ">NaN<" in dot.source


class Rescaled(nn.Module):
    """x * 1e6 * 1e-6: the gradient inside is a millionth of the one that goes in and out."""
    def forward(self, x):
        return x * 1e6 * 1e-6


class Wrapper(nn.Module):
    def __init__(self):
        self.inner = Rescaled()

    def forward(self, x):
        return self.inner(x) * 2.0


def test_flow_colours_a_folded_module_by_its_largest_gradient_and_scales_the_drawn_ones():
    model = Wrapper()
    x = ta.Tensor(np.ones(4), requires_grad=True)
    with viz.record(model):
        loss = model(x).sum()
    retain_grads(loss)
    loss.backward(retain_graph=True)      # norms 1 (the sum), 4 (into the * 2), 4e-6, 4
    for dot in (draw_graph(loss, params=model, inputs={"x": x}, color_by_grad=True, depth=1),
                draw_backward(loss, params=model, inputs={"x": x}, color_by_grad=True,
                              depth=1)):
        # the millionth folded inside `inner` is not drawn, so it is not on the scale
        assert ">1e-6<" not in dot.source and ">1e0<" in dot.source and ">1e1<" in dot.source
        (inner,) = [line for line in dot.source.splitlines() if "<B>inner</B>" in line]
        assert "largest grad norm 4.00e+00" in inner
        assert f'fillcolor="{grad_colour(4.0, (1.0, 10.0))}"' in inner
        assert "a folded module: the largest norm inside it" in dot.source
    unfolded = draw_graph(loss, params=model, inputs={"x": x}, color_by_grad=True)
    assert ">1e-6<" in unfolded.source and "folded module" not in unfolded.source


class Scored(nn.Module):
    """A model that returns its own loss: every op of the step, the last one too, is its."""
    def __init__(self):
        self.w = nn.Parameter(np.ones(3))

    def forward(self, x):
        return (x * self.w).sum()


def test_the_seed_stays_drawn_when_the_module_that_made_the_loss_is_folded():
    # Folded into the module, the picture would no longer say where the chain rule starts.
    model = Scored()
    with viz.record(model):
        loss = model(ta.Tensor(np.arange(3.0)))
    dot = draw_backward(loss, params=model, depth=0)
    (module,) = nodes(dot, "module")
    (seed,) = [node for node, title in titles(dot).items() if title == "dL/dL = 1"]
    assert edges(dot) == [(seed, module)]                # dL/dw is computed inside it


def test_gradients_all_of_norm_one_get_a_scale_a_decade_wide():
    x = ta.Tensor(np.array([1.0]), requires_grad=True)
    loss = x.sum()
    loss.backward(retain_graph=True)                     # dL/dx = [1]: the only norm, 1
    dot = draw_graph(loss, params={"x": x}, color_by_grad=True)
    assert ">1e0<" in dot.source and ">1e1<" in dot.source and ">1e2<" not in dot.source
    assert f'fillcolor="{grad_colour(1.0, (1.0, 10.0))}"' in dot.source


def test_gradient_flow_without_retain_grads_colours_the_parameters_only(tmp_path):
    ta.manual_seed(0)
    model = MLP()
    loss = model(ta.Tensor(np.ones((2, 3)))).sum()
    loss.backward(retain_graph=True)
    dot = draw_graph(loss, params=model, color_by_grad=True, grad_range=(1e-8, 1.0))
    fill = fills(dot)
    assert fill["hidden.weight"] == grad_colour(np.linalg.norm(model.hidden.weight.grad))
    assert fill["tanh"] == "#ffffff"
    if shutil.which("dot"):
        assert b"gradient norm" in render(dot, tmp_path / "flow.svg").read_bytes()


def test_by_default_the_colour_scale_brackets_the_graphs_own_norms():
    ta.manual_seed(0)
    model = MLP()
    loss = model(ta.Tensor(np.ones((2, 3)))).sum()
    loss.backward(retain_graph=True)
    norms = [np.linalg.norm(p.grad) for p in model.parameters()] + [1.0]   # 1.0: d loss / d loss
    low, high = np.floor(np.log10(min(norms))), np.ceil(np.log10(max(norms)))
    source = draw_graph(loss, params=model, color_by_grad=True).source
    assert f">1e{int(low)}<" in source and f">1e{int(high)}<" in source
    assert f">1e{int(low) - 1}<" not in source and f">1e{int(high) + 1}<" not in source


# ----------------------------------------------------------- a real model's backward graph


def recorded_gpt(n_layer):
    """A tiny GPT, its forward recorded by module, and its next-token loss."""
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=n_layer, n_head=2, d_model=8)
    idx = np.random.default_rng(0).integers(0, 7, (2, 6))
    with viz.record(model):
        loss = F.cross_entropy(model(idx[:, :-1]), idx[:, 1:])
    return model, loss


@pytest.fixture(scope="module")
def gpt2():
    return recorded_gpt(n_layer=2)


def backward_ops(model, loss):
    """The ops that grad(create_graph=True) records, counted through the public API."""
    seed = ta.Tensor(1.0, requires_grad=True)
    grads = ta.grad(loss, list(model.parameters()), grad_outputs=seed, create_graph=True)
    ops, stack, forward = {}, list(grads), forward_ids(loss)
    while stack:
        t = stack.pop()
        if t.grad_fn is not None and id(t) not in forward and id(t.grad_fn) not in ops:
            ops[id(t.grad_fn)] = t.grad_fn
            stack.extend(t.grad_fn.inputs)
    return list(ops.values())


def test_each_backward_box_sits_in_the_box_of_its_forward_ops_module(gpt2):
    model, loss = gpt2
    dot = draw_backward(loss, params=model)
    ops = backward_ops(model, loss)
    # one "<op> backward" box per forward op differentiated, inside its module's box
    expected = sorted({id(op.backward_of): (f"{op.backward_of.name} backward",
                                            op.backward_of.module_path or "")
                       for op in ops if op.backward_of is not None}.values())
    drawn = sorted((title, parent or "") for title, parent, _ in boxes(dot)
                   if title.endswith(" backward"))
    assert drawn == expected and len(drawn) > 30
    # the module boxes nest as the module tree does: decoder.layers.1.attn.q in
    # decoder.layers.1.attn (a ModuleList is no box of its own)
    parent = {title: up for title, up, _ in boxes(dot) if not title.endswith(" backward")}
    assert parent["decoder.layers.1.attn.q"] == "decoder.layers.1.attn"
    assert parent["decoder.layers.1.attn"] == "decoder.layers.1"
    assert parent["decoder.layers.1"] == "decoder" and parent["decoder"] is None
    assert len(nodes(dot, "op")) == len(ops)                     # nothing folded or left out
    # each parameter's gradient comes out in its module's box, its whole name its tooltip
    inside = {node for _, _, members in boxes(dot) for node in members}
    tips = tooltips(dot)
    for name, _ in model.named_parameters():
        (node,) = [node for node, tip in tips.items() if tip == f"dL/d({name})"]
        assert node.startswith("grad") and node in inside
        assert titles(dot)[node] == f"dL/d{name.rpartition('.')[2]}"
    # a parameter the backward reads sits in its module's box too, by the rest of its name
    (saved,) = [node for node, tip in tips.items() if tip == "decoder.layers.1.attn.q.weight"]
    assert saved.startswith("leaf") and saved in inside and titles(dot)[saved] == "weight"


def module_nodes(dot):
    """title -> label text of each folded module's node."""
    return {m[1]: m[0] for m in re.finditer(r"^\s*module\d+ \[label=<<B>(.*?)</B>.*$",
                                            dot.source, re.MULTILINE)}


def counted(label, what):
    return int(re.search(rf"(\d+) {what}", label)[1])


def test_depth_folds_the_backward_graph_into_modules_and_keeps_every_op_counted(gpt2):
    model, loss = gpt2
    n_ops = len(backward_ops(model, loss))
    dot = draw_backward(loss, params=model, depth=2)
    folded = module_nodes(dot)
    assert set(folded) == {"embed.tok", "embed.pos", "decoder.layers.0", "decoder.layers.1",
                           "decoder.final_norm"}
    # every backward op is drawn, or counted in the one module node it was folded into
    assert len(nodes(dot, "op")) + sum(counted(v, "ops?") for v in folded.values()) == n_ops
    assert len(nodes(dot)) < 40 < n_ops
    # a block's own parameters' gradients are computed inside it; the tied token embedding's
    # gradient is summed from two modules, outside both
    block = [name for name, _ in model.named_parameters()
             if name.startswith("decoder.layers.0.")]
    assert counted(folded["decoder.layers.0"], "gradients") == len(block) > 10
    assert (f"{model.decoder.layers[0].num_parameters():,} params"
            in folded["decoder.layers.0"])
    assert "dL/d(decoder.layers.0" not in dot.source
    assert "dL/d(embed.tok.weight)" in tooltips(dot).values()
    assert "DecoderLayer" in folded["decoder.layers.1"]
    with pytest.raises(ValueError, match="depth"):
        draw_backward(loss, params=model, depth=-1)


def test_an_add_summing_a_gradient_made_outside_every_module_is_not_folded():
    model, x, y = one_linear_recorded()
    loss = y.sum() + (x * 2).sum()          # x's gradient: one path in the model, one outside
    dot = draw_backward(loss, params=model, inputs={"x": x}, depth=0)
    assert len(module_nodes(dot)) == 1
    assert "sums the gradients of several paths" in dot.source


def test_fold_repeats_draws_the_blocks_as_one_node_on_the_backward_graph(gpt2):
    model, loss = gpt2
    n_ops = len(backward_ops(model, loss))
    dot = draw_backward(loss, params=model, fold_repeats=True)
    folded = module_nodes(dot)
    assert list(folded) == ["decoder.layers: DecoderLayer x 2"]
    label = folded["decoder.layers: DecoderLayer x 2"]
    assert f"{sum(b.num_parameters() for b in model.decoder.layers):,} params" in label
    in_blocks = [name for name, _ in model.named_parameters()
                 if name.startswith("decoder.layers.")]
    assert counted(label, "gradients") == len(in_blocks)
    assert len(nodes(dot, "op")) + counted(label, "ops") == n_ops
    assert "decoder.layers.0" not in [title for title, _, _ in boxes(dot)]
    assert "dL/d(decoder.final_norm.weight)" in tooltips(dot).values()  # outside the blocks


def test_flow_colours_each_backward_node_by_the_gradient_it_computes():
    x = ta.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    loss = (x.tanh() * 3.0).sum()
    grad_range = (1e-3, 1e2)
    dot = draw_backward(loss, params={"x": x}, color_by_grad=True, show_grad=True,
                        grad_range=grad_range)
    fill, title, into = fills(dot), titles(dot), feeds(dot)
    loss.backward(retain_graph=True)
    assert fill["dL/dx"] == grad_colour(np.linalg.norm(x.grad), grad_range)
    assert f"grad: norm {np.linalg.norm(x.grad):.4g}" in dot.source
    assert fill["dL/dL = 1"] == grad_colour(1.0, grad_range)
    # tanh's backward: dL/dx = upstream * (1 - y*y). The upstream product carries the
    # gradient; 1 - y*y is made from the saved y alone, no gradient: white.
    (tanh_box,) = [members for t, _, members in boxes(dot) if t == "tanh backward"]
    (from_y,) = [n for n in tanh_box if title[n] == "sub"]
    (last,) = into[[n for n, t in title.items() if t == "dL/dx"][0]]
    assert re.search(rf'^\s*{from_y} \[.*fillcolor="{NO_GRAD_COLOUR}"', dot.source, re.M)
    assert re.search(rf'^\s*{last} \[.*fillcolor="#', dot.source, re.M)
    assert f'{from_y} [label=<<B>sub</B><BR/><FONT POINT-SIZE="10">(3,)</FONT><BR/><FONT ' \
           f'POINT-SIZE="10">grad: none' in dot.source
    assert "gradient norm (log scale)" in dot.source
    for e in range(-3, 3):
        assert f'BGCOLOR="{grad_colour(10.0 ** e, grad_range)}"' in dot.source


def test_a_graph_recorded_by_a_backward_boxes_each_op_by_the_op_it_differentiates():
    # grad(create_graph=True) records the backward's ops, stamped `backward_of`: drawn as ops
    # of a forward graph, they were mixed in with the forward's own, nothing said which.
    x = ta.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (g,) = ta.grad((x.tanh() * 3.0).sum(), [x], create_graph=True)
    dot = draw_graph((g * g).sum(), inputs={"x": x})
    found = clusters(dot)
    recorded = [n for n in ops_behind((g * g).sum()) if n.backward_of is not None]
    assert list(found) == ["tanh backward"]        # (the * 3's backward reads no x: unrecorded)
    assert sum(map(len, found.values())) == len(recorded) > 2
    assert "a module, or an op&#x27;s backward" in dot.source         # the key says so



def test_each_backward_box_title_is_made_once_however_many_ops_it_holds(monkeypatch):
    # Every op of a backward's formula is drawn in its forward op's box; the box's title was
    # made again for each of them, a fifth of the time a long backward graph took to draw.
    made = []
    make = viz.graph._backward_box_label
    monkeypatch.setattr(viz.graph, "_backward_box_label",
                        lambda node, op_number: made.append(node) or make(node, op_number))
    x = ta.Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(3):
        y = (y * 1.5).tanh()
    dot = draw_backward(y.sum(), params={"x": x})
    in_boxes = [box for box in boxes(dot) if box[0].endswith(" backward")]
    assert len(in_boxes) == 7                           # 3 muls, 3 tanhs and the sum
    assert sum(len(members) for _, _, members in in_boxes) > len(in_boxes)
    assert len(made) == len({id(node) for node in made}) == len(in_boxes)
    # A graph recorded by a backward is boxed the same way, each box titled once too.
    made.clear()
    (g,) = ta.grad(y.sum(), [x], create_graph=True)
    dot = draw_graph((g * g).sum(), inputs={"x": x})
    assert len(made) == len({id(node) for node in made}) == len(boxes(dot)) > 1


class CountedKey:
    """A box's key that counts how often it is compared with another."""
    comparisons = 0

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n

    def __eq__(self, other):
        CountedKey.comparisons += 1
        return isinstance(other, CountedKey) and other.n == self.n


def test_boxes_side_by_side_are_found_by_their_key_not_by_a_walk_along_their_siblings():
    # A backward graph boxes every op's backward, and those of the ops outside any module sit
    # side by side: each box was looked for along the list of all before it, a quarter of
    # the time a 4000-op chain took to draw. The boxes keep the order they are first met in.
    n = 300
    placed = [(((CountedKey(i), f"box {i}"),), f"op{i}", f"<{i}>", {}) for i in range(n)]
    placed.append((((CountedKey(0), "box 0"),), f"op{n}", "<again>", {}))   # box 0 again
    CountedKey.comparisons = 0
    dot = graphviz.Digraph()
    order = viz.graph._add_clusters(dot, placed)
    assert [key.n for key in order] == list(range(n))
    assert CountedKey.comparisons <= len(placed)        # a walk along the list: ~n * n / 2
    assert [box[2] for box in boxes(dot)][0] == ["op0", f"op{n}"]

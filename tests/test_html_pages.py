"""The HTML pages' data, without a browser: what each page embeds (the JSON its script reads,
and the SVG graphviz drew) is checked against the tensors and models it came from; the pages
load nothing from anywhere; `tinyformer graph|attention|lens|plot --out FILE.html` write them.
(tests/test_browser_pages.py opens them in a real browser.)"""

import base64
import functools
import hashlib
import html
import importlib
import json
import os
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import tinyautograd as ta
import viz
from tinyformer_cli import main
from tinyautograd import Function, nn
from tinyformer import files
from tinyformer.attention import causal_mask
from tinyformer.gpt import GPT
from viz.attention import AttentionMap
from viz.attention_page import BLOCKED, NEAR_ONE, SCALE, attention_page, encode_weights
from viz.examples import language_modelling
from viz.html import HISTOGRAM_BINS, number, policy, script_json, summary, viridis
from viz.lens import lens_text
from viz.lens_page import lens_page
from tinyformer.rundir import run_status
from viz.report_page import follow_run, metrics_page

needs_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                               reason="graphviz's dot is not installed")


def page_data(text):
    """The JSON a page's script reads."""
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', text,
                      re.S)
    return json.loads(found.group(1))


def svg_of(text, view):
    return re.search(rf'<svg id="svg-{view}".*?</svg>', text, re.S).group(0)


def titles(svg, kind):
    """graphviz's names of the nodes (kind "node") or boxes ("cluster") of a picture."""
    return re.findall(rf'<g id="[a-z]+-[a-z]+\d+" class="{kind}">\s*<title>(.*?)</title>', svg)


def stats(array):
    values = np.asarray(array, dtype=np.float64)
    return {"norm": np.linalg.norm(values), "min": values.min(), "max": values.max(),
            "mean": values.mean()}


def assert_summary(found, array):
    assert found["shape"] == list(np.shape(array))
    for key, value in stats(array).items():
        assert found[key] == pytest.approx(value, rel=2e-5, abs=1e-12), key
    assert sum(found["hist"]["counts"]) == np.size(array)


# ------------------------------------------------------------------------------ shared pieces


def test_a_summary_is_the_arrays_own_numbers_and_leaves_out_what_is_not_finite():
    values = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    found = summary(values)
    assert_summary(found, values)
    assert found["dtype"] == "float32" and found["nonfinite"] == 0
    assert len(found["hist"]["counts"]) == HISTOGRAM_BINS
    assert found["hist"]["lo"] == pytest.approx(values.min(), rel=1e-5)
    counts, _ = np.histogram(values, bins=HISTOGRAM_BINS)
    assert found["hist"]["counts"] == counts.tolist()

    broken = np.array([1.0, np.nan, 3.0, np.inf])
    found = summary(broken)
    assert found["nonfinite"] == 2 and found["max"] == 3.0 and found["mean"] == 2.0
    # which of them are NaN: a fault, where an infinity may be a mask's -inf
    assert found["nan"] == 1 and summary(np.array([0.0, -np.inf]))["nan"] == 0
    assert summary(np.array([np.nan]))["nonfinite"] == 1 and "norm" not in summary([np.nan])
    # all NaN is no empty array: the panel writes its numbers, nan, and counts them
    nan = {"norm": "nan", "min": "nan", "max": "nan", "mean": "nan"}
    assert summary(np.array([np.nan, np.inf])) == {"shape": [2], "dtype": "float64", "size": 2,
                                                   "nonfinite": 2, "nan": 1, "text": nan}
    # The text is what the picture's label writes, of every value: the min of a mask's -inf
    # is -inf; the histogram's ends are the finite values'.
    assert summary(np.array([-np.inf, 0.5, 2.0]))["text"] == {
        "norm": "inf", "min": "-inf", "max": "2", "mean": "-inf", "lo": "0.5", "hi": "2"}
    assert summary(np.zeros((0, 3)))["size"] == 0
    assert summary(None) is None
    assert summary(np.full(4, 2.0))["hist"]["counts"][HISTOGRAM_BINS // 2] == 4   # one bar
    assert summary(np.full(4, 2.0))["hist"] | {"counts": None} == {"lo": 1.5, "hi": 2.5,
                                                                    "counts": None}



def test_a_summary_of_finite_values_works_out_their_norm_once(monkeypatch):
    # Nearly every array a page shows is finite throughout: its norm, min, max and mean were
    # worked out twice, of every value (the panel's text) and again of a copy of the finite
    # ones, the same values.
    values = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    norm_of_values = np.linalg.norm(values.astype(np.float64))
    taken = []
    norm = np.linalg.norm
    monkeypatch.setattr(np.linalg, "norm", lambda x, *args, **kwargs:
                        taken.append(x) or norm(x, *args, **kwargs))
    found = summary(values)
    assert len(taken) == 1
    assert found["text"]["norm"] == f"{norm_of_values:.4g}" and found["nan"] == 0
    assert found["norm"] == number(norm_of_values)
    # With a NaN among them, the finite values have a norm of their own.
    taken.clear()
    found = summary(np.array([1.0, np.nan, 3.0]))
    assert len(taken) == 2
    assert found["text"]["norm"] == "nan" and found["norm"] == number(np.sqrt(10.0))
    assert found["nonfinite"] == found["nan"] == 1

def test_a_summary_bins_values_a_few_float_steps_apart_and_the_page_is_written(tmp_path):
    # numpy cannot split a range narrower than 16 steps of the float's precision: float64's
    # 0.1 + 0.2 and 0.3 raised "Too many bins for data range" and no graph page was written.
    close = np.array([0.1 + 0.2, 0.3, 0.3])
    found = summary(close)
    assert found["hist"]["lo"] == 0.3 and found["hist"]["counts"][0] == 2
    assert found["hist"]["counts"][-1] == 1 and sum(found["hist"]["counts"]) == 3
    # nor one wider than the largest float
    with np.errstate(over="ignore"):          # (its norm overflows: not what this checks)
        counts = summary(np.array([-1e308, 0.0, 1e308]))["hist"]["counts"]
    assert (counts[0], counts[HISTOGRAM_BINS // 2], counts[-1], sum(counts)) == (1, 1, 1, 3)
    # nor a constant one too large for half a unit to widen: its values in the middle bar,
    # as a small constant's (they were lost, every bar empty)
    for constant in (3.0, 1e20):
        counts = summary(np.full(3, constant))["hist"]["counts"]
        assert (counts[HISTOGRAM_BINS // 2], sum(counts)) == (3, 3), constant
    x = ta.Tensor(close, dtype=np.float64, requires_grad=True)
    viz.draw_graph((x * 2).sum()).save_html(tmp_path / "graph.html")
    assert page_data((tmp_path / "graph.html").read_text())["views"]


def test_numbers_keep_six_significant_digits_and_json_has_no_nan():
    assert number(1 / 3) == 0.333333 and number(123456789) == 123457000.0
    assert number(float("nan")) is None and number(-np.inf) is None


def test_a_name_that_closes_the_script_cannot_break_out_of_the_json():
    hostile = '</script><script>alert("x")</script><!--'
    text = script_json({hostile: [hostile]})
    assert "</" not in text and "<!--" not in text
    assert json.loads(text) == {hostile: [hostile]}


def test_a_lone_surrogate_in_a_pages_text_is_written_as_a_replacement_character(tmp_path):
    # A name read from a file name that is not UTF-8 (b"\xff" is read as '\udcff'), or from
    # JSON's "\ud800", cannot be encoded as UTF-8: saving the page failed.
    maps = {"self": AttentionMap(np.full((1, 1, 2, 2), 0.5), ["a\udcff", "b"], ["a\udcff", "b"],
                                 "self-attention")}
    path = attention_page(maps, "run\ud800").save(tmp_path / "page.html")
    text = path.read_text(encoding="utf-8")
    assert "<title>run\ufffd</title>" in text
    assert page_data(text)["maps"]["self"]["keys"] == ["a\ufffd", "b"]


def test_viridis_runs_from_violet_to_yellow():
    assert viridis(0) == "#440154" and viridis(1) == "#fde725" and viridis(0.5) == "#21918c"
    assert viridis(-3) == viridis(0) and viridis(7) == viridis(1)


def assert_self_contained(text):
    """Nothing is fetched: no external script, style, image or link, and the page's own
    policy forbids any, and runs no script but the page's own (by its hash)."""
    script = re.search(r"<script>(.*)</script>", text, re.DOTALL).group(1)
    assert f'content="{policy(script)}"' in text and "default-src 'none'" in policy(script)
    assert "unsafe-inline" not in policy(script).split("script-src")[1]
    # The hash the browser computes: of the script element's text exactly, as UTF-8.
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in text
    assert not re.search(r"<(link|iframe|img|object|embed)\b", text)
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"(?<!xmlns=\")(?<!xmlns:xlink=\")https?://(?!www\.w3\.org/)", text)
    assert not re.search(r"@import|url\(", text)


# ------------------------------------------------------------------------------ the graph page


class Scale(Function):
    """y = s * x (s a setting);  dy/dx = s"""

    @staticmethod
    def forward(ctx, x, s, mask):
        ctx.s, ctx.mask = s, mask
        return x * s

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.s


@pytest.fixture(scope="module")
def gpt_page():
    """A two-layer GPT's training step, its page, and the gradients of a backward taken after
    the page was made (the page must not have touched them)."""
    ta.manual_seed(0)
    with viz.record():
        model = GPT(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=8)
        step = language_modelling(model, np.random.default_rng(1).integers(0, 11, (2, 7)))
    viz.retain_grads(step.loss)
    page = viz.graph_page(step.loss, params=model, fold_repeats=True, depth=3)
    untouched = all(p.grad is None for p in model.parameters())
    step.loss.backward(retain_graph=True)
    return model, step.loss, page, page_data(page.html), untouched


def test_the_backward_view_says_which_of_its_values_are_gradients(gpt_page):
    # A folded box judges an infinity in a gradient a fault and one in a value not (the -inf
    # of the causal mask, in the attention weights that the backward recomputes): its nodes
    # say which of the two their value is, and whether it holds a NaN.
    _, _, _, data, _ = gpt_page
    backward = data["views"]["backward"]["nodes"].values()
    masked = [n for n in backward if n.get("value") and n["value"]["nonfinite"]]
    assert masked and all(n["value"]["nan"] == 0 and "is_gradient" not in n for n in masked)
    assert {n["kind"] for n in backward if n.get("is_gradient")} == {"seed", "op", "gradient"}
    assert not any("is_gradient" in n for n in data["views"]["forward"]["nodes"].values())


def node_texts(svg):
    """graphviz's name of each node -> the lines of text in its box."""
    groups = re.findall(r'class="node">\s*<title>(.*?)</title>(.*?)</g>', svg, re.S)
    return {name: [html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", body)]
            for name, body in groups}


@needs_dot
def test_every_node_of_the_json_is_the_node_of_that_name_in_the_picture(gpt_page):
    _, _, page, data, _ = gpt_page
    assert set(data["views"]) == {"forward", "backward"} and data["missing"] is None
    for view, info in data["views"].items():
        svg = svg_of(page.html, view)
        assert set(titles(svg, "node")) == set(info["nodes"])
        assert set(titles(svg, "cluster")) == set(info["clusters"])
        texts = node_texts(svg)
        tips = {name: html.unescape(tip) for name, tip in re.findall(
            r'class="node">\s*<title>(.*?)</title>\s*<g [^>]*><a xlink:title="([^"]*)"', svg)}
        arrows = [html.unescape(t).split("->") for t in titles(svg, "edge")]
        for name, node in info["nodes"].items():
            assert set(node["inputs"]) <= set(info["nodes"])
            # its inputs: the nodes whose arrows lead into it
            assert sorted(node["inputs"]) == sorted(a for a, b in arrows if b == name), name
            assert set(node["boxes"]) <= set(info["clusters"])
            shape = str(tuple(node["value"]["shape"]))
            if node["kind"] == "op":      # its box says its op (and number) and its shape
                assert texts[name][0] == node["op"], (texts[name], node)
                assert texts[name][1 + (view == "forward")] == shape, (texts[name], node)
            elif node["kind"] in ("param", "input", "gradient"):
                # a parameter in its module's box reads as the rest of its path (weight),
                # the whole of it being its tooltip
                assert texts[name][1] == shape, (texts[name], node)
                assert node["title"] in (texts[name][0], tips.get(name)), (texts[name], node)
                if node["kind"] != "input" and node["boxes"]:
                    assert tips[name] == node["title"] != texts[name][0]
    assert_self_contained(page.html)


@needs_dot
def test_each_forward_node_shows_its_tensors_values_and_gradient(gpt_page):
    model, loss, _, data, untouched = gpt_page
    assert untouched                               # the page took gradients with grad()
    nodes = data["views"]["forward"]["nodes"]
    # The same picture again: which tensor each node id stands for (the ids follow the
    # graph's order, the same every time).
    drawing = viz.graph._draw_forward(loss, params=model)
    assert set(drawing.nodes) == set(nodes)
    for node_id, drawn in drawing.nodes.items():
        node, t = nodes[node_id], drawn.tensor
        assert node["kind"] == drawn.kind and node["title"] == drawn.title
        assert_summary(node["value"], t.data)
        assert node["value"]["dtype"] == str(t.data.dtype)
        if not t.requires_grad:                       # a constant: no gradient
            assert node["grad"] is None and "ratio" not in node
            continue
        assert_summary(node["grad"], t.grad)          # .grad of a backward after the page
        value_norm = np.linalg.norm(t.data.astype(np.float64))
        if value_norm == 0:                           # a bias still at its initial zeros
            assert node["ratio"] is None
        else:
            assert float(node["ratio"]) == pytest.approx(
                np.linalg.norm(t.grad.astype(np.float64)) / value_norm, rel=6e-4)
    params = dict(model.named_parameters())
    assert {n["title"] for n in nodes.values() if n["kind"] == "param"} == set(params)
    (result,) = [n for n in nodes.values() if n["kind"] == "op" and n["keep"]]
    assert result["op"] == loss.grad_fn.name
    assert result["grad"]["min"] == result["grad"]["max"] == 1.0     # dL/dL



@needs_dot
def test_each_array_is_summarised_once_though_both_views_show_it(monkeypatch):
    # The backward view shows again values that the forward one shows (each parameter, each
    # input an op saved): their summaries, a histogram of every value, were made twice, a
    # quarter of the work of a large model's page.
    summarised = []
    monkeypatch.setattr(importlib.import_module("viz.graph_page"), "summary",
                        lambda array: summarised.append(array) or summary(array))
    ta.manual_seed(0)
    model = GPT(vocab_size=11, context=8, n_layer=1, n_head=2, d_model=8)
    step = language_modelling(model, np.random.default_rng(1).integers(0, 11, (2, 7)))
    views = page_data(viz.graph_page(step.loss, params=model).html)["views"]
    arrays = [array for array in summarised if array is not None]     # (None: no gradient)
    assert len({id(array) for array in arrays}) == len(arrays)
    # ...and each view still shows it: the token embedding's weight, in both.
    weight = model.embed.tok.weight.data
    forward, backward = ([n["value"] for n in views[view]["nodes"].values()
                          if (n.get("value") or {}).get("shape") == list(weight.shape)]
                         for view in ("forward", "backward"))
    assert len(forward) == 1 and forward[0] in backward      # (beside its gradient's)
    assert_summary(forward[0], weight)


@needs_dot
def test_each_box_of_a_page_is_given_its_own_nodes_not_all_of_them_to_search(monkeypatch):
    # The backward view has a box for each op's backward, and each box searched every node of
    # the view for its own: a time that grew with the square of the graph (seconds for a
    # chain of a thousand ops, beside the tenth of that it takes now).
    page_module = importlib.import_module("viz.graph_page")
    cluster_data, given = page_module._cluster_data, []

    def recording(key, drawing, members, *rest):
        given.append(len(members))
        return cluster_data(key, drawing, members, *rest)

    monkeypatch.setattr(page_module, "_cluster_data", recording)
    x = ta.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    y = x
    for _ in range(20):
        y = (y * 1.5).tanh()
    views = page_data(viz.graph_page(y.sum(), params={"x": x}).html)["views"]
    boxes = views["backward"]["clusters"]
    assert len(given) == len(boxes) == 41 and not views["forward"]["clusters"]
    in_boxes = [name for n in views["backward"]["nodes"].values() for name in n["boxes"]]
    assert sum(given) == len(in_boxes)
    # ...and what the boxes say is what their nodes are.
    for name, box in boxes.items():
        ops = [n for n in views["backward"]["nodes"].values() if name in n["boxes"] and "op" in n]
        assert box["ops"] == len(ops) >= 1
        assert box["label"] in ("mul backward", "tanh backward", "sum backward")

@needs_dot
def test_an_ops_formula_is_its_functions_docstring(gpt_page):
    _, loss, _, data, _ = gpt_page
    import inspect
    doc = inspect.getdoc(loss.grad_fn.fn)
    shown = data["docs"][loss.grad_fn.name]
    assert shown.split() == doc.split()                   # every word, in order
    assert data["docs"]["add"].startswith("y = a + b")
    # A paragraph is one line, for the panel to wrap at its own width; a formula, indented,
    # keeps its line.
    first_paragraph = doc.split("\n\n")[0]
    assert "\n" in first_paragraph and shown.split("\n")[0] == " ".join(first_paragraph.split("\n"))
    formulas = [line for line in doc.splitlines() if line.startswith("    ")]
    assert formulas and all(line in shown.splitlines() for line in formulas)


@needs_dot
def test_the_backward_view_is_tied_to_the_forward_one(gpt_page):
    _, loss, _, data, _ = gpt_page
    forward, backward = (data["views"][v]["nodes"] for v in ("forward", "backward"))
    linked = 0
    for fid, node in forward.items():
        for bid in node.get("backward", []):
            assert backward[bid]["of"] == fid
            linked += 1
        if node.get("backward"):
            box = data["views"]["backward"]["clusters"][node["backward_box"]]
            assert box["kind"] == "backward" and box["of"] == fid
            assert box["label"] == f"{node['op']} backward"
    # Every backward op that differentiates a forward op says which; only the chain rule's
    # sums of paths differentiate none.
    for node in backward.values():
        if node["kind"] == "op":
            assert ("of" in node) != ("note" in node), node
    assert linked == sum("of" in n for n in backward.values()) > 50
    grads = [n for n in backward.values() if n["kind"] == "gradient"]
    assert {forward[n["forward"]]["title"] for n in grads} == {
        n["title"] for n in forward.values() if n["kind"] == "param"}
    for n in grads:              # dL/dw is w's gradient (summed in another order: float32)
        grad = forward[n["forward"]]["grad"]
        for key in ("norm", "min", "max"):
            assert n["value"][key] == pytest.approx(grad[key], rel=1e-4, abs=1e-9)
        assert n["value"]["mean"] == pytest.approx(grad["mean"], abs=1e-6)
    seed = [n for n in backward.values() if n["kind"] == "seed"]
    assert len(seed) == 1 and seed[0]["keep"] and seed[0]["value"]["max"] == 1.0


@needs_dot
def test_modules_fold_by_depth_and_a_stack_of_blocks_by_its_class(gpt_page):
    model, _, _, data, _ = gpt_page
    for view in data["views"].values():
        clusters = view["clusters"]
        (stack,) = view["repeats"]
        assert stack["path"] == "decoder.layers"
        assert sorted(clusters[c]["path"] for c in stack["items"]) == [
            "decoder.layers.0", "decoder.layers.1"]
        assert stack["label"] == "decoder.layers: DecoderLayer x 2"
        assert stack["params"] == sum(layer.num_parameters() for layer in model.decoder.layers)
        assert stack["ops"] == sum(clusters[c]["ops"] for c in stack["items"])
        assert view["folded"] == ["decoder.layers"]                 # fold_repeats=True
        assert {clusters[c]["path"] for c in view["collapsed"]} >= {
            "decoder.layers.0.attn", "decoder.layers.1.ffn"}        # depth=3
        for name, cluster in clusters.items():
            if cluster["kind"] != "module":
                continue
            assert (name in view["collapsed"]) == (cluster["level"] == 3)
            # a box sits in the boxes of its module's ancestors, and counts the ops inside
            outer = [clusters[c]["path"] for c in cluster["boxes"]]
            assert outer == [p for p in outer if cluster["path"].startswith(p + ".")]
            assert cluster["ops"] == sum(1 for n in view["nodes"].values()
                                         if "op" in n and name in n["boxes"])
    forward = data["views"]["forward"]
    for node in forward["nodes"].values():          # an op is in the box of its own module
        if node["kind"] == "op" and node["module"]:
            assert forward["clusters"][node["boxes"][-1]]["path"] == node["module"]
    layer = next(c for c in forward["clusters"].values() if c["path"] == "decoder.layers.1")
    assert layer["label"] == "decoder.layers.1: DecoderLayer"
    assert layer["params"] == model.decoder.layers[1].num_parameters()
    assert layer["ops"] == sum(1 for n in forward["nodes"].values() if n["kind"] == "op" and
                               (n["module"] or "").startswith("decoder.layers.1"))


@needs_dot
def test_what_a_forward_saved_for_backward_is_listed(tmp_path):
    x = ta.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = Scale.apply(x, s=2.5, mask=np.ones((2, 3), dtype=bool)).sum()
    data = page_data(viz.graph_page(y, inputs={"x": x}).html)
    (scale,) = [n for n in data["views"]["forward"]["nodes"].values() if n.get("op") == "scale"]
    assert scale["saved"] == [{"name": "s", "value": "2.5"},
                              {"name": "mask", "shape": [2, 3], "dtype": "bool"}]
    assert data["docs"]["scale"] == "y = s * x (s a setting);  dy/dx = s"
    (leaf,) = [n for n in data["views"]["forward"]["nodes"].values() if n["kind"] == "input"]
    assert leaf["title"] == "x" and leaf["keep"]
    np.testing.assert_allclose(leaf["grad"]["min"], 2.5)
    index = (slice(0, 1), slice(0, 2), slice(1, 3), slice(None, None, 2))
    data = page_data(viz.graph_page(x.reshape(1, 1, 2, 3)[index].sum(), inputs={"x": x}).html)
    (getitem,) = [n for n in data["views"]["forward"]["nodes"].values()
                  if n.get("op") == "getitem"]
    (saved,) = getitem["saved"]                      # a long setting is cut to 60 characters
    assert saved["name"] == "index" and saved["value"] == repr(index)[:57] + "..."
    # GELU's backward takes the dy/dx its forward kept: listed as the forward left it
    data = page_data(viz.graph_page(x.gelu().sum(), inputs={"x": x}).html)
    (gelu,) = [n for n in data["views"]["forward"]["nodes"].values() if n.get("op") == "gelu"]
    assert [(s["name"], s.get("shape")) for s in gelu["saved"]] == [("derivative", [2, 3])]


@needs_dot
def test_a_saved_numpy_number_reads_as_the_number_and_arrays_in_a_tuple_by_their_shape():
    # Cross-entropy's panel read "row_weight: np.float32(0.33333334)" and "picked: (array([0,
    # 1, 2]), array([..." cut off at 60 characters, where an array saved alone reads its
    # shape and dtype.
    from tinyautograd.functional import cross_entropy
    logits = ta.Tensor(np.zeros((3, 5), dtype=np.float32), requires_grad=True)
    data = page_data(viz.graph_page(cross_entropy(logits, np.array([4, 0, 2])),
                                    params={"logits": logits}).html)
    (loss,) = [n for n in data["views"]["forward"]["nodes"].values()
               if n.get("op") == "crossentropy"]
    saved = {s["name"]: s.get("value") for s in loss["saved"]}
    assert saved["row_weight"] == "0.33333334"
    assert saved["picked"] == "(array (3,) int64, array (3,) int64)"
    x = ta.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = Scale.apply(x, s=np.float64(2.5), mask=[np.ones(3, dtype=bool)]).sum()
    (scale,) = [n for n in page_data(viz.graph_page(y, inputs={"x": x}).html)["views"][
        "forward"]["nodes"].values() if n.get("op") == "scale"]
    assert scale["saved"] == [{"name": "s", "value": "2.5"},
                              {"name": "mask", "value": "[array (3,) bool]"}]


@needs_dot
def test_a_view_of_a_saved_input_is_a_saved_value_linked_to_it_on_the_page():
    x = ta.Tensor(np.arange(6.0).reshape(2, 3))        # dL/dw = x.T @ dL/dy reads x as x.T
    w = ta.Tensor(np.ones((3, 4)), requires_grad=True)
    data = page_data(viz.graph_page((x @ w).sum(), params={"w": w}, inputs={"x": x}).html)
    forward, backward = (data["views"][view]["nodes"] for view in ("forward", "backward"))
    (x_id,) = [node_id for node_id, node in forward.items() if node["title"] == "x"]
    viewed = [node for node in backward.values() if node["title"] == "x"]
    assert viewed and all(n["kind"] == "saved" and n["forward"] == x_id for n in viewed)


@needs_dot
def test_a_page_opens_unfolded_on_the_view_asked_for():
    ta.manual_seed(0)
    model = GPT(vocab_size=7, context=8, n_layer=2, n_head=2, d_model=8)
    with viz.record(model):
        loss = model(np.zeros((1, 4), dtype=np.int64)).sum()
    page = viz.graph_page(loss, params=model, view="backward")
    data = page_data(page.html)
    for view in data["views"].values():              # no depth, no fold_repeats: all open
        assert view["collapsed"] == [] and view["folded"] == [] and view["repeats"]
    assert 'data-view="backward" aria-pressed="true"' in page.html
    assert 'data-view="forward" aria-pressed="false"' in page.html
    # gradients dL/d(node) are the forward view's; the backward view's nodes are gradients
    assert all("grad" not in n for n in data["views"]["backward"]["nodes"].values())
    assert all("grad" in n for n in data["views"]["forward"]["nodes"].values())
    with pytest.raises(ValueError, match="depth must be 0 or more, got -1"):
        viz.graph_page(loss, depth=-1)
    # depth=0 is the whole model as one node, which the page has no box for: it would open
    # unfolded, as if no depth were asked
    with pytest.raises(ValueError, match="depth=0 would fold the whole model into one node"):
        viz.graph_page(loss, params=model, depth=0)


@needs_dot
def test_the_title_names_the_result_and_its_shape():
    w = ta.Tensor(np.ones(2), requires_grad=True)
    for result, title in [((w * 3.0).sum(), "a scalar loss"), (w * 3.0, "a tensor of shape (2,)"),
                          (w.reshape(1, 2, 1) * 3.0, "a tensor of shape (1, 2, 1)"),
                          ((w * 3.0).sum().reshape(1), "a loss of shape (1,)")]:
        page = viz.graph_page(result)
        assert page_data(page.html)["title"] == f"computation graph of {title}"


def test_without_one_number_or_a_whole_graph_there_is_no_backward_view(tmp_path):
    w = ta.Tensor(np.ones((2, 2)), requires_grad=True)
    data = page_data(viz.graph_page(w * 3.0).html)
    assert list(data["views"]) == ["forward"] and "one number" in data["missing"]
    assert all("grad" not in n for n in data["views"]["forward"]["nodes"].values())
    with pytest.raises(ValueError, match="no backward graph"):
        viz.graph_page(w * 3.0, view="backward")
    loss = (w * 3.0).sum()
    loss.backward()                                    # frees the graph
    data = page_data(viz.graph_page(loss).html)
    assert list(data["views"]) == ["forward"] and "retain_graph" in data["missing"]
    with pytest.raises(ValueError) as freed:              # the picture says it as the page does
        viz.draw_backward(loss)
    assert str(freed.value) == f"draw_backward: {data['missing']}"
    with pytest.raises(ValueError, match="view must be"):
        viz.graph_page(loss, view="sideways")


@needs_dot
def test_draw_graph_and_draw_backward_make_the_page_of_what_they_drew(tmp_path):
    model = nn.Linear(3, 2)
    x = ta.Tensor(np.ones((4, 3)))
    loss = model(x).tanh().sum()
    picture = viz.draw_graph(loss, params=model, inputs={"x": x})
    assert "digraph" in picture.source                     # still a graphviz Digraph
    path = picture.save_html(tmp_path / "graph.html")
    data = page_data(path.read_text())
    assert data["view"] == "forward" and {"forward", "backward"} == set(data["views"])
    assert "linear" in {n.get("op") for n in data["views"]["forward"]["nodes"].values()}
    page = viz.draw_backward(loss, params=model).page()
    assert page_data(page.html)["view"] == "backward"
    frame = page._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and "&lt;script" in frame
    # the whole page in the attribute: a quote of the page's own does not end it early
    srcdoc = re.match(r'<iframe srcdoc="([^"]*)"', frame).group(1)
    assert html.unescape(srcdoc) == page.html
    with pytest.raises(ValueError, match="draw_graph or draw_backward"):
        viz.graph.Graph().page()


# ------------------------------------------------------------------------------ attention


def synthetic_maps(rng):
    """An encoder-decoder's three maps, with blocked keys (causal) and one tiny weight."""
    def softmax(scores):
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    source, target = list("abcde"), ["<bos>", "x", "y"]
    decoder = softmax(np.where(causal_mask(3), rng.standard_normal((2, 3, 3, 3)), -np.inf))
    cross = softmax(rng.standard_normal((2, 3, 3, 5)))
    cross[0, 0, 0] = [1 - 3e-6, 1e-6, 1e-6, 5e-7, 5e-7]               # small, but not blocked
    return {"cross": AttentionMap(cross, target, source, "cross"),
            "encoder": AttentionMap(softmax(rng.standard_normal((2, 3, 5, 5))), source, source,
                                    "encoder self"),
            "decoder": AttentionMap(decoder, target, target, "decoder masked self")}


def decode(rows):
    rows = np.array(rows, dtype=np.float64)
    rows[rows == NEAR_ONE] = SCALE                # below 1, but 1 to 4 decimals
    return np.where(rows == BLOCKED, 0.0, rows / SCALE), rows == BLOCKED


def test_the_attention_page_holds_every_map_layer_and_head():
    maps = synthetic_maps(np.random.default_rng(0))
    page = attention_page(maps, "a seq2seq run", which="decoder")
    data = page_data(page.html)
    assert data["which"] == "decoder" and list(data["maps"]) == ["cross", "encoder", "decoder"]
    for name, chosen in maps.items():
        info = data["maps"][name]
        assert (info["layers"], info["heads"]) == chosen.weights.shape[:2]
        assert info["queries"] == chosen.queries and info["keys"] == chosen.keys
        for layer in range(info["layers"]):
            for head in range(info["heads"]):
                weights, blocked = decode(info["weights"][layer][head])
                np.testing.assert_allclose(weights, chosen.weights[layer, head], atol=0.5 / SCALE)
                np.testing.assert_array_equal(blocked, chosen.weights[layer, head] == 0)
    # the causal mask's zeros are blocked; a weight that rounds to 0 is not
    _, blocked = decode(data["maps"]["decoder"]["weights"][0][0])
    np.testing.assert_array_equal(blocked, ~causal_mask(3))
    assert not decode(data["maps"]["cross"]["weights"][0][0])[1].any()
    assert_self_contained(page.html)
    assert attention_page(maps, "t").html != page.html
    assert page_data(attention_page(maps, "t").html)["which"] == "cross"


def test_a_weight_below_1_that_rounds_to_1_is_coded_apart_from_an_exact_1():
    # Both were coded SCALE, and the page read 1.0000 for a head that reads other keys too;
    # an exact 0 is BLOCKED, so a 0 is a weight too small to show (the page reads <0.0001).
    assert encode_weights(np.array([[1 - 2e-6, 1e-6, 1e-6], [1.0, 0.0, 0.0],
                                    [0.99994, 6e-5, 0.0]])) == [[NEAR_ONE, 0, 0],
                                                                 [SCALE, BLOCKED, BLOCKED],
                                                                 [9999, 1, BLOCKED]]
    labels = list("ab")
    page = attention_page({"self": AttentionMap(np.array([[[[1 - 1e-7, 1e-7], [1.0, 0.0]]]]),
                                                labels, labels, "self")}, "t")
    data = page_data(page.html)
    assert data["near_one"] == NEAR_ONE
    assert data["maps"]["self"]["weights"] == [[[[NEAR_ONE, 0], [SCALE, BLOCKED]]]]


def test_a_nan_weight_is_coded_nan_and_the_legend_names_its_red():
    # It was cast to an integer, any at all (numpy warned "invalid value encountered in cast").
    from viz.attention_page import NAN
    assert encode_weights(np.array([[1.0, 0.0], [np.nan, np.nan]])) == [[SCALE, BLOCKED],
                                                                        [NAN, NAN]]
    labels = list("ab")
    weights = np.array([[[[1.0, 0.0], [0.5, 0.5]]], [[[np.nan, 0.0], [np.nan, np.nan]]]])
    page = attention_page({"self": AttentionMap(weights, labels, labels, "self")}, "t")
    assert page_data(page.html)["maps"]["self"]["weights"][1] == [[[NAN, BLOCKED], [NAN, NAN]]]
    assert "red: NaN" in page.html
    assert "red: NaN" not in attention_page({"self": AttentionMap(weights[:1], labels, labels,
                                                                  "self")}, "t").html


def test_the_legend_names_white_as_blocked_only_on_a_page_with_a_blocked_key():
    # A BERT's page, whose every query reads every key, said "white: blocked" of a white it
    # never showed, as though a mask were at work.
    labels = list("ab")
    causal = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])
    assert "white: blocked" in attention_page(
        {"self": AttentionMap(causal, labels, labels, "self")}, "t").html
    both_ways = np.full((1, 1, 2, 2), 0.5)
    assert "white: blocked" not in attention_page(
        {"self": AttentionMap(both_ways, labels, labels, "self")}, "t").html


def test_a_weight_outside_0_1_is_refused_and_a_rounding_past_it_is_drawn_as_0_or_1():
    # A weight of 1.5 was coded 15000, a number the page's script has no colour for: it
    # failed on it and drew nothing; a small negative one was read as blocked, or as NaN.
    labels = list("ab")
    for bad in (1.5, -0.25):
        weights = np.full((1, 2, 2, 2), 0.5)
        weights[0, 1, 0, 1] = bad
        with pytest.raises(ValueError, match=rf"^attention_page: the weights of 'self' must be "
                                             rf"in \[0, 1\], got {bad} at layer 0, head 1, "
                                             rf"query 0, key 1; give the softmax's weights"):
            attention_page({"self": AttentionMap(weights, labels, labels, "self")}, "t")
    # A softmax's rounding (float16's 1 + 2**-10) is 1 on the page; -0.0004 is 0, not blocked.
    assert encode_weights(np.array([[1 + 2 ** -10, -0.0004, 0.0]])) == [[SCALE, 0, BLOCKED]]
    weights = np.array([[[[np.float16(1 + 2 ** -10), 0.0], [0.5, 0.5]]]], dtype=np.float16)
    page = attention_page({"self": AttentionMap(weights, labels, labels, "self")}, "t")
    assert page_data(page.html)["maps"]["self"]["weights"][0] == [[[SCALE, BLOCKED],
                                                                   [5000, 5000]]]


def test_a_prompt_too_long_for_a_page_is_refused_before_anything_is_encoded():
    # A page had no limit: GPT-2's 12 layers x 12 heads of a 1,024-token prompt are 150
    # million weights, a page of about 450 MB, built in memory first.
    tokens = [f"t{i}" for i in range(1024)]
    weights = np.broadcast_to(np.float32(1 / 1024), (12, 12, 1024, 1024))   # no memory
    with pytest.raises(ValueError, match=r"150,994,944 attention weights .* shorter prompt"):
        attention_page({"self": AttentionMap(weights, tokens, tokens, "self")}, "t")


def test_a_page_holds_as_many_weights_as_its_limit_and_refuses_one_more(monkeypatch):
    import importlib                             # the module: viz.attention_page is its function
    monkeypatch.setattr(importlib.import_module("viz.attention_page"), "MAX_WEIGHTS", 8)
    labels = list("ab")
    page = attention_page({"self": AttentionMap(np.full((1, 2, 2, 2), 0.5), labels, labels,
                                                "self")}, "t")         # 8 weights: the limit
    assert page_data(page.html)["maps"]["self"]["heads"] == 2
    with pytest.raises(ValueError, match=r"9 attention weights are more than a page holds \(8"):
        attention_page({"self": AttentionMap(np.full((1, 1, 3, 3), 1 / 3), list("abc"),
                                             list("abc"), "self")}, "t")


def test_bad_attention_maps_are_refused():
    maps = synthetic_maps(np.random.default_rng(0))
    with pytest.raises(ValueError, match="no map 'self'"):
        attention_page(maps, "t", which="self")
    with pytest.raises(ValueError, match="labels"):
        attention_page({"self": maps["cross"]._replace(keys=["a"])}, "t")
    with pytest.raises(ValueError, match="layers, heads"):
        attention_page({"self": maps["cross"]._replace(weights=np.ones((3, 5)))}, "t")
    with pytest.raises(ValueError, match="no attention maps to show"):
        attention_page({}, "t")
    assert encode_weights(np.array([[0.0, 0.25, 0.75]])) == [[BLOCKED, 2500, 7500]]


# ------------------------------------------------------------------------------ lens


class Letters:
    """Just enough of a tokenizer for the lens: ids are letters."""
    def id_to_token(self, i):
        return "abcdefghij"[i]

    def id_to_bytes(self, i):
        return self.id_to_token(i).encode()


def contrast(ink, background):
    """WCAG 2's contrast ratio of black or white text on a "#rrggbb" background."""
    channels = np.array([int(background[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    channels = np.where(channels <= 0.04045, channels / 12.92,
                        ((channels + 0.055) / 1.055) ** 2.4)
    luminance = channels @ [0.2126, 0.7152, 0.0722]
    return (luminance + 0.05) / 0.05 if ink == "black" else 1.05 / (luminance + 0.05)


def test_the_lens_pages_text_reads_on_every_colour_of_its_cells():
    # White on the teal around 45% was 4.1:1, under the 4.5:1 that reading text needs.
    from tinyformer.lens import Lens
    lens = Lens(["embed"], np.zeros((1, 101, 1), int), np.linspace(0, 1, 101).reshape(1, 101, 1))
    page = lens_page(lens, ["w"] * 101, Letters(), "t")
    cells = re.findall(r'style="background: (#[0-9a-f]{6}); color: (\w+)"', page.html)
    assert len(cells) == 101
    assert min(contrast(ink, colour) for colour, ink in cells) >= 4.5


def test_the_lens_page_colours_each_cell_by_its_top_probability():
    from tinyformer.lens import Lens
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(3, 4))                  # (states, T, V)
    probs[1, 2] = np.full(10, 0.01) + 0.9 * np.eye(10)[3]            # one sure cell: 91%
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1", "layer 2"], order, np.take_along_axis(probs, order, -1))
    page = lens_page(lens, list("wxyz"), Letters(), "a run: the logit lens")
    data = page_data(page.html)
    assert data["states"] == lens.rows and data["tokens"] == list("wxyz")
    cells = re.findall(r'<td data-t="(\d)" data-s="(\d)" style="background: (#[0-9a-f]{6}); '
                       r'color: (\w+)"><span class="guess">(\w)</span> <span class="p">(\d+)%',
                       page.html)
    assert len(cells) == 12
    for t, s, colour, ink, guess, percent in cells:
        t, s = int(t), int(s)
        p = lens.top_probs[s, t, 0]
        assert guess == "abcdefghij"[lens.top_ids[s, t, 0]] and int(percent) == round(100 * p)
        assert colour == viridis(p) and contrast(ink, colour) >= 4.5
        assert [c[0] for c in data["cells"][t][s]] == [
            "abcdefghij"[i] for i in lens.top_ids[s, t]]
        np.testing.assert_allclose([c[1] for c in data["cells"][t][s]], lens.top_probs[s, t],
                                   rtol=1e-5)
    assert "black" in {cell[3] for cell in cells}          # the sure cell, in black
    assert_self_contained(page.html)
    with pytest.raises(ValueError, match="3 tokens"):
        lens_page(lens, list("xyz"), Letters(), "t")


def test_the_lens_page_says_what_a_cell_predicts():
    # A GPT's cell is its guess of the next token, a BERT's of the token at that position: the
    # page said only "the token that state would predict", beside the row's own token, as
    # though every cell guessed that token (as the help of `tinyformer lens` tells them apart).
    from tinyformer.lens import Lens
    lens = Lens(["embed"], np.zeros((1, 1, 1), int), np.ones((1, 1, 1)))
    words = " ".join(re.sub(r"<[^>]*>", " ", lens_page(lens, ["w"], Letters(), "t").html).split())
    assert "each cell the token that state would predict next (for a BERT, the token at that " \
           "position)" in words


def test_a_lens_pages_cell_shows_a_probability_near_1_or_0_as_the_table_does():
    # A 99.7% read "100%" in its cell, beside its tooltip's 99.7%.
    from tinyformer.lens import Lens
    lens = Lens(["embed"], np.array([[[0], [1], [0], [1], [0]]]),
                np.array([[[0.997], [1.0], [0.003], [0.0], [0.9999996]]]))   # (states, T=5, k=1)
    page = lens_page(lens, list("vwxyz"), Letters(), "t")
    assert re.findall(r'<span class="p">(.*?)</span>', page.html) == [
        "&gt;99%", "100%", "&lt;1%", "0%", "&gt;99%"]
    # The page's numbers (for the tooltip) are rounded, but one below 1 to a number below 1:
    # 0.9999996 was 1, its cell 100% and its tooltip 100.0%, where the table reads >99%.
    embedded = [cells[0][0][1] for cells in page_data(page.html)["cells"]]
    assert embedded[:4] == [0.997, 1.0, 0.003, 0.0] and 0.9999 < embedded[4] < 1


def test_a_lens_pages_cell_reads_the_tables_percentage_rounded_once():
    # The cell rounded the probability the page holds, itself rounded to six digits: float32's
    # 0.13499999 was 0.135, and its cell read 14% beside the table's 13%.
    from tinyformer.lens import Lens
    lens = Lens(["embed"], np.array([[[0], [1]]]),
                np.array([[[0.13499999], [0.6349999]]], dtype=np.float32))   # (states, T=2, k=1)
    page = lens_page(lens, list("xy"), Letters(), "t")
    table = lens_text(lens, list("xy"), Letters(), colour=False)
    assert re.findall(r'<span class="p">(.*?)</span>', page.html) == ["13%", "63%"]
    assert re.findall(r"\d+%", table) == ["13%", "63%"]


def test_a_lens_pages_nan_cell_is_red_reads_nan_and_lists_no_tokens():
    # viridis(None) raised a TypeError: a model with a NaN weight had no page.
    from tinyformer.lens import Lens
    from viz.graph import NAN_COLOUR
    top_probs = np.array([[[0.7, 0.2]], [[np.nan, np.nan]]])            # (states, T=1, k=2)
    lens = Lens(["embed", "layer 1"], np.array([[[2, 1]], [[0, 1]]]), top_probs)
    page = lens_page(lens, ["w"], Letters(), "t")
    cells = re.findall(r'<td data-t="0" data-s="(\d)" style="background: (#[0-9a-f]{6}); '
                       r'color: (\w+)">(.*?)</td>', page.html)
    assert [(s, colour) for s, colour, _, _ in cells] == [("0", viridis(0.7)), ("1", NAN_COLOUR)]
    assert cells[1][2:] == ("white", '<span class="guess">NaN</span>')
    assert page_data(page.html)["cells"] == [[[["c", 0.7, "70.0%"], ["b", 0.2, "20.0%"]], []]]
    assert "red: NaN" in page.html
    assert "red: NaN" not in lens_page(Lens(["embed"], lens.top_ids[:1], top_probs[:1]), ["w"],
                                       Letters(), "t").html
    assert_self_contained(page.html)


# ------------------------------------------------------------------------------ run report


HELD_LOCKS = []          # run.lock files held open and locked, as a trainer holds its own


def write_run(directory, steps, iters=None, lock=None, extra=None):
    """A run directory as `tinyformer train` leaves it: metrics.jsonl, and (with `iters`)
    manifest.json; `lock` a process id for run.lock, or "held" for a run.lock locked as a
    training process locks it."""
    directory.mkdir(exist_ok=True)
    with open(directory / "metrics.jsonl", "w") as f:
        for step in range(1, steps + 1):
            record = {"step": step, "train_loss": 3.0 / step, "lr": 0.01 * step}
            if step % 2 == 0:
                record.update(val_loss=3.5 / step, val_recall=step / 10)
            record.update(extra or {})
            f.write(json.dumps(record) + "\n")
    if iters is not None:
        (directory / "manifest.json").write_text(json.dumps(
            {"format": "tinyformer-run", "version": 1, "owns": [], "settings": {"iters": iters},
             "checkpoint": None}))
    if lock == "held" and not any(f.name == str(directory / "run.lock") for f in HELD_LOCKS):
        import fcntl
        f = open(directory / "run.lock", "w")
        f.write(f"{os.getpid()}\n")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)
        HELD_LOCKS.append(f)
    elif lock not in (None, "held"):
        (directory / "run.lock").write_text(f"{lock}\n")
    return directory


@pytest.fixture(autouse=True)
def no_lock_outlives_its_test():
    """A test's runs that never end (a trainer killed, one still running) let go of their locks
    with it, as the trainer's process would on ending."""
    yield
    while HELD_LOCKS:
        HELD_LOCKS.pop().close()


def release(directory):
    """The training process ends: it removes its run.lock and lets go of the lock."""
    for f in [f for f in HELD_LOCKS if f.name == str(directory / "run.lock")]:
        os.remove(f.name)
        f.close()
        HELD_LOCKS.remove(f)


def dead_process_id():
    """The id of a process that has ended."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_run_is_finished_running_stopped_or_unknown(tmp_path):
    assert run_status(write_run(tmp_path / "a", 6, iters=6))["state"] == "finished"
    assert run_status(write_run(tmp_path / "b", 4, iters=6, lock="held")) == {
        "state": "running", "step": 4, "iters": 6}
    assert run_status(write_run(tmp_path / "c", 4, iters=6))["state"] == "stopped"
    assert run_status(write_run(tmp_path / "d", 4, iters=6,
                                lock=dead_process_id()))["state"] == "stopped"  # killed
    assert run_status(write_run(tmp_path / "e", 4))["state"] == "unknown"
    # A manifest.json that is not a run's (another program's file of that name): nothing tells.
    other = write_run(tmp_path / "f", 4, iters=6)
    (other / "manifest.json").write_text(json.dumps({"format": "another", "settings": {
        "iters": 6}}))
    assert run_status(other)["state"] == "unknown"


def test_a_run_that_diverged_is_reported_so_with_the_trainers_advice(tmp_path):
    """A diverged run's page said "stopped at step 4 of 6 (tinyformer train --resume DIR
    continues it)": resumed, it diverged again at the same step."""
    run = write_run(tmp_path / "run", 4, iters=6)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["diverged"] = {"step": 5, "error": "the loss became nan at step 5; lower --lr"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert run_status(run) == {"state": "diverged", "step": 4, "iters": 6,
                               "diverged": manifest["diverged"]}
    page = metrics_page(run)
    assert ('class="status diverged">diverged: the loss became nan at step 5; lower --lr, with '
            'the run&#x27;s other settings, in a new run: `tinyformer train --out '
            f'{run} --force ...` replaces this one</span>') in page.html
    assert "--resume" not in page.html


def test_the_report_holds_the_runs_curves_and_reloads_only_while_it_runs(tmp_path):
    run = write_run(tmp_path / "run", 6, iters=10, lock="held", extra={"grad_norm": 0.5})
    page = metrics_page(run, refresh=2)
    data = page_data(page.html)
    records = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert data["train"] == [[r["step"], pytest.approx(r["train_loss"])] for r in records]
    assert data["val"] == [[r["step"], pytest.approx(r["val_loss"])] for r in records
                           if "val_loss" in r]
    assert data["lr"] == [[r["step"], pytest.approx(r["lr"])] for r in records]
    assert set(data["curves"]) == {"val_recall", "grad_norm"}
    assert data["refresh"] == 2 and "reloads every 2 s" in page.html
    assert data["status"]["state"] == "running" and "running: step 6 of 10" in page.html
    assert len(data["smoothed"]) == 6
    assert_self_contained(page.html)
    assert page_data(metrics_page(run).html)["refresh"] is None           # not asked
    release(run)                                        # the trainer ends
    stopped = metrics_page(run, refresh=2)
    assert page_data(stopped.html)["refresh"] is None
    assert f"stopped at step 6 of 10 (tinyformer train --resume {run} continues it)" \
        in html.unescape(stopped.html)
    with files.program_named("python cli.py"):       # the command advised, as it was run
        said = html.unescape(metrics_page(run).html)
    assert f"stopped at step 6 of 10 (python cli.py train --resume {run} continues it)" in said
    with pytest.raises(ValueError, match="does not exist"):
        metrics_page(tmp_path / "nothing")


def test_the_report_holds_the_steps_whose_loss_is_nan_or_infinite(tmp_path):
    # Left out of the curves with nothing said: a diverged run's page seemed to stop.
    run = write_run(tmp_path / "run", 4)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_loss": NaN, "lr": 0.05}\n'
                '{"step": 6, "train_loss": 1.0, "val_loss": Infinity}\n')
    data = page_data(metrics_page(run).html)
    assert data["nonfinite"] == {"steps": [5, 6],
                                 "label": "loss NaN or inf, not drawn: 2 steps, from step 5"}
    assert page_data(metrics_page(write_run(tmp_path / "finite", 4)).html)["nonfinite"] == {
        "steps": [], "label": None}


def test_the_report_holds_the_steps_whose_gradient_norm_is_nan_or_infinite(tmp_path):
    # Left out of its chart with nothing said, where a NaN loss's step was marked.
    run = write_run(tmp_path / "run", 4, extra={"grad_norm": 0.5})
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_loss": 1.0, "lr": 0.05, "grad_norm": NaN}\n'
                '{"step": 6, "train_loss": 1.0, "lr": 0.06, "grad_norm": Infinity}\n')
    data = page_data(metrics_page(run).html)
    assert data["curves"]["grad_norm"]["nonfinite"] == {
        "steps": [5, 6], "label": "gradient norm NaN or inf, not drawn: 2 steps, from step 5"}
    assert data["nonfinite"] == {"steps": [], "label": None}          # the losses are finite
    assert data["curves"]["val_recall"]["nonfinite"] == {"steps": [], "label": None}
    # Every gradient norm NaN: its chart is there all the same, its steps marked.
    (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 1.0, "lr": 0.01, '
                                       '"grad_norm": NaN}\n')
    curve = page_data(metrics_page(run).html)["curves"]["grad_norm"]
    assert curve["points"] == [] and curve["nonfinite"]["steps"] == [1]


def test_following_a_run_rewrites_the_page_until_the_run_ends(tmp_path):
    run = write_run(tmp_path / "run", 2, iters=4, lock="held")
    out = tmp_path / "report.html"
    written, logged = [], []

    def sleep(seconds):
        """Meanwhile, the run trains a step (and ends after step 4)."""
        written.append(page_data(out.read_text())["status"]["step"])
        steps = written[-1] + 1
        write_run(run, steps, iters=4, lock="held" if steps < 4 else None)
        os.utime(run / "metrics.jsonl", ns=(steps * 10**9, steps * 10**9))

    assert follow_run(run, out, every=1, log=logged.append, sleep=sleep) == out
    assert written == [2, 3] and len(logged) == 2
    final = page_data(out.read_text())
    assert final["status"] == {"state": "finished", "step": 4, "iters": 4}
    assert final["refresh"] is None                     # the last page stays as it is


def test_following_a_run_killed_between_two_lines_ends_with_its_stopped_page(tmp_path):
    run = write_run(tmp_path / "run", 2, iters=4, lock="held")
    out = tmp_path / "report.html"
    naps = []

    def sleep(seconds):
        """Meanwhile, the trainer is killed before it writes another line."""
        naps.append(seconds)
        assert len(naps) == 1, "still following a run that has stopped"
        release(run)

    assert follow_run(run, out, every=1, log=lambda line: None, sleep=sleep) == out
    final = page_data(out.read_text())
    assert final["status"]["state"] == "stopped" and final["refresh"] is None


def test_a_follow_stopped_by_ctrl_c_leaves_a_page_that_no_longer_reloads(tmp_path):
    """The page written last reloaded itself for ever, as if its run were still followed."""
    run = write_run(tmp_path / "run", 2, iters=4, lock="held")
    out = tmp_path / "report.html"

    def sleep(seconds):
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):       # the command stops as Ctrl-C stops any
            follow_run(run, out, every=1, log=lambda line: None, sleep=sleep)
    finally:
        release(run)
    text = out.read_text()
    assert page_data(text)["refresh"] is None and "reloads every" not in text
    assert "running: step 2 of 4 when this page was written; it does not reload" in text


@pytest.mark.parametrize("metrics", ["empty", "missing"])
def test_following_a_run_before_its_first_step_waits_for_it(tmp_path, metrics):
    """A run just started has an empty metrics.jsonl (or none yet) until its first step is
    done: following it from its start is what --follow is for."""
    run = write_run(tmp_path / "run", 0, iters=2, lock="held")
    if metrics == "missing":
        os.remove(run / "metrics.jsonl")
    out = tmp_path / "report.html"

    def sleep(seconds):
        """Meanwhile, the run trains its two steps and ends."""
        write_run(run, 2, iters=2)
        release(run)

    assert follow_run(run, out, every=1, log=lambda line: None, sleep=sleep) == out
    assert page_data(out.read_text())["status"] == {"state": "finished", "step": 2, "iters": 2}


def test_markup_in_a_title_or_a_token_is_shown_as_text_on_every_page(tmp_path):
    # A run directory's name, a prompt's token, a predicted token: the user's text, which the
    # page must show as it is, never read as HTML of its own.
    from tinyformer.lens import Lens
    markup = "<img src=x onerror=alert(1)>"

    class Markup:
        def id_to_token(self, i):
            return markup

        def id_to_bytes(self, i):
            return self.id_to_token(i).encode()

    maps = {"self": AttentionMap(np.full((1, 1, 2, 2), 0.5), [markup, "b"], [markup, "b"],
                                 "self-attention")}
    lens = Lens(["embed"], np.zeros((1, 2, 1), int), np.full((1, 2, 1), 0.5))
    pages = {"attention": attention_page(maps, markup),
             "lens": lens_page(lens, [markup, "b"], Markup(), markup),
             "report": metrics_page(write_run(tmp_path / markup, 2))}
    for kind, page in pages.items():
        body = page.html.split("<body", 1)[1]
        assert "<img" not in body and html.escape(markup, quote=False) in body, kind


@needs_dot
def test_markup_in_a_graph_pages_title_or_names_is_shown_as_text():
    markup = "<img src=x onerror=alert(1)>"
    x = ta.Tensor(np.ones(2), requires_grad=True)
    page = viz.graph_page((x * 2).sum(), inputs={markup: x}, title=markup)
    body = page.html.split("<body", 1)[1]
    assert "<img" not in body and html.escape(markup, quote=False) in body


# ------------------------------------------------------------------------------ the commands


def tinyformer(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A GPT run and an encoder-decoder run of two steps each."""
    root = tmp_path_factory.mktemp("runs")
    small = ["--n-layer", 1, "--n-head", 2, "--d-model", 16, "--batch-size", 4, "--iters", 2]
    gpt = tinyformer("train", *small, "--context", 16, "--eval-iters", 1, "--out", root / "gpt")
    seq2seq = tinyformer("train", "--task", "reverse", "--min-len", 3, "--max-len", 5, *small,
                         "--out", root / "reverse")
    assert gpt.exit_code == 0 and seq2seq.exit_code == 0, gpt.output + seq2seq.output
    return root


@needs_dot
def test_graph_writes_the_page_for_an_html_out(tmp_path):
    out = tmp_path / "gpt.html"
    result = tinyformer("graph", "--example", "gpt", "--what", "backward", "--fold-repeats",
                        "--depth", 2, "--out", out)
    assert result.exit_code == 0, result.output
    data = page_data(out.read_text())
    assert data["view"] == "backward" and data["depth"] == 2
    assert data["views"]["backward"]["collapsed"]
    assert data["title"] == "the gpt example: its loss's graph"     # what is drawn, by name


def test_a_checkpoints_graph_page_is_titled_by_its_run_and_prompt(runs, tmp_path):
    out = tmp_path / "step.html"
    result = tinyformer("graph", "--checkpoint", runs / "gpt", "--prompt", "eve", "--out", out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert page_data(text)["title"] == "gpt: the graph of the loss on 'eve'"
    assert "<title>gpt: the graph of the loss on &#x27;eve&#x27;" in text


def test_attention_lens_and_plot_write_their_pages(runs, tmp_path):
    out = tmp_path / "attention.html"
    result = tinyformer("attention", "--checkpoint", runs / "reverse", "--prompt", "012",
                        "--which", "encoder", "--out", out)
    assert result.exit_code == 0, result.output
    data = page_data(out.read_text())
    assert data["which"] == "encoder" and set(data["maps"]) == {"cross", "encoder", "decoder"}
    assert data["maps"]["encoder"]["queries"] == list("012")
    # the decoder's map shows the translation only: the title names the source
    assert data["title"] == "reverse (transformer): attention, translating '012'"

    out = tmp_path / "lens.html"
    result = tinyformer("lens", "--checkpoint", runs / "gpt", "--prompt", "eve", "--out", out)
    assert result.exit_code == 0, result.output
    data = page_data(out.read_text())
    assert data["tokens"] == list("eve") and data["states"] == ["embed", "layer 1"]
    assert data["title"] == "gpt: the logit lens"                 # its rows are the prompt
    # an encoder-decoder's rows are its decoder's positions, not the prompt's: the text says so
    result = tinyformer("lens", "--checkpoint", runs / "reverse", "--prompt", "012", "--out",
                        out)
    assert result.exit_code == 0, result.output
    text = " ".join(out.read_text().split())
    assert page_data(out.read_text())["tokens"] != list("012")
    assert "Each row is a position of the prompt" not in text
    assert "for an encoder-decoder the translation its decoder has written so far" in text
    # and the source it translates, shown nowhere else, is named in the title
    assert page_data(out.read_text())["title"] == "reverse: the logit lens, translating '012'"

    out = tmp_path / "report.html"
    result = tinyformer("plot", runs / "gpt", "--out", out)
    assert result.exit_code == 0 and result.output.strip() == str(out), result.output
    data = page_data(out.read_text())
    assert data["status"] == {"state": "finished", "step": 2, "iters": 2}
    result = tinyformer("plot", runs / "gpt", "--out", out, "--follow")    # ended: returns
    assert result.exit_code == 0, result.output


def test_plotting_a_run_still_training_says_so_beside_the_page_written(tmp_path):
    # The note was on the standard output, where a script reads the page's name alone.
    run = write_run(tmp_path / "run", 4, iters=6, lock="held")
    out = tmp_path / "report.html"
    try:
        result = tinyformer("plot", run, "--out", out)
    finally:
        release(run)
    assert result.exit_code == 0 and result.stdout == f"{out}\n", result.output
    assert result.stderr.startswith("note: the run is still training")


def test_plot_follow_rewrites_the_page_of_a_run_still_training_until_it_ends(tmp_path,
                                                                           monkeypatch):
    run = write_run(tmp_path / "run", 4, iters=6, lock="held")
    out = tmp_path / "report.html"
    # Between two looks at the run, its trainer is killed: the test does not wait 5 seconds.
    monkeypatch.setattr("viz.write.follow_run",
                        functools.partial(follow_run, sleep=lambda seconds: release(run)))
    result = tinyformer("plot", run, "--out", out, "--follow")
    assert result.exit_code == 0 and result.stdout == f"{out}\n", result.output
    assert result.stderr == f"step 4 of 6: wrote {out}\n"
    final = page_data(out.read_text())
    assert final["status"]["state"] == "stopped" and final["refresh"] is None


def test_plot_follow_waits_for_the_first_step_of_a_run_just_started(tmp_path, monkeypatch):
    # Without --follow such a run is refused (no metrics yet): following it is the answer.
    run = write_run(tmp_path / "run", 0, iters=2, lock="held")
    out = tmp_path / "report.html"

    def sleep(seconds):
        """Meanwhile, the run trains its two steps and ends."""
        write_run(run, 2, iters=2)
        release(run)

    monkeypatch.setattr("viz.write.follow_run", functools.partial(follow_run, sleep=sleep))
    result = tinyformer("plot", run, "--out", out, "--follow")
    assert result.exit_code == 0 and result.stdout == f"{out}\n", result.output
    assert page_data(out.read_text())["status"] == {"state": "finished", "step": 2, "iters": 2}


def test_plot_follow_stopped_by_ctrl_c_exits_130_with_one_line(tmp_path, monkeypatch):
    run = write_run(tmp_path / "run", 4, iters=6, lock="held")
    out = tmp_path / "report.html"

    def sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr("viz.write.follow_run", functools.partial(follow_run, sleep=sleep))
    try:
        result = tinyformer("plot", run, "--out", out, "--follow")
    finally:
        release(run)
    assert result.exit_code == 130 and result.stdout == "", result.output
    # (click starts a new line after the terminal's ^C)
    assert result.stderr.split() == f"step 4 of 6: wrote {out} stopped by Ctrl-C".split()
    assert page_data(out.read_text())["refresh"] is None


@pytest.mark.parametrize("args, words", [
    (["plot", "{gpt}", "--follow"], "--follow needs an .html --out"),
    # Each form --out takes is named: lens and plot take - as well as a file.
    (["plot", "{gpt}", "--out", "r.htm"], "should end in .png or .html, or be - to write the "
                                          "PNG to the standard output: the suffix says"),
    # A comparison of runs is a picture alone: a page is one run's, so not named
    (["plot", "{gpt}", "{reverse}", "--out", "r.txt"], "--out 'r.txt' should end in .png, or "
     "be - to write the PNG to the standard output: the suffix says"),
    (["plot", "{gpt}", "{reverse}", "--out", "r.HTML"], "a report page is one run's; give "
     "--out FILE.png"),
    (["lens", "--checkpoint", "{gpt}", "--prompt", "e", "--out", "l.svg"],
     "should end in .png or .html, or be - to print the table: the suffix says"),
    (["attention", "--checkpoint", "{gpt}", "--prompt", "e", "--out", "a.svg"],
     "should end in .png or .html: the suffix says"),
    (["graph", "--example", "mlp", "--out", "g.htm"], ".html"),
    # A name that is its suffix alone: refused as the others, before the work (lens and
    # graph ran the model, then failed as a bug, exit 1).
    (["lens", "--checkpoint", "{gpt}", "--prompt", "e", "--out", ".png"], "no name before"),
    (["attention", "--checkpoint", "{gpt}", "--prompt", "e", "--out", ".PNG"], "out.PNG"),
    (["graph", "--example", "mlp", "--out", ".svg"], "no name before its suffix"),
    (["graph", "--example", "mlp", "--out", ".html"], "no name before its suffix"),
    (["plot", "{gpt}", "--out", ".png"], "no name before its suffix"),
])
def test_a_wrong_out_is_one_line_and_writes_nothing(runs, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    result = tinyformer(*[a.format(gpt=runs / "gpt", reverse=runs / "reverse") for a in args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("state, words", [
    ("training", "is a run training its first step, with no metrics yet; try again in a "
                 "moment, or follow it: `tinyformer plot {run} --out report.html --follow`"),
    ("stopped", "is a run that stopped before its first step, so there is nothing to plot; "
                "`tinyformer train --resume "),
])
@pytest.mark.parametrize("metrics", ["empty", "missing"])
def test_plotting_a_run_before_its_first_step_says_what_to_do(tmp_path, state, words, metrics):
    """Not that the metrics file does not exist and a run should be trained first. Before its
    first step a run has no metrics.jsonl, or an empty one (opened as the step begins); the
    same when it is one of several runs compared."""
    run = write_run(tmp_path / "run", 0, iters=2, lock="held" if state == "training" else None)
    other = write_run(tmp_path / "other", 2, iters=2)
    if metrics == "missing":
        (run / "metrics.jsonl").unlink()
    before = sorted(os.listdir(run))
    try:
        result = tinyformer("plot", run)
        compared = tinyformer("plot", other, run, "--out", tmp_path / "sweep.png")
    finally:
        release(run)
    # The advice is a whole command, which works as it stands among runs compared too (a
    # page follows one run: `--out FILE.html --follow` there is refused).
    assert result.exit_code == 2 and words.format(run=run) in result.stderr, result.stderr
    assert compared.exit_code == 2 and compared.stderr == result.stderr
    assert not (tmp_path / "sweep.png").exists()
    assert sorted(os.listdir(run)) == [name for name in before if name != "run.lock"]


@pytest.mark.parametrize("metrics", ["empty", "missing"])
def test_plotting_a_run_with_a_checkpoint_whose_metrics_are_gone_says_so(tmp_path, metrics):
    """Not that it stopped before its first step and `train --resume` starts it again: it has
    a checkpoint, and the curves are its metrics.jsonl's alone."""
    run = write_run(tmp_path / "run", 2, iters=2)
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "checkpoint": 2}))
    if metrics == "missing":
        (run / "metrics.jsonl").unlink()
    else:
        (run / "metrics.jsonl").write_text("")
    for args in [[], ["--out", tmp_path / "report.html"]]:
        result = tinyformer("plot", run, *args)
        assert result.exit_code == 2 and result.stderr == (
            f"Error: {str(run)!r} is a run with a checkpoint at step 2, but its metrics.jsonl, "
            f"which holds the curves, is {metrics}; put that file back (from a copy of the "
            f"run) to plot them\n"), result.stderr
    assert not (tmp_path / "report.html").exists() and not (run / "loss.png").exists()


def test_plotting_a_run_whose_metrics_link_to_a_device_says_so(tmp_path):
    # Not that the run stopped before its first step: a device has no size, like an empty file.
    run = write_run(tmp_path / "run", 2, iters=2)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(os.devnull)
    result = tinyformer("plot", run, "--out", tmp_path / "report.html")
    assert result.exit_code == 2, result.stderr
    assert f"is a link to {os.devnull}, a device, not a regular file" in result.stderr


class Clamp(ta.Function):
    """Clamp x to [lo, hi]:
    1. compare x with lo and with hi;
    2. take the bound
    where it is passed;
    3. keep x elsewhere.

    Parameters
    ----------
    lo : float
        the lower bound
    """

    @staticmethod
    def forward(ctx, x):
        return np.clip(x, 0.0, 1.0)

    @staticmethod
    def backward(ctx, grad):
        return grad


@needs_dot
def test_a_docstrings_lists_and_headings_keep_their_lines_in_the_panel():
    # Reflowing once ran list items and a heading's underline into one line.
    x = ta.Tensor(np.arange(3.0), requires_grad=True)
    data = page_data(viz.graph_page(Clamp.apply(x).sum()).html)
    assert data["docs"]["clamp"].splitlines() == [
        "Clamp x to [lo, hi]:", "1. compare x with lo and with hi;",
        "2. take the bound where it is passed;", "3. keep x elsewhere.", "", "Parameters",
        "----------", "lo : float", "    the lower bound"]


def test_a_forward_graph_recorded_by_a_backward_names_its_backward_boxes():
    # The page called each such box of the forward view "backward", of no op.
    x = ta.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    (g,) = ta.grad(x.tanh().sum(), [x], create_graph=True)
    clusters = page_data(viz.graph_page((g * g).sum(), inputs={"x": x}).html)[
        "views"]["forward"]["clusters"]
    assert [c["label"] for c in clusters.values() if c["kind"] == "backward"] == [
        "tanh backward"]

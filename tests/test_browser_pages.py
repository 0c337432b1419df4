"""The pages in a real browser (headless Chromium, through selenium): each opens from a file://
URL with no error in the console, and does what a reader asks of it. The graph page's panel
shows the model's own numbers for a clicked node; it switches to the backward graph, where the
ops that compute the clicked op's gradients are marked, and folds and opens a module box. The
attention page switches heads and reads a weight by hovering; the lens page lists a cell's
likeliest tokens; the run report reads a step's values and reloads itself while the run goes.

One browser serves the whole file. Without Chromium, chromedriver or selenium the file is
skipped, except under TINYFORMER_REQUIRE_BROWSER=1 (CI), where that is a failure."""

import os
import shutil
import time

import numpy as np
import pytest

import browser as chromium

if chromium.missing():
    if chromium.REQUIRED:
        pytest.fail(f"TINYFORMER_REQUIRE_BROWSER=1, but {chromium.missing()}",
                    pytrace=False)
    pytest.skip(f"no browser: {chromium.missing()}", allow_module_level=True)
if shutil.which("dot") is None and not os.environ.get("CI"):
    pytest.skip("graphviz's dot is not installed", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

import tinyautograd as ta  # noqa: E402
import viz  # noqa: E402
from test_html_pages import Letters, synthetic_maps, write_run  # noqa: E402
from tinyformer.gpt import GPT  # noqa: E402
from tinyformer.lens import Lens  # noqa: E402
from viz.attention import AttentionMap  # noqa: E402
from viz.examples import language_modelling  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    started = chromium.start()
    yield started
    chromium.stop(started)


def open_clean(browser, path):
    chromium.errors(browser)                        # what an earlier page left
    chromium.open_page(browser, path)
    assert chromium.errors(browser) == []


def field(browser, name):
    return browser.find_element(By.CSS_SELECTOR, f'#panel [data-field="{name}"]').text


def close(text, value):
    """A number as the page shows it (4 significant digits) against the model's own."""
    return float(text) == pytest.approx(float(value), rel=6e-4, abs=1e-12)


# ------------------------------------------------------------------------------ the graph page


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    ta.manual_seed(0)
    with viz.record():
        model = GPT(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=8)
        step = language_modelling(model, np.random.default_rng(1).integers(0, 11, (2, 7)))
    path = tmp_path_factory.mktemp("pages") / "graph.html"
    viz.graph_page(step.loss, params=model).save(path)
    viz.retain_grads(step.loss)
    step.loss.backward(retain_graph=True)           # the gradients the panel should show
    return model, step.loss, path


def test_the_graph_page_shows_a_clicked_nodes_numbers_and_its_backward(browser, gpt):
    model, loss, path = gpt
    open_clean(browser, path)
    data = browser.execute_script("return data")

    # A parameter, found by name: its values and its gradient are the model's.
    search = browser.find_element(By.ID, "search")
    search.send_keys("decoder.layers.1.attn.q.weight\n")
    weight = model.decoder.layers[1].attn.q.weight
    assert field(browser, "title") == "decoder.layers.1.attn.q.weight"
    assert field(browser, "shape") == "(8, 8)" and field(browser, "dtype") == "float32"
    for key, value in [("norm", np.linalg.norm(weight.data)), ("min", weight.data.min()),
                       ("max", weight.data.max()), ("mean", weight.data.mean())]:
        assert close(field(browser, f"value.{key}"), value), key
    for key, value in [("norm", np.linalg.norm(weight.grad)), ("min", weight.grad.min()),
                       ("max", weight.grad.max())]:
        assert close(field(browser, f"grad.{key}"), value), key
    assert close(field(browser, "ratio"),
                 np.linalg.norm(weight.grad) / np.linalg.norm(weight.data))

    # An op, clicked with the mouse: the loss's own op.
    nodes = data["views"]["forward"]["nodes"]
    (result,) = [i for i, n in nodes.items() if n["kind"] == "op" and n["keep"]]
    browser.execute_script("focus(views.forward, [arguments[0]])", result)
    node = browser.find_element(By.CSS_SELECTOR, f'#svg-forward g.node[data-id="{result}"]')
    node.click()
    assert "selected" in node.get_attribute("class")
    assert field(browser, "title") == loss.grad_fn.name == nodes[result]["op"]
    assert field(browser, "doc").startswith(loss.grad_fn.fn.__doc__.strip()[:20])
    assert close(field(browser, "value.mean"), loss.item())
    assert field(browser, "grad.min") == field(browser, "grad.max") == "1"

    # Its backward ops are marked in the backward graph, which the panel's button shows.
    backward_ids = nodes[result]["backward"]
    assert backward_ids
    browser.find_element(By.CSS_SELECTOR, '#panel button[data-jump="backward"]').click()
    assert browser.execute_script("return current") == "backward"
    shown = browser.find_element(By.CSS_SELECTOR, '.picture[data-view="backward"]')
    assert "inactive" not in shown.get_attribute("class")
    marked = browser.execute_script(
        "return [...document.querySelectorAll('#svg-backward g.node.linked')]"
        ".map(g => g.dataset.id)")
    assert sorted(marked) == sorted(backward_ids)
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    assert "inactive" in shown.get_attribute("class")
    assert chromium.errors(browser) == []


def only_used_by(view, ids):
    """The leaves outside every box that only the nodes `ids` take as inputs."""
    users = {}
    for i, node in view["nodes"].items():
        for source in node["inputs"]:
            users.setdefault(source, set()).add(i)
    return {i for i, n in view["nodes"].items() if not n["boxes"] and not n["keep"]
            and users.get(i) and users[i] <= set(ids)}


def graph_height(browser):
    return browser.execute_script(
        "return document.querySelector('#svg-forward g.graph').getBBox().height")


def test_the_panel_writes_numbers_as_the_pictures_do(browser, gpt):
    open_clean(browser, gpt[2])
    shown = browser.execute_script("return [1, 0.5, -3, 1234.56, 0.001234, 2e-5, 23456].map(fmt)")
    assert shown == ["1", "0.5", "-3", "1235", "0.001234", "2.000e-5", "2.346e+4"]
    assert [f"{x:.4g}" for x in (1, 0.5, -3, 1234.56, 0.001234)] == shown[:5]   # as in labels


def test_a_module_box_folds_on_a_click_and_opens_again(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    data = browser.execute_script("return data")["views"]["forward"]
    (name,) = [c for c, info in data["clusters"].items() if info["path"] == "decoder.layers.0"]
    inside = [i for i, n in data["nodes"].items() if name in n["boxes"]]
    before = graph_height(browser)
    browser.execute_script("showBox(views.forward, views.forward.boxes[arguments[0]])", name)
    browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{name}"] > text').click()

    folded = browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]')
    assert folded.text.splitlines()[0] == "decoder.layers.0: DecoderLayer"
    hidden = browser.execute_script(
        "return [...document.querySelectorAll('#svg-forward g.node.gone')].map(g => g.dataset.id)")
    # With it go the leaves only it uses: its parameters.
    assert set(hidden) == set(inside) | only_used_by(data, inside)
    assert graph_height(browser) < 0.8 * before          # the room it took is given back

    browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]').click()
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert graph_height(browser) == pytest.approx(before, rel=1e-3)

    # The token embedding's weight is also the head's (tied): folding `embed` leaves it out.
    (embed,) = [c for c, info in data["clusters"].items() if info["path"] == "embed"]
    browser.execute_script("showBox(views.forward, views.forward.boxes[arguments[0]])", embed)
    browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{embed}"] > text').click()
    inside = [i for i, n in data["nodes"].items() if embed in n["boxes"]]
    hidden = browser.execute_script(
        "return [...document.querySelectorAll('#svg-forward g.node.gone')].map(g => g.dataset.id)")
    assert set(hidden) == set(inside) | only_used_by(data, inside)
    titles = {data["nodes"][i]["title"] for i in hidden}
    assert "embed.pos.embedding.weight" in titles and "embed.tok.weight" not in titles
    browser.find_element(By.ID, "unfold").click()

    browser.find_element(By.ID, "fold-repeats").click()
    # The view fits the folded graph, not the unfolded one's size, where it would be a speck.
    shown, graph = browser.execute_script(
        "const v = views.forward, a = v.viewBox, b = contentBox(v); "
        "return [[a.width, a.height], [b.width, b.height]]")
    assert shown == pytest.approx(graph)
    (stack,) = browser.find_elements(By.CSS_SELECTOR, "g.folded")
    assert stack.get_attribute("data-key") == "r:decoder.layers"
    assert "decoder.layers: DecoderLayer x 2" in stack.get_attribute("textContent")
    Select(browser.find_element(By.ID, "depth")).select_by_value("2")   # every block, one by one
    assert len(browser.find_elements(By.CSS_SELECTOR, "g.folded")) >= 3
    assert chromium.errors(browser) == []


def test_in_a_narrow_window_the_panel_goes_under_the_picture(browser, gpt):
    _, _, path = gpt
    size = browser.get_window_size()
    browser.set_window_size(500, 800)
    try:
        open_clean(browser, path)
        canvas = browser.find_element(By.ID, "canvas").rect
        panel = browser.find_element(By.ID, "panel").rect
        width = browser.execute_script("return document.documentElement.clientWidth")
        assert canvas["width"] >= 0.95 * width                # the picture keeps the width
        assert panel["y"] >= canvas["y"] + canvas["height"] - 1   # the panel below it
    finally:
        browser.set_window_size(size["width"], size["height"])


# ------------------------------------------------------------------------------ attention


def hover_cell(browser, canvas, i, j):
    """Move the mouse over cell (query i, key j) of the heatmap; the tooltip's text."""
    left, top, cell = (float(canvas.get_attribute(f"data-{k}")) for k in ("left", "top", "cell"))
    size = canvas.size
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(left + (j + 0.5) * cell - size["width"] / 2),
        int(top + (i + 0.5) * cell - size["height"] / 2)).perform()
    return browser.find_element(By.ID, "tooltip").text


def test_the_attention_page_switches_maps_and_heads_and_reads_a_weight(browser, tmp_path):
    maps = synthetic_maps(np.random.default_rng(0))
    path = viz.attention_page(maps, "a seq2seq run").save(tmp_path / "attention.html")
    open_clean(browser, path)
    Select(browser.find_element(By.ID, "map")).select_by_value("decoder")
    browser.find_element(By.CSS_SELECTOR, '#grid figure[data-layer="1"][data-head="2"]').click()
    # Counted from 1, as the lens and the course count layers: this is the second layer.
    assert browser.find_element(By.ID, "focus-title").text == "layer 2, head 3"
    assert Select(browser.find_element(By.ID, "head")).first_selected_option.text == "head 3"
    figure = browser.find_element(By.CSS_SELECTOR, '#grid figure[data-layer="0"][data-head="0"]')
    assert figure.text == "L1 H1" and figure.get_attribute("title") == "layer 1, head 1"
    assert browser.find_element(By.ID, "description").text == "decoder masked self"
    canvas = browser.find_element(By.ID, "heatmap")
    text = hover_cell(browser, canvas, 2, 1)
    assert text.splitlines() == ["query 2 y", "key 1 x",
                                 f"weight {maps['decoder'].weights[1, 2, 2, 1]:.4f}"]
    assert hover_cell(browser, canvas, 0, 2).endswith("blocked by the mask")   # the future

    Select(browser.find_element(By.ID, "map")).select_by_value("cross")
    Select(browser.find_element(By.ID, "layer")).select_by_value("0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid figure")) == 2 * 3
    text = hover_cell(browser, canvas, 1, 4)
    assert text.splitlines()[:2] == ["query 1 x", "key 4 e"]
    assert text.endswith(f"{maps['cross'].weights[0, 2, 1, 4]:.4f}")
    assert chromium.errors(browser) == []


# ------------------------------------------------------------------------------ lens and report


def test_the_attention_page_follows_the_window_into_a_narrow_one(browser, tmp_path):
    # Opened wide, then narrowed: the map and the thumbnails of eight heads both shrink.
    tokens = [f"t{i}" for i in range(40)]                    # a map of 640 px in a wide window
    weights = np.full((1, 8, 40, 40), 1 / 40)
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a long prompt").save(tmp_path / "attention.html")
    size = browser.get_window_size()
    try:
        open_clean(browser, path)
        browser.set_window_size(500, 900)
        began = time.perf_counter()
        while not browser.execute_script(
                "return document.documentElement.scrollWidth <= "
                "document.documentElement.clientWidth"):
            assert time.perf_counter() - began < 3, "the page did not fit the narrower window"
            time.sleep(0.05)
        assert hover_cell(browser, browser.find_element(By.ID, "heatmap"), 1, 0)   # still read
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_lens_page_lists_a_cells_likeliest_tokens(browser, tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(2, 3))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1"], order, np.take_along_axis(probs, order, -1))
    path = viz.lens_page(lens, list("xyz"), Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    cell = browser.find_element(By.CSS_SELECTOR, 'td[data-t="2"][data-s="1"]')
    assert cell.text.split() == ["abcdefghij"[order[1, 2, 0]],
                                 f"{lens.top_probs[1, 2, 0]:.0%}"]
    ActionChains(browser).move_to_element(cell).perform()
    lines = browser.find_element(By.ID, "tooltip").text.splitlines()
    assert lines[0] == "position 2 (z), after layer 1:"
    assert [line.split()[-1] for line in lines[1:]] == ["abcdefghij"[i] for i in order[1, 2]]
    assert [float(line.split("%")[0]) for line in lines[1:]] == pytest.approx(
        100 * lens.top_probs[1, 2], abs=0.051)


@pytest.mark.parametrize("window", [1400, 500])
def test_the_reports_charts_fit_the_window_and_their_legends_clear_the_titles(browser, tmp_path,
                                                                            window):
    run = write_run(tmp_path / "run", 6, iters=6)
    path = viz.metrics_page(run).save(tmp_path / "report.html")
    size = browser.get_window_size()
    browser.set_window_size(window, 900)
    try:
        open_clean(browser, path)
        assert browser.execute_script(   # nothing past the right edge: the last step's dots
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        for chart in browser.find_elements(By.CSS_SELECTOR, "svg[data-chart]"):
            title = chart.find_element(By.CSS_SELECTOR, ".chart-title").rect
            for legend in chart.find_elements(By.CSS_SELECTOR, ".legend"):
                box = legend.rect
                apart = (box["x"] >= title["x"] + title["width"]
                         or box["y"] >= title["y"] + title["height"])
                assert apart, f"{legend.text!r} covers {chart.get_attribute('data-chart')!r}"
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_report_of_a_run_of_one_step_marks_each_of_its_values(browser, tmp_path):
    # A line through one point draws nothing: the train loss and the learning rate were blank.
    run = write_run(tmp_path / "run", 1, iters=1)
    path = viz.metrics_page(run).save(tmp_path / "report.html")
    open_clean(browser, path)
    for title in ("loss", "learning rate"):
        chart = browser.find_element(By.CSS_SELECTOR, f'svg[data-chart^="{title}"]')
        assert len(chart.find_elements(By.TAG_NAME, "circle")) == 1, title

def test_the_report_reads_a_step_and_reloads_while_the_run_goes(browser, tmp_path):
    run = write_run(tmp_path / "run", 6, iters=10, lock="held")
    path = viz.metrics_page(run, refresh=1).save(tmp_path / "report.html")
    open_clean(browser, path)
    browser.execute_script("window.notReloaded = true")
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    width = chart.size["width"]
    x = 70 + (width - 90) * (3 - 1) / (6 - 1)        # step 3 of 1..6, inside the margins
    ActionChains(browser).move_to_element_with_offset(chart, int(x - width / 2), 0).perform()
    lines = browser.find_element(By.ID, "tooltip").text.splitlines()
    assert lines[0] == "step 3"
    assert "train loss (each step): 1" in lines                      # 3.0 / 3
    assert "validation loss: 1.75  (step 2)" in lines or "validation loss: 0.875  (step 4)" \
        in lines
    assert "learning rate: 0.03" in lines
    ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    began = time.perf_counter()
    while browser.execute_script("return window.notReloaded === true"):
        assert time.perf_counter() - began < 5, "the page of a running run did not reload"
        time.sleep(0.1)
    assert chromium.errors(browser) == []

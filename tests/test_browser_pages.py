"""The pages in a real browser (headless Chromium, through selenium): each opens from a file://
URL with no error in the console, and does what a reader asks of it. The graph page's panel
shows the model's own numbers for a clicked node; it switches to the backward graph, where the
ops that compute the clicked op's gradients are marked, and folds and opens a module box. The
attention page switches heads and reads a weight by hovering; the lens page lists a cell's
likeliest tokens; the run report reads a step's values and reloads itself while the run goes.

One browser serves the whole file. Without Chromium, chromedriver or selenium the file is
skipped, except under TINYFORMER_REQUIRE_BROWSER=1 (CI), where that is a failure."""

import json
import os
import re
import shutil
import time

import numpy as np
import pytest

import browser as chromium
from browser import open_clean

chromium.skip_module_without_one()
if shutil.which("dot") is None and not os.environ.get("CI"):
    pytest.skip("graphviz's dot is not installed", allow_module_level=True)

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

import tinyautograd as ta  # noqa: E402
import viz  # noqa: E402
from test_html_pages import (Letters, no_lock_outlives_its_test, synthetic_maps,  # noqa: E402,F401
                             write_run)
from tinyformer.gpt import GPT  # noqa: E402
from tinyformer.lens import Lens  # noqa: E402
from viz.attention import AttentionMap  # noqa: E402
from viz.examples import language_modelling  # noqa: E402
from viz.graph import NAN_COLOUR  # noqa: E402
from viz.html import Page, viridis  # noqa: E402
from viz.lens import percent  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    started = chromium.start()
    yield started
    chromium.stop(started)


def actions(browser):
    """Selenium's ActionChains, its pointer moving at once to where it is sent. By default each
    move glides there for 250 ms, which no page here needs (what they do depends on where the
    pointer ends up, a drag's pan on how far it went, never on how fast), and which was over
    10 s of this file's tests."""
    return ActionChains(browser, duration=0)


def panel_text(browser):
    return browser.find_element(By.ID, "panel").text


def field(browser, name):
    return browser.find_element(By.CSS_SELECTOR, f'#panel [data-field="{name}"]').text


def boxes(browser, elements):
    """Where each element is drawn and what it reads, asked of the page in one call: a dict a
    element of its `rect` (x, y, width, height on the page, as `element.rect` gives them) and
    its `text` (trimmed, as `element.text` gives an SVG text's). One WebDriver call costs about
    10 ms, and asking an element at a time was seconds of this file."""
    return browser.execute_script(
        "return arguments[0].map((e) => { const r = e.getBoundingClientRect(); "
        "return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height, "
        "text: e.textContent.trim()}; })", list(elements))


def fields(browser):
    """Every field the panel shows, name to text, in one call (`field` asks for one)."""
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#panel [data-field]')]"
        ".map((e) => [e.dataset.field, e.innerText.trim()]))")


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
    shown = fields(browser)
    assert shown["title"] == "decoder.layers.1.attn.q.weight"
    assert shown["shape"] == "(8, 8)" and shown["dtype"] == "float32"
    for key, value in [("norm", np.linalg.norm(weight.data)), ("min", weight.data.min()),
                       ("max", weight.data.max()), ("mean", weight.data.mean())]:
        assert close(shown[f"value.{key}"], value), key
    for key, value in [("norm", np.linalg.norm(weight.grad)), ("min", weight.grad.min()),
                       ("max", weight.grad.max())]:
        assert close(shown[f"grad.{key}"], value), key
    assert close(shown["ratio"], np.linalg.norm(weight.grad) / np.linalg.norm(weight.data))
    assert [name for name in shown if name.endswith("nonfinite")] == []      # all finite
    # The histograms: bars as tall as their counts, from the min to the max, the gradient's
    # in a colour of its own.
    fills = {}
    for key in ("value", "grad"):
        chart = browser.execute_script(      # its bars, its height, its numbers, in one call
            "const chart = document.querySelector("
            "  `#panel svg[aria-label=\"histogram of the ${arguments[0]}\"]`); "
            "const bars = [...chart.querySelectorAll('rect')]; "
            "return {heights: bars.map((bar) => bar.getAttribute('height')), "
            "        ys: bars.map((bar) => bar.getAttribute('y')), "
            "        height: chart.getAttribute('height'), "
            "        texts: [...chart.querySelectorAll('text')].map((t) => t.textContent.trim()), "
            "        fill: getComputedStyle(bars[0]).fill}", key)
        heights = np.array([float(height) for height in chart["heights"]])
        counts = np.histogram(getattr(weight, "data" if key == "value" else "grad"), 16)[0]
        assert heights / heights.max() == pytest.approx(counts / counts.max(), abs=0.03)
        # Scaled to its own tallest bar, which reaches (nearly) the chart's top.
        top = min(float(y) for y in chart["ys"])
        assert 0 <= top < 0.1 * float(chart["height"]), key
        assert chart["texts"] == [shown[f"{key}.min"], shown[f"{key}.max"]]
        fills[key] = chart["fill"]
    assert fills["value"] != fills["grad"]

    # A vector's shape as Python and the picture write it: (8,), which (8) is not.
    search.clear()
    search.send_keys("decoder.layers.1.attn.q.bias\n")
    assert field(browser, "title") == "decoder.layers.1.attn.q.bias"
    assert field(browser, "shape") == "(8,)"

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
    assert field(browser, "shape") == "()"
    kept = [item.text for item in browser.find_elements(By.CSS_SELECTOR,
                                                        "#panel ul:last-of-type li")]
    assert "log_probs: (12, 11) float32" in kept and "label_smoothing: 0.0" in kept

    # Its backward ops are marked in the backward graph, which the panel's button shows.
    backward_ids = nodes[result]["backward"]
    assert len(backward_ids) > 1
    assert f"{len(backward_ids)} backward ops compute its gradients" in panel_text(browser)
    browser.execute_script(      # the backward view looking elsewhere, far from them
        "setViewBox(views.backward, {x: -9000, y: -9000, width: 100, height: 60})")
    browser.find_element(By.CSS_SELECTOR, '#panel button[data-jump="backward"]').click()
    assert browser.execute_script("return current") == "backward"
    shown = browser.find_element(By.CSS_SELECTOR, '.picture[data-view="backward"]')
    assert "inactive" not in shown.get_attribute("class")
    pressed = {b.get_attribute("data-view"): b.get_attribute("aria-pressed")
               for b in browser.find_elements(By.CSS_SELECTOR, ".views button")}
    assert pressed == {"forward": "false", "backward": "true"}
    marked = browser.execute_script(
        "return [...document.querySelectorAll('#svg-backward g.node.linked')]"
        ".map(g => g.dataset.id)")
    assert sorted(marked) == sorted(backward_ids)
    holder = nodes[result]["backward_box"]               # and the box that holds them
    assert [g.get_attribute("data-cluster") for g in browser.find_elements(
        By.CSS_SELECTOR, "#svg-backward g.cluster.linked")] == [holder]
    # ... and shown: the view moves to them.
    room, *linked = boxes(browser, [browser.find_element(By.ID, "canvas"),
                                    *browser.find_elements(By.CSS_SELECTOR,
                                                           "#svg-backward g.node.linked")])
    assert len(linked) == len(backward_ids)
    for box in linked:
        assert room["x"] <= box["x"] and box["x"] + box["width"] <= room["x"] + room["width"]
        assert room["y"] <= box["y"] and box["y"] + box["height"] <= room["y"] + room["height"]
    # Folded, the box is marked in their place.
    browser.execute_script("showBox(views.backward, views.backward.boxes[arguments[0]])", holder)
    browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{holder}"] > text').click()
    assert "linked" in browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{holder}"]'
                                            ).get_attribute("class")
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    assert "inactive" in shown.get_attribute("class")

    # An input in the panel is a link to its node; Escape lets go of the selection.
    (first,) = [n for n in nodes[result]["inputs"] if nodes[n]["kind"] == "op"]
    browser.find_element(By.CSS_SELECTOR, f'#panel button[data-goto="{first}"]').click()
    assert field(browser, "title") == nodes[first]["title"]
    assert browser.find_element(By.CSS_SELECTOR, "#svg-forward g.node.selected"
                                ).get_attribute("data-id") == first
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    assert browser.find_elements(By.CSS_SELECTOR, ".selected, .linked") == []
    assert browser.find_elements(By.CSS_SELECTOR, "#panel [data-field]") == []

    # An op whose gradients one backward op computes: the sentence is singular.
    single = next(i for i, n in nodes.items() if len(n.get("backward") or ()) == 1)
    browser.execute_script("focus(views.forward, [arguments[0]])", single)
    browser.find_element(By.CSS_SELECTOR, f'#svg-forward g.node[data-id="{single}"]').click()
    assert "1 backward op computes its gradients" in panel_text(browser)
    assert chromium.errors(browser) == []


def view_box(browser):
    return browser.execute_script(
        "const b = views[current].viewBox; return [b.x, b.y, b.width, b.height]")


def matches(browser):
    """What the search found: the status line, and the names the list shows (if shown)."""
    return browser.execute_script(
        "const list = document.getElementById('matches'); "
        "return [document.getElementById('status').textContent, list.hidden ? null "
        ": [...list.children].map((item) => item.textContent)]")


def test_the_graph_page_pans_zooms_and_finds_nodes(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data")["views"]["forward"]["nodes"]
    canvas = browser.find_element(By.ID, "canvas")
    scale = browser.execute_script("return views.forward.svg.getScreenCTM().a")
    (result,) = [i for i, n in nodes.items() if n["keep"]]
    loss = browser.find_element(By.CSS_SELECTOR, f'#svg-forward g.node[data-id="{result}"]')
    assert browser.find_element(By.ID, "status").text == ""     # nothing to say yet

    # A drag pans by as much as the mouse moved, and selects nothing, not even the node it
    # began on; released, the mouse moves the picture no more.
    x, y, _, _ = view_box(browser)
    actions(browser).click_and_hold(loss).move_by_offset(10, 5).move_by_offset(20, 10
                                                                               ).release().perform()
    assert view_box(browser)[:2] == pytest.approx([x - 30 / scale, y - 15 / scale], abs=0.01)
    actions(browser).move_by_offset(-40, -20).perform()
    assert view_box(browser)[:2] == pytest.approx([x - 30 / scale, y - 15 / scale], abs=0.01)
    assert browser.find_elements(By.CSS_SELECTOR, "#panel [data-field]") == []
    # The wheel zooms about the mouse: what is under it stays there.
    under = ("const b = views.forward.svg.getBoundingClientRect(); "
             "return svgPoint(views.forward, b.x + b.width / 2 + 100, b.y + b.height / 2 + 50)")
    before, width = browser.execute_script(under), view_box(browser)[2]
    actions(browser).scroll_from_origin(ScrollOrigin.from_element(canvas, 100, 50), 0, 200
                                             ).perform()
    assert view_box(browser)[2] == pytest.approx(width * np.exp(200 * 0.0015))   # out, down
    after = browser.execute_script(under)
    assert [after["x"], after["y"]] == pytest.approx([before["x"], before["y"]], abs=0.5)
    browser.find_element(By.ID, "fit").click()
    assert view_box(browser) == pytest.approx(browser.execute_script(
        "const b = contentBox(views.forward); return [b.x, b.y, b.width, b.height]"))

    # Hovering says what a node is; a click on nothing lets go of the selection.
    actions(browser).move_to_element(loss).perform()
    assert browser.find_element(By.ID, "status").text == "crossentropy: click for its values"
    (weight,) = [i for i, n in nodes.items() if n["title"] == "decoder.layers.0.attn.q.weight"]
    (op,) = [i for i in nodes if weight in nodes[i]["inputs"]]
    browser.execute_script("focus(views.forward, [arguments[0]])", op)
    actions(browser).move_to_element(browser.find_element(
        By.CSS_SELECTOR, f'#svg-forward g.node[data-id="{op}"]')).click().perform()
    assert browser.find_element(By.ID, "status").text == \
        f"{nodes[op]['title']} in decoder.layers.0.attn.q: click for its values"
    assert field(browser, "title") == nodes[op]["title"]
    # A point of the canvas on nothing: the node's module box fills the view zoomed in on it.
    browser.find_element(By.ID, "fit").click()
    dx, dy = browser.execute_script("""
        const r = arguments[0].getBoundingClientRect();
        for (let y = r.top + 5; y < r.bottom; y += 10) {
          for (let x = r.left + 5; x < r.right; x += 10) {
            const el = document.elementFromPoint(x, y);
            if (el && !el.closest("g.node, g.cluster, g.edge, g.folded")) {
              return [x - r.left - r.width / 2, y - r.top - r.height / 2];
            }
          }
        }""", canvas)
    actions(browser).move_to_element_with_offset(canvas, int(dx), int(dy)).perform()
    assert browser.find_element(By.ID, "status").text == ""
    actions(browser).click().perform()
    assert browser.find_elements(By.CSS_SELECTOR, "#panel [data-field], .selected") == []

    # "/" goes to the search box, which finds nodes in any case, by name, op or module.
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    search = browser.switch_to.active_element
    assert search.get_attribute("id") == "search"
    search.send_keys("Q.Weight")
    q = sorted(n["title"] for n in nodes.values() if "q.weight" in n["title"])
    status, listed = matches(browser)
    assert status == f"{len(q)} matches" and sorted(listed) == q
    assert len(browser.find_elements(By.CSS_SELECTOR, "#svg-forward g.node.match")) == len(q)
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="backward"]').click()
    assert browser.find_elements(By.CSS_SELECTOR, "#svg-backward g.node.match")   # there too
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    browser.find_elements(By.CSS_SELECTOR, "#matches div")[1].click()    # a click on a match
    assert field(browser, "title") == listed[1] and matches(browser)[1] is None
    search.clear()
    search.send_keys("decoder.layers.0.attn.q")
    assert f"{nodes[op]['title']}  \u2014 decoder.layers.0.attn.q" in matches(browser)[1]  # its op
    search.clear()
    search.send_keys(" embed.tok.weight ")     # the spaces around a pasted name do not count
    assert matches(browser) == ["1 match", ["embed.tok.weight"]]
    search.clear()
    search.send_keys("layers")                 # more than the list holds
    found = sum("layers" in f"{n['title']} {n.get('module') or ''}" for n in nodes.values())
    assert found > 40 and matches(browser)[0] == f"{found} matches"
    assert len(matches(browser)[1]) == 40
    search.send_keys("/x")                     # typed, not taken as the shortcut
    assert search.get_attribute("value") == "layers/x"
    assert matches(browser) == ["0 matches", None]
    search.send_keys(Keys.ESCAPE)              # empties the box and forgets the matches
    assert search.get_attribute("value") == "" and matches(browser) == ["", None]
    assert browser.find_elements(By.CSS_SELECTOR, "g.node.match") == []
    assert chromium.errors(browser) == []


def test_a_jump_to_the_other_graph_leaves_the_closed_list_of_matches_closed(browser, gpt):
    # Found with the search box and chosen with Enter, which closes the list; the panel's
    # button then goes to its backward ops, where the list must not drop over them again.
    _, _, path = gpt
    open_clean(browser, path)
    search = browser.find_element(By.ID, "search")
    search.send_keys("attention\n")
    assert matches(browser) == ["2 matches", None]
    browser.find_element(By.CSS_SELECTOR, '#panel button[data-jump="backward"]').click()
    assert browser.execute_script("return current") == "backward"
    status, listed = matches(browser)
    assert status.endswith("matches") and listed is None
    assert browser.find_elements(By.CSS_SELECTOR, "#svg-backward g.node.match")   # marked there
    assert chromium.errors(browser) == []


def test_the_match_chosen_stands_out_from_the_other_matches(browser, gpt):
    # Chosen with Enter, it was outlined in the matches' blue like the other match beside it:
    # the picture did not say which of the two the panel was showing.
    _, _, path = gpt
    open_clean(browser, path)
    browser.find_element(By.ID, "search").send_keys("attention\n")
    outlines = browser.execute_script("""
        return [...document.querySelectorAll('#svg-forward g.node.match')].map((g) => {
          const style = getComputedStyle(g.querySelector(':scope > :is(polygon, ellipse, path)'));
          return [g.classList.contains('selected'), style.stroke];
        });""")
    (chosen,) = [stroke for selected, stroke in outlines if selected]
    (other,) = [stroke for selected, stroke in outlines if not selected]
    accent = browser.execute_script(
        "const probe = document.createElement('i'); probe.style.color = 'var(--accent)';"
        "document.body.append(probe); const c = getComputedStyle(probe).color; probe.remove();"
        "return c")
    assert chosen == accent and other != accent            # the selection's red, as a click's
    assert chromium.errors(browser) == []


def touch(browser, kind, points):
    """Fingers on the screen, as a touch screen reports them (through Chromium's DevTools)."""
    browser.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
        {"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})


def test_the_graph_page_zooms_with_two_fingers_buttons_and_keys(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    canvas = browser.find_element(By.ID, "canvas").rect
    x, y = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                            {"enabled": True, "maxTouchPoints": 5})
    try:
        # Two fingers moving apart zoom in about the point between them: what is there stays.
        under = ("return svgPoint(views.forward, arguments[0], arguments[1])")
        before, width = browser.execute_script(under, x, y), view_box(browser)[2]
        touch(browser, "touchStart", [(x - 20, y), (x + 20, y)])
        for step in range(1, 6):
            touch(browser, "touchMove", [(x - 20 - 8 * step, y), (x + 20 + 8 * step, y)])
        touch(browser, "touchEnd", [])
        assert view_box(browser)[2] == pytest.approx(width * 40 / 120, rel=0.02)
        after = browser.execute_script(under, x, y)
        assert [after["x"], after["y"]] == pytest.approx([before["x"], before["y"]], abs=1)
        assert browser.find_elements(By.CSS_SELECTOR, "#panel [data-field]") == []  # no click
        # One finger still pans.
        box = view_box(browser)
        scale = browser.execute_script("return views.forward.svg.getScreenCTM().a")
        touch(browser, "touchStart", [(x, y)])
        for step in range(1, 6):
            touch(browser, "touchMove", [(x + 6 * step, y)])
        touch(browser, "touchEnd", [])
        assert view_box(browser)[0] == pytest.approx(box[0] - 30 / scale, abs=0.5)
        assert view_box(browser)[2] == pytest.approx(box[2])
    finally:
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})

    # The + and - buttons, and the keys, zoom in and out by one step.
    width = view_box(browser)[2]
    browser.find_element(By.ID, "zoom-out").click()
    assert view_box(browser)[2] == pytest.approx(width * 1.25)
    browser.find_element(By.ID, "zoom-in").click()
    assert view_box(browser)[2] == pytest.approx(width)
    browser.find_element(By.TAG_NAME, "body").send_keys("-")
    assert view_box(browser)[2] == pytest.approx(width * 1.25)
    browser.find_element(By.TAG_NAME, "body").send_keys("+")
    assert view_box(browser)[2] == pytest.approx(width)
    browser.find_element(By.ID, "depth").send_keys("-+")     # typed in the menu: no zoom
    assert view_box(browser)[2] == pytest.approx(width)
    # Zooming stops, in and out: a step more past either end changes nothing.
    browser.find_element(By.TAG_NAME, "body").send_keys("+" * 30)
    closest = view_box(browser)[2]
    browser.find_element(By.TAG_NAME, "body").send_keys("+")
    assert view_box(browser)[2] == pytest.approx(closest) and closest > 0
    browser.find_element(By.TAG_NAME, "body").send_keys("-" * 50)
    farthest = view_box(browser)[2]
    browser.find_element(By.TAG_NAME, "body").send_keys("-")
    assert view_box(browser)[2] == pytest.approx(farthest) and farthest > width
    # The ends: no closer than 60 units of the graph across (a few nodes), no farther than
    # twice the whole graph and a margin.
    assert closest == pytest.approx(60)
    drawn = browser.execute_script("return views.forward.drawnSize.width")
    assert farthest == pytest.approx(drawn * 2 + 400)
    assert chromium.errors(browser) == []


def test_the_graph_page_works_from_the_keyboard(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data")["views"]["forward"]["nodes"]
    active = browser.switch_to.active_element

    # Tab goes past the toolbar to the picture, where it is on a node; Down goes to an op
    # that takes it, and Enter selects that.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(20):
        if browser.switch_to.active_element.get_attribute("data-id"):
            break
        actions(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("data-id") in nodes
    actions(browser).send_keys(Keys.ARROW_DOWN).perform()
    node = browser.switch_to.active_element
    assert nodes[node.get_attribute("data-id")]["inputs"]
    actions(browser).send_keys(Keys.ENTER).perform()
    assert field(browser, "title") == nodes[node.get_attribute("data-id")]["title"]
    # Page Up goes from a node to the module box around it (Page Down back), where Space folds
    # it, and on the folded box opens it: the focus goes to what stands in the place of the
    # part it was on, which the fold or the opening hid.
    inner = next(id for id, n in nodes.items() if n["boxes"])
    name = nodes[inner]["boxes"][-1]
    browser.execute_script("views.forward.nodes[arguments[0]].focus()", inner)
    actions(browser).send_keys(Keys.PAGE_UP).perform()
    box = browser.switch_to.active_element
    assert box.get_attribute("data-cluster") == name
    actions(browser).send_keys(Keys.PAGE_DOWN).perform()
    assert browser.switch_to.active_element.get_attribute("data-id") == inner
    actions(browser).send_keys(Keys.PAGE_UP, Keys.SPACE).perform()
    folded = browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]')
    assert browser.switch_to.active_element == folded
    actions(browser).send_keys(Keys.ENTER).perform()
    assert browser.find_elements(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]') == []
    assert browser.switch_to.active_element == box
    # A stack of blocks opened: its first block's box.
    browser.find_element(By.ID, "fold-repeats").click()
    (stack,) = browser.find_elements(By.CSS_SELECTOR, 'g.folded[data-key^="r:"]')
    browser.execute_script("arguments[0].focus()", stack)
    actions(browser).send_keys(Keys.ENTER).perform()
    first = browser.switch_to.active_element
    assert first.get_attribute("aria-label") == "fold decoder.layers.0: DecoderLayer"

    # The inputs in the panel are buttons, which Tab reaches.
    assert browser.find_elements(By.CSS_SELECTOR, "#panel button[data-goto]")
    actions(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("data-goto")

    # The arrow keys go down and up the matches; Enter opens the one they are on.
    body.send_keys("/")
    active = browser.switch_to.active_element
    active.send_keys(".weight")
    listed = matches(browser)[1]
    assert len(listed) >= 3
    active.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_UP)
    on = browser.find_element(By.CSS_SELECTOR, "#matches .active")
    assert on.text == listed[1]
    assert active.get_attribute("aria-activedescendant") == on.get_attribute("id")
    assert on.get_attribute("aria-selected") == "true"
    active.send_keys(Keys.ENTER)
    assert field(browser, "title") == listed[1] and matches(browser)[1] is None
    # Typed again, the list is back with none of it chosen: up from there is its last match,
    # and down from the last is the first, and up from the first the last again.
    active.send_keys(Keys.BACKSPACE, "t", Keys.ARROW_UP)
    assert browser.find_element(By.CSS_SELECTOR, "#matches .active").text == listed[-1]
    active.send_keys(Keys.ARROW_DOWN)
    assert browser.find_element(By.CSS_SELECTOR, "#matches .active").text == listed[0]
    active.send_keys(Keys.ARROW_UP)
    assert browser.find_element(By.CSS_SELECTOR, "#matches .active").text == listed[-1]
    assert chromium.errors(browser) == []


def active_part(browser):
    """The id of the node (or the name of the box) that has the focus."""
    element = browser.switch_to.active_element
    return element.get_attribute("data-id") or element.get_attribute("data-cluster") or \
        element.get_attribute("data-key")


def press(browser, *keys):
    actions(browser).send_keys(*keys).perform()
    return active_part(browser)


def test_the_picture_is_one_stop_of_tab_between_the_toolbar_and_the_panel(browser, gpt):
    # Tab went through every module box and then every node, in graphviz's order (from the
    # loss, jumping about the picture): some 1,250 presses from the toolbar to the panel of a
    # 4-layer GPT's graph. It stops once in the picture, on the node selected.
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data.views.forward.nodes")
    op = next(id for id, n in nodes.items()
              if n["inputs"] and (n["module"] or "").startswith("decoder.layers.0"))
    browser.execute_script("goTo('forward', arguments[0])", op)
    where = ("const at = document.activeElement; return [at.tagName, at.dataset.id || null, "
             "document.getElementById('panel').contains(at) && at.dataset.goto]")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    stops = [browser.execute_script(where)]
    while not stops[-1][2] and len(stops) < 15:
        actions(browser).send_keys(Keys.TAB).perform()
        stops.append(browser.execute_script(where))
    assert stops[-1][2] in nodes[op]["inputs"], stops      # an input's link, in the panel
    assert [id for tag, id, _ in stops if tag == "g"] == [op]
    # Folded away, the node's stop is the box it is hidden in, and Shift+Tab goes back to it.
    browser.find_element(By.ID, "fold-repeats").click()
    browser.execute_script("document.querySelector('#panel [data-goto]').focus()")
    actions(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    assert active_part(browser) == "r:decoder.layers"
    assert len(browser.find_elements(By.CSS_SELECTOR, '#svg-forward [tabindex="0"]')) == 1
    assert chromium.errors(browser) == []


def test_enter_on_an_inputs_link_puts_the_focus_on_that_input_in_the_picture(browser, gpt):
    # The panel is drawn anew for the input, and the link that had the focus went with it: the
    # focus fell back to the page's body, from where Tab started again at the toolbar.
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data.views.forward.nodes")
    op = next(id for id, n in nodes.items() if any(nodes[i]["inputs"] for i in n["inputs"]))
    browser.execute_script("goTo('forward', arguments[0])", op)
    went = next(i for i in nodes[op]["inputs"] if nodes[i]["inputs"])
    link = browser.find_element(By.CSS_SELECTOR, f'#panel button[data-goto="{went}"]')
    browser.execute_script("arguments[0].focus()", link)
    assert press(browser, Keys.ENTER) == went
    assert field(browser, "title") == nodes[went]["title"]
    assert browser.switch_to.active_element.get_attribute("tabindex") == "0"   # the cursor
    # Tab goes on to the links of the input's own inputs; Escape, which empties the panel,
    # leaves the focus on the part the panel was about.
    actions(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("data-goto") in nodes[went]["inputs"]
    assert press(browser, Keys.ESCAPE) == went
    assert chromium.errors(browser) == []


def test_the_arrow_keys_follow_the_graphs_arrows(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data.views.forward.nodes")
    users = {input: [] for input in nodes}
    for id, node in nodes.items():
        for input in node["inputs"]:
            users[input].append(id)
    browser.execute_script("document.getElementById('fit').focus()")   # the last control
    start = press(browser, Keys.TAB)
    assert nodes[start]["inputs"] == []                   # where the graph starts
    assert press(browser, Keys.ARROW_UP) == start         # nothing above: it stays, and says so
    assert "has no inputs" in browser.find_element(By.ID, "status").text
    # End: the loss. Up: an input of the node before; across: another input of the same node;
    # Down: back to the node it came from.
    loss = press(browser, Keys.END)
    assert nodes[loss]["keep"] and users[loss] == []
    first = press(browser, Keys.ARROW_UP)
    assert first in nodes[loss]["inputs"]
    other = press(browser, Keys.ARROW_RIGHT)
    assert other in nodes[loss]["inputs"] and other != first
    assert press(browser, Keys.ARROW_DOWN) == loss
    # Down the graph from where it starts and up again, every step along an arrow.
    walked = [press(browser, Keys.HOME)]
    assert walked == [start]
    for _ in range(5):
        walked.append(press(browser, Keys.ARROW_DOWN))
        assert walked[-2] in nodes[walked[-1]]["inputs"]
    for _ in range(5):                  # up to where the graph starts: a parameter, say
        if not nodes[walked[-1]]["inputs"]:
            break
        walked.append(press(browser, Keys.ARROW_UP))
        assert walked[-1] in nodes[walked[-2]]["inputs"]
    press(browser, Keys.ENTER)
    assert field(browser, "title") == nodes[walked[-1]]["title"]
    assert chromium.errors(browser) == []


def test_the_keyboard_pans_the_zoomed_picture_to_the_part_it_reaches(browser, gpt):
    # Zoomed in, most parts lie outside the picture shown; a part the keyboard reached there
    # had its outline where no one saw it.
    _, _, path = gpt
    open_clean(browser, path)
    browser.find_element(By.TAG_NAME, "body").send_keys("+" * 30)     # as close as it goes
    canvas = browser.find_element(By.ID, "canvas").rect
    browser.execute_script("document.getElementById('fit').focus()")   # the last control
    reached = set()
    for key in [Keys.TAB] + [Keys.ARROW_DOWN] * 6 + [Keys.END]:
        reached.add(press(browser, key))
        part = browser.switch_to.active_element
        assert part.get_attribute("role") == "button" and part.tag_name == "g"
        at = part.rect
        middle = (at["x"] + at["width"] / 2, at["y"] + at["height"] / 2)
        label = part.get_attribute("aria-label")
        assert canvas["x"] <= middle[0] <= canvas["x"] + canvas["width"], label
        assert canvas["y"] <= middle[1] <= canvas["y"] + canvas["height"]
    assert len(reached) == 8
    assert chromium.errors(browser) == []


# The outline of the part the keyboard is on as the screen shows it: its width in CSS px
# (the stroke's width times the picture's scale, unless the stroke does not scale), the share
# of its length its dashes ink, its colour and the fill of the shape it goes round.
FOCUS_OUTLINE = """
const part = document.activeElement;
const shape = part.querySelector(":scope > :is(polygon, ellipse, path), :scope > rect");
const style = getComputedStyle(shape), m = shape.getScreenCTM();
const scale = Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
const onScreen = style.vectorEffect === "non-scaling-stroke" ? 1 : scale;
let dashes = style.strokeDasharray === "none" ? [1, 0]
  : style.strokeDasharray.split(/[\\s,]+/).map(parseFloat);
if (dashes.length % 2) dashes = dashes.concat(dashes);          // an odd list is repeated
const inked = dashes.filter((_, i) => i % 2 === 0).reduce((a, b) => a + b, 0);
return {focusVisible: part.matches(":focus-visible"), scale,
        width: parseFloat(style.strokeWidth) * onScreen,
        inked: inked / dashes.reduce((a, b) => a + b, 0), stroke: style.stroke,
        fill: style.fill};
"""


def contrast(a, b):
    """WCAG 2's contrast ratio of two CSS colours, "rgb(r, g, b)" ("none": the white page)."""
    def luminance(css):
        channels = np.array(re.findall(r"[\d.]+", css)[:3] if css != "none" else [255] * 3,
                            dtype=float) / 255
        linear = np.where(channels <= 0.04045, channels / 12.92,
                          ((channels + 0.055) / 1.055) ** 2.4)
        return linear @ [0.2126, 0.7152, 0.0722]
    darker, lighter = sorted([luminance(a), luminance(b)])
    return (lighter + 0.05) / (darker + 0.05)


def test_the_keyboards_outline_stays_thick_on_a_picture_scaled_down_to_fit(browser, gpt):
    # The outline was 3 px in the graph's units, scaled with the picture: fitted to the window,
    # a GPT's graph is drawn at a quarter of its size, its outline under a pixel wide, and a
    # keyboard user lost where the focus was. WCAG 2.2 asks for 2 px at 3:1.
    _, _, path = gpt
    open_clean(browser, path)
    nodes = browser.execute_script("return data.views.forward.nodes")
    inner = next(id for id, n in nodes.items() if n["boxes"])
    browser.execute_script("views.forward.nodes[arguments[0]].focus()", inner)
    outlines = {}
    for key in [Keys.ARROW_DOWN, Keys.PAGE_UP, Keys.SPACE]:      # a node, its box, folded
        actions(browser).send_keys(key).perform()
        part = browser.switch_to.active_element.get_attribute("class")
        outlines[part.split()[0]] = browser.execute_script(FOCUS_OUTLINE)
    assert set(outlines) == {"node", "cluster", "folded"}
    for part, outline in outlines.items():
        assert outline["focusVisible"] and outline["scale"] < 0.5, (part, outline)
        assert outline["width"] * outline["inked"] >= 2, (part, outline)
        assert contrast(outline["stroke"], "none") >= 3, (part, outline)       # the page
        assert contrast(outline["stroke"], outline["fill"]) >= 3, (part, outline)
    assert chromium.errors(browser) == []


STROKE_ON_SCREEN = """
const style = getComputedStyle(arguments[0]), m = arguments[0].getScreenCTM();
const scale = Math.sqrt(Math.abs(m.a * m.d - m.b * m.c));
const onScreen = style.vectorEffect === "non-scaling-stroke" ? 1 : scale;
return {scale, width: parseFloat(style.strokeWidth) * onScreen, stroke: style.stroke,
        dashes: style.strokeDasharray};
"""


def test_the_highlights_stay_thick_on_a_picture_scaled_down_to_fit(browser, gpt):
    # The selected node, the nodes linked to it, a search's matches, the box under the mouse and
    # a folded box's own border were lines in the graph's units: fitted to the window, a GPT's
    # graph is drawn at a quarter of its size, and they shrank under a pixel, out of sight.
    _, _, path = gpt
    open_clean(browser, path)

    def strokes(part, shape, states):
        """The stroke of `part`'s `shape` as drawn on the screen, plain and in each state: a
        class graph.js gives it, "hover" (the mouse over its label) or "focus"."""
        drawn = {"plain": browser.execute_script(STROKE_ON_SCREEN, shape)}
        for state in states:
            if state == "hover":
                label = part.find_element(By.CSS_SELECTOR, ":scope > text")
                actions(browser).move_to_element(label).perform()
            elif state == "focus":
                assert browser.execute_script("arguments[0].focus({focusVisible: true});"
                                              "return arguments[0].matches(':focus-visible')", part)
            else:
                browser.execute_script("arguments[0].classList.add(arguments[1])", part, state)
            drawn[state] = browser.execute_script(STROKE_ON_SCREEN, shape)
            if state == "hover":
                actions(browser).move_to_element(
                    browser.find_element(By.TAG_NAME, "h1")).perform()
            elif state == "focus":
                browser.execute_script("arguments[0].blur()", part)
            else:
                browser.execute_script("arguments[0].classList.remove(arguments[1])", part, state)
        return drawn

    node = browser.execute_script("return Object.values(views.forward.nodes)[0]")
    name = browser.execute_script("return Object.keys(views.forward.boxes)[0]")
    box = browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{name}"]')
    drawn = {
        "node": strokes(node, node.find_element(By.CSS_SELECTOR,
                                                ":scope > :is(polygon, ellipse, path)"),
                        ["selected", "linked", "match", "focus"]),
        "module box": strokes(box, box.find_element(By.CSS_SELECTOR, ":scope > polygon"),
                              ["hover", "linked", "focus"])}
    browser.execute_script("fold(views.forward, arguments[0])", name)    # the rest stays big
    (folded,) = browser.find_elements(By.CSS_SELECTOR, "g.folded")
    drawn["folded box"] = strokes(folded, folded.find_element(By.TAG_NAME, "rect"),
                                  ["selected", "nonfinite", "focus", "hover"])
    for part, states in drawn.items():
        for state, stroke in states.items():
            assert stroke["scale"] < 0.5, (part, state, stroke)
            if state == "plain" and part != "folded box":
                continue                            # graphviz's own line scales with the rest
            assert stroke["width"] >= 1.5, (part, state, stroke)
        # Each state told from the others, from none and from the keyboard's focus.
        looks = [(stroke["stroke"], round(stroke["width"], 1), stroke["dashes"])
                 for stroke in states.values()]
        assert len(set(looks)) == len(looks), (part, states)
    assert chromium.errors(browser) == []


@pytest.mark.parametrize("width", [1280, 390])
def test_the_matches_drop_down_from_the_search_box_inside_the_window(browser, gpt, width):
    _, _, path = gpt
    size = browser.get_window_size()
    browser.set_window_size(width, 800)
    try:
        open_clean(browser, path)
        search = browser.find_element(By.ID, "search")
        search.send_keys("decoder.layers.0.attn.q")
        box, found = search.rect, browser.find_element(By.ID, "matches").rect
        window = browser.execute_script("return document.documentElement.clientWidth")
        assert box["y"] + box["height"] <= found["y"] <= box["y"] + box["height"] + 8
        assert 0 <= found["x"] and found["x"] + found["width"] <= window
        assert found["x"] <= box["x"] + box["width"] and box["x"] <= found["x"] + found["width"]
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_graph_page_shows_names_as_text(browser, tmp_path):
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    y = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    path = viz.graph_page((x * y).sum(), inputs={"<b>x</b>": x, "&lt;y": y},
                          title="<i>a</i> graph").save(tmp_path / "graph.html")
    open_clean(browser, path)
    assert browser.find_element(By.TAG_NAME, "h1").text == "<i>a</i> graph"
    search = browser.find_element(By.ID, "search")
    search.send_keys("<b>\n")
    assert field(browser, "title") == "<b>x</b>"
    search.send_keys(Keys.ESCAPE, "mul\n")
    assert [button.text for button in browser.find_elements(
        By.CSS_SELECTOR, "#panel button[data-goto]")] == ["<b>x</b>", "&lt;y"]
    # Were a name ever to slip into the page as markup, its handler would not run: the page's
    # policy lets its own script alone run, by its hash. As a file, and in a notebook, where
    # the page is an iframe's srcdoc.
    text = path.read_text(encoding="utf-8").replace(
        '<body class="graph">', '<body class="graph"><img src=x onerror="window.pwned=1">')
    (tmp_path / "injected.html").write_text(text, encoding="utf-8")
    (tmp_path / "notebook.html").write_text(
        f"<!DOCTYPE html><html><body>{Page(text, 'graph')._repr_html_()}</body></html>",
        encoding="utf-8")
    for name in ("injected.html", "notebook.html"):
        chromium.errors(browser)
        browser.get((tmp_path / name).as_uri())
        if name == "notebook.html":
            browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
        refused, began = [], time.perf_counter()
        while not (browser.execute_script("return document.body.dataset.ready") and refused) \
                and browser.execute_script("return window.pwned") is None:
            refused += [e for e in chromium.errors(browser) if "inline event handler" in e]
            assert time.perf_counter() - began < 5, "the page's script did not run"
            time.sleep(0.02)
        assert browser.execute_script("return window.pwned") is None, name
        assert browser.find_element(By.TAG_NAME, "h1").text == "<i>a</i> graph"
        browser.switch_to.default_content()


def test_the_panel_says_what_a_backward_ops_sum_of_paths_is(browser, gpt):
    # A backward op that belongs to no forward op adds up what several paths bring back: the
    # panel says so, as text.
    open_clean(browser, gpt[2])
    nodes = browser.execute_script("return data")["views"]["backward"]["nodes"]
    summed = next(i for i, node in nodes.items() if "note" in node)
    browser.execute_script("goTo('backward', arguments[0])", summed)
    assert browser.find_element(By.CSS_SELECTOR, "#panel .note").text == nodes[summed]["note"]


def test_the_panel_counts_the_values_that_are_not_finite(browser, tmp_path):
    x = ta.Tensor(np.array([[1.0, np.nan, np.inf]]), requires_grad=True)
    path = viz.graph_page((x * 2).sum(), inputs={"x": x}).save(tmp_path / "graph.html")
    open_clean(browser, path)
    browser.find_element(By.ID, "search").send_keys("x\n")
    assert field(browser, "title") == "x" and field(browser, "value.nonfinite") == "2"


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


def picture_label(tensor, **names):
    """The numbers that draw_graph's label of the leaf `names` names writes of its value."""
    source = viz.draw_graph(tensor, inputs=names, show_data=True).source
    name = next(iter(names))
    found = re.search(rf"<B>{name}</B>.*?data: norm (\S+), min (\S+), max ([^<]+)<", source)
    return dict(zip(["norm", "min", "max"], found.groups()))


def test_the_panel_writes_numbers_as_the_pictures_do(browser, tmp_path):
    # Each exactly as the picture's label: 1.7185031 is 1.719 (the page rounded it to 1.71850
    # first, then to 1.718), 12345 is 1.234e+04 (Python rounds a tie to even; JavaScript's
    # toExponential rounded it up, 1.235e+04).
    x = ta.Tensor(np.array([1.7185031, 12345.0, 3.0]), requires_grad=True)
    loss = (x * x).sum()
    open_clean(browser, viz.graph_page(loss, inputs={"x": x}).save(tmp_path / "graph.html"))
    browser.find_element(By.ID, "search").send_keys("x\n")
    shown = fields(browser)
    label = picture_label(loss, x=x)
    assert label == {"norm": "1.235e+04", "min": "1.719", "max": "1.234e+04"}
    assert {key: shown[f"value.{key}"] for key in label} == label
    assert shown["value.mean"] == f"{x.data.astype(np.float64).mean():.4g}" == "4117"
    grad = 2 * x.data                                   # dL/dx, and the ratio of the norms
    assert shown["grad.max"] == f"{grad.max():.4g}" == "2.469e+04"
    assert shown["ratio"] == f"{np.linalg.norm(grad) / np.linalg.norm(x.data):.4g}" == "2"
    # Shapes as Python writes them.
    assert browser.execute_script("return [[], [10], [2, 8, 8]].map(shapeText)") == [
        "()", "(10,)", "(2, 8, 8)"]


@pytest.mark.parametrize("values, label", [
    ([1.0, np.nan, np.inf], {"norm": "nan", "min": "nan", "max": "nan"}),
    ([1.0, -np.inf, 2.0], {"norm": "inf", "min": "-inf", "max": "2"}),
    ([np.nan, np.nan], {"norm": "nan", "min": "nan", "max": "nan"}),
])
def test_the_panel_writes_nan_and_inf_as_the_pictures_do(browser, tmp_path, values, label):
    # The min of a value with a -inf is -inf, not the least finite one, and a NaN makes the
    # numbers nan, as the picture's label says; the count of them and the histogram of the
    # finite values stay. The ratio of the norms is nan or 0 then, not a dash.
    x = ta.Tensor(np.array(values), requires_grad=True)
    loss = (x * 2).sum()
    open_clean(browser, viz.graph_page(loss, inputs={"x": x}).save(tmp_path / "graph.html"))
    browser.find_element(By.ID, "search").send_keys("x\n")
    shown = fields(browser)
    assert picture_label(loss, x=x) == label
    assert {key: shown[f"value.{key}"] for key in label} == label
    assert shown["value.nonfinite"] == str(int((~np.isfinite(values)).sum()))
    grad_norm = np.linalg.norm(np.full(len(values), 2.0))           # dL/dx is 2 everywhere
    assert shown["ratio"] == f"{grad_norm / float(label['norm']):.4g}"          # nan or 0
    histogram = browser.find_elements(By.CSS_SELECTOR, "#panel svg.histogram:not(.gradient)")
    assert len(histogram) == np.isfinite(values).any()          # none with no finite value


def test_the_panel_says_an_empty_tensor_is_empty(browser, tmp_path):
    # An array of no values has no numbers to write (the page holds none for it): "empty",
    # where the panel failed to open on it.
    x = ta.Tensor(np.zeros((0, 3)), requires_grad=True)
    loss = (x * 2).sum()
    open_clean(browser, viz.graph_page(loss, inputs={"x": x}).save(tmp_path / "graph.html"))
    browser.find_element(By.ID, "search").send_keys("x\n")
    panel = browser.find_element(By.ID, "panel").text
    assert panel.count("empty") == 2 and "undefined" not in panel, panel      # value, gradient


def misdrawn(browser, view="forward"):
    """What is drawn out of place in a view: an arrow that misses the nodes it joins, or the
    border of the folded box at an end of it, or runs into a folded box (an arrow to or from
    one), or keeps graphviz's own head away from the box it enters; a box's name outside
    its box, an arrowhead not on a folded box's border, a folded box's text wider than the
    box, or the box much taller than its text."""
    return browser.execute_script("""
        const v = views[arguments[0]], wrong = [];
        const near = (p, r, d) => p.x >= r.left - d && p.x <= r.right + d && p.y >= r.top - d
          && p.y <= r.bottom + d;
        const folded = new Map([...v.overlay.querySelectorAll("g.folded")].map((g) =>
          [g.dataset.key, g.querySelector("rect").getBoundingClientRect()]));
        const onBorder = (p, r) => near(p, r, 1.5) && Math.min(Math.abs(p.x - r.left),
          Math.abs(p.x - r.right), Math.abs(p.y - r.top), Math.abs(p.y - r.bottom)) < 1.5;
        for (const e of v.edges) {
          if (e.el.classList.contains("gone")) continue;
          const path = e.el.querySelector("path"), ctm = path.getScreenCTM();
          const length = path.getTotalLength();
          const at = (l) => path.getPointAtLength(l).matrixTransform(ctm);
          const ends = [[e.from, at(0), 3], [e.to, at(length), 12]];
          for (const [id, p, d] of ends) {
            const key = v.rep[id];
            if (key ? !onBorder(p, folded.get(key))
                : !near(p, v.nodes[id].getBoundingClientRect(), d)) {
              wrong.push(`arrow ${e.from}->${e.to} at ${key || id}`);
            }
          }
          // graphviz's own head of an arrow into a folded box sits on the node hidden in its
          // room: shown, it would float in the empty room (reroute draws one on the border)
          const head = e.el.querySelector("polygon");
          if (head && v.rep[e.to] && getComputedStyle(head).display !== "none") {
            const r = head.getBoundingClientRect();
            if (!near({x: r.left + r.width / 2, y: r.top + r.height / 2}, folded.get(v.rep[e.to]),
                      12)) wrong.push(`graphviz's head of ${e.from}->${e.to} off its box`);
          }
          // (graphviz itself may draw an arrow between two shown nodes across a box's corner)
          for (let i = 0; i <= 50 && (v.rep[e.from] || v.rep[e.to]); i++) {
            const p = at(length * i / 50);
            for (const [key, r] of folded) {
              if (p.x > r.left + 1.5 && p.x < r.right - 1.5 && p.y > r.top + 1.5 &&
                  p.y < r.bottom - 1.5) wrong.push(`arrow ${e.from}->${e.to} into ${key}`);
            }
          }
        }
        for (const [name, g] of Object.entries(v.clusters)) {
          if (g.classList.contains("gone")) continue;
          const label = g.querySelector("text");
          if (label && !near(label.getBoundingClientRect(), g.querySelector("polygon")
              .getBoundingClientRect(), 2)) wrong.push(`name of ${name}`);
        }
        const boxes = [...v.overlay.querySelectorAll("g.folded rect")].map((r) =>
          ["x", "y", "width", "height"].map((k) => Number(r.getAttribute(k))));
        for (const head of v.overlay.querySelectorAll("path.entry")) {
          const [x, y] = head.getAttribute("d").slice(1).split("L")[0].split(",").map(Number);
          const onBorder = boxes.some(([bx, by, w, h]) =>
            x > bx - 1.5 && x < bx + w + 1.5 && y > by - 1.5 && y < by + h + 1.5 &&
            Math.min(Math.abs(x - bx), Math.abs(x - bx - w), Math.abs(y - by),
                     Math.abs(y - by - h)) < 1.5);
          if (!onBorder) wrong.push(`arrowhead at ${x},${y}`);
        }
        for (const g of v.overlay.querySelectorAll("g.folded")) {
          const box = g.querySelector("rect").getBoundingClientRect();
          const lines = [...g.querySelectorAll("text")].map((line) => line.getBoundingClientRect());
          for (const [i, r] of lines.entries()) {
            if (r.left < box.left - 1 || r.right > box.right + 1) {
              wrong.push(`${g.querySelectorAll("text")[i].textContent} wider than its box`);
            }
          }
          // Its margins above and below the text are a fraction of a line each.
          const text = lines[lines.length - 1].bottom - lines[0].top;
          if (box.height > 1.4 * text) wrong.push(`${g.dataset.key} taller than its text`);
        }
        return [...new Set(wrong)];""", view)


def test_a_module_box_folds_on_a_click_and_opens_again(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    data = browser.execute_script("return data")["views"]["forward"]
    (name,) = [c for c, info in data["clusters"].items() if info["path"] == "decoder.layers.0"]
    inside = [i for i, n in data["nodes"].items() if name in n["boxes"]]
    depth = Select(browser.find_element(By.ID, "depth"))
    assert [o.text for o in depth.options] == ["no modules", "modules 1 level down"] + [
        f"modules {n} levels down" for n in (2, 3, 4)]
    assert depth.first_selected_option.text == "no modules"
    before = graph_height(browser)
    browser.execute_script("showBox(views.forward, views.forward.boxes[arguments[0]])", name)
    box = browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{name}"] > polygon'
                               ).rect
    top, middle = box["y"], box["x"] + box["width"] / 2
    browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{name}"] > text').click()

    folded = browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]')
    info = data["clusters"][name]
    assert folded.text.splitlines() == ["decoder.layers.0: DecoderLayer",
                                        f"{info['params']} params", f"{info['ops']} ops",
                                        "click to open"]
    actions(browser).move_to_element(folded).perform()
    assert browser.find_element(By.ID, "status").text == \
        "click to open decoder.layers.0: DecoderLayer"
    # Folded where it was: its box stays where the reader was looking.
    # (the middle of its top, where the label clicked was).
    folded_box = folded.find_element(By.TAG_NAME, "rect").rect
    assert folded_box["y"] == pytest.approx(top, abs=1)
    assert folded_box["x"] + folded_box["width"] / 2 == pytest.approx(middle, abs=1)
    # The arrows inside it go, those into it end at its border, the rest still join their nodes.
    assert misdrawn(browser) == []
    shown, entering = browser.execute_script(
        "const v = views.forward, shown = v.edges.filter(e => !e.el.classList.contains('gone'));"
        "return [shown.filter(e => v.rep[e.from] && v.rep[e.from] === v.rep[e.to]).length, "
        "shown.filter(e => v.rep[e.to] && !v.rep[e.from]).length]")
    assert shown == 0 and entering > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "path.entry")) == entering
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
    # Its parameters go with it, each drawn in the box of its module: the tied weight too,
    # its arrow to the head leaving the folded box.
    titles = {data["nodes"][i]["title"] for i in hidden}
    assert {"embed.pos.embedding.weight", "embed.tok.weight"} <= titles
    # Finding a node hidden in a fold opens the fold.
    search = browser.find_element(By.ID, "search")
    search.send_keys("embed.pos.embedding.weight\n")
    assert matches(browser)[1] is None                  # Enter closes the list
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert "gone" not in browser.find_element(By.CSS_SELECTOR, "g.node.selected").get_attribute(
        "class")
    search.send_keys(Keys.ESCAPE)
    browser.find_element(By.ID, "unfold").click()

    browser.find_element(By.ID, "fold-repeats").click()
    # The view fits the folded graph, not the unfolded one's size, where it would be a speck.
    shown, graph = browser.execute_script(
        "const v = views.forward, a = v.viewBox, b = contentBox(v); "
        "return [[a.width, a.height], [b.width, b.height]]")
    assert shown == pytest.approx(graph)
    (stack,) = browser.find_elements(By.CSS_SELECTOR, "g.folded")
    assert stack.get_attribute("data-key") == "r:decoder.layers"
    assert stack.text.splitlines()[:3] == ["decoder.layers: DecoderLayer x 2", "1,744 params",
                                           "40 ops"]
    repeats = browser.find_element(By.ID, "fold-repeats")
    assert repeats.get_attribute("aria-pressed") == "true"
    assert misdrawn(browser) == []
    # Finding a node in the stack opens it.
    search.send_keys("decoder.layers.1.attn.q.weight\n")
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert "gone" not in browser.find_element(By.CSS_SELECTOR, "g.node.selected").get_attribute(
        "class")
    assert repeats.get_attribute("aria-pressed") == "false"
    repeats.click()
    repeats.click()                                     # a second click opens the stack again
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert repeats.get_attribute("aria-pressed") == "false"

    depth.select_by_value("2")                          # every block, one by one
    assert {g.get_attribute("data-key") for g in browser.find_elements(
        By.CSS_SELECTOR, "g.folded")} == {f"c:{c}" for c, i in data["clusters"].items()
                                          if i["level"] == 2}
    assert misdrawn(browser) == []
    # Each view has its own folds: the menu says the shown one's.
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="backward"]').click()
    assert depth.first_selected_option.text == "no modules"
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    assert depth.first_selected_option.text == "modules 2 levels down"
    browser.find_element(By.ID, "unfold").click()
    assert depth.first_selected_option.text == "no modules"
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert chromium.errors(browser) == []


def under_folded_boxes(browser, view):
    """The nodes still shown that a folded box covers (where a click would open the box)."""
    return browser.execute_script("""
        const v = views[arguments[0]], covered = [];
        const boxes = [...v.overlay.querySelectorAll("g.folded")].map((g) =>
          [g.dataset.key, g.querySelector("rect").getBoundingClientRect()]);
        for (const [id, g] of Object.entries(v.nodes)) {
          if (g.classList.contains("gone")) continue;
          const r = g.getBoundingClientRect();
          for (const [key, f] of boxes) {
            const x = Math.min(r.right, f.right) - Math.max(r.left, f.left);
            const y = Math.min(r.bottom, f.bottom) - Math.max(r.top, f.top);
            if (x > 1 && y > 1) covered.push(`${v.info.nodes[id].title} under ${key}`);
          }
        }
        return covered;""", view)


class Stream(ta.nn.Module):
    """A stack of blocks joined by a residual stream that the root runs between them."""

    def __init__(self):
        self.blocks = ta.nn.ModuleList([ta.nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x).tanh()          # the tanh and the add: the root's, between blocks
        return x


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    ta.manual_seed(0)
    model = Stream()
    with viz.record(model):
        loss = (model(ta.Tensor(np.ones((2, 4)))) ** 2).mean()
    path = tmp_path_factory.mktemp("pages") / "stream.html"
    viz.graph_page(loss, params=model).save(path)
    return path


def test_the_status_line_says_what_is_under_the_mouse_after_a_click_folds_or_opens(browser,
                                                                                   gpt):
    # It kept what it said before the click: "click to fold" a box now folded, and "click to
    # open" a box now open, until the mouse moved again.
    _, _, path = gpt
    open_clean(browser, path)
    data = browser.execute_script("return data")["views"]["forward"]
    (name,) = [c for c, info in data["clusters"].items() if info["path"] == "decoder.layers.0"]
    browser.execute_script("showBox(views.forward, views.forward.boxes[arguments[0]])", name)
    label = browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{name}"] > text')
    actions(browser).move_to_element(label).perform()
    status = browser.find_element(By.ID, "status")
    assert status.text == "click to fold decoder.layers.0: DecoderLayer into one box"
    actions(browser).click().perform()                        # where the mouse is
    folded = browser.find_element(By.CSS_SELECTOR, f'g.folded[data-key="c:{name}"]')
    assert not status.text.startswith("click to fold decoder.layers.0:"), status.text
    actions(browser).move_to_element(folded).perform()
    assert status.text == "click to open decoder.layers.0: DecoderLayer"
    actions(browser).click().perform()
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    assert not status.text.startswith("click to open"), status.text
    assert chromium.errors(browser) == []


def test_a_folded_stack_of_blocks_hides_what_lies_between_its_blocks(browser, stream):
    # In the backward graph the root's ops between the blocks (the tanh's backward, the sums of
    # the stream's gradients) sit in no block: the stack's box, from the first block to the
    # last, would lie over them.
    open_clean(browser, stream)
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="backward"]').click()
    data = browser.execute_script("return data")["views"]["backward"]
    (repeat,) = data["repeats"]
    browser.find_element(By.ID, "fold-repeats").click()
    (stack,) = browser.find_elements(By.CSS_SELECTOR, "g.folded")
    assert under_folded_boxes(browser, "backward") == []
    hidden = browser.execute_script(
        "return [...document.querySelectorAll('#svg-backward g.node.gone')].map(g => g.dataset.id)")
    between = [i for i in hidden if "op" in data["nodes"][i]
               and not set(data["nodes"][i]["boxes"]) & set(repeat["items"])]
    assert {data["nodes"][i]["op"] for i in between} >= {"add", "mul"}
    assert stack.text.splitlines()[2:4] == [f"{repeat['ops']} ops",
                                            f"and {len(between)} ops between them"]
    # Showing a node hidden between the blocks (as finding it does) opens the stack.
    browser.execute_script("reveal(views.backward, arguments[0])", between[0])
    assert browser.find_elements(By.CSS_SELECTOR, "g.folded") == []
    Select(browser.find_element(By.ID, "depth")).select_by_value("1")      # each block
    assert under_folded_boxes(browser, "backward") == []
    browser.find_element(By.ID, "unfold").click()
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    assert chromium.errors(browser) == []


def test_a_gpts_folded_blocks_hold_their_residual_sums(browser, gpt):
    # A block's residual sums belong to the block that made the tensor they sum for: folded,
    # the stack has nothing between its blocks, and no folded box covers a node.
    _, _, path = gpt
    open_clean(browser, path)
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="backward"]').click()
    browser.find_element(By.ID, "fold-repeats").click()
    (stack,) = browser.find_elements(By.CSS_SELECTOR, "g.folded")
    assert "between them" not in stack.text
    for depth in ("1", "2", "3"):
        Select(browser.find_element(By.ID, "depth")).select_by_value(depth)
        assert under_folded_boxes(browser, "backward") == [], depth
    browser.find_element(By.ID, "unfold").click()
    browser.find_element(By.CSS_SELECTOR, '.views button[data-view="forward"]').click()
    assert chromium.errors(browser) == []


@pytest.fixture(scope="module")
def gpt_backward(tmp_path_factory):
    """The page that opens on a GPT's backward graph with its blocks folded (--depth 2): graphviz
    drew each block's backward with its branches side by side, much wider than its label. The
    model, its loss (no backward run) and the page's path."""
    ta.manual_seed(0)
    with viz.record():
        model = GPT(vocab_size=11, context=8, n_layer=2, n_head=2, d_model=8)
        step = language_modelling(model, np.random.default_rng(1).integers(0, 11, (2, 7)))
    path = tmp_path_factory.mktemp("pages") / "backward.html"
    viz.graph_page(step.loss, params=model, view="backward", depth=2).save(path)
    return model, step.loss, path


def folded_sizes(browser):
    """Each folded box shown: its width and height as drawn now, its widest line of text, and
    the width graphviz gave the open module."""
    return browser.execute_script("""
        const v = views[current];
        return [...v.overlay.querySelectorAll("g.folded")].map((g) => {
          const rect = g.querySelector("rect");
          return {key: g.dataset.key, width: +rect.getAttribute("width"),
                  height: +rect.getAttribute("height"), open: foldedBox(v, g.dataset.key).width,
                  text: Math.max(...[...g.querySelectorAll("text")].map(
                    (t) => t.getComputedTextLength()))};
        });""")


def node_places(browser):
    """Where each node of the view shown is drawn, in the graph's coordinates: node id -> x, y
    (a tuple, which pytest.approx compares)."""
    places = browser.execute_script("""
        const v = views[current], places = {};
        for (const [id, g] of Object.entries(v.nodes)) {
          const m = g.transform.baseVal.consolidate()?.matrix, box = v.nodeBox[id];
          places[id] = [box.x + (m ? m.e : 0), box.y + (m ? m.f : 0)];
        }
        return places;""")
    return {i: tuple(place) for i, place in places.items()}


def test_a_folded_box_is_as_big_as_its_label_and_the_graph_closes_up_around_it(browser,
                                                                                gpt_backward):
    _, _, path = gpt_backward
    open_clean(browser, path)
    sizes = folded_sizes(browser)
    assert len(sizes) >= 3
    for size in sizes:
        # Its label fits in it, with little to spare, however wide the open module was.
        assert size["text"] <= size["width"] < 2.6 * size["text"], size
    assert max(s["open"] for s in sizes) > 2.5 * max(s["width"] for s in sizes)
    # The nodes beside the widest block, across the flow, move in by at least the room it gave
    # back on their side; the graph as shown is much narrower than graphviz drew it.
    widest = max(sizes, key=lambda s: s["open"])
    moved_in = browser.execute_script("""
        const v = views.backward, drawn = foldedBox(v, arguments[0]), now = moved(v, drawn);
        const beside = Object.keys(v.nodes).filter((id) => !v.rep[id] &&
          v.nodeBox[id].x >= drawn.x + drawn.width);
        return [beside.length, Math.min(...beside.map((id) => v.nodeBox[id].x - boxOf(v, id).x)),
                (drawn.x + drawn.width) - (now.x + now.width)];""", widest["key"])
    count, least, right_side_given_back = moved_in
    assert count > 0 and right_side_given_back > 0.25 * widest["open"]
    assert least > right_side_given_back - 1
    shown, drawn = browser.execute_script(
        "const v = views.backward; return [contentBox(v).width, v.extent.width]")
    assert shown < 0.5 * drawn
    # The room beyond everything shown goes too: no arrow between folded boxes loops out of the
    # fitted view round where the open modules were (by 910 units when it stayed).
    beyond = browser.execute_script("""
        const v = views.backward, c = contentBox(v), t = graphTransform(v), out = [];
        for (const p of document.querySelectorAll('#svg-backward g.edge path')) {
          const b = p.getBBox(), x = b.x + t.e, y = b.y + t.f;
          out.push(Math.max(c.x - x, x + b.width - c.x - c.width,
                            c.y - y, y + b.height - c.y - c.height));
        }
        return out;""")
    assert len(beyond) > 10 and max(beyond) < 24
    assert under_folded_boxes(browser, "backward") == []
    assert chromium.errors(browser) == []


def test_a_folded_box_beside_shown_nodes_is_as_tall_as_its_label_and_arrows_meet_it(
        browser, gpt_backward):
    # What is shown beside a folded module holds the room it took open (one keeps a room
    # more than twice its label's height): the box was drawn as big as the room, mostly empty,
    # and shrinking it alone would leave the arrows into it ending in the empty room.
    _, _, path = gpt_backward
    open_clean(browser, path)
    assert misdrawn(browser, "backward") == []
    browser.find_element(By.ID, "fit").click()          # every arrow in the view, detours too
    assert browser.execute_script("""
        const v = views.backward, view = v.svg.getBoundingClientRect();
        return v.edges.filter((e) => !e.el.classList.contains("gone")).map((e) =>
          e.el.querySelector("path").getBoundingClientRect()).filter((r) => r.left < view.left
          || r.right > view.right || r.top < view.top || r.bottom > view.bottom).length""") == 0
    rooms = browser.execute_script(
        "const v = views.backward; return [...v.overlay.querySelectorAll('g.folded')].map((g) =>"
        " moved(v, foldedBox(v, g.dataset.key)).height / foldedLabel(v, g.dataset.key).height)")
    assert max(rooms) > 2
    Select(browser.find_element(By.ID, "depth")).select_by_value("3")
    assert misdrawn(browser, "backward") == []
    # A module folded by a click, beside the open ones.
    browser.find_element(By.ID, "unfold").click()
    data = browser.execute_script("return data")["views"]["backward"]
    (embed,) = [c for c, info in data["clusters"].items() if info["path"] == "embed.pos"]
    browser.execute_script("showBox(views.backward, views.backward.boxes[arguments[0]])", embed)
    browser.find_element(By.CSS_SELECTOR, f'g.cluster[data-cluster="{embed}"] > text').click()
    assert browser.find_elements(By.CSS_SELECTOR, f'g.folded[data-key="c:{embed}"]')
    browser.find_element(By.ID, "fit").click()          # the zoom misdrawn's margins are for
    assert misdrawn(browser, "backward") == []
    assert chromium.errors(browser) == []


def test_with_gradient_flow_a_folded_box_is_coloured_as_the_picture_colours_its_module(
        browser, gpt, tmp_path):
    # The page's folded boxes were all pale orange, colours off the gradient's scale: folding
    # a module (--flow --depth 2) hid the gradient norms the picture colours it by.
    model, loss, _ = gpt                                # its gradients kept, as --flow keeps them
    flow = dict(color_by_grad=True, grad_range=(1e-4, 1e2), depth=2)
    path = viz.graph_page(loss, params=model, **flow).save(tmp_path / "flow.html")
    line = next(line for line in viz.draw_graph(loss, params=model, **flow).source
                .splitlines() if "<B>decoder.layers.0</B>" in line)
    fill = re.search(r'fillcolor="(#\w+)"', line)[1]
    norm = re.search(r"largest grad norm \S+<", line)[0]
    open_clean(browser, path)
    box = browser.find_element(By.CSS_SELECTOR,
                               'g.folded[aria-label="open decoder.layers.0: DecoderLayer"]')
    rgb = box.find_element(By.TAG_NAME, "rect").value_of_css_property("fill")
    assert rgb == "rgb({}, {}, {})".format(*bytes.fromhex(fill[1:]))
    assert norm[:-1] in box.text.splitlines()
    assert chromium.errors(browser) == []


class SqrtAtZero(ta.nn.Module):
    """sqrt at 0: a finite value, but an infinite derivative times the zero in front of it,
    NaN gradients below it."""

    def __init__(self):
        self.lin = ta.nn.Linear(3, 3)

    def forward(self, x):
        return (self.lin(x) * 0.0).sqrt() + x


class NaNInside(ta.nn.Module):
    """NaN and infinite gradients in `inner`, none in `out`."""

    def __init__(self):
        self.inner = SqrtAtZero()
        self.out = ta.nn.Linear(3, 1)

    def forward(self, x):
        return self.out(self.inner(x)).sum()


def test_a_folded_box_shows_the_nan_hidden_in_it(browser, tmp_path):
    # A folded box said nothing of the NaN gradients inside it, and with gradient flow took
    # the colour of the largest finite norm, where the picture's folded module is red.
    ta.manual_seed(0)
    model = NaNInside()
    with viz.record(model):
        loss = model(ta.Tensor(np.array([[1.0, -2.0, 3.0]])))
    flow = dict(params=model, depth=1, color_by_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        viz.retain_grads(loss)
        loss.backward(retain_graph=True)
        path = viz.graph_page(loss, **flow).save(tmp_path / "flow.html")
        picture = viz.draw_graph(loss, **flow).source
    red = viz.graph.NAN_COLOUR
    assert f'fillcolor="{red}"' in picture and "largest grad norm nan" in picture
    assert "<B>4 gradients with NaN or inf</B>" in picture          # as the box says below
    open_clean(browser, path)
    box = browser.find_element(By.CSS_SELECTOR, 'g.folded[aria-label="open inner: SqrtAtZero"]')
    assert "nonfinite" in box.get_attribute("class")
    fill = box.find_element(By.TAG_NAME, "rect").value_of_css_property("fill")
    assert fill == "rgb({}, {}, {})".format(*bytes.fromhex(red[1:]))
    # the weight's, the bias's and the linear's gradients (NaN), the mul's (infinite)
    assert box.text.splitlines()[-3:-1] == ["largest grad norm nan",
                                            "4 gradients with NaN or inf"]
    finite = browser.find_element(By.CSS_SELECTOR, 'g.folded[aria-label="open out: Linear"]')
    assert "nonfinite" not in finite.get_attribute("class") and "NaN" not in finite.text
    assert chromium.errors(browser) == []


def folded_lines(browser, label):
    """Of the folded box `label` (its aria-label) in the view shown: its classes, its lines and
    those of them drawn red."""
    return browser.execute_script("""
        const g = views[current].overlay.querySelector(
          `g.folded[aria-label="${CSS.escape(arguments[0])}"]`);
        const texts = [...g.querySelectorAll("text")];
        return [g.getAttribute("class"), texts.map((t) => t.textContent),
                texts.filter((t) => t.classList.contains("alarm")).map((t) => t.textContent)];
        """, label)


def test_a_gpts_folded_block_says_its_masks_infinities_plainly(browser, gpt_backward):
    # Attention's backward recomputes its weights, -inf where the causal mask blocks a key:
    # each folded block of a healthy GPT was a red alarm, "2 values with NaN or inf".
    model, loss, path = gpt_backward                    # its page: the backward, --depth 2
    picture = viz.draw_backward(loss, show_data=True, params=model, depth=2).source
    open_clean(browser, path)
    classes, lines, red = folded_lines(browser, "open decoder.layers.0: DecoderLayer")
    said = "2 values with ±inf (masks use -inf)"
    assert said in lines and red == [] and "nonfinite" not in classes
    # as the picture's folded block says it, in its plain lines
    assert f'<FONT POINT-SIZE="10">{said}</FONT>' in picture and NAN_COLOUR not in picture
    assert chromium.errors(browser) == []


class NaNWeight(ta.nn.Module):
    """A linear whose weight holds a NaN: every value after it is NaN."""

    def __init__(self):
        self.inner = ta.nn.Linear(3, 3)
        self.inner.weight.data[0, 0] = np.nan
        self.out = ta.nn.Linear(3, 1)

    def forward(self, x):
        return self.out(self.inner(x)).sum()


class InfiniteSlope(ta.nn.Module):
    """sqrt of a parameter at 0: a finite value, an infinite gradient and no NaN."""

    def __init__(self):
        self.scale = ta.nn.Parameter(np.array([0.0, 1.0]))

    def forward(self):
        return (self.scale * 1.0).sqrt()


class InfiniteInside(ta.nn.Module):
    def __init__(self):
        self.inner = InfiniteSlope()

    def forward(self):
        return self.inner().sum()


def test_a_folded_box_still_raises_the_alarm_for_a_nan_value_or_an_infinite_gradient(
        browser, tmp_path):
    ta.manual_seed(0)
    model = NaNWeight()
    with viz.record(model):
        loss = model(ta.Tensor(np.array([[1.0, -2.0, 3.0]])))
    path = viz.graph_page(loss, params=model, depth=1).save(tmp_path / "nan.html")
    picture = viz.draw_graph(loss, params=model, depth=1, show_data=True).source
    open_clean(browser, path)
    classes, _, red = folded_lines(browser, "open inner: Linear")
    # its weight and the linear op's output, as the picture says it
    assert red == ["2 values with NaN"] and "nonfinite" in classes
    assert "<B>2 values with NaN</B>" in picture

    # In the backward graph a node's value is the gradient it computes: an infinity in it is
    # a fault (it was counted a value, which holding an infinity is none).
    model = InfiniteInside()
    with viz.record(model):
        loss = model()
    with np.errstate(divide="ignore"):
        path = viz.graph_page(loss, params=model, depth=1, view="backward").save(
            tmp_path / "inf.html")
        picture = viz.draw_backward(loss, params=model, depth=1, show_data=True).source
    open_clean(browser, path)
    classes, lines, red = folded_lines(browser, "open inner: InfiniteSlope")
    # the sqrt's backward and the mul's, dL/dscale (computed by the mul's) counted once: as
    # the picture counts them
    assert red == ["2 gradients with NaN or inf"] and "nonfinite" in classes
    assert not any("value" in line for line in lines)
    assert "<B>2 gradients with NaN or inf</B>" in picture
    assert chromium.errors(browser) == []


def test_folding_moves_nodes_both_ways_and_opening_puts_every_node_back(browser, gpt_backward):
    _, _, path = gpt_backward
    open_clean(browser, path)
    browser.find_element(By.ID, "unfold").click()
    drawn = node_places(browser)
    graphviz = browser.execute_script("return views.backward.nodeBox")
    assert drawn == {i: (b["x"], b["y"]) for i, b in graphviz.items()}
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#svg-backward g.cluster text')]"
        ".map((t) => [t.getAttribute('x'), t.getAttribute('y')])")
    Select(browser.find_element(By.ID, "depth")).select_by_value("2")
    folded = node_places(browser)
    shown = browser.execute_script(             # in one call: a call a node took a second
        "return arguments[0].filter((i) => !views.backward.rep[i])", list(drawn))
    # Folded, the nodes still shown move along the flow and across it.
    assert any(abs(folded[i][0] - drawn[i][0]) > 50 for i in shown)
    assert any(abs(folded[i][1] - drawn[i][1]) > 50 for i in shown)
    # Opened one by one (each click keeps the box clicked in place), every node, box label and
    # arrow is back where graphviz drew it.
    while browser.find_elements(By.CSS_SELECTOR, "#svg-backward g.folded"):
        browser.execute_script("unfold(views.backward, arguments[0])", browser.find_element(
            By.CSS_SELECTOR, "#svg-backward g.folded").get_attribute("data-key"))
    assert node_places(browser) == drawn
    assert browser.execute_script(
        "return [...document.querySelectorAll('#svg-backward g.cluster text')]"
        ".map((t) => [t.getAttribute('x'), t.getAttribute('y')])") == labels
    assert browser.execute_script(
        "return views.backward.drawn.filter(({el, attr, original}) => "
        "attr !== 'points' && attr !== 'd' && +el.getAttribute(attr) !== +original).length") == 0
    assert chromium.errors(browser) == []


def test_the_folded_page_opens_with_its_node_labels_big_enough_to_read(browser, gpt_backward):
    # The view fits the graph as folded, not the room graphviz gave the open modules: a node's
    # name (graphviz's 14 points) comes out a readable size in the 1400 x 900 window.
    _, _, path = gpt_backward
    open_clean(browser, path)
    scale = browser.execute_script("return views.backward.svg.getScreenCTM().a")
    assert 14 * scale >= 4.5
    assert view_box(browser) == pytest.approx(browser.execute_script(
        "const b = contentBox(views.backward); return [b.x, b.y, b.width, b.height]"))


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


def test_in_a_low_window_the_page_scrolls_to_a_picture_and_panel_of_their_own(browser, gpt):
    # A laptop's 1280 x 1024 at 400% zoom: the toolbar, wrapped to eight lines, took all the
    # window's height, and the picture, in a page that did not scroll, had none left.
    _, _, path = gpt
    open_clean(browser, path)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 320, "height": 256, "deviceScaleFactor": 4,
                             "mobile": False})
    try:
        heights = browser.execute_script("""
            const height = (id) => document.getElementById(id).getBoundingClientRect().height;
            return {picture: height("canvas"), panel: height("panel"),
                    page: document.documentElement.scrollHeight,
                    bottom: document.getElementById("status").getBoundingClientRect().bottom,
                    window: innerHeight};""")
        assert heights["picture"] > heights["window"] / 3 and heights["panel"] > 40
        assert heights["page"] >= heights["bottom"] > heights["window"]    # it scrolls to it
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_a_printed_graph_page_is_its_title_and_the_picture_shown(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        shown = browser.execute_script("""
            const shown = (e) => e.getClientRects().length > 0;
            return {
              controls: [...document.querySelectorAll("header > :not(h1)")].filter(shown).length,
              title: shown(document.querySelector("h1")),
              status: shown(document.getElementById("status")),
              hint: shown(document.querySelector("#panel .hint")),
              picture: document.querySelector(".picture:not(.inactive) svg")
                .getBoundingClientRect().height,
              other: shown(document.querySelector(".picture.inactive")),
              page: [document.body.scrollHeight, innerHeight],
            };""")
        assert shown["controls"] == 0 and shown["title"]
        assert not shown["status"] and not shown["hint"] and not shown["other"]
        # the picture fills the page; the page grows past the window rather than clip
        assert shown["picture"] > 0.8 * shown["page"][1]
        assert shown["page"][0] >= shown["picture"]
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def accessibility_tree(browser):
    """Chromium's accessibility tree, as a screen reader reads it: id -> node."""
    nodes = browser.execute_cdp_cmd("Accessibility.getFullAXTree", {})["nodes"]
    return {n["nodeId"]: n for n in nodes}


def within(tree, node):
    """The nodes under `node` in the accessibility tree."""
    found, stack = [], list(node.get("childIds", []))
    while stack:
        found.append(tree[stack.pop()])
        stack.extend(found[-1].get("childIds", []))
    return found


def ax(node, field):
    return node.get(field, {}).get("value")


def test_a_screen_reader_hears_the_pictures_name_its_nodes_and_the_status(browser, gpt):
    _, _, path = gpt
    open_clean(browser, path)
    tree = accessibility_tree(browser)
    (picture,) = [n for n in tree.values() if ax(n, "name") == "the forward graph"]
    # its nodes are still buttons to a screen reader (a role="img" would make them pictures)
    assert ax(picture, "role") == "group"
    assert any(ax(n, "role") == "button" and not n.get("ignored")
               for n in within(tree, picture))
    # and what the keys do inside it
    assert "Home" in ax(picture, "description")
    # what the status line says (the number of matches) is read out when it changes
    browser.find_element(By.ID, "search").send_keys("linear")
    status = browser.find_element(By.ID, "status").text
    assert status.endswith("matches")
    tree = accessibility_tree(browser)
    polite = [n for n in tree.values()
              if {p["name"]: p["value"].get("value") for p in n.get("properties", [])}
              .get("live") == "polite"]
    assert status in [ax(n, "name") for live in polite for n in within(tree, live)]
    browser.find_element(By.ID, "search").clear()


# ------------------------------------------------------------------------------ attention


def hover_cell(browser, canvas, i, j):
    """Move the mouse over cell (query i, key j) of the heatmap; the tooltip's text."""
    left, top, cell, width, height = browser.execute_script(   # where its cells lie, one call
        "const c = arguments[0], box = c.getBoundingClientRect(); "
        "return [+c.dataset.left, +c.dataset.top, +c.dataset.cell, box.width, box.height]",
        canvas)
    actions(browser).move_to_element_with_offset(
        canvas, int(left + (j + 0.5) * cell - width / 2),
        int(top + (i + 0.5) * cell - height / 2)).perform()
    return browser.find_element(By.ID, "tooltip").text


def pixel(browser, canvas, x, y):
    """The colour [r, g, b] of the pixel at (x, y) of a canvas, in CSS pixels."""
    return browser.execute_script(
        "const r = window.devicePixelRatio || 1; return [...arguments[0].getContext('2d')"
        ".getImageData(arguments[1] * r, arguments[2] * r, 1, 1).data].slice(0, 3)",
        canvas, x, y)


def labelled(browser, canvas):
    """Which rows have a label left of the heatmap, and which columns one above it: where a
    band of the canvas beside the cells has ink."""
    return browser.execute_script("""
        const c = arguments[0], {left, top, cell} = c.dataset, r = window.devicePixelRatio || 1;
        const [x0, y0, size] = [Number(left), Number(top), Number(cell)];
        const inked = (x, y, w, h) => c.getContext('2d').getImageData(x * r, y * r, w * r, h * r)
          .data.some((v, i) => i % 4 < 3 && v < 128);
        const rows = Math.round((c.height / r - y0 - 10) / size);
        const cols = Math.round((c.width / r - x0 - 10) / size);
        const row = (i) => inked(0, y0 + i * size + 2, x0 - 4, size - 4);
        const column = (j) => inked(x0 + j * size + 2, 0, size - 4, y0 - 2);
        return [[...Array(rows).keys()].filter(row), [...Array(cols).keys()].filter(column)];
        """, canvas)


def chosen(browser):
    return [(int(f.get_attribute("data-layer")), int(f.get_attribute("data-head")))
            for f in browser.find_elements(By.CSS_SELECTOR, "#grid figure.chosen")]


def test_the_attention_page_switches_maps_and_heads_and_reads_a_weight(browser, tmp_path):
    maps = synthetic_maps(np.random.default_rng(0))
    decoder = maps["decoder"]                        # and a map of fewer layers and heads
    maps["small"] = AttentionMap(decoder.weights[:1, :2], decoder.queries, decoder.keys, "small")
    path = viz.attention_page(maps, "a seq2seq run").save(tmp_path / "attention.html")
    open_clean(browser, path)
    assert browser.find_element(By.ID, "focus-title").text == "layer 1, head 1"
    Select(browser.find_element(By.ID, "map")).select_by_value("decoder")
    browser.find_element(By.CSS_SELECTOR, '#grid figure[data-layer="1"][data-head="2"]').click()
    # Counted from 1, as the lens and the course count layers: this is the second layer.
    assert browser.find_element(By.ID, "focus-title").text == "layer 2, head 3"
    assert Select(browser.find_element(By.ID, "head")).first_selected_option.text == "head 3"
    assert chosen(browser) == [(1, 2)]
    figure = browser.find_element(By.CSS_SELECTOR, '#grid figure[data-layer="0"][data-head="0"]')
    assert figure.text == "L1 H1" and figure.get_attribute("title") == "layer 1, head 1"
    # The model view: a row of heads for each layer.
    rows = {}
    for y, layer in browser.execute_script(     # each head's figure: its top and its layer
            "return [...document.querySelectorAll('#grid figure')]"
            ".map((f) => [f.getBoundingClientRect().y, +f.dataset.layer])"):
        rows.setdefault(y, []).append(layer)
    assert sorted(rows.values()) == [[0, 0, 0], [1, 1, 1]]
    thumbnail = figure.find_element(By.TAG_NAME, "canvas")         # its future keys blocked
    assert pixel(browser, thumbnail, thumbnail.size["width"] - 1, 0) == [255, 255, 255]
    assert browser.find_element(By.ID, "description").text == "decoder masked self"
    canvas = browser.find_element(By.ID, "heatmap")
    assert labelled(browser, canvas) == [[0, 1, 2], [0, 1, 2]]    # every token, on both axes
    text = hover_cell(browser, canvas, 2, 1)
    weight = maps["decoder"].weights[1, 2, 2, 1]
    assert text.splitlines() == ["query 2 y", "key 1 x", f"weight {weight:.4f}"]
    # Its colour is the PNG's: viridis at the weight's square root.
    left, top, cell = (float(canvas.get_attribute(f"data-{k}")) for k in ("left", "top", "cell"))
    colour = viridis(np.sqrt(weight))
    assert pixel(browser, canvas, left + 1.5 * cell, top + 2.5 * cell) == pytest.approx(
        [int(colour[i:i + 2], 16) for i in (1, 3, 5)], abs=2)
    red = pixel(browser, canvas, left + 1.5 * cell, top + 2 * cell)   # the hovered outline
    # A token is written as text ("<bos>" is no HTML tag), the future is blocked.
    assert hover_cell(browser, canvas, 0, 2).splitlines() == ["query 0 <bos>", "key 2 y",
                                                              "blocked by the mask"]
    assert pixel(browser, canvas, left + 1.5 * cell, top + 2 * cell) != red   # one outline
    # Off the cells (in the margin left of them, just below the last row, off the map) the
    # tooltip goes.
    assert hover_cell(browser, canvas, 1, -1) == hover_cell(browser, canvas, 2.6, 0) == ""
    hover_cell(browser, canvas, 1, 1)
    actions(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    assert not browser.find_element(By.ID, "tooltip").is_displayed()

    Select(browser.find_element(By.ID, "map")).select_by_value("cross")
    Select(browser.find_element(By.ID, "layer")).select_by_value("0")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#grid figure")) == 2 * 3
    assert chosen(browser) == [(0, 2)]
    thumbnail = browser.find_element(By.CSS_SELECTOR, "#grid figure canvas")   # nothing blocked
    assert pixel(browser, thumbnail, thumbnail.size["width"] - 1, 0) != [255, 255, 255]
    text = hover_cell(browser, canvas, 1, 4)
    assert text.splitlines()[:2] == ["query 1 x", "key 4 e"]
    assert text.endswith(f"{maps['cross'].weights[0, 2, 1, 4]:.4f}")
    Select(browser.find_element(By.ID, "head")).select_by_value("1")
    assert browser.find_element(By.ID, "focus-title").text == "layer 1, head 2"
    assert chosen(browser) == [(0, 1)]
    assert hover_cell(browser, canvas, 1, 4).endswith(f"{maps['cross'].weights[0, 1, 1, 4]:.4f}")

    # A map of fewer layers and heads shows its last of each, the nearest to those chosen.
    Select(browser.find_element(By.ID, "layer")).select_by_value("1")
    Select(browser.find_element(By.ID, "head")).select_by_value("2")
    Select(browser.find_element(By.ID, "map")).select_by_value("small")
    assert browser.find_element(By.ID, "focus-title").text == "layer 1, head 2"
    assert len(Select(browser.find_element(By.ID, "head")).options) == 2
    assert chromium.errors(browser) == []


def test_the_attention_page_follows_the_window_into_a_narrow_one(browser, tmp_path):
    # Opened wide, then narrowed: the map and the thumbnails of eight heads both shrink.
    tokens = [f"t{i}" for i in range(40)]                    # a map of 640 px in a wide window
    weights = np.full((1, 8, 40, 40), 1 / 40)
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a long prompt").save(tmp_path / "attention.html")
    size = browser.get_window_size()
    try:
        open_clean(browser, path)
        assert not browser.find_element(By.ID, "map").is_enabled()     # one map: no choice
        # Cells as tall as a line of text: every token has its label, on both axes.
        heatmap = browser.find_element(By.ID, "heatmap")
        assert float(heatmap.get_attribute("data-cell")) >= 13
        assert labelled(browser, heatmap) == [list(range(40))] * 2
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


def test_on_a_laptop_the_model_view_stands_beside_the_map(browser, tmp_path):
    # The words about the map took the width of their one long line, and the model view of a
    # 4-layer, 4-head GPT went under the map, out of sight, beside half a window left empty.
    tokens = list("eve has a red kite. it rained. the kite of eve is ")
    weights = np.tril(np.ones((4, 4, len(tokens), len(tokens))))
    weights /= weights.sum(-1, keepdims=True)
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a GPT").save(tmp_path / "attention.html")
    size = browser.get_window_size()
    browser.set_window_size(1280, 800)
    try:
        open_clean(browser, path)
        heatmap = browser.find_element(By.ID, "heatmap").rect
        grid = browser.find_element(By.ID, "grid").rect
        assert grid["x"] >= heatmap["x"] + heatmap["width"]
        assert grid["y"] < heatmap["y"] + heatmap["height"] / 2
        # A long prompt's map is wide: the thumbnails are sized to the room it leaves them.
        tokens = tokens * 2 + tokens[:27]
        weights = np.tril(np.ones((4, 4, len(tokens), len(tokens))))
        weights /= weights.sum(-1, keepdims=True)
        open_clean(browser, viz.attention_page(
            {"self": AttentionMap(weights, tokens, tokens, "self")}, "a GPT").save(path))
        assert browser.execute_script("return document.documentElement.scrollWidth <= "
                                      "document.documentElement.clientWidth")
    finally:
        browser.set_window_size(size["width"], size["height"])


def outline(browser, element):
    """How the element's outline is drawn: its style, e.g. "dashed" where Tab is on it."""
    return browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", element)


def test_the_attention_page_works_from_the_keyboard(browser, tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.random((2, 2, 4, 4))
    weights /= weights.sum(-1, keepdims=True)
    tokens = ["a", "b", "c", "d"]
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a prompt").save(tmp_path / "attention.html")
    open_clean(browser, path)
    heatmap = browser.find_element(By.ID, "heatmap")
    assert heatmap.get_attribute("role") == "img"
    assert "layer 1, head 1: 4 queries by 4 keys" in heatmap.get_attribute("aria-label")
    # Tab reaches the map, whose arrow keys read one weight after another.
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(6):
        if browser.switch_to.active_element.get_attribute("id") == "heatmap":
            break
        actions(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "heatmap"
    assert outline(browser, heatmap) == "dashed"                 # page.css's, on every page
    actions(browser).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_DOWN,
                                    Keys.ARROW_LEFT).perform()      # the first: (0, 0)
    reading = browser.find_element(By.ID, "reading")
    assert reading.get_attribute("role") == "status"
    # Its lines joined by "; ", as on every page that reads from the keyboard.
    assert reading.text == f"query 1 b; key 0 a; weight {weights[0, 0, 1, 0]:.4f}"
    assert tooltip(browser).splitlines()[-1] == f"weight {weights[0, 0, 1, 0]:.4f}"
    actions(browser).send_keys(Keys.END).perform()          # the row's last key
    assert reading.text == f"query 1 b; key 3 d; weight {weights[0, 0, 1, 3]:.4f}"
    actions(browser).send_keys(Keys.HOME).perform()         # and its first
    assert reading.text == f"query 1 b; key 0 a; weight {weights[0, 0, 1, 0]:.4f}"
    # Leaving the map forgets the cell: back on it, a first Left starts from the row's end.
    actions(browser).send_keys(Keys.TAB).key_down(Keys.SHIFT).send_keys(Keys.TAB) \
        .key_up(Keys.SHIFT).perform()
    assert browser.switch_to.active_element.get_attribute("id") == "heatmap"
    actions(browser).send_keys(Keys.ARROW_LEFT).perform()
    assert reading.text == f"query 0 a; key 3 d; weight {weights[0, 0, 0, 3]:.4f}"
    # Then the thumbnails, each a button: Enter or Space shows its head.
    actions(browser).send_keys(Keys.TAB, Keys.TAB, Keys.ENTER).perform()
    assert browser.find_element(By.ID, "focus-title").text == "layer 1, head 2"
    actions(browser).send_keys(Keys.TAB, Keys.SPACE).perform()
    assert browser.find_element(By.ID, "focus-title").text == "layer 2, head 1"
    assert "layer 2, head 1" in heatmap.get_attribute("aria-label")
    assert browser.switch_to.active_element.get_attribute("aria-label") == "show layer 2, head 1"
    # The one shown is the one pressed, to a screen reader as to the eye (its red border).
    pressed = browser.find_elements(By.CSS_SELECTOR, '#grid figure[aria-pressed="true"]')
    assert [p.get_attribute("aria-label") for p in pressed] == ["show layer 2, head 1"]
    assert len(browser.find_elements(By.CSS_SELECTOR, '#grid figure[aria-pressed="false"]')) == 3
    assert chromium.errors(browser) == []


def test_the_attention_map_fits_a_low_window(browser, tmp_path):
    tokens = [f"t{i}" for i in range(40)]                    # 640 px of cells where room
    weights = np.full((1, 2, 40, 40), 1 / 40)
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a long prompt").save(tmp_path / "attention.html")
    size = browser.get_window_size()
    browser.set_window_size(1280, 720)
    try:
        open_clean(browser, path)
        heatmap = browser.find_element(By.ID, "heatmap").rect
        assert heatmap["y"] + heatmap["height"] <= browser.execute_script(
            "return window.innerHeight")
        assert hover_cell(browser, browser.find_element(By.ID, "heatmap"), 39, 39)  # the last
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_a_laptops_map_of_a_48_character_prompt_labels_every_character(browser, tmp_path):
    # Cells under 13 px had every second label only, and a character-level prompt read as
    # nonsense ("e e h s a r"); smaller labels fit cells of 9 px and more. (Letters without
    # a thin stroke, which an ink test at 10 px might miss.)
    tokens = list("acemnorsuvwxz" * 4)[:48]
    path = viz.attention_page({"self": AttentionMap(np.full((1, 1, 48, 48), 1 / 48), tokens,
                                                    tokens, "self")}, "t").save(
        tmp_path / "attention.html")
    size = browser.get_window_size()
    browser.set_window_size(1280, 800)
    try:
        open_clean(browser, path)
        heatmap = browser.find_element(By.ID, "heatmap")
        assert 9 <= float(heatmap.get_attribute("data-cell")) < 13
        assert labelled(browser, heatmap) == [list(range(48))] * 2
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_thumbnails_are_drawn_a_picture_a_head_not_a_rectangle_a_cell(browser, tmp_path):
    # Each thumbnail was drawn a rectangle a cell: 12 layers x 12 heads of 256 tokens took 11 s
    # to open, and again after each resize of the window. Counted, not timed: a redraw (what a
    # resize runs) may fill fewer rectangles than there are thumbnails.
    rng = np.random.default_rng(0)
    weights = np.tril(rng.random((12, 12, 32, 32)))
    weights /= weights.sum(-1, keepdims=True)
    weights[11, 11] = np.eye(32)                   # each token reads itself only
    tokens = [f"t{i}" for i in range(32)]
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "a long prompt").save(tmp_path / "attention.html")
    open_clean(browser, path)
    browser.execute_script("""
        window.rectangles = 0;
        const fillRect = CanvasRenderingContext2D.prototype.fillRect;
        CanvasRenderingContext2D.prototype.fillRect = function (...args) {
          window.rectangles += 1;
          return fillRect.apply(this, args);
        };
        drawGrid();                                 // what a resize of the window runs
        drawHeatmap();""")
    assert browser.execute_script("return window.rectangles") < 12 * 12
    # Still each cell's colour: the last head's thumbnail, yellow on its diagonal (a weight of
    # 1), white above it (blocked).
    thumbnail = browser.find_elements(By.CSS_SELECTOR, "#grid figure canvas")[-1]
    colour = viridis(1)
    assert pixel(browser, thumbnail, 0, 0) == pytest.approx(
        [int(colour[i:i + 2], 16) for i in (1, 3, 5)], abs=2)
    assert pixel(browser, thumbnail, thumbnail.size["width"] - 1, 0) == [255, 255, 255]


def test_each_cell_and_label_of_an_attention_map_is_drawn_in_its_place(browser, tmp_path):
    # Fewer queries than keys: a map drawn transposed, or labelled in the wrong order, shows.
    rng = np.random.default_rng(1)
    weights = rng.random((1, 1, 3, 5))
    weights /= weights.sum(-1, keepdims=True)
    queries, keys = ["a", "b", "c"], ["v", "w", "x", "y", "z"]
    path = viz.attention_page({"cross": AttentionMap(weights, queries, keys, "cross")},
                              "t").save(tmp_path / "attention.html")
    open_clean(browser, path)
    canvas = browser.find_element(By.ID, "heatmap")
    left, top, cell = (float(canvas.get_attribute(f"data-{k}")) for k in ("left", "top", "cell"))
    for i in range(3):
        for j in range(5):
            colour = viridis(np.sqrt(weights[0, 0, i, j]))
            assert pixel(browser, canvas, left + (j + 0.5) * cell, top + (i + 0.5) * cell) == \
                pytest.approx([int(colour[k:k + 2], 16) for k in (1, 3, 5)], abs=2), (i, j)
    # Where each label is written: a query's beside its row, a key's above its column.
    written = browser.execute_script("""
        const written = {}, fillText = CanvasRenderingContext2D.prototype.fillText;
        CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
          written[text] = [x, y];
          return fillText.call(this, text, x, y, ...rest);
        };
        drawHeatmap();
        CanvasRenderingContext2D.prototype.fillText = fillText;
        return written;""")
    assert [written[q][1] for q in queries] == pytest.approx(
        [top + (i + 0.5) * cell for i in range(3)])
    assert [written[k][0] for k in keys] == pytest.approx(
        [left + (j + 0.5) * cell for j in range(5)])


def test_a_nan_weight_is_drawn_red_and_read_as_nan(browser, tmp_path):
    # NaN weights were cast to integers: the page's script looked up no colour for them and
    # stopped, drawing nothing.
    weights = np.array([[[[np.nan, 0.0], [np.nan, np.nan]]]])
    path = viz.attention_page({"self": AttentionMap(weights, ["a", "b"], ["a", "b"], "self")},
                              "t").save(tmp_path / "attention.html")
    open_clean(browser, path)
    canvas = browser.find_element(By.ID, "heatmap")
    left, top, cell = (float(canvas.get_attribute(f"data-{k}")) for k in ("left", "top", "cell"))
    red = [int(NAN_COLOUR[i:i + 2], 16) for i in (1, 3, 5)]
    assert pixel(browser, canvas, left + 0.5 * cell, top + 1.5 * cell) == red
    assert pixel(browser, canvas, left + 1.5 * cell, top + 0.5 * cell) == [255, 255, 255]
    assert hover_cell(browser, canvas, 1, 0).splitlines()[-1] == "weight NaN"
    assert chromium.errors(browser) == []


def test_a_weight_that_rounds_to_0_or_1_is_read_as_below_or_above_it(browser, tmp_path):
    # The tooltip read 0.0000 for a weight of 1e-6 and 1.0000 for one of 1 - 2e-6: a key the
    # query does read looked ruled out, and a head that reads others too looked sure. As the
    # lens's cells say <1% and >99%, the page says <0.0001 and >0.9999; an exact 1 reads 1.0000.
    weights = np.array([[[[1 - 2e-6, 1e-6, 1e-6], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]]]])
    path = viz.attention_page({"self": AttentionMap(weights, list("abc"), list("abc"), "self")},
                              "t").save(tmp_path / "attention.html")
    open_clean(browser, path)
    canvas = browser.find_element(By.ID, "heatmap")
    read = [[hover_cell(browser, canvas, i, j).splitlines()[-1] for j in range(3)]
            for i in range(3)]
    assert read == [["weight >0.9999", "weight <0.0001", "weight <0.0001"],
                    ["weight 1.0000", "blocked by the mask", "blocked by the mask"],
                    ["weight 0.2500", "weight 0.2500", "weight 0.5000"]]
    assert chromium.errors(browser) == []


def test_one_character_key_labels_stand_upright_emoji_too(browser, tmp_path):
    # The page counted an emoji's two UTF-16 units as two characters and turned its labels on
    # their side, where the PNG (counting as Python does) kept them upright.
    tops = []
    for keys in (["a", "b", "c"], ["\U0001f600", "a", "\U0001f389"]):
        path = viz.attention_page({"self": AttentionMap(np.full((1, 1, 3, 3), 1 / 3), keys, keys,
                                                        "self")}, "t").save(tmp_path / "a.html")
        open_clean(browser, path)
        tops.append(browser.find_element(By.ID, "heatmap").get_attribute("data-top"))
    assert tops[0] == tops[1]


# ------------------------------------------------------------------------------ lens and report


def tooltip(browser):
    """The tooltip's text, or None while it is hidden."""
    shown = browser.find_element(By.ID, "tooltip")
    return shown.text if shown.is_displayed() else None


def test_a_wide_lens_scrolls_in_its_box_and_keeps_its_tokens_in_sight(browser, tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(25, 3))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed"] + [f"layer {i}" for i in range(1, 25)], order,
                np.take_along_axis(probs, order, -1))
    path = viz.lens_page(lens, ["x", "y", "z"], Letters(), "a deep lens").save(
        tmp_path / "lens.html")
    size = browser.get_window_size()
    browser.set_window_size(800, 700)
    try:
        open_clean(browser, path)
        assert browser.execute_script("return document.documentElement.scrollWidth <= "
                                      "document.documentElement.clientWidth")
        scroller = browser.find_element(By.CSS_SELECTOR, ".scroller")
        token = browser.find_element(By.CSS_SELECTOR, "th.token")
        left = token.rect["x"]
        browser.execute_script("arguments[0].scrollLeft = 600", scroller)
        assert browser.execute_script("return arguments[0].scrollLeft", scroller) == 600
        assert token.rect["x"] == pytest.approx(left, abs=2)        # the tokens stay
        hidden = browser.find_element(By.CSS_SELECTOR, 'td[data-t="0"][data-s="2"]').rect
        assert hidden["x"] < left + token.rect["width"]             # the cells go under them
        # The keyboard's cell keeps itself in sight: End, from the first columns, scrolls the
        # box to the last.
        browser.execute_script("arguments[0].scrollLeft = 0", scroller)
        scroller.send_keys(Keys.ARROW_RIGHT, Keys.END)
        cell = browser.find_element(By.CSS_SELECTOR, "td.cursor")
        assert cell.get_attribute("data-s") == "24"
        assert browser.execute_script(
            "const box = arguments[0].getBoundingClientRect(), "
            "cell = arguments[1].getBoundingClientRect(); "
            "return box.left <= cell.left && cell.right <= box.right + 1", scroller, cell)
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_a_printed_lens_is_its_whole_table_in_its_colours(browser, tmp_path):
    # On paper the box that scrolls on screen cut a long table at one window's height, and
    # the browser left out the cells' colours, which are what the table says.
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(3, 60))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1", "layer 2"], order, np.take_along_axis(probs, order, -1))
    path = viz.lens_page(lens, list("abcdef" * 10), Letters(), "a long lens").save(
        tmp_path / "lens.html")
    open_clean(browser, path)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        printed = browser.execute_script("""
            const box = document.querySelector(".scroller"), style = (selector) =>
              getComputedStyle(document.querySelector(selector)).printColorAdjust;
            return {cut: box.scrollHeight - box.clientHeight,
                    taller: box.scrollHeight > innerHeight,
                    cells: style("#lens td"), legend: style(".legend .ramp")};""")
        assert printed["cut"] == 0 and printed["taller"]        # all of it, though past a window
        assert printed["cells"] == printed["legend"] == "exact"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def test_the_lens_page_lists_a_cells_likeliest_tokens(browser, tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(2, 3))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1"], order, np.take_along_axis(probs, order, -1))
    tokens = ["x", "y", "<b>"]                        # a token that looks like HTML
    path = viz.lens_page(lens, tokens, Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    cell = browser.find_element(By.CSS_SELECTOR, 'td[data-t="2"][data-s="1"]')
    assert cell.text.split() == ["abcdefghij"[order[1, 2, 0]],
                                 f"{lens.top_probs[1, 2, 0]:.0%}"]
    actions(browser).move_to_element(cell).perform()
    lines = tooltip(browser).splitlines()
    assert lines[0] == "position 2 (<b>), after layer 1:"        # written as text
    assert [line.split()[-1] for line in lines[1:]] == ["abcdefghij"[i] for i in order[1, 2]]
    assert [float(line.split("%")[0]) for line in lines[1:]] == pytest.approx(
        100 * lens.top_probs[1, 2], abs=0.051)
    # The tooltip stands below and right of the mouse (at the cell's middle), off the cell.
    box, shown = cell.rect, browser.find_element(By.ID, "tooltip").rect
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert shown["x"] == pytest.approx(middle[0] + 14, abs=1)
    assert shown["y"] == pytest.approx(middle[1] + 14, abs=1)
    # Off the cells (outside the table, on a token) it goes.
    actions(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    assert tooltip(browser) is None
    actions(browser).move_to_element(cell).perform()
    actions(browser).move_to_element(browser.find_element(By.CSS_SELECTOR, "th.token")
                                          ).perform()
    assert tooltip(browser) is None
    # Near the window's right and bottom edges it goes left of and above the mouse; wider
    # than the room on either side of it, it starts at the window's left edge, not past it.
    place = ("placeTooltip({clientX: arguments[0], clientY: arguments[1]}); "
             "const r = document.getElementById('tooltip').getBoundingClientRect(); "
             "return [r.left, r.top, r.right, r.bottom]")
    width, height = browser.execute_script("return [innerWidth, innerHeight]")
    _, _, right, bottom = browser.execute_script(place, width - 5, height - 5)
    assert right <= width - 5 - 14 + 1 and bottom <= height - 5 - 14 + 1
    browser.execute_script("document.getElementById('tooltip').textContent = 'w'.repeat(300)")
    assert browser.execute_script(place, width / 2, 100)[0] == 0


def test_a_lens_tooltip_shows_a_probability_near_1_or_0_as_the_cells_do(browser, tmp_path):
    # A 99.96% read "100.0%" in the tooltip, and 0.01% "0.0%": sure, and impossible.
    lens = Lens(["embed"], np.array([[[0, 1, 2, 3]]]),
                np.array([[[0.9996, 0.995, 0.0004, 0.0]]]))          # (states, T=1, k=4)
    path = viz.lens_page(lens, ["x"], Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    cell = browser.find_element(By.CSS_SELECTOR, 'td[data-t="0"][data-s="0"]')
    assert cell.text.split() == ["a", ">99%"]
    actions(browser).move_to_element(cell).perform()
    assert tooltip(browser).splitlines()[1:] == [">99.9%  a", " 99.5%  b", " <0.1%  c",
                                                 "  0.0%  d"]
    # Exactly 1 and 0 read as they are: a sure prediction is 100.0%, not >99.9%.
    assert [percent(p, 1) for p in (1.0, 0.0)] == ["100.0%", "0.0%"]


def test_a_lens_tooltips_percentages_are_the_exact_probabilitys_rounded_once(browser,
                                                                            tmp_path):
    # The script rounded to a tenth the probability the page holds, itself rounded to six
    # digits: float32's 0.002499999 was 0.0025, and read 0.3%, 0.006499999 0.7%.
    probs = np.array([[[0.13499999, 0.002499999, 0.006499999]]], dtype=np.float32)
    lens = Lens(["embed"], np.array([[[0, 1, 2]]]), probs)
    path = viz.lens_page(lens, ["x"], Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    actions(browser).move_to_element(
        browser.find_element(By.CSS_SELECTOR, 'td[data-t="0"][data-s="0"]')).perform()
    assert tooltip(browser).splitlines()[1:] == [
        f"{p:.1%}".rjust(6) + f"  {token}" for p, token in zip(probs[0, 0], "abc")]
    assert tooltip(browser).splitlines()[1:] == [" 13.5%  a", "  0.2%  b", "  0.6%  c"]


def test_a_lens_pages_nan_cell_lists_no_tokens(browser, tmp_path):
    lens = Lens(["embed", "layer 1"], np.array([[[2, 1]], [[0, 1]]]),
                np.array([[[0.7, 0.2]], [[np.nan, np.nan]]]))
    path = viz.lens_page(lens, ["x"], Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    cell = browser.find_element(By.CSS_SELECTOR, 'td[data-t="0"][data-s="1"]')
    assert cell.text == "NaN"
    actions(browser).move_to_element(cell).perform()
    assert tooltip(browser).splitlines() == ["position 0 (x), after layer 1:",
                                             "NaN: no prediction"]
    assert chromium.errors(browser) == []


class Tags:
    """A tokenizer whose tokens look like HTML."""
    def id_to_token(self, i):
        return f"<i>{'abcdefghij'[i]}</td>"

    def id_to_bytes(self, i):
        return self.id_to_token(i).encode()


def test_the_lens_page_reads_a_cells_likeliest_tokens_from_the_keyboard(browser, tmp_path):
    # Its tokens were read by hovering only: the keyboard reached the table, and no cell.
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(3, 4))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1", "layer 2"], order, np.take_along_axis(probs, order, -1))
    path = viz.lens_page(lens, list("wxyz"), Letters(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert "scroller" in browser.switch_to.active_element.get_attribute("class").split()
    assert outline(browser, browser.switch_to.active_element) == "dashed"
    # The first arrow key takes the first cell; then down two rows, right one state.
    actions(browser).send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN, Keys.ARROW_DOWN,
                                    Keys.ARROW_RIGHT).perform()
    reading = browser.find_element(By.ID, "reading")
    assert reading.get_attribute("role") == "status"
    # One sentence: the heading runs on into the likeliest tokens, which "; " parts.
    heading = "position 2 (y), after layer 1: "
    assert reading.text.startswith(heading)
    said = [guess.split() for guess in reading.text[len(heading):].split("; ")]
    assert said == [[f"{100 * probs[1, 2, order[1, 2, r]]:.1f}%", "abcdefghij"[order[1, 2, r]]]
                    for r in range(3)]
    assert tooltip(browser).splitlines()[0] == "position 2 (y), after layer 1:"
    (cell,) = browser.find_elements(By.CSS_SELECTOR, "td.cursor")
    assert (cell.get_attribute("data-t"), cell.get_attribute("data-s")) == ("2", "1")
    actions(browser).send_keys(Keys.END).perform()          # the row's last state
    assert reading.text.startswith("position 2 (y), after layer 2:")
    actions(browser).send_keys(Keys.TAB).perform()          # away: the tooltip goes
    assert tooltip(browser) is None and browser.find_elements(By.CSS_SELECTOR, "td.cursor") == []
    # Leaving forgot the cell: back on the table, a first Up starts from the last row.
    actions(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT) \
        .send_keys(Keys.ARROW_UP).perform()
    assert reading.text.startswith("position 3 (z), after embed: ")
    assert chromium.errors(browser) == []


def test_the_lens_table_writes_tokens_and_guesses_that_look_like_html_as_text(browser, tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(2, 3))
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1"], order, np.take_along_axis(probs, order, -1))
    tokens = ["<b>", "&amp;", "x</th>"]
    path = viz.lens_page(lens, tokens, Tags(), "a lens").save(tmp_path / "lens.html")
    open_clean(browser, path)
    assert [th.text for th in browser.find_elements(By.CSS_SELECTOR, "th.token")] == tokens
    guesses = [[Tags().id_to_token(order[s, t, 0]) for s in range(2)] for t in range(3)]
    assert [[td.text for td in row.find_elements(By.CSS_SELECTOR, ".guess")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#lens tbody tr")] == guesses



class RightToLeft:
    """A tokenizer whose tokens are Arabic and Hebrew words, and one Latin."""
    def id_to_token(self, i):
        return ["مرحبا", "שלום", "ab"][i]

    def id_to_bytes(self, i):
        return self.id_to_token(i).encode()


def test_a_right_to_left_guess_keeps_its_probability_on_its_right(browser, tmp_path):
    # "مرحبا 30%" formed one right-to-left run: the probability was drawn on the word's left,
    # where every other cell has it on the right.
    lens = Lens(["embed", "layer 1"], np.array([[[0, 1, 2], [1, 2, 0], [2, 0, 1]]] * 2),
                np.full((2, 3, 3), 0.3))
    path = viz.lens_page(lens, ["مرحبا", "שלום", "ab"], RightToLeft(), "a lens").save(
        tmp_path / "lens.html")
    open_clean(browser, path)
    cells = browser.find_elements(By.CSS_SELECTOR, "#lens td")
    guesses = boxes(browser, browser.find_elements(By.CSS_SELECTOR, "#lens td .guess"))
    probabilities = boxes(browser, browser.find_elements(By.CSS_SELECTOR, "#lens td .p"))
    assert len(guesses) == len(probabilities) == len(cells) > 0        # one of each a cell
    for guess, p in zip(guesses, probabilities):
        assert guess["x"] + guess["width"] <= p["x"] + 1, guess["text"]

def legends(chart):
    """A chart's legend, name by name as it reads, row by row from left to right; each name
    inside the chart."""
    outer, *shown = boxes(chart.parent, [chart, *chart.find_elements(By.CSS_SELECTOR,
                                                                      ".legend")])
    shown.sort(key=lambda one: (round(one["y"]), one["x"]))
    for one, other in zip(shown, shown[1:]):
        if round(one["y"]) == round(other["y"]):
            assert one["x"] + one["width"] <= other["x"], "legends overlap"
    for one in shown:
        assert outer["x"] <= one["x"]
        assert one["x"] + one["width"] <= outer["x"] + outer["width"]
    return [one["text"] for one in shown]


def test_the_reports_charts_fit_the_window_and_follow_it_into_a_narrow_one(browser, tmp_path):
    run = write_run(tmp_path / "run", 6, iters=6)
    path = viz.metrics_page(run).save(tmp_path / "report.html")
    size = browser.get_window_size()
    try:
        open_clean(browser, path)
        loss = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
        assert legends(loss) == ["train loss (each step)", "train loss (smoothed)",
                                 "validation loss"]
        each, smoothed = loss.find_elements(By.CSS_SELECTOR, "path")[:2]   # the noisy one faint
        assert float(each.get_attribute("opacity")) < float(smoothed.get_attribute("opacity"))
        # Each name in the legend follows a piece of its line, drawn as the line is.
        samples = loss.find_elements(By.CSS_SELECTOR, "line.legend-sample")
        lines = loss.find_elements(By.CSS_SELECTOR, "path")
        labels = loss.find_elements(By.CSS_SELECTOR, ".legend")
        drawn = browser.execute_script(      # how each sample and each line is drawn
            "return arguments[0].map((e) => ['stroke', 'stroke-width', 'opacity']"
            ".map((key) => e.getAttribute(key)))", samples + lines)
        assert len(samples) == 3
        for sample, line in zip(drawn[:3], drawn[3:]):
            for key, in_sample, in_line in zip(("stroke", "stroke-width", "opacity"), sample,
                                               line):
                assert in_sample == in_line, key
        placed = boxes(browser, samples + labels)
        for sample, label in zip(placed[:3], placed[3:]):
            assert sample["x"] + sample["width"] <= label["x"]
            assert abs(sample["y"] - label["y"]) < label["height"]
        steps = loss.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="middle"]')
        assert [tick.text for tick in steps] == ["1", "2", "3", "4", "5", "6"]
        # Between two charts, and off them, nothing is read.
        assert hover_step(browser, loss, 3, 6)[0] == "step 3"
        actions(browser).move_to_element_with_offset(loss, 0, loss.size["height"] // 2 + 5
                                                          ).perform()
        assert tooltip(browser) is None
        hover_step(browser, loss, 3, 6)
        actions(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
        assert tooltip(browser) is None and crosses_shown(browser) == [False] * 3
        for window in (1400, 500, 390):
            browser.set_window_size(window, 900)
            began = time.perf_counter()
            while not browser.execute_script(   # nothing past the right edge: the last step's dots
                    "return document.documentElement.scrollWidth <= "
                    "document.documentElement.clientWidth"):
                assert time.perf_counter() - began < 3, f"the charts overflow a {window} px window"
                time.sleep(0.05)
            for chart in browser.find_elements(By.CSS_SELECTOR, "svg[data-chart]"):
                title, *shown = boxes(browser, [chart.find_element(By.CSS_SELECTOR, ".chart-title"),
                                                *chart.find_elements(By.CSS_SELECTOR, ".legend")])
                for box in shown:
                    apart = (box["x"] >= title["x"] + title["width"]
                             or box["y"] >= title["y"] + title["height"])
                    assert apart, f"{box['text']!r} covers {chart.get_attribute('data-chart')!r}"
                assert len(legends(chart)) == len(chart.find_elements(By.CSS_SELECTOR, "path"))
        # Narrower than a phone held upright, the charts keep 280 px and the page scrolls.
        browser.set_window_size(250, 900)
        began = time.perf_counter()
        while set(browser.execute_script(          # read at once: a redraw replaces them
                "return [...document.querySelectorAll('svg[data-chart]')]"
                ".map((chart) => chart.getAttribute('width'))")) != {"280"}:
            assert time.perf_counter() - began < 3, "the charts are narrower than 280 px"
            time.sleep(0.05)
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_report_of_a_run_of_one_step_marks_each_of_its_values(browser, tmp_path):
    # A line through one point draws nothing: the train loss and the learning rate were blank.
    run = write_run(tmp_path / "run", 1, iters=1)
    path = viz.metrics_page(run).save(tmp_path / "report.html")
    open_clean(browser, path)
    browser.execute_script("window.notReloaded = true")
    for title in ("loss", "learning rate"):
        chart = browser.find_element(By.CSS_SELECTOR, f'svg[data-chart^="{title}"]')
        (dot,) = chart.find_elements(By.TAG_NAME, "circle")
        width, height = chart.size["width"], chart.size["height"]
        assert float(dot.get_attribute("cx")) == pytest.approx(70 + (width - 90) / 2)  # middle
        assert 26 < float(dot.get_attribute("cy")) < height - 30, title
    # No validation yet: the legend does not name it.
    assert legends(browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')) == [
        "train loss (each step)", "train loss (smoothed)"]
    time.sleep(0.3)
    assert browser.execute_script("return window.notReloaded === true")   # a finished run's page

    # A metrics.jsonl without a learning rate has no chart of it.
    (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.5}\n')
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    assert [chart.get_attribute("data-chart") for chart in browser.find_elements(
        By.CSS_SELECTOR, "svg[data-chart]")] == ["loss (cross-entropy, nats)"]


def test_each_report_chart_numbers_its_axis_at_two_values_at_least(browser, tmp_path):
    # A gradient norm of 0.4 to 7 and a learning rate warming up to 0.008, as a short run
    # records them: their charts had one number each on their axis ("5", "0.005").
    run = write_run(tmp_path / "run", 1, iters=20)
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 21):
            f.write(json.dumps({"step": step, "train_loss": 3.0 / step, "lr": 0.0004 * step,
                                "grad_norm": 7.0 if step == 3 else 0.4 + step / 40}) + "\n")
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    for title in ("loss (cross-entropy, nats)", "gradient norm", "learning rate"):
        chart = browser.find_element(By.CSS_SELECTOR, f'svg[data-chart="{title}"]')
        numbers = chart.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="end"]')
        assert len(numbers) >= 2, (title, [n.text for n in numbers])


def test_the_reports_loss_is_numbered_down_to_its_last_values(browser, tmp_path):
    # A loss falling from 3.3 to 2.1, as 20 steps of a small model give, was numbered at 2.5
    # and 3 only, on a chart 300 px tall: the values it ended at had no number near them. In
    # a narrow window the steps stay few enough not to run into each other: a step every
    # 1,000, whose numbers ("20000") are wider than a window of 390 px has room for 8 of.
    run = write_run(tmp_path / "run", 1, iters=20_000)
    with open(run / "metrics.jsonl", "w") as f:
        for step in range(1, 21):
            f.write(json.dumps({"step": 1000 * step, "train_loss": 3.3 - 1.2 * (step - 1) / 19,
                                "lr": 0.001}) + "\n")
    size = browser.get_window_size()
    try:
        open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
        loss = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
        numbers = loss.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="end"]')
        assert [n.text for n in numbers] == ["2.2", "2.4", "2.6", "2.8", "3", "3.2"]
        # As near the count asked for as round steps give, the fewer on a tie: 3 and 5 are
        # both 1 from 4.
        assert browser.execute_script("return ticks(0, 20, 4)") == [0, 10, 20]
        browser.set_window_size(390, 900)
        began = time.perf_counter()
        while browser.execute_script("return document.querySelector('svg[data-chart^=\"loss\"]')"
                                     ".getBoundingClientRect().width >= 400"):
            assert time.perf_counter() - began < 3, "the charts did not follow the window"
            time.sleep(0.05)
        steps = browser.execute_script(
            "return [...document.querySelectorAll('svg[data-chart^=\"loss\"] "
            "text.tick[text-anchor=\"middle\"]')].map((t) => t.getBoundingClientRect())"
            ".map((r) => [r.left, r.right])")
        assert len(steps) >= 2
        for (_, right), (left, _) in zip(steps, steps[1:]):
            assert right + 8 <= left, steps                 # apart, with room between
    finally:
        browser.set_window_size(size["width"], size["height"])


def test_the_report_of_a_long_run_draws_its_charts(browser, tmp_path):
    # The page found its axes' ends by Math.min(...values), a value an argument: the 200,000
    # points of a long run (50,000 steps, four curves) were more than the browser's stack
    # holds, and it drew nothing (RangeError). The page's own data made that long here.
    open_clean(browser, viz.metrics_page(write_run(tmp_path / "run", 4)).save(
        tmp_path / "report.html"))
    browser.execute_script("data.train = Array.from({length: 200000}, (_, i) => [i + 1, 1]);"
                           "draw();")
    loss = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    steps = loss.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="middle"]')
    assert steps[-1].text == "2.0e+5"


def test_the_report_marks_the_steps_whose_loss_is_nan_and_reads_them(browser, tmp_path):
    # A diverged run's curves stopped with nothing said; a run whose every loss was NaN drew
    # an empty chart and hovering it was a TypeError.
    run = write_run(tmp_path / "run", 4, iters=6)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_loss": NaN, "lr": 0.05}\n'
                '{"step": 6, "train_loss": NaN, "lr": 0.06}\n')
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    assert legends(chart)[-1] == "loss NaN or inf, not drawn: 2 steps, from step 5"
    marks = chart.find_elements(By.CSS_SELECTOR, "line.unfinished")
    assert [float(m.get_attribute("x1")) for m in marks] == pytest.approx(
        [step_x(chart, 5, 6), step_x(chart, 6, 6)], abs=0.5)
    lines = hover_step(browser, chart, 6, 6)
    assert lines[:3] == ["step 6", "loss NaN or inf at this step",
                         "train loss (each step): 0.75  (step 4)"]
    (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": NaN, "lr": 0.01}\n'
                                       '{"step": 2, "train_loss": NaN, "lr": 0.02}\n')
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    assert len(chart.find_elements(By.CSS_SELECTOR, "line.unfinished")) == 2
    assert hover_step(browser, chart, 2, 2)[:2] == ["step 2", "loss NaN or inf at this step"]
    # two steps numbered as steps: 1 and 2, not 1.2, 1.4, ...
    steps = chart.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="middle"]')
    assert [step.text for step in steps] == ["1", "2"]
    assert chromium.errors(browser) == []


def test_the_report_marks_the_step_where_the_run_diverged_as_the_png_does(browser, tmp_path):
    # The trainer logs no NaN: a run whose loss became NaN at step 5 has metrics to step 4,
    # and its page's curves stopped there with no tick, where the PNG has one.
    from viz.plots import metrics_figure
    run = write_run(tmp_path / "run", 4, iters=6)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["diverged"] = {"step": 5, "error": "the loss became nan at step 5; lower --lr"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    said = "diverged at step 5: NaN or inf, the run stopped"
    assert legends(chart)[-1] == said
    assert said in [text.get_text() for text in metrics_figure(run).axes[0].get_legend()
                    .get_texts()]                                  # the PNG's own words
    marks = chart.find_elements(By.CSS_SELECTOR, "line.unfinished")
    assert [float(m.get_attribute("x1")) for m in marks] == pytest.approx(
        [step_x(chart, 5, 5)], abs=0.5)                    # the axis reaches the step
    assert [m.get_attribute("stroke") for m in marks] == [NAN_COLOUR]
    lines = hover_step(browser, chart, 5, 5)
    assert lines[:3] == ["step 5", "diverged at this step: NaN or inf, the run stopped",
                         "train loss (each step): 0.75  (step 4)"]
    assert said not in "\n".join(hover_step(browser, chart, 4, 5))
    # The other charts have no tick: it is the loss that diverged.
    assert len(browser.find_elements(By.CSS_SELECTOR, "line.unfinished")) == 1
    assert chromium.errors(browser) == []


def test_the_report_marks_the_steps_whose_gradient_norm_is_nan_and_reads_them(browser,
                                                                              tmp_path):
    # Not drawn, with nothing said, where a NaN loss's step was marked in red and counted.
    run = write_run(tmp_path / "run", 4, iters=6, extra={"grad_norm": 0.5})
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "train_loss": 1.0, "lr": 0.05, "grad_norm": NaN}\n'
                '{"step": 6, "train_loss": 1.0, "lr": 0.06, "grad_norm": Infinity}\n')
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="gradient norm"]')
    assert legends(chart)[-1] == "gradient norm NaN or inf, not drawn: 2 steps, from step 5"
    marks = chart.find_elements(By.CSS_SELECTOR, "line.unfinished")
    assert [float(m.get_attribute("x1")) for m in marks] == pytest.approx(
        [step_x(chart, 5, 6), step_x(chart, 6, 6)], abs=0.5)
    assert [m.get_attribute("stroke") for m in marks] == [NAN_COLOUR] * 2
    loss = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    assert loss.find_elements(By.CSS_SELECTOR, "line.unfinished") == []   # its losses are finite
    lines = hover_step(browser, chart, 6, 6)
    assert "gradient norm NaN or inf at this step" in lines
    assert "loss NaN or inf at this step" not in lines
    assert lines[-1] == "learning rate: 0.06"
    assert "gradient norm NaN or inf at this step" not in hover_step(browser, chart, 4, 6)
    assert chromium.errors(browser) == []


def test_the_reports_line_at_the_read_step_stands_apart_from_every_curve(browser, tmp_path):
    # The dashed line that marks the step being read was the gradient norm's own red: on that
    # chart the reader could not tell the mark from the curve it marks.
    run = write_run(tmp_path / "run", 4, iters=4, extra={"grad_norm": 0.5})
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="gradient norm"]')
    hover_step(browser, chart, 2, 4)
    cross = browser.execute_script(
        "return [...document.querySelectorAll('line.cross')]"
        ".map((line) => getComputedStyle(line).stroke)")
    curves = browser.execute_script(
        "return [...document.querySelectorAll('svg[data-chart] path')]"
        ".map((p) => getComputedStyle(p).stroke)")
    assert len(set(cross)) == 1 and len(curves) == 6        # loss x 3, recall, norm, rate
    assert cross[0] not in curves, (cross[0], curves)


def test_the_report_reads_each_value_rounded_once(browser, tmp_path):
    # The script rounded to five digits the values the page holds, themselves rounded to six:
    # 1.2345649 was 1.23456, and read 1.2346, where five digits of it are 1.2345.
    run = write_run(tmp_path / "run", 2, iters=2)
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "train_loss": 1.2345649, "lr": 0.00012345649}\n'
        '{"step": 2, "train_loss": 2.7182818, "lr": 0.00027182818, "val_loss": 9.8765449}\n')
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    lines = hover_step(browser, chart, 1, 2)
    assert "train loss (each step): 1.23456" in lines
    assert "learning rate: 0.000123456" in lines
    assert "validation loss: 9.87654  (step 2)" in lines


def test_the_reports_title_writes_a_runs_name_as_text(browser, tmp_path):
    run = write_run(tmp_path / "<i>run", 2, iters=2)
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "training run: <i>run"


def step_x(chart, step, steps):
    """Where `step` (of 1..steps) lies across a chart, in px from its left (the charts'
    margins: 70 px left, 20 px right)."""
    return 70 + (chart.size["width"] - 90) * (step - 1) / (steps - 1)


def hover_step(browser, chart, step, steps):
    """Move the mouse over `step` (of 1..steps) on a chart; the tooltip's lines."""
    x = step_x(chart, step, steps)
    actions(browser).move_to_element_with_offset(chart, int(x - chart.size["width"] / 2),
                                                      0).perform()
    return tooltip(browser).splitlines()


def crosses_shown(browser):
    """Whether each chart's line across at the hovered step is shown."""
    return browser.execute_script("return [...document.querySelectorAll('line.cross')]"
                                  ".map((line) => getComputedStyle(line).visibility === 'visible')")


def test_the_report_reads_a_step_and_reloads_while_the_run_goes(browser, tmp_path):
    run = write_run(tmp_path / "run", 6, iters=10, lock="held")
    path = viz.metrics_page(run, refresh=1).save(tmp_path / "report.html")
    open_clean(browser, path)
    browser.execute_script("window.notReloaded = true")
    chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
    lines = hover_step(browser, chart, 3, 6)
    assert lines[0] == "step 3"
    assert "train loss (each step): 1" in lines                      # 3.0 / 3
    smoothed = browser.execute_script("return data.smoothed[2][1]")
    assert f"train loss (smoothed): {smoothed:.6g}" in lines
    assert 1 < smoothed < 3                  # averaged with the losses around it (3.0 / step)
    assert "validation loss: 1.75  (step 2)" in lines or "validation loss: 0.875  (step 4)" \
        in lines
    assert "learning rate: 0.03" in lines
    # Every chart marks the step, with a line across at its place.
    x = step_x(chart, 3, 6)
    assert crosses_shown(browser) == [True] * 3
    for cross in browser.find_elements(By.CSS_SELECTOR, "line.cross"):
        assert float(cross.get_attribute("x1")) == float(cross.get_attribute("x2")) == \
            pytest.approx(x, abs=0.5)
    assert hover_step(browser, chart, 2.7, 6)[0] == "step 3"           # the nearest step
    # The loss falls: each validation loss is drawn lower than the one before.
    heights = [float(c.get_attribute("cy")) for c in chart.find_elements(By.TAG_NAME, "circle")]
    assert heights == sorted(heights) and len(set(heights)) == 3
    # Recall is a fraction: its axis runs from 0 to 1, wherever its values are.
    recall = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart="val recall"]')
    ticks = [t.text for t in recall.find_elements(By.CSS_SELECTOR, 'text.tick[text-anchor="end"]')]
    assert ticks[0] == "0" and ticks[-1] == "1", ticks
    # The axes' numbers: powers of ten from 1e5 and below 1e-3, and none of the noise that
    # adding up steps leaves (0.1 + 0.2 is 0.30000000000000004).
    shown = browser.execute_script(
        "return [0, 1, 0.5, 0.1 + 0.2, 0.005, 2.5e-4, 12000, 1e5].map(tickText)")
    assert shown == ["0", "1", "0.5", "0.3", "0.005", "2.5e-4", "12000", "1.0e+5"]
    time.sleep(1.3)       # longer than the page waits to reload: not while a value is read
    assert browser.execute_script("return window.notReloaded === true")
    actions(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    began = time.perf_counter()
    while browser.execute_script("return window.notReloaded === true"):
        assert time.perf_counter() - began < 5, "the page of a running run did not reload"
        time.sleep(0.1)
    assert chromium.errors(browser) == []


def test_the_report_reads_a_steps_values_from_the_keyboard(browser, tmp_path):
    # Its values were read by hovering only: Tab reached nothing on the page.
    run = write_run(tmp_path / "run", 6, iters=6)
    open_clean(browser, viz.metrics_page(run).save(tmp_path / "report.html"))
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    chart = browser.switch_to.active_element
    assert chart.get_attribute("data-chart").startswith("loss")
    assert "arrow keys" in chart.accessible_name
    assert outline(browser, chart) == "dashed"
    # The first arrow key takes the first step; then two steps on, and back from the end.
    actions(browser).send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT).perform()
    reading = browser.find_element(By.ID, "reading")
    assert reading.get_attribute("role") == "status"
    assert reading.text.split("; ")[:2] == ["step 3", "train loss (each step): 1"]
    assert tooltip(browser).splitlines()[0] == "step 3" and crosses_shown(browser) == [True] * 3
    actions(browser).send_keys(Keys.END, Keys.ARROW_LEFT).perform()
    assert reading.text.startswith("step 5; ")
    actions(browser).send_keys(Keys.HOME, Keys.ARROW_LEFT).perform()   # stays at the first
    assert reading.text.startswith("step 1; ")
    actions(browser).send_keys(Keys.TAB).perform()          # the next chart
    assert browser.switch_to.active_element.get_attribute("data-chart") == "val recall"
    assert tooltip(browser) is None and crosses_shown(browser) == [False] * 3
    # Leaving forgot the step: a first Left on the next chart starts from the last one.
    actions(browser).send_keys(Keys.ARROW_LEFT).perform()
    assert reading.text.startswith("step 6; ")
    # And a first Home on the chart after it starts from the first step, as Home says.
    actions(browser).send_keys(Keys.TAB, Keys.HOME).perform()
    assert reading.text.startswith("step 1; ")
    assert chromium.errors(browser) == []


# ------------------------------------------------------------------------------ every page

# Each piece of text shown with its contrast ratio (WCAG 2) against the first opaque
# background under it, its colour and opacity blended in; the graph's drawing is left out
# (graphviz's own black on pale fills; test_viz_graph checks the gradient colours' ink).
LOW_CONTRAST = """
const rgba = (css) => css.match(/[\\d.]+/g).map(Number).concat([1]).slice(0, 4);
const luminance = (c) => c.slice(0, 3).map((v) => v / 255)
  .map((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
  .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
const low = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const element = walker.currentNode.parentElement, style = getComputedStyle(element);
  if (!walker.currentNode.textContent.trim() || element.closest("script, .picture, [hidden]")
      || style.visibility === "hidden" || !element.getClientRects().length) continue;
  let under = element, back = [0, 0, 0, 0];
  while (under && back[3] < 0.5) {
    back = rgba(getComputedStyle(under).backgroundColor);
    under = under.parentElement;
  }
  if (back[3] < 0.5) back = [255, 255, 255, 1];
  let ink = rgba(element instanceof SVGElement ? style.fill : style.color), alpha = ink[3];
  for (let e = element; e; e = e.parentElement) alpha *= Number(getComputedStyle(e).opacity);
  ink = ink.map((v, i) => v * alpha + back[i] * (1 - alpha));
  const [a, b] = [luminance(ink), luminance(back)];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push(`${walker.currentNode.textContent.trim()}: ${ratio.toFixed(2)}`);
}
return low;
"""


def unnamed(browser):
    """What Tab reaches (controls, nodes, charts) that a screen reader has no name for, read
    from Chromium's accessibility tree, and the headings that skip a level (h3 under h1)."""
    found = [f"{ax(n, 'role')} without a name" for n in accessibility_tree(browser).values()
             if not n.get("ignored") and not (ax(n, "name") or "").strip()
             and any(p["name"] == "focusable" and p["value"].get("value")
                     for p in n.get("properties", []))
             and ax(n, "role") not in ("RootWebArea", "generic")]
    levels = browser.execute_script("return [...document.querySelectorAll('h1, h2, h3, h4')]"
                                    ".filter((h) => h.getClientRects().length)"
                                    ".map((h) => Number(h.tagName[1]))")
    found += [f"h{b} after h{a}" for a, b in zip([0] + levels, levels) if b > a + 1]
    return found


def test_every_page_reads_at_4_5_to_1_and_names_its_controls(browser, gpt, tmp_path):
    # Under 4.5:1 were the report's legend, each name in its line's colour (the validation
    # loss's orange at 2.5:1), the lens's percentages, faded to 4.1:1 on its teal, and the
    # panel's "op" in white on grey (4.48:1).
    _, _, graph = gpt
    open_clean(browser, graph)
    browser.find_element(By.CSS_SELECTOR, ".picture:not(.inactive) g.node").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#panel .kind")
    low = {"graph": browser.execute_script(LOW_CONTRAST) + unnamed(browser)}
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), size=(3, 4))
    probs[1, :] = np.linspace(0.3, 0.6, 4)[:, None] * np.eye(10)[0] + 0.01   # teal cells
    order = np.argsort(-probs, axis=-1, kind="stable")[..., :3]
    lens = Lens(["embed", "layer 1", "layer 2"], order, np.take_along_axis(probs, order, -1))
    open_clean(browser, viz.lens_page(lens, list("wxyz"), Letters(), "a lens").save(
        tmp_path / "lens.html"))
    low["lens"] = browser.execute_script(LOW_CONTRAST) + unnamed(browser)
    open_clean(browser, viz.attention_page(synthetic_maps(rng), "maps").save(
        tmp_path / "attention.html"))
    low["attention"] = browser.execute_script(LOW_CONTRAST) + unnamed(browser)
    open_clean(browser, viz.metrics_page(write_run(tmp_path / "run", 6, iters=6)).save(
        tmp_path / "report.html"))
    low["report"] = browser.execute_script(LOW_CONTRAST) + unnamed(browser)
    assert low == {"graph": [], "lens": [], "attention": [], "report": []}

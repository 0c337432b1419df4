"""The pages for a reader who uses the keyboard alone, a screen reader, or eyes that do not
tell red from green, in a real browser (headless Chromium, through selenium): what the
keyboard is on shows on every colour, a click that changes the panel is read out, and a page
that reloads itself does not take the keyboard's place away.

One browser serves the whole file. Without Chromium, chromedriver or selenium the file is
skipped, except under TINYFORMER_REQUIRE_BROWSER=1 (CI), where that is a failure."""

import time

import numpy as np
import pytest

import browser as chromium
from browser import open_clean

chromium.skip_module_without_one()

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

import tinyautograd as ta  # noqa: E402
import viz  # noqa: E402
from test_html_pages import Letters, no_lock_outlives_its_test, write_run  # noqa: E402,F401
from tinyformer.lens import Lens  # noqa: E402
from viz.attention import AttentionMap  # noqa: E402
from viz.graph import NAN_COLOUR  # noqa: E402
from viz.html import contrast, viridis  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    started = chromium.start()
    yield started
    chromium.stop(started)


def keys(browser, *pressed):
    ActionChains(browser, duration=0).send_keys(*pressed).perform()


def test_the_attention_maps_keyboard_cell_shows_on_viridis_middle_colour(browser, tmp_path):
    # The cell was outlined in red alone, 1.3:1 on viridis's teal (an even spread of four
    # keys, sqrt(0.25) on the scale): where the arrow keys were could hardly be seen, and not
    # at all by an eye that does not tell red from green. WCAG asks 3:1 of a focus indicator.
    weights = np.full((1, 1, 4, 4), 0.25)
    tokens = list("abcd")
    path = viz.attention_page({"self": AttentionMap(weights, tokens, tokens, "self")},
                              "an even spread").save(tmp_path / "attention.html")
    open_clean(browser, path)
    browser.execute_script("document.getElementById('heatmap').focus()")
    keys(browser, Keys.ARROW_RIGHT, Keys.ARROW_DOWN, Keys.ARROW_RIGHT)     # to cell (1, 1)
    assert browser.find_element(By.ID, "reading").text.startswith("query 1 b; key 1 b")
    # The pixels on a line down through the middle of the cell's column, across its top edge
    # (4 px either side), as [r, g, b]; and the colour of the cells around it.
    column = browser.execute_script("""
        const c = document.getElementById('heatmap'), r = window.devicePixelRatio || 1;
        const x = Number(c.dataset.left) + 1.5 * Number(c.dataset.cell);
        const edge = Number(c.dataset.top) + Number(c.dataset.cell);
        const out = [];
        for (let y = edge - 4; y <= edge + 4; y++) {
          out.push([...c.getContext('2d').getImageData(x * r, y * r, 1, 1).data].slice(0, 3));
        }
        return out;""")
    cell = viridis(np.sqrt(0.25))
    assert column[0] == column[-1] == pytest.approx(
        [int(cell[i:i + 2], 16) for i in (1, 3, 5)], abs=2)            # the cells, either side
    best = max(contrast(cell, "#%02x%02x%02x" % tuple(rgb)) for rgb in column)
    assert best >= 3, f"the keyboard's cell is outlined at {best:.2f}:1 on {cell}"
    assert chromium.errors(browser) == []


def test_a_reloading_report_keeps_the_keyboards_place_on_a_chart(browser, tmp_path):
    # A report of a run still training reloads itself; it waited while a value was read
    # (the mouse over a chart, or an arrow key pressed), but not for a reader who had only
    # Tabbed to a chart: the reload put the focus back at the top of the page, every second.
    run = write_run(tmp_path / "run", 6, iters=10, lock="held")
    path = viz.metrics_page(run, refresh=0.5).save(tmp_path / "report.html")
    open_clean(browser, path)
    browser.execute_script("window.notReloaded = true")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    keys(browser, Keys.TAB)                                      # the second chart
    assert browser.switch_to.active_element.get_attribute("data-chart") == "val recall"
    time.sleep(0.8)                   # longer than the page waits to reload
    assert browser.execute_script("return window.notReloaded === true")
    assert browser.switch_to.active_element.get_attribute("data-chart") == "val recall"
    # Tab on past the charts, off them: it reloads.
    browser.execute_script("document.activeElement.blur()")
    began = time.perf_counter()
    while browser.execute_script("return window.notReloaded === true"):
        assert time.perf_counter() - began < 5, "the page of a running run did not reload"
        time.sleep(0.1)
    assert chromium.errors(browser) == []


def test_a_screen_reader_hears_that_enter_on_a_node_filled_the_panel(browser, tmp_path):
    # Enter on a node fills the side panel with its numbers, which is not read out: the
    # status line (aria-live) said nothing new, and to a screen reader the key did nothing.
    x = ta.Tensor(np.ones((2, 3)), requires_grad=True)
    path = viz.graph_page((x * 2.0).sum(), inputs={"x": x}).save(tmp_path / "graph.html")
    open_clean(browser, path)
    status = browser.find_element(By.ID, "status")
    assert status.get_attribute("aria-live") == "polite"
    browser.execute_script("views.forward.stop.focus()")        # Tab's stop in the picture
    node = browser.switch_to.active_element
    keys(browser, Keys.ENTER)
    title = browser.find_element(By.CSS_SELECTOR, '#panel [data-field="title"]').text
    assert title and node.get_attribute("aria-label").startswith(title)
    assert status.text.startswith(title) and status.text.endswith("values are in the panel")
    assert chromium.errors(browser) == []


# Each piece of text in the header's colour legend, its colour and the header's background
# ("#rrggbb"); and the colour of the legend's swatches.
LEGEND = """
const hex = (css) => "#" + css.match(/\\d+/g).slice(0, 3)
  .map((v) => Number(v).toString(16).padStart(2, "0")).join("");
const header = getComputedStyle(document.querySelector("header")).backgroundColor;
const texts = [], walker = document.createTreeWalker(document.querySelector("header .legend"),
                                                     NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const text = walker.currentNode.textContent.trim();
  if (text) texts.push([text, hex(getComputedStyle(walker.currentNode.parentElement).color)]);
}
return {texts, background: hex(header), swatches: [...document.querySelectorAll(
  "header .legend .swatch")].map((s) => hex(getComputedStyle(s).backgroundColor))};
"""


def test_the_legends_red_nan_reads_at_4_5_to_1(browser, tmp_path):
    # "red: NaN" was written in the NaN cells' red, 4.3:1 on the header's grey.
    weights = np.array([[[[1.0, 0.0], [0.5, 0.5]]], [[[np.nan, 0.0], [np.nan, np.nan]]]])
    attention = viz.attention_page({"self": AttentionMap(weights, list("ab"), list("ab"),
                                                         "self")}, "t")
    top_probs = np.array([[[0.7, 0.2]], [[np.nan, np.nan]]])            # (states, T=1, k=2)
    lens = viz.lens_page(Lens(["embed", "layer 1"], np.array([[[2, 1]], [[0, 1]]]), top_probs),
                         ["w"], Letters(), "t")
    for name, page in {"attention": attention, "lens": lens}.items():
        open_clean(browser, page.save(tmp_path / f"{name}.html"))
        legend = browser.execute_script(LEGEND)
        assert any("red: NaN" in text for text, _ in legend["texts"]), (name, legend)
        low = [(text, round(contrast(ink, legend["background"]), 2))
               for text, ink in legend["texts"] if contrast(ink, legend["background"]) < 4.5]
        assert low == [], name
        assert legend["swatches"] == [NAN_COLOUR], name            # the red it names, shown
    assert chromium.errors(browser) == []

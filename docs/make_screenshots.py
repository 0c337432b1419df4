"""Screenshots of the four HTML pages for the README, taken by the browser the tests use.

    python docs/make_screenshots.py RUN_DIR [OUT_DIR]

RUN_DIR is a GPT run of `tinyformer train` (docs/make_pictures.sh trains the built-in one and
calls this); OUT_DIR is where the PNGs go (docs/img). The pages are written by the commands a
user has (`tinyformer graph|attention|lens|plot --out FILE.html`), opened from file:// URLs in
headless Chromium (tests/browser.py), given a click or a hover, and photographed. Each page's
size and the time it took to load and set itself up are printed.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import browser as chromium  # noqa: E402

PROMPT = "eve has a red kite. it rained. the kite of eve is "


def tinyformer(*args):
    subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)


def write_pages(run, folder):
    pages = {"graph": folder / "graph.html", "attention": folder / "attention.html",
             "lens": folder / "lens.html", "report": folder / "report.html"}
    tinyformer("graph", "--checkpoint", run, "--prompt", "eve has a red kite.",
               "--fold-repeats", "--out", pages["graph"])
    tinyformer("attention", "--checkpoint", run, "--prompt", PROMPT, "--out", pages["attention"])
    tinyformer("lens", "--checkpoint", run, "--prompt", PROMPT, "--out", pages["lens"])
    tinyformer("plot", run, "--out", pages["report"])
    return pages


def hover(browser, element, x, y):
    """Move the mouse to (x, y) pixels from `element`'s top left corner."""
    from selenium.webdriver.common.action_chains import ActionChains
    size = element.size
    ActionChains(browser).move_to_element_with_offset(
        element, int(x - size["width"] / 2), int(y - size["height"] / 2)).perform()


def pose(browser, kind):
    """Put the page in the state its screenshot shows."""
    from selenium.webdriver.common.by import By
    if kind == "graph":
        # The loss's op selected: its formula, value and gradient in the panel.
        browser.execute_script("""
            const nodes = data.views.forward.nodes;
            select("forward", Object.keys(nodes).find((id) => nodes[id].keep && nodes[id].op));
            fit(views.forward);""")
    elif kind == "attention":
        browser.find_element(By.CSS_SELECTOR, '#grid figure[data-layer="1"][data-head="1"]').click()
        canvas = browser.find_element(By.ID, "heatmap")
        cell = float(canvas.get_attribute("data-cell"))
        left, top = (float(canvas.get_attribute(f"data-{k}")) for k in ("left", "top"))
        hover(browser, canvas, left + 3.5 * cell, top + 22.5 * cell)
    elif kind == "lens":
        # The last position: layer 1 is unsure of the colour, layer 2 has fetched it.
        cells = browser.find_elements(By.CSS_SELECTOR, "td[data-t]")
        hover(browser, cells[-2], 20, 10)
    elif kind == "report":
        chart = browser.find_element(By.CSS_SELECTOR, 'svg[data-chart^="loss"]')
        hover(browser, chart, chart.size["width"] * 0.6, 150)


def main(run, out):
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        pages = write_pages(run, Path(folder))
        browser = chromium.start(width=1200, height=700)
        try:
            for kind, page in pages.items():
                # The lens is a long table: its screenshot is taller, to show all of it.
                browser.set_window_size(*((720, 1640) if kind == "lens" else (1200, 700)))
                seconds = chromium.open_page(browser, page)
                setup = browser.execute_script("return document.body.dataset.ready")
                assert chromium.errors(browser) == [], chromium.errors(browser)
                pose(browser, kind)
                browser.save_screenshot(str(out / f"page-{kind}.png"))
                print(f"{kind:9} {page.stat().st_size / 1e6:5.2f} MB, loaded in {seconds:.2f} s "
                      f"(its script: {setup} ms)")
        finally:
            chromium.stop(browser)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) == 3 else ROOT / "docs" / "img"))

"""A headless Chromium for the page tests and for the README's screenshots (selenium).

    browser = start()                  # None (and the reason in `missing()`) without one
    open_page(browser, "graph.html")   # waits until the page's script has set it up
    errors(browser)                    # what the page wrote to the console as errors
    browser.quit()

Chromium and chromedriver come from the system (Debian: `apt-get install chromium
chromium-driver`); selenium is in the `test` extra. Nothing is downloaded: the driver is
named, so selenium's own driver manager never runs. TINYFORMER_REQUIRE_BROWSER=1 (CI sets it)
makes a missing browser a failure of the tests rather than a skip.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

REQUIRED = os.environ.get("TINYFORMER_REQUIRE_BROWSER") == "1"
# Flags for a headless Chromium run as root in a container, touching no network.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1"]


def _find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing():
    """Why no browser can be started here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _find("chromium", "chromium-browser", "google-chrome") is None:
        return "chromium is not installed (apt-get install chromium)"
    if _find("chromedriver") is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def skip_module_without_one():
    """At the top of a test file that needs a browser: skip the file where none can be
    started, except under TINYFORMER_REQUIRE_BROWSER=1 (CI), where that is a failure."""
    import pytest
    if missing():
        if REQUIRED:
            pytest.fail(f"TINYFORMER_REQUIRE_BROWSER=1, but {missing()}", pytrace=False)
        pytest.skip(f"no browser: {missing()}", allow_module_level=True)


def open_clean(browser, path):
    """Open `path` in `browser`, with no error in its console."""
    errors(browser)                                 # what an earlier page left
    open_page(browser, path)
    assert errors(browser) == []


def start(width=1400, height=900):
    """A headless Chromium with a fresh profile, its console log kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium", "chromium-browser", "google-chrome")
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="tinyformer-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(_find("chromedriver")))
    browser.profile_dir = profile
    return browser


def stop(browser):
    browser.quit()
    shutil.rmtree(browser.profile_dir, ignore_errors=True)


def open_page(browser, path, timeout=10):
    """Load the page at `path` from a file:// URL and wait for its script to say it is ready
    (body[data-ready], the milliseconds its set-up took); returns the seconds the whole load
    took, as seen from here."""
    began = time.perf_counter()
    browser.get(Path(path).resolve().as_uri())
    while browser.execute_script("return document.body && document.body.dataset.ready") is None:
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"{path}: the page's script never finished; console: "
                               f"{errors(browser)}")
        time.sleep(0.02)
    return time.perf_counter() - began


def errors(browser):
    """The console messages of level SEVERE since the last call: script errors, failed
    loads, refused content."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE"]

"""The teaching demos in a real browser: live training (Step, Play, Pause), the gallery, and
every page on a phone (390x844, a mobile browser) and at 1280x720.

Screenshots go to the shots folder and, with LANDSCAPE_SCREENSHOTS_TO_DOCS=1, to
docs/screenshots/: train_live.png (1400 px), gallery.png (1400 px),
gallery_1280x720.png and landscape_1280x720.png (the window as a laptop shows it), and
phone_<page>.png (390 px wide).
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from .conftest import _new_page
from .helpers import (
    JS_CHANGED,
    assert_clean,
    open_page,
    screenshot,
    settle,
    signature,
    traces,
)
from .test_pages import DOCS, PAGES, shoot, trace, wait_charts

pytestmark = pytest.mark.e2e

LIVE = ".st-key-tr_live_curve"
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36"
)


def _status(page) -> int:
    """The step count in the live panel's status line."""
    text = page.get_by_text(re.compile(r"^step [\d,]+ · epoch")).first.inner_text()
    return int(re.match(r"step ([\d,]+)", text).group(1).replace(",", ""))


def _button(page, name: str):
    # .first: while a fragment redraws, its old element can still be in the page for a moment
    return page.locator(f".st-key-tr_live_{name} button").first


def test_live_training_step_play_pause(page, app_url, shots_dir):
    open_page(page, app_url + "/train", "Train")
    wait_charts(page, 1)
    _button(page, "step").click()  # one epoch: 800 points / 64 = 13 steps
    page.frame_locator(LIVE + " iframe").locator(".main-svg").first.wait_for(timeout=60_000)
    settle(page)
    assert _status(page) == 13
    assert trace(traces(page, LIVE), name="train (each step)")["n"] == 13
    assert trace(traces(page, ".st-key-tr_live_picture"), type="image")["n"] > 0
    # play: the curve and the regions redraw on their own, frame after frame; one step a
    # frame, so Play (which stops at Epochs) is still going when it is paused
    speed = page.locator(".st-key-tr_live_speed input").first
    speed.click()
    speed.fill("1")  # the searchable select keeps 1, 10 and 100, in that order
    page.keyboard.press("Enter")
    settle(page)
    _button(page, "play").click()
    for _ in range(3):  # (never idle while playing: wait for the data, not for the app)
        before = signature(page, LIVE)
        page.wait_for_function(JS_CHANGED, arg=[LIVE, before], timeout=60_000, polling=100)
    assert _status(page) > 13
    _button(page, "pause").click()
    page.locator(".st-key-tr_live_play button:not([disabled])").first.wait_for(timeout=30_000)
    settle(page)
    shoot(page, shots_dir, "train_live", docs_name="train_live")
    paused = _status(page)
    time.sleep(2)
    settle(page)
    assert _status(page) == paused  # paused means paused
    _button(page, "step").click()
    page.wait_for_function(
        """(n) => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
                  .some(e => /^step [\\d,]+/.test(e.innerText)
                         && parseInt(e.innerText.slice(5).replace(/,/g, '')) > n)""",
        arg=paused,
        timeout=60_000,
    )
    assert_clean(page)


def test_gallery_shows_the_pair_and_opens_in_landscape(page, app_url, shots_dir):
    open_page(page, app_url + "/gallery", "Gallery")
    wait_charts(page, 2)
    charts = traces(page)
    assert sum(t["type"] == "contour" for c in charts for t in c) == 2
    shoot(page, shots_dir, "gallery", docs_name="gallery")
    page.set_viewport_size({"width": 1280, "height": 720})
    settle(page)
    _window_shot(page, shots_dir, "gallery_1280x720")
    page.get_by_role("button", name="Open in Landscape").first.click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMain"] h1')]
                  .some(h => h.innerText.includes('landscape'))""",
        timeout=60_000,
    )
    wait_charts(page, 1, ".st-key-lp_chart")
    assert trace(traces(page, ".st-key-lp_chart"), type="contour")["n"] > 0
    _window_shot(page, shots_dir, "landscape_1280x720", scroll_to=".st-key-lp_chart")
    assert_clean(page)


def _window_shot(page, shots_dir, name: str, scroll_to: str | None = None) -> None:
    if scroll_to:
        page.locator(scroll_to).scroll_into_view_if_needed()
        time.sleep(0.5)
    path = shots_dir / f"{name}.png"
    page.screenshot(path=str(path))
    if os.environ.get("LANDSCAPE_SCREENSHOTS_TO_DOCS", "0") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def _phone(browser):
    return _new_page(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
        user_agent=PHONE_UA, device_scale_factor=2,
    )  # fmt: skip


JS_FIT = """() => ({
  overflow: document.querySelector('[data-testid="stMain"]').scrollWidth
            - document.querySelector('[data-testid="stMain"]').clientWidth,
  plots: [...document.querySelectorAll('.js-plotly-plot')].filter(e => e._fullLayout)
           .map(e => ({w: e._fullLayout._size.w, legend: (e._fullLayout.legend || {}).orientation,
                       shown: e._fullLayout.showlegend}))
})"""


def test_every_page_is_usable_on_a_phone(browser, app_url, shots_dir):
    with _phone(browser) as page:
        for name, path, title, n_charts in PAGES:
            open_page(page, app_url + path, title)
            if n_charts:
                wait_charts(page, n_charts)
            fit = page.evaluate(JS_FIT)
            assert fit["overflow"] <= 1, (
                f"{name}: the page scrolls sideways by {fit['overflow']} px"
            )
            for p in fit["plots"]:
                # plots keep over half the width (of ~358 px): legends go below, not beside
                assert p["w"] >= 200, f"{name}: a plot area only {p['w']} px wide ({p})"
            path_png = shots_dir / f"phone_{name}.png"
            screenshot(page, path_png, width=390)
            if os.environ.get("LANDSCAPE_SCREENSHOTS_TO_DOCS", "0") == "1":
                shutil.copyfile(path_png, DOCS / f"phone_{name}.png")
            assert_clean(page)
        # the sidebar: opened, a page chosen, and it gets out of the way
        expand = page.locator("[data-testid='stExpandSidebarButton']")
        expand.click()
        link = page.locator("[data-testid='stSidebar'] a[href$='/train']")
        link.wait_for(state="visible", timeout=30_000)
        link.click()
        expand.wait_for(state="visible", timeout=30_000)  # collapsed again: the page is free
        page.get_by_role("heading", name="Train").first.wait_for(timeout=60_000)

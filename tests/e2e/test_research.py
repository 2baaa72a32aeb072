"""The research tools in a real browser: paths between minima and the spectrum on the
Geometry page, the sharpness section and rescaling demo on Compare, the edge-of-stability
demo on Train. Each ends with a screenshot (to docs/screenshots/<name>.png with LANDSCAPE_SCREENSHOTS_TO_DOCS=1, see test_pages)."""

from __future__ import annotations

import os
import time

import pytest

from .helpers import MAIN, assert_clean, open_page, settle, traces
from .test_pages import DOCS, HEAVY_S, shoot, wait_charts

pytestmark = pytest.mark.e2e


def shoot_from(page, heading: str, path, width: int = 1400) -> None:
    """The page from the element with text `heading` down to the end, 1400 px wide (for the
    docs: the Compare page's new section, without the charts above it)."""
    if os.environ.get("LANDSCAPE_SCREENSHOTS_TO_DOCS", "0") != "1":
        return
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    old = page.viewport_size
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 8000)})
    try:
        time.sleep(0.5)
        settle(page, 30, quiet=0.3)
        box = page.get_by_text(heading).first.bounding_box()
        top = max(0, int(box["y"]) - 20)
        page.screenshot(
            path=str(path),
            clip={"x": 0, "y": top, "width": width, "height": min(int(height) + 40, 8000) - top},
        )
    finally:
        page.set_viewport_size(old)


def test_geometry_paths_and_spectrum(page, app_url, shots_dir):
    open_page(page, app_url + "/geometry", "Geometry")
    page.get_by_role("button", name="Train both nets and connect them").click()
    wait_charts(page, 2, timeout=HEAVY_S)
    settle(page, HEAVY_S)
    assert_clean(page)
    kinds = {t["type"] for chart in traces(page) for t in chart if t["n"] > 0}
    assert "contour" in kinds and "scatter" in kinds
    assert page.get_by_text("Straight-line barrier").count() >= 1
    shoot(page, shots_dir, "geometry_connect", "geometry_connect")
    page.get_by_role("tab", name="Hessian spectrum").click()
    page.get_by_role("button", name="Compute the spectrum").click()
    page.wait_for_function(
        """(sel) => [...document.querySelectorAll(sel + ' .js-plotly-plot')]
             .some(e => Array.isArray(e.data) && e.data.some(t => t.name === 'SLQ density'))""",
        arg=MAIN,
        timeout=HEAVY_S * 1000,
    )
    settle(page, HEAVY_S)
    assert_clean(page)
    shoot(page, shots_dir, "geometry_spectrum", "geometry_spectrum")


def test_compare_sharpness_panel_and_rescaling(page, app_url, shots_dir):
    open_page(page, app_url + "/compare", "Compare")
    page.get_by_role("button", name="Normalisation").click()
    wait_charts(page, 3, timeout=HEAVY_S)
    settle(page, HEAVY_S)
    page.get_by_role("button", name="Measure λmax, trace").click()
    page.get_by_text("Sharpness measures, each relative").wait_for(timeout=HEAVY_S * 1000)
    settle(page, HEAVY_S)
    page.get_by_role("button", name="Rescale and measure").click()
    page.get_by_text("Same function, rescaled weights").wait_for(timeout=HEAVY_S * 1000)
    settle(page, HEAVY_S)
    assert_clean(page)
    shoot(page, shots_dir, "compare_sharpness")
    shoot_from(page, "Sharpness measures side by side", DOCS / "compare_sharpness.png")


def test_train_edge_of_stability_demo(page, app_url, shots_dir):
    open_page(page, app_url + "/train", "Train")
    page.get_by_role("button", name="Run the demo").click()
    page.get_by_text("tracking overhead").wait_for(timeout=HEAVY_S * 1000)
    settle(page, HEAVY_S)
    assert_clean(page)
    names = {t["name"] for chart in traces(page) for t in chart}
    assert "λmax (top Hessian eigenvalue)" in names
    shoot(page, shots_dir, "train_eos", "train_eos")

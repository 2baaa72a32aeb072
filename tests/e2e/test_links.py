"""Links are views: a URL with non-default settings opened in a new browser context finds
them applied on every page; a run's landscape URL still works after the server restarts on
the same data folder; a page switch and back keeps values; a bad parameter is a quiet note.

This module runs its own server on a temporary LANDSCAPE_DATA_DIR (never the real home),
prepared with one small stored run, and restarts it once.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import ROOT, _free_port, _new_page, start_server, stop_server
from tests.e2e.helpers import assert_clean, go_via_sidebar, open_page, screenshot, slider, traces

pytestmark = pytest.mark.slow

TINY = dict(dataset="moons", n_samples=200, epochs=5, width=8, depth=1, seed=3)


def _start(data_dir, port):
    """The app on ``port`` with its data folder at ``data_dir``: (process, log, url)."""
    env = dict(os.environ, LANDSCAPE_DATA_DIR=str(data_dir), LANDSCAPE_COMPARE_SCALE="0.1")
    log = open(ROOT / "out" / f"e2e-links-{port}.log", "w")  # noqa: SIM115 (closed by _stop)
    try:
        return start_server(port, log, env), log, f"http://127.0.0.1:{port}"
    except RuntimeError:
        log.close()
        raise


def _stop(proc, log):
    stop_server(proc)
    log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    from landscape.data.config import Config
    from landscape.storage import datastore

    data_dir = tmp_path_factory.mktemp("data")
    (ROOT / "out").mkdir(exist_ok=True)
    rid = datastore.run_id(Config(**TINY))
    datastore.train_stored(Config(**TINY), store=datastore.Store(data_dir))
    port = _free_port()
    state = {"dir": data_dir, "rid": rid, "port": port}
    state["proc"], state["log"], state["url"] = _start(data_dir, port)
    yield state
    _stop(state["proc"], state["log"])


def _value(page, label: str) -> float:
    thumb = slider(page, label)
    thumb.wait_for(timeout=60_000)
    return float(thumb.get_attribute("aria-valuenow") or thumb.get_attribute("value"))


def _select_text(page, label: str) -> str:
    """What a selectbox shows: its text and the value of its input (the combobox)."""
    box = page.locator("[data-testid='stSelectbox']", has_text=label).first
    return box.evaluate(
        "e => e.innerText + ' | ' + [...e.querySelectorAll('input')].map(i => i.value).join(' ')"
        " + ' | ' + [...e.querySelectorAll('[title]')].map(i => i.title).join(' ')"
    )


def test_loss_shapes_link(browser, server, shots_dir):
    with _new_page(browser) as page:
        open_page(
            page, server["url"] + "/loss-shapes?out_delta=2.5&out_n=10&ce_classes=30", "Loss shapes"
        )
        assert _value(page, "Huber δ") == 2.5
        assert _value(page, "Outliers (of 40 points)") == 10
        assert _value(page, "Classes C") == 30
        assert "were ignored" not in page.locator("[data-testid='stMain']").inner_text()
        assert_clean(page)
        # a page switch and back keeps every value
        go_via_sidebar(page, "train", "Train")
        go_via_sidebar(page, "loss-shapes", "Loss shapes")
        assert _value(page, "Huber δ") == 2.5 and _value(page, "Outliers (of 40 points)") == 10


def test_train_link(browser, server):
    with _new_page(browser) as page:
        open_page(
            page,
            server["url"] + "/train?tr_dataset=Spiral+(2+arms)&tr_lr=0.1&tr_epochs=30&tr_seed=4",
            "Train",
        )
        main = page.locator("[data-testid='stMain']")
        assert "Spiral (2 arms)" in _select_text(page, "Dataset")
        assert _value(page, "Epochs") == 30
        assert (
            "0.1" in main.locator("[data-testid='stSlider']", has_text="Learning rate").inner_text()
        )
        assert page.locator("input[aria-label='Seed']").first.input_value() == "4"
        assert "were ignored" not in main.inner_text()  # every parameter was taken
        assert_clean(page)


def test_compare_link(browser, server):
    with _new_page(browser) as page:
        url = server["url"] + "/compare?preset=loss&cmp_ndirs=2&cmp_seed=7"
        open_page(page, url, "Compare", timeout=240)
        page.get_by_text("Measurement settings").first.click()
        assert _value(page, "Random directions (1D + basin width)") == 2
        assert page.locator("input[aria-label='Direction seed']").first.input_value() == "7"
        # the preset was measured with the link's settings, without a click
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=stMain] .js-plotly-plot').length > 0",
            timeout=240_000,
        )
        assert "preset=loss" in page.url and "cmp_ndirs=2" in page.url
        assert_clean(page)
        # Issue 25: a page switch and back kept the comparison but lost ?preset= from the
        # address; a reload then opened an empty page and lost the log-axis toggle
        page.locator("[data-testid=stMain] .st-key-cmp_log_y label").first.click()
        page.wait_for_function("() => location.search.includes('cmp_log_y=true')")
        go_via_sidebar(page, "geometry", "Geometry")
        go_via_sidebar(page, "compare", "Compare")
        page.get_by_text("Computed in").first.wait_for(timeout=120_000)
        page.wait_for_function("() => location.search.includes('preset=loss')", timeout=30_000)
        page.reload()
        page.get_by_text("Computed in").first.wait_for(timeout=240_000)
        assert page.locator(".st-key-cmp_log_y input").first.is_checked()
        assert "preset=loss" in page.url


def _landscape(page, server, shots_dir=None, tag=""):
    url = f"{server['url']}/landscape?run={server['rid']}&lp_plot=heatmap&lp_nx2=11&lp_ny2=9"
    open_page(page, url, "Loss landscape", timeout=180)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')]"
        ".some(e => Array.isArray(e.data) && e.data.some(t => t.type === 'heatmap'))",
        timeout=180_000,
    )
    heat = [t for chart in traces(page) for t in chart if t["type"] == "heatmap"]
    assert heat and heat[0]["n"] == 99, heat  # 9 rows (ny) of 11 points (nx)
    assert_clean(page)
    if shots_dir is not None:
        screenshot(page, shots_dir / f"links-landscape{tag}-1400.png", width=1400)
        screenshot(page, shots_dir / f"links-landscape{tag}-390.png", width=390)


def test_landscape_link_survives_a_restart(browser, server, shots_dir):
    from landscape.storage import datastore

    with _new_page(browser) as page:
        _landscape(page, server)
    store = datastore.Store(server["dir"])
    assert store.usage()["entries"] >= 2  # the run and its landscape are kept
    _stop(server["proc"], server["log"])
    server["proc"], server["log"], server["url"] = _start(server["dir"], server["port"])
    with _new_page(browser) as page:
        _landscape(page, server, shots_dir, "-restarted")


def test_bad_parameters_are_a_quiet_note(browser, server):
    with _new_page(browser) as page:
        open_page(
            page,
            server["url"] + "/loss-shapes?out_delta=banana&out_n=999&nosuch=1&out_c=2.0",
            "Loss shapes",
        )
        assert _value(page, "Cauchy scale c (Barron α = 0)") == 2.0
        assert _value(page, "Huber δ") == 1.0
        note = page.locator("[data-testid='stMain']").inner_text()
        assert "ignored" in note and "nosuch" in note and "out_delta" in note
        assert_clean(page)

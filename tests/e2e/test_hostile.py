"""Hostile input in a real browser: user text (a CSV column, a file name, a saved run's
name) written as Markdown stays text (no <img>, no <a>, no request to its host); a
one-feature CSV previews and trains; a hostile saved run is one error and the page stays;
a tab that outlived a server restart says so once the user acts.

Files are built here in the test; requests to example.invalid are recorded and aborted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import ROOT, _free_port, _new_page, start_server, stop_server
from .helpers import MAIN, assert_clean, open_page, settle

pytestmark = pytest.mark.e2e

HEAVY_S = 180
EVIL_LINK = "[re-login](http://example.invalid)"
EVIL_IMAGE = "![x](http://example.invalid/x.png)"
X = np.random.default_rng(0).normal(size=60)


def watch_host(page) -> list[str]:
    """Every request the page makes to example.invalid (aborted: the host does not exist)."""
    seen: list[str] = []

    def handle(route):
        seen.append(route.request.url)
        route.abort()

    page.route("**/*example.invalid*/**", handle)
    page.route("http://example.invalid/**", handle)
    return seen


def no_live_markup(page) -> None:
    for sel in ("img[src*='example.invalid']", "a[href*='example.invalid']"):
        assert page.locator(sel).count() == 0, sel


def wait_text(page, text: str, timeout: float = 30) -> None:
    """Wait until the main area shows `text` (invisible word joiners ignored)."""
    page.wait_for_function(
        """(t) => document.querySelector("[data-testid='stMain']").innerText
                  .replaceAll('\\u2060', '').includes(t)""",
        arg=text,
        timeout=timeout * 1000,
    )


def text_of(locator) -> str:
    return locator.inner_text().replace("\u2060", "")


def choose(page, label: str, option: str) -> None:
    page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.click(timeout=120_000)
    page.get_by_role("option", name=option).click()
    settle(page)


def upload(page, container: str, name: str, data: bytes, mime: str) -> None:
    page.locator(f"{container} input[type='file']").first.set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}]
    )
    time.sleep(0.5)
    settle(page)


def test_csv_column_and_file_named_as_markdown_stay_text(page, app_url):
    seen = watch_host(page)
    open_page(page, app_url + "/train", "Train")
    choose(page, "Dataset", "Your own CSV…")
    rows = "\n".join(f"{a:.4f},{-a:.4f},{int(a > 0)}" for a in X)
    raw = f'"{EVIL_IMAGE}",x2,label\n{rows}'.encode()
    upload(page, ".st-key-tr_upload_file", f"{EVIL_LINK}.csv", raw, "text/csv")
    wait_text(page, f"{EVIL_LINK}.csv: 60 rows")
    page.wait_for_function(
        "(s) => document.querySelector(s + ' .js-plotly-plot')", arg=".st-key-tr_preview"
    )
    assert EVIL_IMAGE in text_of(page.locator(".st-key-tr_preview"))  # the axis title
    no_live_markup(page)
    assert_clean(page)
    # a cell of text in that column: the error quotes the column name, as text
    bad = f'"{EVIL_IMAGE}",x2,label\n{rows}\noops,1,0'.encode()
    upload(page, ".st-key-tr_upload_file", "bad.csv", bad, "text/csv")
    error = page.locator(f"{MAIN} [data-testid='stAlertContentError']")
    error.first.wait_for(timeout=30_000)
    assert f"column '{EVIL_IMAGE}'" in text_of(error.first)
    no_live_markup(page)
    assert seen == []


def test_one_feature_csv_previews_and_trains(page, app_url):
    open_page(page, app_url + "/train", "Train")
    choose(page, "Dataset", "Your own CSV…")
    raw = ("x,price\n" + "\n".join(f"{a:.4f},{1000 * a + 5e4:.2f}" for a in X)).encode()
    upload(page, ".st-key-tr_upload_file", "houses.csv", raw, "text/csv")
    page.wait_for_function(
        "(s) => document.querySelector(s + ' .js-plotly-plot')", arg=".st-key-tr_preview"
    )
    page.locator(".st-key-tr_train button").click()
    page.locator(".st-key-tr_picture .js-plotly-plot").wait_for(timeout=HEAVY_S * 1000)
    assert "Fitted function" in page.locator(".st-key-tr_picture").inner_text()
    assert_clean(page)


def saved_run(name: str | None = None) -> bytes:
    from landscape.data.config import Config
    from landscape.storage import formats as store
    from landscape.training.loop import train

    run = train(Config(n_samples=100, epochs=3, width=4))
    if name is not None:
        run.name = name
    return store.run_to_bytes(run)


def test_saved_runs_named_as_markdown_and_hostile_files_on_the_landscape_page(page, app_url):
    seen = watch_host(page)
    open_page(page, app_url + "/landscape", "landscape")
    page.get_by_text("Load a saved run").click()
    upload(page, ".st-key-lp_upload", "run.npz", saved_run(EVIL_LINK), "application/octet-stream")
    picked = page.locator(".st-key-run__pick input")
    picked.wait_for(timeout=30_000)
    page.wait_for_function(  # the picked run's name is the selectbox's plain-text value
        "(t) => document.querySelector('.st-key-run__pick input')?.value.startsWith(t)",
        arg=EVIL_LINK,
        timeout=30_000,
    )
    no_live_markup(page)
    # a truncated file: one error naming it; sections 2 and 3 and the run stay
    truncated = saved_run()[:2000]
    upload(page, ".st-key-lp_upload", "broken.npz", truncated, "application/octet-stream")
    error = page.locator(f"{MAIN} [data-testid='stAlertContentError']", has_text="broken.npz")
    error.first.wait_for(timeout=30_000)
    assert "file 'broken.npz'" in text_of(error.first)
    main = text_of(page.locator(MAIN))
    for text in ("2 · The slice", "3 · The picture"):
        assert text in main, text
    assert picked.input_value().startswith(EVIL_LINK)  # the session's run is still picked
    assert page.get_by_role("button", name="Compute landscape").is_enabled()
    no_live_markup(page)
    assert [e for e in page.errors if "example.invalid" in e] == [] and seen == []


# ----------------------------------------------------------------------------- restart


def test_tab_that_outlived_a_server_restart_is_told(browser):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(ROOT / "out" / "e2e-restart.log", "w") as log:
        proc = start_server(port, log)
        try:
            with _new_page(browser) as page:
                open_page(page, url + "/loss-shapes", "Loss shapes")
                assert page.get_by_text("server was restarted").count() == 0
                stop_server(proc)
                # Issue 25: while it is down, a plain note, not Streamlit's stock "Connection
                # error" dialog ("... streamlit run yourscript.py")
                page.wait_for_function(
                    "document.querySelector('[data-testid=stApp]').dataset"
                    ".testConnectionState === 'PINGING_SERVER'", timeout=60_000
                )  # fmt: skip
                page.wait_for_timeout(8_000)  # the stock dialog opens after a few failed pings
                assert not page.get_by_text("Connection error").is_visible()
                assert "reconnects by itself" in page.evaluate(
                    "getComputedStyle(document.querySelector('.stApp'), '::before').content"
                )
                proc = start_server(port, log)
                # the tab reconnects by itself and asks for a full run: the notice comes
                # without the user doing anything
                notice = page.get_by_text("The server was restarted since this tab was opened")
                notice.wait_for(timeout=90_000)
                settle(page)
                assert "🔄" not in page.locator('[data-testid="stAlert"]').first.inner_text()
                # ... and a slider inside a fragment works again (the new server knows the
                # fragments): the section's note follows the slider
                assert page.get_by_text("and C = 10 the minimum").count() == 1
                slider = page.get_by_role("slider", name="Classes C")
                slider.focus()
                page.keyboard.press("ArrowRight")
                page.get_by_text("and C = 11 the minimum").wait_for(timeout=30_000)
                page.get_by_role("button", name="OK, start afresh").click()
                notice.wait_for(state="detached", timeout=30_000)
                page.reload()
                open_page(page, url + "/train", "Train")
                assert page.get_by_text("server was restarted").count() == 0
        finally:
            stop_server(proc)

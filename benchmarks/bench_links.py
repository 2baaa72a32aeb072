"""How fast a stored landscape's link draws on a fresh server, against computing it.

1. A data folder (temporary) gets one small stored run (trained here, not timed).
2. Server A, after its first page, opens the run's Landscape link in a new browser context:
   the picture is computed and kept in the folder. Timed: the baseline.
3. Server A stops; server B starts on the same folder; after its first page (Home, timed
   apart), a new browser context opens the same link; then server C starts and the link
   is its very first visit (app.py warms a server up before it answers anyone). Timed:
   from the navigation to the heatmap drawn, and the server's part alone: from the page's
   first websocket message (its request for the script run) to the run's last message,
   timed by the page itself; the rest is the browser loading and running Streamlit's and
   Plotly's JavaScript.

4. The floor: a minimal Streamlit app (a title and one 41x41 Plotly heatmap, nothing of
   this project) opened the same way, so the figures say how much of a link's time is the
   Lab's and how much is Streamlit's and Plotly's own start-up in this browser on this machine.

Prints the times and their ratios. Uses Debian's /usr/bin/chromium through Playwright.

Usage (from the repository root):
  python benchmarks/bench_links.py [--res 41]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landscape.data.config import Config  # noqa: E402
from landscape.storage import datastore  # noqa: E402
from tests.e2e.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    _free_port,
    start_server,
    stop_server,
)
from tests.e2e.helpers import settle  # noqa: E402
from tests.e2e.test_links import _start, _stop  # noqa: E402

MINIMAL_APP = """import numpy as np
import plotly.graph_objects as go  # noqa: E402
import streamlit as st  # noqa: E402

st.title("Floor")
z = np.random.default_rng(0).random((41, 41))
st.plotly_chart(go.Figure(go.Heatmap(z=z)))
"""

# The script run is over and its output (the h1, and the chart's element) is on the page.
SERVER_DONE = """() => { const a = document.querySelector('[data-testid="stApp"]');
  return !!a && a.dataset.testScriptState === 'notRunning'
    && !!document.querySelector('[data-testid=stMain] h1')
    && !!document.querySelector('[data-testid=stMain] [data-testid=stPlotlyChart]'); }"""
HOME_DONE = """() => { const a = document.querySelector('[data-testid="stApp"]');
  return !!a && a.dataset.testScriptState === 'notRunning'
    && !!document.querySelector('[data-testid=stMain] h1'); }"""
HOME = (
    "() => [...document.querySelectorAll('h1')].some(h => h.innerText.includes('Loss Landscape'))"
)
HEATMAP = (
    "() => [...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')]"
    ".some(e => Array.isArray(e.data) && e.data.some(t => t.type === 'heatmap'))"
)


# The page's websocket traffic: when the browser first sent (its request for the script run)
# and when each server message arrived, in the page's own clock.
WS_TIMES = """{ window.__ws = {sent: null, got: []}; const W = window.WebSocket;
  window.WebSocket = function (...a) { const w = new W(...a);
    const send = w.send.bind(w);
    w.send = (d) => { if (window.__ws.sent === null) window.__ws.sent = performance.now();
                      return send(d); };
    w.addEventListener('message', () => window.__ws.got.push(performance.now()));
    return w; };
  window.WebSocket.prototype = W.prototype; Object.assign(window.WebSocket, W); }"""


def open_link(browser, url: str, js: str = HEATMAP) -> tuple[float, float, float]:
    """(seconds to the script run's end with the page drawn by the server, seconds until
    ``js`` holds in the browser: the chart drawn by Plotly, seconds the server took: from
    the page's first websocket message to the last message of the run it asked for)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    page.add_init_script(WS_TIMES)
    t0 = time.perf_counter()
    page.goto(url, timeout=300_000)
    page.wait_for_function(SERVER_DONE if js is HEATMAP else HOME_DONE, timeout=300_000)
    server = time.perf_counter() - t0
    ws = page.evaluate("window.__ws")
    page.wait_for_function(js, timeout=300_000, polling=20)
    seconds = time.perf_counter() - t0
    settle(page, 60)
    ctx.close()
    return server, seconds, (max(ws["got"]) - ws["sent"]) / 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--res", type=int, default=41, help="grid points per axis (41)")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    config = Config(dataset="moons", n_samples=500, epochs=20, width=16, seed=5)
    with tempfile.TemporaryDirectory() as folder:
        datastore.train_stored(config, store=datastore.Store(folder))
        rid = datastore.run_id(config)
        query = f"/landscape?run={rid}&lp_plot=heatmap&lp_nx2={args.res}&lp_ny2={args.res}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            proc, log, url = _start(folder, _free_port())
            try:
                open_link(browser, url + "/", HOME)  # the server's own warm-up (imports)
                cold = open_link(browser, url + query)
            finally:
                _stop(proc, log)
            proc, log, url = _start(folder, _free_port())
            try:
                first = open_link(browser, url + "/", HOME)
                stored = open_link(browser, url + query)
                again = open_link(browser, url + query)  # the same, now in memory too
                home = open_link(browser, url + "/", HOME)  # a light page, same server
            finally:
                _stop(proc, log)
            proc, log, url = _start(folder, _free_port())  # the link as a server's first visit
            try:
                very_first = open_link(browser, url + query)
            finally:
                _stop(proc, log)
            floor = minimal_app(browser, folder)
            browser.close()
    print(f"landscape link, {args.res}x{args.res} plane of a stored run ({rid}):")
    print(
        "seconds from navigation to: server's script run done / chart drawn in the browser; "
        "[the server's part: from the page's first websocket message to the run's last]"
    )
    rows = [
        ("fresh server's first page (Home: imports, workers)", first),
        ("link, computed (not stored yet)", cold),
        ("link, from the store (server restarted)", stored),
        ("link, from the store, as a fresh server's first visit", very_first),
        ("link again, new browser context", again),
        ("Home again, new browser context (page-load floor)", home),
        ("floor: minimal Streamlit app, one heatmap (same way)", floor),
    ]
    for label, (done, drawn, part) in rows:
        print(f"  {label:54s} {done:6.2f} / {drawn:6.2f}  [{part:5.2f}]")
    print(f"  ratio computed / stored (server's part)                {cold[2] / stored[2]:6.1f} x")
    print(f"  stored link / floor (chart drawn)                      {stored[1] / floor[1]:6.1f} x")


def minimal_app(browser, folder: str) -> tuple[float, float, float]:
    """The best a Streamlit page with one Plotly chart does here: ``open_link``'s times, the
    first visit after its own warm-up visit, in a new browser context as for the links."""
    path = Path(folder) / "floor_app.py"
    path.write_text(MINIMAL_APP)
    port = _free_port()
    with open(Path(folder) / "floor.log", "w") as log:
        proc = start_server(port, log, app=str(path))
        try:
            url = f"http://127.0.0.1:{port}/"
            open_link(browser, url)  # warm-up: imports
            return open_link(browser, url)
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()

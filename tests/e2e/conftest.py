"""Real-browser fixtures: a live `streamlit run app.py` on a free localhost port, and
Debian's headless Chromium driven by Playwright for Python (never `playwright install`).

Without /usr/bin/chromium the suite is skipped with a note, unless
LANDSCAPE_REQUIRE_BROWSER=1 (set by .ci/run), in which case it fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LANDSCAPE_CHROMIUM", "/usr/bin/chromium")
# outside the checkout: the suite never writes into the repository unless asked to
SHOTS = Path(os.environ.get("LANDSCAPE_SHOTS", Path(tempfile.gettempdir()) / "landscape-e2e-shots"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_browser() -> None:
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("LANDSCAPE_REQUIRE_BROWSER") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def start_server(
    port: int, log, env: dict | None = None, app: str = "app.py", command=None, cwd=ROOT
) -> subprocess.Popen:
    """``streamlit run APP`` in the clone (or ``command`` in ``cwd``, given Streamlit's
    options) on 127.0.0.1:``port`` (output to ``log``), once healthy."""
    command = command or [sys.executable, "-m", "streamlit", "run", app]
    proc = subprocess.Popen(
        [*map(str, command), "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"streamlit did not start; see {log.name}")
        time.sleep(0.5)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def app_url():
    """Start the app once for the e2e session; wait until healthy; stop it afterwards."""
    _need_browser()
    port = _free_port()
    (ROOT / "out").mkdir(exist_ok=True)
    with open(ROOT / "out" / "e2e-server.log", "w") as log:
        proc = start_server(port, log)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(proc)


@pytest.fixture(scope="session")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots_dir():
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\ne2e screenshots are saved in {SHOTS}")
    _used_shots.append(SHOTS)
    return SHOTS


_used_shots: list[Path] = []


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots went (a fixture's print is captured by pytest)."""
    if _used_shots:
        terminalreporter.write_line(f"e2e screenshots are saved in {_used_shots[0]}")


# On a deep link (/train) Streamlit's front end first probes <page>/_stcore/health and
# <page>/_stcore/host-config, gets 404 and falls back to the root: its start-up, not an error.
BENIGN_404 = re.compile(r"/_stcore/(health|host-config)$")


def _console_error(msg) -> str | None:
    if msg.type != "error":
        return None
    url = (msg.location or {}).get("url", "")
    if "Failed to load resource" in msg.text and BENIGN_404.search(url):
        return None
    return f"{msg.text} [{url}]" if url else msg.text


@contextlib.contextmanager
def _new_page(browser, **context):
    """A fresh browser context (1400x1000 unless ``context`` says otherwise) and page;
    console errors are collected on page.errors."""
    ctx = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **context})
    pg = ctx.new_page()
    pg.errors = []
    pg.on("console", lambda m: (e := _console_error(m)) and pg.errors.append(e))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture
def page(browser, app_url):
    """A fresh browser context per test (a new Streamlit session)."""
    with _new_page(browser) as pg:
        yield pg


@pytest.fixture(scope="module")
def session_page(browser, app_url):
    """One browser page kept for a whole test module: one Streamlit session, so a run trained
    by one test is there for the next (Train -> Landscape -> Compare), as for a user."""
    with _new_page(browser) as pg:
        yield pg

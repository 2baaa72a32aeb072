"""What the browser tests do again and again: wait for Streamlit to be idle, read a Plotly
chart's data, move a slider with the keyboard, check that nothing went wrong.

"Idle" is read from the app itself: Streamlit marks its root element with
`data-test-script-state` ("running" / "notRunning") and `data-test-connection-state`.
A chart "changed" when the JSON of its traces (type, name, x, y, z) differs from before.
"""

from __future__ import annotations

import time

JS_IDLE = """() => {
  const a = document.querySelector('[data-testid="stApp"]');
  return !!a && a.dataset.testScriptState === 'notRunning'
      && a.dataset.testConnectionState === 'CONNECTED';
}"""

# The Plotly charts under a selector: Streamlit's own, and those drawn inside a component's
# iframe (the live panel's charts, landscape/ui/livechart.py; same origin, so readable).
PLOTS = """const plots = sel => [...document.querySelectorAll(sel + ' .js-plotly-plot'),
  ...[...document.querySelectorAll(sel + ' iframe')].flatMap(f => {
    try { return [...f.contentDocument.querySelectorAll('.js-plotly-plot')]; }
    catch (e) { return []; } })];"""

# Plotly 6+ ships numeric arrays as {dtype, bdata: base64}: count their points too.
JS_TRACES = """(sel) => {
  PLOTS
  const size = {f8: 8, f4: 4, i4: 4, u4: 4, i2: 2, u2: 2, i1: 1, u1: 1};
  const len = a => !a ? 0 : a.length !== undefined ? a.length
    : a.bdata ? atob(a.bdata).length / (size[a.dtype] || 8) : 0;
  return plots(sel)
    .filter(e => Array.isArray(e.data))
    .map(e => e.data.map(t => ({
      type: t.type || 'scatter', name: t.name || '',
      n: Math.max(len(t.x), len(t.y), len(t.z), t.source ? 1 : 0),
    })));
}"""

JS_SIG = """(sel) => { PLOTS
  return JSON.stringify(plots(sel)
  .filter(e => Array.isArray(e.data))
  .map(e => e.data.map(t => [t.type, t.name, t.x, t.y, t.z]))); }"""

JS_CHANGED = """([sel, before]) => {
  PLOTS
  const now = JSON.stringify(plots(sel)
    .filter(e => Array.isArray(e.data))
    .map(e => e.data.map(t => [t.type, t.name, t.x, t.y, t.z])));
  return now !== before && now !== '[]';
}"""

JS_TRACES, JS_SIG, JS_CHANGED = (
    js.replace("PLOTS", PLOTS) for js in (JS_TRACES, JS_SIG, JS_CHANGED)
)

MAIN = "[data-testid='stMain']"


def wait_idle(page, timeout: float = 60) -> None:
    """Wait until the script run is over and the websocket is connected."""
    page.wait_for_function(JS_IDLE, timeout=timeout * 1000, polling=100)


def settle(page, timeout: float = 60, quiet: float = 0.5) -> None:
    """Idle, and still idle `quiet` seconds later (a rerun may start just after the first)."""
    deadline = time.monotonic() + timeout
    while True:
        wait_idle(page, max(1.0, deadline - time.monotonic()))
        time.sleep(quiet)
        if page.evaluate(JS_IDLE) or time.monotonic() > deadline:
            return


def open_page(page, url: str, title: str, timeout: float = 90) -> None:
    """Load `url` and wait for its h1 containing `title` and an idle app."""
    page.goto(url, timeout=timeout * 1000)
    page.wait_for_function(
        """(t) => [...document.querySelectorAll('[data-testid="stMain"] h1')]
                  .some(h => h.innerText.includes(t))""",
        arg=title,
        timeout=timeout * 1000,
    )
    settle(page, timeout)


def go_via_sidebar(page, path: str, title: str, timeout: float = 60) -> None:
    """Switch page with the sidebar link: the Streamlit session (and its runs) survives."""
    page.locator(f"[data-testid='stSidebarNav'] a[href$='/{path}']").first.click()
    page.wait_for_function(
        """(t) => [...document.querySelectorAll('[data-testid="stMain"] h1')]
                  .some(h => h.innerText.includes(t))""",
        arg=title,
        timeout=timeout * 1000,
    )
    settle(page, timeout)


def traces(page, sel: str = MAIN) -> list[list[dict]]:
    """For each Plotly chart under `sel`: its traces' type, name and number of points."""
    return page.evaluate(JS_TRACES, sel)


def signature(page, sel: str = MAIN) -> str:
    return page.evaluate(JS_SIG, sel)


def wait_changed(page, sel: str, before: str, timeout: float = 60) -> None:
    """Wait until the charts under `sel` differ from `before`, then until the app is idle."""
    page.wait_for_function(JS_CHANGED, arg=[sel, before], timeout=timeout * 1000, polling=100)
    settle(page, timeout)


def slider(page, label: str):
    """The thumb of the slider labelled `label` (an input type=range, ARIA role slider)."""
    return page.locator(f'input[type="range"][aria-label="{label}"]').first


def press_slider(page, label: str, *keys: str) -> None:
    """Focus a slider's thumb and press keys on it (ArrowRight, End, Home, ...)."""
    thumb = slider(page, label)
    thumb.focus()
    for k in keys:
        page.keyboard.press(k)


def set_slider(page, label: str, value: int) -> None:
    """Keyboard only: Home, then ArrowRight up to `value` (integer sliders with step 1)."""
    thumb = slider(page, label)
    lo = int(float(thumb.get_attribute("min")))
    press_slider(page, label, "Home", *["ArrowRight"] * (value - lo))
    assert int(float(thumb.get_attribute("value"))) == value, thumb.get_attribute("value")


def exceptions(page) -> list[str]:
    return page.locator("[data-testid='stException']").all_inner_texts()


def assert_clean(page) -> None:
    """No Streamlit exception box and no console error on the page."""
    assert not exceptions(page), exceptions(page)
    assert not page.errors, page.errors


def screenshot(page, path, width: int = 1400, max_height: int = 6000) -> None:
    """The whole page as one PNG. Streamlit scrolls inside its main container, so a
    full_page screenshot would stop at the window: grow the window to the content first."""
    height = page.evaluate(
        """() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
                              '[data-testid="stAppScrollToBottomContainer"]']
          .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"""
    )
    old = page.viewport_size
    page.set_viewport_size({"width": width, "height": min(max(int(height) + 40, 600), max_height)})
    try:
        time.sleep(0.5)  # let Plotly resize its charts to the new window
        settle(page, 30, quiet=0.3)
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(old)

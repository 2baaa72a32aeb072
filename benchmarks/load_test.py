"""Load test: N concurrent user sessions against one Streamlit server on localhost.

A classroom, simulated: each session loops, until the time is up, with a pause of about
--think seconds between actions:

1. open the Loss shapes page and move sliders;
2. open the Train page and submit its form (the default run; with --vary, the default, a
   per-session seed so every run really trains instead of hitting the cache);
3. open the Landscape page and draw a 2D landscape at a modest resolution (--res, default 21).

Two clients (--client):
- browser (default): a Playwright browser context per session in one headless Chromium
  (Debian's /usr/bin/chromium, never `playwright install`). Pages are switched with the
  sidebar links, as a user does, so the session (and its runs) survives; sliders move with
  the keyboard. An action is timed from the key press / click to "the chart changed and the
  app is idle" (the Plotly element's `data` differs and the app reports
  `data-test-script-state="notRunning"`); ':run_end' rows give the part up to the end of the
  script run. Errors: exception boxes, browser console errors (minus Streamlit's harmless 404
  probes of `<page>/_stcore/health|host-config` on deep links), timeouts. On a 2-core machine
  ten Chromium tabs drawing Plotly charts take most of the CPU from the server (the report
  shows the CPU split), so the times say more about the machine than the server.
- ws: Streamlit's own websocket protocol (what the front end sends and receives), no
  rendering. An action is timed from the message to the end of the script run it caused:
  the server alone. Errors: exception elements, st.error texts naming a Python exception,
  runs without their chart.

Meanwhile the server's resident memory (RSS) is sampled every second (psutil when installed,
else /proc/<pid>/status), and the CPU seconds of the server, of this script's browsers and
of the whole machine (the rest is other load). The report gives: sessions and loops
completed, errors, median / 95th percentile / max time per action, peak RSS, RSS per 20 s
window, whether memory levels off (the peak of the last third of the run is within
max(5 %, 30 MB) of the peak of the middle third), and the CPU split.

Targets (issue 7): 10 sessions for 2 minutes with zero errors; the loss page's slider move
under 0.5 s at the 95th percentile while others train; memory levels off.

Usage (from the repository root; everything stops by itself):
  python benchmarks/load_test.py                   # starts a server, 10 browser sessions, 120 s
  python benchmarks/load_test.py --client ws       # the same through the websocket protocol
  python benchmarks/load_test.py --quick           # 3 sessions, 30 s: a sanity run
  python benchmarks/load_test.py --loss-only       # slider moves only: the baseline
  python benchmarks/load_test.py --url http://127.0.0.1:8501 --pid 1234   # an existing server
Writes the report as JSON too (--json, default out/load_test.json). Exit status 0 when every
target is met, 1 otherwise, 2 on a setup failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LANDSCAPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
SLIDER_TARGET_S = 0.5  # p95 of a loss-page slider move
WINDOW_S = 20  # RSS report window

# The app is idle: the script is not running and the websocket is connected.
JS_IDLE = """() => {
  const a = document.querySelector('[data-testid="stApp"]');
  return !!a && a.dataset.testScriptState === 'notRunning'
      && a.dataset.testConnectionState === 'CONNECTED';
}"""
# A signature of the data of every Plotly chart under a selector (null if none is drawn).
JS_SIG = """(sel) => {
  const els = [...document.querySelectorAll(sel + ' .js-plotly-plot')].filter(e => e.data);
  if (!els.length) return null;
  return JSON.stringify(els.map(e => e.data.map(t => [t.type, t.name, t.x, t.y, t.z])));
}"""
JS_CHANGED = """([sel, before]) => {
  const els = [...document.querySelectorAll(sel + ' .js-plotly-plot')].filter(e => e.data);
  if (!els.length) return false;
  const now = JSON.stringify(els.map(e => e.data.map(t => [t.type, t.name, t.x, t.y, t.z])));
  return now !== before;
}"""
# Records every change of the app's script state with its time, so that an action's time can
# be split: press -> script run finished (what the server and the websocket cost, as the
# browser sees it) and the rest (React and Plotly drawing the new chart in the browser).
JS_STATE_LOG = """(() => {
  window.__stStates = [];
  new MutationObserver(ms => ms.forEach(m => window.__stStates.push(
      [performance.now(), m.target.getAttribute('data-test-script-state')])))
    .observe(document, {subtree: true, attributes: true,
                        attributeFilter: ['data-test-script-state']});
})()"""
JS_RUN_END = """(t0) => {
  const s = (window.__stStates || []).filter(([t]) => t >= t0);
  const i = s.findIndex(([, v]) => v === 'running');
  const j = i < 0 ? -1 : s.findIndex(([, v], k) => k > i && v === 'notRunning');
  return j < 0 ? null : (s[j][0] - t0) / 1000;
}"""
# Streamlit probes <page>/_stcore/{health,host-config} on a deep link before falling back to
# the root: a 404 there is part of its start-up, not an error of the app.
BENIGN_URL = re.compile(r"/_stcore/(health|host-config)$")

# An st.error whose text names a Python exception is a crash caught and shown, not bad input.
CRASH_TEXT = re.compile(
    r"\b(KeyError|TypeError|IndexError|AttributeError|ZeroDivisionError|AssertionError|"
    r"NameError|UnboundLocalError|RecursionError)\b|Traceback|failed \("
)
# The loss page's sliders moved in turn: (accessible name, chart key that must change).
LOSS_SLIDERS = [
    ("Classes C", "ce_chart"),
    ("Outliers (of 40 points)", "out_chart"),
    ("Label smoothing ε", "ce_chart"),
    ("Huber δ", "out_chart"),
]


# ----------------------------------------------------------------------------- results


@dataclass
class Recorder:
    """Everything measured, shared by the sessions (asyncio: one thread, no locks needed)."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[dict] = field(default_factory=list)
    loops: int = 0
    sessions_done: int = 0
    t0: float = field(default_factory=time.monotonic)

    def error(self, session: int, action: str, kind: str, message: str) -> None:
        self.errors.append(
            {
                "t": round(time.monotonic() - self.t0, 1),
                "session": session,
                "action": action,
                "kind": kind,
                "message": message[:300],
            }
        )


class ActionFailed(Exception):
    """An action hit an exception box or a timeout (already recorded)."""


async def think(args, rng: random.Random) -> None:
    """A user's pause between two actions: --think seconds on average (0.5x to 1.5x)."""
    if args.think > 0:
        await asyncio.sleep(args.think * rng.uniform(0.5, 1.5))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-q * len(v) // 100)) - 1))
    return v[k]


# ----------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_path: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run app.py` on a free port of 127.0.0.1; returns once /_stcore/health is ok."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - the caller's finally closes it with the server
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    cmd += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    cmd += ["--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"streamlit did not become healthy in 90 s; see {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.e2e.conftest import stop_server as stop

    stop(proc)
    log = getattr(proc, "log", None)
    if log:
        log.close()


def _rss_one(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of the server: its process and every process below it (the worker
    processes that run heavy jobs); None if the server is gone."""
    main = _rss_one(pid)
    if main is None:
        return None
    return main + sum(_rss_one(p) or 0 for p in _descendants(pid))


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used so far) of a process, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks  # ppid, utime + stime


def _descendants(root: int) -> set[int]:
    """Every process below `root` (Playwright's driver and the Chromium it started)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _proc_stat(int(entry))):
            parent[int(entry)] = st[0]
    out, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in out}
        out |= frontier
    return out


def _machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat), for other load."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


class MemorySampler(threading.Thread):
    """Every `every` seconds: the server's RSS [(t, bytes)] (its workers included), and the CPU
    seconds used by the server process, by its worker processes, by this script's browsers,
    and by the whole machine (the rest is other load)."""

    def __init__(self, pid: int | None, every: float = 1.0, browser_nice: int = 0):
        super().__init__(daemon=True)
        self.pid, self.every, self.browser_nice = pid, every, browser_nice
        self.reniced: set[int] = set()
        self.samples: list[tuple[float, int]] = []
        self.cpu: dict[int, float] = {}  # pid -> CPU seconds (last seen) of server and browsers
        self.workers: set[int] = set()  # processes below the server (its heavy-job workers)
        self._halt = threading.Event()
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy()
        self.busy = 0.0
        self.server0 = (_proc_stat(pid) or (0, 0.0))[1] if pid else 0.0  # start-up excluded

    def run(self) -> None:
        while not self._halt.is_set():
            rss = rss_bytes(self.pid) if self.pid else None
            if rss is not None:
                self.samples.append((time.monotonic() - self.t0, rss))
            if self.pid:
                self.workers |= _descendants(self.pid)
            if self.browser_nice:
                self._renice_browsers()
            for p in _descendants(os.getpid()) | self.workers | ({self.pid} if self.pid else set()):
                if st := _proc_stat(p):
                    self.cpu[p] = max(self.cpu.get(p, 0.0), st[1])
            self.busy = _machine_busy() - self.busy0
            self._halt.wait(self.every)

    def _renice_browsers(self) -> None:
        """Lower the priority of this script's browser processes (not the server's tree)."""
        server = {self.pid, *self.workers} if self.pid else set()
        for p in _descendants(os.getpid()) - server:
            try:
                threads = {int(t) for t in os.listdir(f"/proc/{p}/task")}
            except OSError:
                continue
            for tid in threads - self.reniced:  # Linux: a nice level is per thread
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, self.browser_nice)
                    self.reniced.add(tid)
                except OSError:
                    pass

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def cpu_report(self, wall: float) -> dict:
        server = self.cpu.get(self.pid, self.server0) - self.server0 if self.pid else 0.0
        workers = sum(v for p, v in self.cpu.items() if p in self.workers)
        browsers = sum(v for p, v in self.cpu.items() if p != self.pid and p not in self.workers)
        return {
            "wall_s": round(wall, 1),
            "cores": os.cpu_count(),
            "server_cpu_s": round(server, 1),
            "workers_cpu_s": round(workers, 1),
            "browsers_cpu_s": round(browsers, 1),
            "machine_busy_cpu_s": round(self.busy, 1),
            "other_load_cpu_s": round(max(0.0, self.busy - server - workers - browsers), 1),
        }


# ----------------------------------------------------------------------------- one session


class Session:
    """One simulated user: a browser context that loops over the three pages."""

    def __init__(self, i: int, browser, base: str, rec: Recorder, args):
        self.i, self.browser, self.base, self.rec, self.args = i, browser, base, rec, args
        self.page = None
        self.loop = 0
        self.slider_turn = i  # sessions start on different sliders
        self.rng = random.Random(i)  # think times, seeded

    async def run(self, deadline: float) -> None:
        ctx = await self.browser.new_context(viewport={"width": 1280, "height": 900})
        await ctx.add_init_script(script=JS_STATE_LOG)
        self.page = await ctx.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.rec.error(self.i, "-", "pageerror", str(e)))
        try:
            await self._open_app()
            while time.monotonic() < deadline and self.loop < self.args.max_loops:
                try:
                    complete = await self._one_loop(deadline)
                except ActionFailed:
                    await self._recover()
                    continue
                self.loop += 1
                self.rec.loops += complete
            self.rec.sessions_done += 1
        except ActionFailed:
            pass
        except Exception as e:  # a session that dies is an error of the run, not of the script
            self.rec.error(self.i, "-", "session crashed", f"{type(e).__name__}: {e}")
        finally:
            await ctx.close()

    def _on_console(self, msg) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if "Failed to load resource" in msg.text and BENIGN_URL.search(url):
            return
        self.rec.error(self.i, "-", "console", f"{msg.text} [{url}]")

    # --- the sequence

    async def _one_loop(self, deadline: float) -> bool:
        """Loss page, Train, Landscape; True when all three were done before the deadline."""
        await self._step("open_loss", self._open_page("loss-shapes", "Loss shapes", "open_loss"))
        for _ in range(self.args.moves):
            await self._step("loss_slider", self._move_loss_slider())
        if not self.args.heavy:
            return True
        if time.monotonic() > deadline:
            return False
        await self._step("open_train", self._open_page("train", "Train", "open_train"))
        await self._step("train_default", self._train())
        if time.monotonic() > deadline:
            return False
        await self._step(
            "open_landscape", self._open_page("landscape", "landscape", "open_landscape")
        )
        await self._step("landscape_2d", self._landscape())
        return True

    async def _step(self, action: str, coro) -> None:
        """Run one action; anything that goes wrong in it is recorded as its error."""
        try:
            await coro
        except ActionFailed:
            raise
        except Exception as e:
            await self._check_exceptions(action)
            self.rec.error(self.i, action, type(e).__name__, str(e).splitlines()[0])
            raise ActionFailed from None
        await think(self.args, self.rng)

    async def _open_app(self) -> None:
        t = time.monotonic()
        await self.page.goto(self.base, timeout=60_000)
        await self._wait(JS_IDLE, None, "open_app", 60)
        self._record("open_app", t)

    async def _open_page(self, path: str, title: str, action: str) -> None:
        t = time.monotonic()
        link = self.page.locator(f"[data-testid='stSidebarNav'] a[href$='/{path}']")
        await link.first.click(timeout=30_000)
        await self.page.wait_for_url(re.compile(f"/{path}$"), timeout=30_000)
        has_title = """(t) => [...document.querySelectorAll('[data-testid="stMain"] h1')]
                                .some(h => h.innerText.includes(t))"""
        await self._wait(has_title, title, action, 60)
        await self._wait(JS_IDLE, None, action, 60)
        await self._check_exceptions(action)
        self._record(action, t)

    async def _move_loss_slider(self) -> None:
        name, chart = LOSS_SLIDERS[self.slider_turn % len(LOSS_SLIDERS)]
        self.slider_turn += 1
        sel = f".st-key-{chart}"
        slider = self.page.locator(f'input[type="range"][aria-label="{name}"]').first
        before = await self.page.evaluate(JS_SIG, sel)
        value, top = await slider.evaluate("e => [Number(e.value), Number(e.max)]")
        await slider.focus()
        t0 = await self.page.evaluate("performance.now()")
        t = time.monotonic()
        await self.page.keyboard.press("ArrowRight" if value < top else "Home")
        await self._wait(JS_CHANGED, [sel, before], "loss_slider", 30)
        await self._wait(JS_IDLE, None, "loss_slider", 30)
        await self._check_exceptions("loss_slider")
        self._record("loss_slider", t)
        await self._record_run_end("loss_slider", t0)

    def _seed(self) -> int:
        """A new seed per session and loop (--vary: every run trains for real), or 1, 2, 1, 2
        shared by all sessions (--no-vary: mostly cache hits). Either way the chart changes,
        which is how the end of an action is detected."""
        return 1000 * self.i + self.loop + 1 if self.args.vary else 1 + self.loop % 2

    async def _set_number(self, label: str, value: int) -> bool:
        """Type into a number_input by its label (inside a form: no rerun yet)."""
        box = self.page.get_by_label(label, exact=True)
        if await box.count() == 0:
            return False
        await box.first.fill(str(value))
        await box.first.press("Tab")
        return True

    async def _train(self) -> None:
        await self._set_number("Seed", self._seed())
        await self._submit("train_default", self.args.heavy_timeout)

    async def _landscape(self) -> None:
        main = "[data-testid='stMain']"
        if await self.page.get_by_text("No trained network in this session").count():
            self.rec.error(self.i, "landscape_2d", "no run", "the Train page left no run")
            raise ActionFailed
        for label in ("Points along x", "Points along y"):
            await self._set_slider(label, self.args.res)
        await self._set_number("Seed", self._seed())
        await self._submit(
            "landscape_2d", self.args.heavy_timeout, chart=f"{main} .st-key-lp_chart"
        )

    async def _set_slider(self, label: str, value: int) -> None:
        """Keyboard only, as a user would: Home, then ArrowRight up to the value."""
        slider = self.page.locator(f'input[type="range"][aria-label="{label}"]').first
        lo = int(await slider.evaluate("e => Number(e.min)"))
        await slider.focus()
        await self.page.keyboard.press("Home")
        for _ in range(max(0, value - lo)):
            await self.page.keyboard.press("ArrowRight")

    async def _submit(self, action: str, timeout: float, chart: str | None = None) -> None:
        chart = chart or "[data-testid='stMain']"
        before = await self.page.evaluate(JS_SIG, chart)
        button = self.page.locator("[data-testid='stFormSubmitButton'] button").first
        t0 = await self.page.evaluate("performance.now()")
        t = time.monotonic()
        await button.click(timeout=30_000)
        await self._wait(JS_CHANGED, [chart, before], action, timeout)
        await self._wait(JS_IDLE, None, action, timeout)
        await self._check_exceptions(action)
        self._record(action, t)
        await self._record_run_end(action, t0)

    # --- plumbing

    async def _wait(self, js: str, arg, action: str, timeout_s: float) -> None:
        try:
            await self.page.wait_for_function(js, arg=arg, timeout=timeout_s * 1000, polling=50)
        except Exception as e:
            await self._check_exceptions(action)
            self.rec.error(self.i, action, "timeout", f"{timeout_s:g} s: {str(e).splitlines()[0]}")
            raise ActionFailed from None

    async def _check_exceptions(self, action: str) -> None:
        boxes = self.page.locator("[data-testid='stException']")
        if await boxes.count():
            text = (await boxes.first.inner_text())[:300]
            self.rec.error(self.i, action, "exception box", text)
            raise ActionFailed

    def _record(self, action: str, t: float) -> None:
        self.rec.times[action].append(time.monotonic() - t)

    async def _record_run_end(self, action: str, t0: float) -> None:
        """Press -> the first script run after it finished, as the browser saw it."""
        s = await self.page.evaluate(JS_RUN_END, t0)
        if s is not None:
            self.rec.times[f"{action}:run_end"].append(s)

    async def _recover(self) -> None:
        """After a failure: reload the app (a fresh session) and carry on."""
        try:
            await self._open_app()
        except ActionFailed:
            await asyncio.sleep(2)
        except Exception as e:
            self.rec.error(self.i, "recover", "reload failed", str(e))
            await asyncio.sleep(2)


# ----------------------------------------------------------------------------- protocol client


class WsSession:
    """One simulated user speaking Streamlit's own websocket protocol (no browser).

    It sends what the front end sends (BackMsg.rerun_script with the page, the changed
    widgets' states and, for a widget inside an st.fragment, the fragment id) and reads what
    the server answers (ForwardMsg: navigation, deltas, script_finished). An action's time runs
    from sending the message to the end of the script run it caused, so it measures the server
    (and the socket) alone: with --client browser, ten Chromium tabs drawing Plotly charts on
    the same two cores as the server would be measured too. Errors: exception elements,
    st.error texts that name a Python exception, runs that end without the expected chart.
    """

    def __init__(self, i: int, base: str, rec: Recorder, args):
        self.i, self.rec, self.args = i, rec, args
        self.url = (
            base.replace("http://", "ws://").replace("https://", "wss://") + "/_stcore/stream"
        )
        self.ws = None
        self.pages: dict[str, str] = {}  # url path -> page_script_hash
        self.page = ""
        self.widgets: dict[str, tuple[str, str, str, object]] = {}  # label -> kind, id, frag, proto
        self.loop = 0
        self.turn = i
        self.rng = random.Random(i)  # think times, seeded

    async def run(self, deadline: float) -> None:
        import websockets

        try:
            async with websockets.connect(
                self.url, subprotocols=["streamlit"], max_size=None, open_timeout=60
            ) as self.ws:
                await self._step("open_app", self._open(""))
                while time.monotonic() < deadline and self.loop < self.args.max_loops:
                    try:
                        complete = await self._one_loop(deadline)
                    except ActionFailed:
                        await asyncio.sleep(1)
                        continue
                    self.loop += 1
                    self.rec.loops += complete
            self.rec.sessions_done += 1
        except ActionFailed:
            pass
        except Exception as e:
            self.rec.error(self.i, "-", "session crashed", f"{type(e).__name__}: {e}")

    async def _one_loop(self, deadline: float) -> bool:
        await self._step("open_loss", self._open("loss-shapes"))
        for _ in range(self.args.moves):
            await self._step("loss_slider", self._move_loss_slider())
        if not self.args.heavy:
            return True
        if time.monotonic() > deadline:
            return False
        await self._step("open_train", self._open("train"))
        await self._step("train_default", self._train())
        if time.monotonic() > deadline:
            return False
        await self._step("open_landscape", self._open("landscape"))
        await self._step("landscape_2d", self._landscape())
        return True

    async def _step(self, action: str, coro) -> None:
        try:
            await coro
        except ActionFailed:
            raise
        except Exception as e:
            self.rec.error(
                self.i, action, type(e).__name__, str(e).splitlines()[0] if str(e) else ""
            )
            raise ActionFailed from None
        await think(self.args, self.rng)

    # --- actions

    async def _open(self, path: str) -> None:
        if path and path not in self.pages:
            raise RuntimeError(f"no page {path!r} in the app's navigation: {sorted(self.pages)}")
        self.page = self.pages.get(path, "")
        self.widgets.clear()
        await self._timed("open_" + (path.split("-")[0] or "app"), [], "")

    async def _move_loss_slider(self) -> None:
        name, _ = LOSS_SLIDERS[self.turn % len(LOSS_SLIDERS)]
        self.turn += 1
        _, wid, frag, proto = self._widget(name)
        steps = int(round((proto.max - proto.min) / proto.step))
        value = proto.min + ((self.turn * 7 + self.i) % (steps + 1)) * proto.step
        await self._timed("loss_slider", [self._state(wid, double_array=[value])], frag)

    async def _train(self) -> None:
        _, seed_id, _, _ = self._widget("Seed")
        _, button, frag, _ = self._widget("Train")
        states = [self._state(seed_id, int_value=self._seed()), self._state(button, trigger=True)]
        await self._timed("train_default", states, frag, expect="tr_loss_chart")

    async def _landscape(self) -> None:
        if "Compute landscape" not in self.widgets:
            raise RuntimeError("no Compute button: the Landscape page did not draw its form")
        states = [
            self._state(self._widget(n)[1], double_array=[self.args.res])
            for n in ("Points along x", "Points along y")
        ]
        states.append(self._state(self._widget("Seed")[1], int_value=self._seed()))
        _, button, frag, _ = self._widget("Compute landscape")
        states.append(self._state(button, trigger=True))
        await self._timed("landscape_2d", states, frag, expect="lp_chart")

    def _seed(self) -> int:
        return 1000 * self.i + self.loop + 1 if self.args.vary else 1 + self.loop % 2

    # --- protocol

    def _widget(self, label: str):
        if label not in self.widgets:
            raise RuntimeError(f"no widget {label!r} on the page: {sorted(self.widgets)[:20]}")
        return self.widgets[label]

    @staticmethod
    def _state(wid: str, double_array=None, int_value=None, trigger=False):
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        w = WidgetState(id=wid)
        if double_array is not None:
            w.double_array_value.data[:] = double_array
        elif int_value is not None:
            w.int_value = int_value
        elif trigger:
            w.trigger_value = True
        return w

    async def _timed(self, action: str, widgets, fragment: str, expect: str | None = None):
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_script_hash = "", self.page
        if fragment:
            cs.fragment_id = fragment
        cs.widget_states.widgets.extend(widgets)
        t = time.monotonic()
        await self.ws.send(msg.SerializeToString())
        timeout = self.args.heavy_timeout if expect else 60
        seen = await asyncio.wait_for(self._until_finished(action), timeout)
        if expect and not any(expect in s for s in seen):
            self.rec.error(self.i, action, "no chart", f"the run drew no {expect!r} chart")
            raise ActionFailed
        self.rec.times[action].append(time.monotonic() - t)

    async def _until_finished(self, action: str) -> set[str]:
        """Read messages until a script run ends (not one cut short by st.rerun); returns
        the ids of the elements drawn."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        drawn: set[str] = set()
        while True:
            f = ForwardMsg()
            f.ParseFromString(await self.ws.recv())
            kind = f.WhichOneof("type")
            if kind == "navigation":
                self.pages.update(
                    {p.url_pathname: p.page_script_hash for p in f.navigation.app_pages}
                )
            elif kind == "delta" and f.delta.WhichOneof("type") == "new_element":
                self._element(f.delta.new_element, f.delta.fragment_id, action, drawn)
            elif (
                kind == "script_finished"
                and f.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN
            ):
                if f.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    self.rec.error(self.i, action, "compile error", "the page did not compile")
                    raise ActionFailed
                return drawn

    def _element(self, el, fragment: str, action: str, drawn: set) -> None:
        kind = el.WhichOneof("type")
        sub = getattr(el, kind)
        if kind == "exception":
            self.rec.error(self.i, action, "exception", f"{sub.type}: {sub.message}")
        elif kind == "alert" and CRASH_TEXT.search(sub.body):
            self.rec.error(self.i, action, "crash in st.error", sub.body)
        wid = getattr(sub, "id", "")
        if wid:
            drawn.add(wid)
            label = getattr(sub, "label", "") or wid
            self.widgets[label] = (kind, wid, fragment, sub)


# ----------------------------------------------------------------------------- driver


async def run_sessions(base: str, args, rec: Recorder) -> None:
    if args.client == "ws":
        return await _drive(
            [WsSession(i, base, rec, args) for i in range(args.sessions)], args, rec
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            await _drive(
                [Session(i, browser, base, rec, args) for i in range(args.sessions)], args, rec
            )
        finally:
            await browser.close()


async def _drive(sessions, args, rec: Recorder) -> None:
    """Start the sessions a little apart, let them loop until the deadline, stop them all."""
    deadline = time.monotonic() + args.duration
    tasks = []
    for s in sessions:  # stagger the arrivals a little, as a class does
        tasks.append(asyncio.create_task(s.run(deadline)))
        await asyncio.sleep(args.stagger)
    # hard stop: the time asked for plus the longest action that may still be running
    _, pending = await asyncio.wait(tasks, timeout=args.duration + args.heavy_timeout + 60)
    for t in pending:
        t.cancel()
        rec.error(-1, "-", "hard stop", "a session was still running at the hard stop")
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def memory_report(samples: list[tuple[float, int]]) -> dict:
    if not samples:
        return {"sampled": False}
    mb = [(t, b / 2**20) for t, b in samples]
    windows = defaultdict(float)
    for t, m in mb:
        w = int(t // WINDOW_S)
        windows[w] = max(windows[w], m)
    peak = max(m for _, m in mb)
    end = mb[-1][0]
    middle = [m for t, m in mb if end / 3 <= t < 2 * end / 3]
    last = [m for t, m in mb if t >= 2 * end / 3]
    growth = (max(last) - max(middle)) if middle and last else float("nan")
    return {
        "sampled": True,
        "start_mb": round(mb[0][1], 1),
        "peak_mb": round(peak, 1),
        "end_mb": round(mb[-1][1], 1),
        "windows_mb": {
            f"{w * WINDOW_S}-{(w + 1) * WINDOW_S}s": round(m, 1) for w, m in sorted(windows.items())
        },
        "growth_last_third_mb": round(growth, 1),
        "levels_off": bool(growth == growth and growth < max(0.05 * peak, 30.0)),
    }


def report(rec: Recorder, mem: dict, args, wall: float, cpu: dict) -> dict:
    actions = {}
    for name, ts in sorted(rec.times.items()):
        actions[name] = {
            "n": len(ts),
            "median_s": round(percentile(ts, 50), 3),
            "p95_s": round(percentile(ts, 95), 3),
            "max_s": round(max(ts), 3),
        }
    by_kind = defaultdict(int)
    for e in rec.errors:
        by_kind[e["kind"]] += 1
    slider = actions.get("loss_slider")
    targets = {
        "zero_errors": not rec.errors,
        "all_sessions_finished": rec.sessions_done == args.sessions,
        "slider_p95_under_0.5s": bool(slider and slider["p95_s"] < SLIDER_TARGET_S),
        "memory_levels_off": bool(mem.get("levels_off")),
    }
    return {
        "sessions": args.sessions,
        "duration_s": args.duration,
        "wall_s": round(wall, 1),
        "client": args.client,
        "heavy": args.heavy,
        "think_s": args.think,
        "browser_nice": args.browser_nice,
        "vary": args.vary,
        "res": args.res,
        "sessions_finished": rec.sessions_done,
        "loops_completed": rec.loops,
        "errors": len(rec.errors),
        "errors_by_kind": dict(by_kind),
        "first_errors": rec.errors[:10],
        "actions": actions,
        "memory": mem,
        "cpu": cpu,
        "targets": targets,
    }


def print_report(r: dict) -> None:
    print(
        f"\n== load test ({r['client']} client): {r['sessions']} sessions, {r['duration_s']} s "
        f"(wall {r['wall_s']} s)"
    )
    print(
        f"sessions finished {r['sessions_finished']}/{r['sessions']}, full loops (loss, train, landscape) {r['loops_completed']}"
    )
    print(f"errors {r['errors']} {r['errors_by_kind'] or ''}")
    for e in r["first_errors"]:
        print(f"  t={e['t']}s session {e['session']} {e['action']}: {e['kind']}: {e['message']}")
    if r["client"] == "browser":
        print("time per action, from the key press / click to the chart changed and the app idle;")
        print("':run_end' = from the press to the end of the script run, as the browser saw it")
    else:
        print("time per action, from the message sent to the end of the script run it caused")
    print(f"{'action':<24}{'n':>6}{'median s':>11}{'p95 s':>9}{'max s':>9}")
    for name, a in r["actions"].items():
        print(f"{name:<24}{a['n']:>6}{a['median_s']:>11.3f}{a['p95_s']:>9.3f}{a['max_s']:>9.3f}")
    c = r["cpu"]
    print(
        f"CPU seconds over {c['wall_s']} s on {c['cores']} cores: server {c['server_cpu_s']}, "
        f"its workers {c['workers_cpu_s']} (start-up included), browsers {c['browsers_cpu_s']}, other processes {c['other_load_cpu_s']} "
        f"(machine busy {c['machine_busy_cpu_s']} of {round(c['wall_s'] * c['cores'], 1)})"
    )
    m = r["memory"]
    if m.get("sampled"):
        print(
            f"RSS of the server and its worker processes: start {m['start_mb']} MB, "
            f"peak {m['peak_mb']} MB, end {m['end_mb']} MB"
        )
        print("  peak per window: " + ", ".join(f"{k} {v}" for k, v in m["windows_mb"].items()))
        print(
            f"  last third vs middle third: {m['growth_last_third_mb']:+} MB -> "
            f"{'levels off' if m['levels_off'] else 'STILL GROWING'}"
        )
    else:
        print("server RSS: not sampled (pass --pid for a server started elsewhere)")
    print(
        "targets: " + ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in r["targets"].items())
    )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an already running server (default: start one on 127.0.0.1)")
    p.add_argument("--pid", type=int, help="that server's process id, for its memory")
    p.add_argument("--sessions", "-n", type=int, default=10, help="concurrent sessions (10)")
    p.add_argument("--duration", type=float, default=120.0, help="seconds of load (120)")
    p.add_argument("--quick", action="store_true", help="a sanity run: 3 sessions, 30 s")
    p.add_argument(
        "--client",
        choices=("browser", "ws"),
        default="browser",
        help="browser: Playwright pages in headless Chromium (what users see, console errors "
        "included); ws: Streamlit's websocket protocol, no rendering (the server alone)",
    )
    p.add_argument("--moves", type=int, default=4, help="slider moves per loss-page visit (4)")
    p.add_argument("--res", type=int, default=21, help="landscape points per axis (21)")
    p.add_argument(
        "--no-vary",
        dest="vary",
        action="store_false",
        help="same seeds in every session (mostly cache hits)",
    )
    p.add_argument(
        "--heavy-timeout",
        type=float,
        default=180.0,
        help="seconds a training or landscape may take under load (180)",
    )
    p.add_argument(
        "--loss-only",
        dest="heavy",
        action="store_false",
        help="only the loss page (no training, no landscape): the baseline for slider moves",
    )
    p.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="seconds a user pauses between actions, on average (1.0; 0 = back to back)",
    )
    p.add_argument(
        "--browser-nice",
        type=int,
        default=0,
        help="browser client: run Chromium at this nice level (e.g. 19: the browsers, which in "
        "a classroom are the students' machines, then take only CPU the server leaves idle)",
    )
    p.add_argument("--max-loops", type=int, default=1000, help="loops per session at most")
    p.add_argument("--stagger", type=float, default=0.5, help="seconds between session starts")
    p.add_argument("--json", type=Path, default=ROOT / "out" / "load_test.json")
    args = p.parse_args(argv)
    if args.quick:
        args.sessions, args.duration = 3, 30.0
    if not (1 <= args.sessions <= 100 and 5 <= args.duration <= 3600):
        p.error("--sessions must be in [1, 100] and --duration in [5, 3600]")
    if not 3 <= args.res <= 101:
        p.error("--res must be in [3, 101]")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.client == "browser" and not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    proc = None
    try:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid
        else:
            proc, base = start_server(ROOT / "out" / "load-test-server.log")
            pid = proc.pid
        print(f"server {base} (pid {pid}); {args.sessions} sessions for {args.duration:g} s ...")
        sampler = MemorySampler(pid, browser_nice=args.browser_nice)
        sampler.start()
        rec = Recorder()
        t = time.monotonic()
        asyncio.run(run_sessions(base, args, rec))
        wall = time.monotonic() - t
        sampler.stop()
        mem = memory_report(sampler.samples)
        r = report(rec, mem, args, wall, sampler.cpu_report(wall))
        print_report(r)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**r, "rss_samples": sampler.samples}))
        print(f"report: {args.json}")
        return 0 if all(r["targets"].values()) else 1
    except RuntimeError as e:
        print(str(e), file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            stop_server(proc)


if __name__ == "__main__":
    sys.exit(main())

"""The session's runs and a bounded, process-wide training cache.

- `get_runs()`: this browser session's finished runs, name -> Run (in st.session_state), so a
  run trained on the Train page can be picked on the Landscape and Compare pages.
- `get_runs()` keeps at most MAX_SESSION_RUNS runs and MAX_SESSION_MB megabytes of weights
  and trajectories; adding one more drops the oldest (the page says which), so one browser
  tab cannot hold on to unbounded memory.
- `train_cached(config, progress)`: trains in a worker process (landscape.ui.common.run_heavy)
  with live progress; the same Config is never trained twice while its Run is in the cache,
  nor ever while it is in the data folder (landscape.storage.datastore: a kept run is read
  from there in the calling thread, without taking a worker; else the worker trains it and
  keeps it there). The cache is one LRU per server process (at most MAX_CACHED_RUNS runs and
  MAX_CACHED_MB megabytes of trajectories), shared by all sessions: runs are deterministic, so
  one user's run is exactly what another would get. Runs in it are shared objects: read-only.

Why not st.cache_data: it would replay the progress bar of the first call and copy (pickle)
every Run on every hit; a lock-guarded LRU under st.cache_resource keeps live progress on the
first call and hands out the same object afterwards.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import OrderedDict

import streamlit as st

from landscape.data.config import Config
from landscape.engine import subject
from landscape.storage import datastore
from landscape.training.loop import Run
from landscape.ui import kept
from landscape.ui.common import md_escape, run_heavy

MAX_SESSION_RUNS = 24  # runs kept in one browser session's list
MAX_SESSION_MB = 150  # ... and their bytes (a digits CNN run of 100 epochs is ~16 MB)
MAX_CACHED_RUNS = 16
MAX_CACHED_MB = 400  # trajectories dominate: a 38k-parameter CNN x 101 epochs is ~15 MB
#: This server process. A browser tab keeps its widgets' values across a server restart and
#: sends them back when it reconnects, so a tab whose hidden boot widget holds another id has
#: outlived the server that held its runs (they lived in that process's memory).
BOOT_ID = uuid.uuid4().hex[:12]
BOOT_KEY = "landscape_boot"
_RESTARTED_KEY = "landscape_restarted"
_BOOT_RESET_KEY = "landscape_boot_reset"
_RECONNECT_KEY = "landscape_reconnected"
# A tab that reconnects (to a restarted server, or to the same one after a network blip) asks
# for one full run of the page by pressing the hidden button above: a restarted server has
# none of the page's fragments, and drops a fragment's rerun unanswered, so without it the
# sliders inside fragments would do nothing and the restart notice would wait for the next
# full run. The watcher is installed once per tab; a full run is harmless after a blip.
_RECONNECT_WATCH = """<script>
(() => {
  if (window.__llabReconnectWatch) return;
  window.__llabReconnectWatch = true;
  let last = 'CONNECTED';
  setInterval(() => {
    const app = document.querySelector('[data-testid="stApp"]');
    const now = app ? app.dataset.testConnectionState : last;
    if (now === 'CONNECTED' && last !== 'CONNECTED') {
      const b = document.querySelector('.st-key-KEY button');
      if (b) b.click();
    }
    last = now;
  }, 250);
})();
</script>"""
#: A Material icon (shipped with Streamlit's frontend): an emoji needs a system emoji font, and
#: Debian's Chromium without one drew the old 🔄 as an empty box.
RESTART_ICON = ":material/refresh:"
_SESSION_KEY = "landscape_runs"
_DROPPED_KEY = "landscape_runs_dropped"


class RunCache:
    """A thread-safe LRU of Runs keyed by Config; one lock per key so that two sessions asking
    for the same config at once train it once (the second waits for the first). A key's lock
    exists only while someone holds or waits for it."""

    def __init__(self, max_runs: int = MAX_CACHED_RUNS, max_mb: float = MAX_CACHED_MB):
        self.max_runs, self.max_bytes = max_runs, max_mb * 1e6
        self._runs: OrderedDict[Config, Run] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Config, list] = {}  # config -> [lock, holders and waiters]

    def get(self, config: Config) -> Run | None:
        with self._lock:
            run = self._runs.get(config)
            if run is not None:
                self._runs.move_to_end(config)
            return run

    def put(self, run: Run) -> None:
        with self._lock:
            self._runs[run.config] = run
            self._runs.move_to_end(run.config)
            while len(self._runs) > 1 and (
                len(self._runs) > self.max_runs or self._bytes() > self.max_bytes
            ):
                self._runs.popitem(last=False)

    def _bytes(self) -> int:
        return sum(r.trajectory.nbytes for r in self._runs.values())

    @contextlib.contextmanager
    def key_lock(self, config: Config):
        """Hold the lock of `config` (one trainer of a config at a time)."""
        with self._lock:
            entry = self._key_locks.setdefault(config, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0 and self._key_locks.get(config) is entry:
                    del self._key_locks[config]

    def n_key_locks(self) -> int:
        return len(self._key_locks)

    def __len__(self) -> int:
        return len(self._runs)

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()


@st.cache_resource
def run_cache() -> RunCache:
    """The process-wide cache (created once per server process)."""
    return RunCache()


def train_cached(config: Config, progress=None, wrap=None) -> Run:
    """The Run of `config`: from the cache, or trained now in a worker process; `progress`
    (training's per-epoch callback) runs in the calling thread, so it can draw on the page.
    ``wrap``: see ``run_heavy`` (pass it when called inside an ``st.cache_data`` function)."""
    cache = run_cache()
    run = cache.get(config)
    if run is not None:
        return run
    with cache.key_lock(config):
        run = cache.get(config)  # another session may have trained it while we waited
        if run is None:
            store = kept.store()  # a kept run (a warmed preset) is read here, never queued
            run = None if store is None else store.find_run(config)
            if run is None:
                run = run_heavy(
                    datastore.train_stored,
                    config,
                    label="training",
                    callbacks={"progress": progress},
                    wrap=wrap,
                )
            cache.put(run)
    return run


# ----------------------------------------------------------------------------- session runs


def get_runs() -> dict[str, Run]:
    """This session's runs, name -> Run, in the order they were added."""
    if _SESSION_KEY not in st.session_state:
        st.session_state[_SESSION_KEY] = {}
    return st.session_state[_SESSION_KEY]


def add_run(run: Run) -> str:
    """Add a finished run; returns its name in the list (unique; the same config is kept once)."""
    runs = get_runs()
    for name, other in runs.items():
        if other.config == run.config:
            return name
    name, i = run.name, 2
    while name in runs:
        name, i = f"{run.name} ({i})", i + 1
    runs[name] = run

    kept.remember(run)
    dropped = []
    while len(runs) > 1 and (
        len(runs) > MAX_SESSION_RUNS or sum(map(run_bytes, runs.values())) > MAX_SESSION_MB * 1e6
    ):
        oldest = next(iter(runs))
        dropped.append(oldest)
        del runs[oldest]
    if dropped:
        st.session_state.setdefault(_DROPPED_KEY, []).extend(dropped)
    return name


def run_bytes(run: Run) -> int:
    """Memory a run holds: its trajectory and its final weights."""
    return run.trajectory.nbytes + sum(t.nbytes for t in run.state_dict.values())


def dropped_note() -> None:
    """Say (once) which old runs left the list because it was full."""
    dropped = st.session_state.pop(_DROPPED_KEY, None)
    if dropped:
        st.info(
            f"The run list keeps {MAX_SESSION_RUNS} runs and {MAX_SESSION_MB} MB; the oldest "
            "left it: " + md_escape(", ".join(dropped)) + ". Download a run first to keep it."
        )


def delete_run(name: str) -> None:
    get_runs().pop(name, None)


def ident(run: Run) -> str:
    """Which net `run` is (its config, final weights and trajectory): a key for what is drawn
    from it. Hashed once per Run object (a digits CNN's trajectory is megabytes)."""
    known = run.__dict__.get("_ident")
    if known is None:
        known = datastore.run_key(run.config)[:16] + subject.fingerprint(run)
        run.__dict__["_ident"] = known  # derived from the run itself: safe on a shared Run
    return known


def run_name_of(run: Run) -> str | None:
    """The name under which `run` (or a run of the same config) is in this session's list."""
    for name, other in get_runs().items():
        if other is run or other.config == run.config:
            return name
    return None


def select_run(run: Run | str, key: str) -> None:
    """Make `run` (a Run or its list name) the one ``library.run_picker(key=key)`` shows on its
    next draw.

    Safe to call after the picker was drawn in this script run: the choice is parked under a
    separate key and applied before the selectbox is created next time.
    """
    name = run if isinstance(run, str) else run_name_of(run)
    if name is not None:
        st.session_state[f"{key}__pending"] = name


# ----------------------------------------------------------------------------- restarts


def restart_notice() -> bool:
    """Say so when this tab outlived a server restart (its runs are gone); True if it did.

    Detects the restart from the hidden boot widget (see BOOT_ID) and keeps the notice, with
    the ways back, until the user dismisses it. Called by lab.py on every full run; a tab
    that reconnects asks for a full run at once (see _RECONNECT_WATCH), so the notice shows
    without the user acting and the page's fragments work again.
    """
    if st.session_state.pop(_BOOT_RESET_KEY, False):
        st.session_state[BOOT_KEY] = BOOT_ID
    default = {} if BOOT_KEY in st.session_state else {"value": BOOT_ID}
    with st.sidebar:
        st.html(f"<style>.st-key-{BOOT_KEY}, .st-key-{_RECONNECT_KEY} {{display: none}}</style>")
        seen = st.text_input(
            "Server instance", key=BOOT_KEY, label_visibility="collapsed", **default
        )
        st.button("Reconnected", key=_RECONNECT_KEY)  # pressed by the watcher: a full run
        st.html(_RECONNECT_WATCH.replace("KEY", _RECONNECT_KEY), unsafe_allow_javascript=True)
    if seen != BOOT_ID:
        st.session_state[_RESTARTED_KEY] = True
        st.session_state[_BOOT_RESET_KEY] = True  # the widget takes this server's id next run
    if not st.session_state.get(_RESTARTED_KEY):
        return False

    if kept.store() is None:
        message = (
            "Runs and landscapes you made before lived in its memory and are gone; anything "
            "still drawn from before is out of date. To carry on: train again on the "
            "**Train** page, or load a run you downloaded (**Landscape** page, *Load a saved "
            "run*)."
        )
    else:
        message = (
            "This tab's list of runs started afresh; the runs you trained are kept in the "
            "server's data folder: open them from **My runs** on the **Home** page (a link "
            "with `?run=` opens its run again by itself)."
        )
    box = st.container(border=True)
    box.warning(
        f"**The server was restarted since this tab was opened.** {message}",
        icon=RESTART_ICON,
    )
    if box.button("OK, start afresh", key="landscape_restart_ok"):
        st.session_state.pop(_RESTARTED_KEY, None)
        st.rerun()
    return True

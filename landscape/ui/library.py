"""Streamlit glue for the data folder (landscape.storage.datastore): stored runs into the session,
the run picker that names runs by short id in the URL, "My runs" and "Classroom" lists,
"Open in Train", "Load settings" and the Home page's usage line.

A broken data folder (unwritable, a bad LANDSCAPE_DATA_MAX_MB) never stops a page: the
store is then off for this server (the pages work from memory) and Home says why.
"""

from __future__ import annotations

import json

import streamlit as st

from landscape.data.config import Config
from landscape.pipelines import presets
from landscape.storage import datastore
from landscape.training.loop import Run
from landscape.ui import (
    links,
    train_form,  # the page's widget keys
)
from landscape.ui import runs as ui_runs
from landscape.ui.kept import lease, notes, store, store_error

MAX_LIST = 50  # rows of a run list shown


def load_into_session(rid: str) -> Run | None:
    """The stored run ``rid`` added to this session's list (None if not stored)."""
    for run in ui_runs.get_runs().values():
        if datastore.run_id(run.config) == rid:
            return run
    s = store()
    if s is None:
        return None
    try:
        run = s.get_run(rid, notes())
    except ValueError:
        return None
    if run is not None:
        ui_runs.add_run(run)
    return run


def run_picker(label: str = "Run", key: str = "run__pick", param: str | None = None) -> Run | None:
    """THE run picker: a selectbox (widget ``key``) over this session's runs, newest first,
    each shown as "name · short id"; None when the session holds none.

    ``param``: the choice is kept in the address as ``?param=<short id>``, and a run named
    there that this session does not hold is loaded from the store first, so a link opens on
    a fresh browser and after a server restart. (Not a bound widget: binding would put the
    run's whole label in the URL; the id is short.) ``ui_runs.select_run(run, key)`` makes a
    run the choice of the next draw.
    """
    asked, known = None, False
    if param is not None:
        links.handled(param)
        asked = st.query_params.get(param)
        known = isinstance(asked, str) and bool(datastore.RUN_ID_RE.fullmatch(asked))
        if asked is not None and not known:
            links.reject(param)  # not a run id (e.g. a path): noted, and it leaves the address
        if known and load_into_session(asked) is None and links.opened_with(param):
            st.info(f"Run {asked} of the link is not in this server's data folder.")
    runs = ui_runs.get_runs()
    if not runs:
        return None
    by_id = {datastore.run_id(r.config): (name, r) for name, r in reversed(runs.items())}
    pending = st.session_state.pop(f"{key}__pending", None)  # see ui_runs.select_run
    if pending in runs:
        st.session_state[key] = datastore.run_id(runs[pending].config)
    elif known and asked in by_id and links.opened_with(param) and links.first_run():
        st.session_state[key] = asked
    if st.session_state.get(key) not in (None, *by_id):  # its run was deleted meanwhile
        del st.session_state[key]
    # The format function holds only these strings, never the runs: Streamlit keeps a widget's
    # metadata (and what its callables hold) for the whole session.
    labels = {i: f"{n} · {i}" for i, (n, _) in by_id.items()}
    rid = st.selectbox(
        label,
        list(by_id),
        format_func=labels.__getitem__,
        key=key,
        persist_state="session",
    )
    if rid is None:
        return None
    if param is not None and st.query_params.get(param) != rid:
        st.query_params[param] = rid
    run = by_id[rid][1]
    lease(run)  # shown: not evicted from the data folder meanwhile
    return run


# ----------------------------------------------------------------------------- the Train form

TRAIN_PENDING = "_library_train_pending"  # session key: widget values for the Train form


def open_in_train(config: Config) -> None:
    """Load ``config`` into the Train form and go there (applied before its widgets draw)."""
    st.session_state[TRAIN_PENDING] = config
    st.switch_page("app_pages/train.py")


def apply_pending_train() -> list[str]:
    """On the Train page, before its widgets: put a pending config into them.

    Returns notes about values the widgets cannot show exactly (snapped to the nearest
    option) or at all (an uploaded CSV's data)."""
    config = st.session_state.pop(TRAIN_PENDING, None)
    if config is None:
        return []

    values, said = train_form.widget_values(config)
    for k, v in values.items():
        st.session_state[k] = v
    return said


def load_settings_widget() -> None:
    """ "Load settings": a Config JSON (file or pasted text) into the Train form."""
    with st.popover("Load settings"):
        file = st.file_uploader("Config JSON", type=["json"], key="tr_load_json")
        text = st.text_area("…or paste it", key="tr_load_text", max_chars=20_000)
        if st.button("Load into the form", key="tr_load_go"):
            raw = file.getvalue()[:20_000].decode("utf-8", "replace") if file else text
            try:
                config = config_from_json(raw)
            except ValueError as e:
                st.error(str(e))
                return
            st.session_state[TRAIN_PENDING] = config
            st.rerun()


def config_from_json(raw: str) -> Config:
    """A validated Config from JSON text; ValueError naming what is wrong."""
    if not raw or not raw.strip():
        raise ValueError("settings: empty; paste or upload the JSON of a Config")
    try:
        d = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"settings: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(d, dict):
        raise ValueError(f"settings: a JSON object is needed, not {type(d).__name__}")
    try:
        return Config.from_dict(d)
    except TypeError as e:
        raise ValueError(f"settings: {e}") from None


def reset_to_preset_widget() -> None:
    """Every preset, with "Reset to this preset"."""
    with st.popover("Presets"):
        name = st.selectbox("Preset", list(presets.PRESETS), key="tr_preset")
        st.caption(presets.PRESETS[name][1])
        if st.button("Reset to this preset", key="tr_preset_go"):
            st.session_state[TRAIN_PENDING] = presets.get(name)
            st.rerun()


# ----------------------------------------------------------------------------- lists


def _run_row(info: datastore.RunInfo, key: str, deletable: bool) -> None:
    c1, c2, c3 = st.columns([5, 2, 2] if deletable else [5, 2, 1])
    c1.text(f"{info.name} · {info.run_id}")  # text, never Markdown
    c1.page_link(
        "app_pages/loss_landscape.py",
        label="Open in Landscape",
        query_params={"run": info.run_id},
    )
    if c2.button("Open in Train", key=f"{key}_train_{info.run_id}"):
        open_in_train(info.config)
    if deletable and c3.button("Delete", key=f"{key}_del_{info.run_id}"):
        store().remove_owner(links.browser_id(), info.run_id)
        ui_runs_drop(info.run_id)
        st.rerun()


def ui_runs_drop(rid: str) -> None:
    for name, run in list(ui_runs.get_runs().items()):
        if datastore.run_id(run.config) == rid:
            ui_runs.delete_run(name)


def my_runs() -> None:
    """This browser's stored runs, newest first, each with open and delete."""
    s = store()
    st.subheader("My runs")
    if s is None:
        st.caption("The data folder is off on this server.")
        return
    rows = s.runs(owner=links.browser_id())
    if not rows:
        st.caption("Runs you train are kept here (in this browser), newest first.")
    for info in rows[:MAX_LIST]:
        _run_row(info, "my", deletable=True)


def classroom() -> None:
    """Runs the operator pinned (``python -m landscape pin RUN_ID``)."""
    s = store()
    st.subheader("Classroom")
    rows = [] if s is None else s.runs(pinned=True)
    if not rows:
        st.caption("Runs pinned with `python -m landscape pin RUN_ID` appear here for everyone.")
    for info in rows[:MAX_LIST]:
        _run_row(info, "pin", deletable=False)


def usage_line() -> None:
    """The data folder, its size against the cap."""
    s = store()
    if s is None:  # the notice (kept.show_notes) said why
        st.caption(f"Data folder: off on this server ({store_error()}).")
        return
    u = s.usage() or {}
    if not u:  # the notice says why
        return
    aside = (
        f" {u['quarantined']} damaged entries ({u['quarantined_bytes'] / 1e6:.1f} MB) are set "
        f"aside in {s.root / 'quarantine'}, outside the cap."
        if u["quarantined"]
        else ""
    )
    st.caption(
        f"Data folder `{s.root}`{' (read-only)' if s.read_only else ''}: "
        f"{u['bytes'] / 1e6:.1f} MB of {u['max_bytes'] / 1e6:.0f} MB "
        f"({u['runs']} runs, {u['entries'] - u['runs']} results, {u['pinned']} pinned). "
        f"Set by {datastore.DATA_DIR_ENV} and {datastore.MAX_MB_ENV}; the least recently used "
        f"entries go first when it is full.{aside}"
    )

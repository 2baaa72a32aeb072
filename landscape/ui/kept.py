"""The server's data folder as the pages see it: one Store per server, this browser's runs,
and the notes about entries that could not be read.

The store is the app's (``strict=False``): after it opened it never raises; what went wrong
(a read-only or full folder, an index that failed) is its ``problem``, shown once per
session as one notice, while the pages go on from memory."""

from __future__ import annotations

import secrets
import sqlite3

import streamlit as st

from landscape.data.config import Config
from landscape.storage import datastore
from landscape.training.loop import Run
from landscape.ui import links

_NOTES = "_library_notes"  # session key: notes about dropped (damaged) entries to show
_LEASE = "_library_lease_holder"  # session key: this session's lease holder id
_SAID = "_library_problem_said"  # session key: the store problem this session was told


@st.cache_resource
def _store_or_error() -> tuple[datastore.Store | None, str | None]:
    try:
        return datastore.default_store(), None
    except (ValueError, OSError, sqlite3.Error) as e:
        return None, " ".join(str(e).split())


def store() -> datastore.Store | None:
    """The server's data folder, or None when it cannot be used (see ``store_error``)."""
    return _store_or_error()[0]


def store_error() -> str | None:
    return _store_or_error()[1]


def notes() -> list[str]:
    return st.session_state.setdefault(_NOTES, [])


def show_notes() -> None:
    """Show (once) the notes about damaged entries set aside, and (once per session) what
    keeps the data folder from working: it stays readable, the pages work from memory."""
    for msg in st.session_state.pop(_NOTES, []):
        st.info(msg)
    s = store()
    problem = s.problem if s is not None else f"Runs are kept in memory only: {store_error()}"
    if problem and st.session_state.get(_SAID) != problem:
        st.session_state[_SAID] = problem
        st.warning(problem, icon="🗄️")


def stored(config: Config) -> Run | None:
    s = store()
    return None if s is None else s.find_run(config, notes())


def remember(run: Run) -> None:
    """List ``run`` under this browser's "My runs" if the store holds it (trained here)."""
    s = store()
    if s is None:
        return
    rid = datastore.run_id(run.config)
    if s.has_run(rid):
        s.add_owner(links.browser_id(), rid)


def lease(run: Run) -> None:
    """This session shows ``run``: keep it (and its results) safe from eviction."""
    s = store()
    if s is not None and s.has_run(rid := datastore.run_id(run.config)):
        holder = st.session_state.setdefault(_LEASE, secrets.token_hex(8))
        s.lease(rid, holder)

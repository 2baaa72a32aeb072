"""The CSV upload widget: file -> target column -> task -> a registered dataset name.

All parsing and checking is `landscape.data.upload`; this file only lays out widgets and shows
the library's messages. A rejected file shows `st.error` and returns None: it never raises,
and it touches no session state but its own keys, so nothing else the user set is lost.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from landscape.data import upload
from landscape.ui.common import md_escape

TASK_LABELS = {
    "auto": "Auto",
    "classification": "Classification",
    "regression": "Regression",
}


def upload_widget(key: str) -> str | None:
    """File uploader + target selectbox + task radio; returns "upload:<hash>" or None."""
    file = st.file_uploader(
        "Your own data (CSV)",
        type=["csv", "txt"],
        key=f"{key}_file",
        help=(
            f"Comma-separated, a header row, numeric feature columns and one target column; "
            f"at most {upload.MAX_ROWS} rows, {upload.MAX_COLS} columns, "
            f"{upload.MAX_BYTES // 2**20} MiB."
        ),
    )
    if file is None:
        return None
    try:
        return _use(file, key)
    except ValueError as e:
        st.error(md_escape(f"Upload rejected: {e}"))
    except Exception as e:  # unreadable beyond what the checks foresee: a message, no traceback
        st.error(md_escape(f"Upload rejected: could not read this file as CSV ({e})"))
    return None


def _use(file, key: str) -> str:
    size = getattr(file, "size", None)
    if isinstance(size, int) and size > upload.MAX_BYTES:  # refuse before reading it all
        raise ValueError(
            f"the file is {size} bytes: the cap is {upload.MAX_BYTES} bytes; "
            "upload a smaller sample of your data"
        )
    raw = file.getvalue()
    memo, table = _memo(raw, key)
    columns = memo["columns"]
    cols = st.columns(2)
    target = cols[0].selectbox(
        "Target column",
        columns,
        index=len(columns) - 1,
        key=f"{key}_target_{memo['digest']}",  # a new file gets a fresh choice of target
        help="The column to predict; every other column is a feature.",
    )
    task = cols[1].radio(
        "Task",
        upload.TASKS,
        format_func=TASK_LABELS.get,
        horizontal=True,
        key=f"{key}_task",
        help="Auto: classification when the target is text or a few whole numbers.",
    )
    name, text = memo["made"].get((target, task), (None, None))
    if name not in upload.registered():  # first time, or evicted from the server's LRU
        if table is None:
            table = upload.read_table(raw)
        ds = upload.to_dataset(table, target=target, task=task)
        name, text = upload.register(ds), upload.summary(ds)
        memo["made"][(target, task)] = (name, text)
    st.caption(md_escape(f"{getattr(file, 'name', 'upload')}: {text} · dataset {name}"))
    return name


def _memo(raw: bytes, key: str):
    """Per-session memo of the current file (digest, columns, datasets made from it), so a
    rerun does not parse the file again. Returns (memo, table or None if not re-read)."""
    digest = hashlib.sha256(raw).hexdigest()[:16]
    slot = f"_{key}_upload_memo"
    memo = st.session_state.get(slot)
    if memo is not None and memo["digest"] == digest:
        return memo, None
    table = upload.read_table(raw)  # raises ValueError before the memo is replaced
    memo = {"digest": digest, "columns": [str(c) for c in table.columns], "made": {}}
    st.session_state[slot] = memo
    return memo, table

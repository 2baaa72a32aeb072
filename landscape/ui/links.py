"""The URL is the view: widgets bound to the query string, a quiet note for what a link
asked but could not get, a "Copy link" button, and this browser's id.

Binding is Streamlit's own (1.67): ``st.slider(..., **url("key"))`` passes
``bind="query-params"`` (the widget's value lives in ``?key=value``; a value equal to the
default is left out, so links stay short; an invalid or out-of-range value is dropped by
Streamlit) and ``persist_state="session"`` (the value survives a page switch and back).
The key is the query parameter's name: keep keys short, fixed and page-prefixed (session
state is shared by every page).

``begin()``/``end()`` run around the page (lab.py): ``begin`` keeps the query string the
page was opened with; ``end`` says, in one caption, which of its parameters were not
applied: those Streamlit's binding removed from the address (invalid or out of range) and
unknown ones (no widget of that name here), which it removes too, and values a page reading
a parameter itself refused (``reject``: e.g. ``?run=../../etc/passwd``). Nothing in a URL
can raise, and the work is bounded: the address is read in one pass and every ignored
parameter leaves it in one message (a pop per parameter re-encodes the whole query string:
1,000 junk parameters cost seconds of server time per run).
"""

from __future__ import annotations

import contextlib
import secrets

import streamlit as st
from streamlit.errors import StreamlitAPIException

# The query string read and trimmed in one pass each; st.query_params has no bulk removal.
from streamlit.runtime.state.session_state_proxy import get_session_state

from landscape.storage import datastore

COOKIE = "llab_browser"  # this browser's id: its "My runs" list in the data folder
_SNAPSHOT = "_links_snapshot"  # session key: (page, query dict) the page was opened with
_OWNER = "_links_owner"  # session key: the id used until the cookie comes back
_NOTE = "_links_note"  # session key: the placeholder of the note
_HANDLED = "_links_handled"  # session key: parameters a page reads itself (not a widget's)
_REJECTED = "_links_rejected"  # session key: handled parameters whose value the page refused
NOTE_NAMES = 12  # parameter names the note lists (the rest are counted)


def url(key: str) -> dict:
    """Keyword arguments binding a widget to ``?key=`` and keeping it across pages."""
    return {"key": key, "bind": "query-params", "persist_state": "session"}


def _params() -> dict[str, str | list[str]]:
    with get_session_state().query_params() as qp:
        return {k: (v if len(v) > 1 else v[0]) for k in list(qp) if (v := qp.get_all(k))}


def _drop(names: list[str]) -> None:
    """Take ``names`` out of the address in one message; one bound by a widget of another
    page cannot be taken out and stays."""
    with get_session_state().query_params() as qp:
        gone = [k for k in names if not qp.is_bound(k) and qp.discard_param_no_forward_msg(k)]
        if gone:
            qp.update()  # sends the address that is left, once


def begin(page: str) -> None:
    """Before the page runs: keep the query string it was opened with (once per address)."""
    params = _params()
    last = st.session_state.get(_SNAPSHOT)
    if last is None or last[:2] != (page, params):
        st.session_state[_SNAPSHOT] = (page, params, False)  # False: not yet checked
    st.session_state[_NOTE] = st.empty()


def handled(name: str) -> None:
    """``?name=`` is read by the page itself (not a bound widget): never "ignored"."""
    st.session_state.setdefault(_HANDLED, set()).add(name)


def reject(name: str) -> None:
    """The page refused the value of ``?name=`` (which it reads itself): noted and dropped."""
    st.session_state.setdefault(_REJECTED, set()).add(name)


def first_run() -> bool:
    """Is this the first run of the page since its address arrived (not yet checked)?"""
    snap = st.session_state.get(_SNAPSHOT)
    return bool(snap) and not snap[2]


def opened_with_prefix(prefix: str) -> bool:
    """Did the address the page was opened with hold a parameter starting with ``prefix``?"""
    snap = st.session_state.get(_SNAPSHOT)
    return bool(snap) and any(str(k).startswith(prefix) for k in snap[1])


def opened_with(name: str) -> bool:
    """Was the page opened (or linked) with ``?name=...`` in its address?"""
    snap = st.session_state.get(_SNAPSHOT)
    return bool(snap) and name in snap[1]


def end() -> None:
    """After the page ran: note (quietly) what the opening address asked but did not get."""
    rejected = st.session_state.pop(_REJECTED, set())
    snap = st.session_state.get(_SNAPSHOT)
    if not snap or snap[2]:
        return
    page, asked, _ = snap
    st.session_state[_SNAPSHOT] = (page, asked, True)
    ignored, drop = [], []
    present = _params()  # Streamlit took out of the address what its widgets refused
    handled = st.session_state.get(_HANDLED, set())
    for k in asked:
        if k in rejected:
            ignored.append(k)
            if present.get(k) == asked[k]:  # not yet replaced by the page
                drop.append(k)
        elif k in handled:
            continue
        elif k not in present:
            ignored.append(k)  # invalid or out of range (or, written by hand, the default)
        elif k not in st.session_state or str(k).startswith("_"):
            ignored.append(k)
            drop.append(k)  # an unknown parameter leaves the address: a copied link is clean
    with contextlib.suppress(StreamlitAPIException):
        _drop(drop)
    if ignored:
        names = sorted(str(k)[:30] for k in ignored)
        shown = ", ".join(names[:NOTE_NAMES])
        if len(names) > NOTE_NAMES:
            shown += f" and {len(names) - NOTE_NAMES} more"
        st.session_state[_NOTE].caption(
            f"ℹ️ The link's settings {shown} were ignored (unknown here, invalid or out of "
            "range); the rest was applied.",
        )


def browser_id() -> str:
    """This browser's id (a cookie set by ``copy_link_button``'s script), else this session's."""
    cookie = st.context.cookies.get(COOKIE, "")
    if isinstance(cookie, str) and datastore.OWNER_RE.fullmatch(cookie):
        return cookie
    if _OWNER not in st.session_state:
        st.session_state[_OWNER] = secrets.token_hex(8)
    return st.session_state[_OWNER]


_BUTTON = """
<div class="llab-link"><button type="button" id="llab-copy" style="border:1px solid #ccc;
 border-radius:0.5rem;padding:0.25rem 0.75rem;background:transparent;color:inherit;
 cursor:pointer;font:inherit">Copy link</button>
 <span id="llab-copied" style="margin-left:0.5rem;font-size:0.8rem;opacity:0.7"></span></div>
<script>
(() => {
  if (!document.cookie.split('; ').some(c => c.startsWith('COOKIE='))) {
    document.cookie = 'COOKIE=OWNER; path=/; max-age=31536000; SameSite=Lax';
  }
  const b = document.getElementById('llab-copy');
  if (!b || b.dataset.ready) return;
  b.dataset.ready = '1';
  b.addEventListener('click', async () => {
    const href = window.location.href, out = document.getElementById('llab-copied');
    b.dataset.href = href;
    try { await navigator.clipboard.writeText(href); out.textContent = 'copied'; }
    catch (e) {
      const t = document.createElement('textarea'); t.value = href;
      document.body.appendChild(t); t.select();
      const ok = document.execCommand('copy'); t.remove();
      out.textContent = ok ? 'copied' : href;
    }
  });
})();
</script>
"""


def copy_link_button() -> None:
    """A button copying the page's address (read in the browser when pressed, so it holds
    every bound value, fragments' included); it also keeps this browser's id cookie."""
    owner = browser_id()  # hex: safe inside the script
    st.html(
        _BUTTON.replace("COOKIE", COOKIE).replace("OWNER", owner),
        unsafe_allow_javascript=True,
        width="content",
    )

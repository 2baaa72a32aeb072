"""The data folder: trained runs, landscapes and comparisons kept on disk, bounded.

Layout of the folder (``LANDSCAPE_DATA_DIR``, default ``~/.loss-landscape-lab``)::

    index.sqlite          one row per entry: kind, key, run id, size, last use, pin, owners
    objects/<kind>/<key>.npz   the entry itself, pickle-free (run_to_bytes / codec.to_bytes)
    pins/<run key>        one empty file per pinned run (so a rebuilt index keeps its pins)
    locks/<key>.lock      advisory locks: one trainer of a config at a time, across processes
    quarantine/<kind>/    entries that did not read back, moved aside (never deleted)

Keys are content addresses: a run's key is a hash of its Config (training is deterministic,
so the config *is* the run: the same config trained by anyone is trained once); a
landscape's or comparison's key is a hash of the request that made it. A run id is the
first ``RUN_ID_LEN`` hex digits of the run key, short enough for a URL.

Why SQLite in WAL mode: the server's script threads and its worker processes all read and
write the folder at once; WAL lets readers go on while one writer commits, and every
connection waits (``busy_timeout``) rather than failing while another holds the write lock.
Files are written to a temporary name and renamed into place, so a reader sees a whole file
or none; a temporary file left by a failed write or a killed writer is removed.

Disk is bounded: every entry file under ``objects/`` is in the index (an index that was
removed or damaged is rebuilt from ``objects/``, pins from ``pins/``; the browsers' "My runs"
lists live only in the index and start empty), and before each write
least-recently-used entries go until the new one fits under ``LANDSCAPE_DATA_MAX_MB``. Pinned
runs (the Classroom list) and runs a page is showing (a lease, renewed while shown) are never
evicted, nor is what was derived from them; an entry that cannot fit is refused, not stored.

The folder's own files are read as hostile as uploads, with the limit they were written
under (``MAX_ENTRY_BYTES``). An entry that does not read back is never deleted: it is moved
to ``quarantine/`` (outside the cap), said once, and computed again when next asked for; to
recover one, move it back to ``objects/<kind>/<key>.npz``: the next start of the folder (the
server's, or ``python -m landscape runs``) indexes it if it reads back, else sets it aside again.

Failures are one line: a folder that is read-only opens for reading (the last-use time is
not updated); a full disk skips the last-use update on reads; a write that cannot happen
raises ``StoreError`` naming the folder and why. A store opened with ``strict=False`` (the
app's) never raises after it opened: it keeps working from memory and records ``problem``,
one line for the pages to show.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from landscape.data.config import Config
from landscape.storage import codec, formats
from landscape.storage.folder import (
    KEY_RE,
    MAX_ENTRY_BYTES,
    MAX_MB_ENV,
    RUN_ID_LEN,
    Folder,
    StoreError,
    guarded,
    size_of,
)
from landscape.training import loop as training
from landscape.training.loop import Run

DATA_DIR_ENV = "LANDSCAPE_DATA_DIR"
DEFAULT_DIR = Path("~") / ".loss-landscape-lab"
DEFAULT_MAX_MB = 1024.0  # disk cap of the folder when LANDSCAPE_DATA_MAX_MB is not set
MAX_MB_LIMIT = 1e7  # largest cap accepted (10 TB)
LEASE_SECONDS = 1800.0  # a shown run stays protected this long after it was last drawn
OWNER_RE = re.compile(r"[0-9a-f]{8,64}")  # browser ids: hex
RUN_ID_RE = re.compile(rf"[0-9a-f]{{{RUN_ID_LEN}}}")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_key(config: Config) -> str:
    """The content address of the run of ``config`` (64 hex digits)."""
    return _hash("run:" + json.dumps(config.to_dict(), sort_keys=True))


def run_id(config: Config) -> str:
    """The short id of the run of ``config``: what URLs and the command line name."""
    return run_key(config)[:RUN_ID_LEN]


def object_key(*parts) -> str:
    """The content address of a derived result, from JSON-able parts (its request)."""
    return _hash(json.dumps(parts, sort_keys=True, default=str))


def check_run_id(value) -> str:
    """``value`` if it is a well-formed run id, else ValueError naming it."""
    if not isinstance(value, str) or not RUN_ID_RE.fullmatch(value):
        raise ValueError(
            f"run={str(value)[:40]!r} is not a run id: must be {RUN_ID_LEN} hex digits"
        )
    return value


def max_mb_from_env() -> float:
    """The cap from ``LANDSCAPE_DATA_MAX_MB`` (MB), or the default; ValueError if malformed."""
    raw = os.environ.get(MAX_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MB
    try:
        mb = float(raw)
    except ValueError:
        raise ValueError(f"{MAX_MB_ENV}={raw!r} is not a number of megabytes") from None
    if not 0 < mb <= MAX_MB_LIMIT:
        raise ValueError(f"{MAX_MB_ENV}={raw!r} is out of range: must be in (0, {MAX_MB_LIMIT:g}]")
    return mb


def dir_from_env() -> Path:
    raw = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else DEFAULT_DIR.expanduser()


@dataclass(frozen=True)
class RunInfo:
    """One stored run, as the lists show it."""

    run_id: str
    name: str
    config: Config
    created: float  # unix time
    pinned: bool
    bytes: int


class Store(Folder):
    """A data folder. Safe to share between threads and processes (one object per process).

    ``strict`` (default): failures raise ``StoreError``; ``strict=False`` (the app): they are
    recorded in ``problem`` and the call returns nothing (see the module docstring).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        max_mb: float | None = None,
        strict: bool = True,
    ):
        super().__init__(
            Path(root).expanduser() if root is not None else dir_from_env(),
            int((max_mb if max_mb is not None else max_mb_from_env()) * 1e6),
            strict,
        )

    def _run_from(self, key: str, data: bytes) -> Run:
        """The run in ``data`` (read with the limit it was written under), checked against its
        key; ValueError (or whatever a damaged archive raises) if it is not that run."""
        run = formats.run_from_bytes(data, max_bytes=MAX_ENTRY_BYTES)
        if run_key(run.config) != key:
            raise ValueError("its config does not match its name")
        return run

    # ------------------------------------------------------------------------- runs

    @guarded()
    def put_run(self, run: Run, owner: str | None = None) -> str:
        """Keep ``run`` (under the key of its config); returns its run id. StoreError (app's
        store: None, and ``problem``) when it cannot be kept: read-only, full, over the cap."""
        key, rid = run_key(run.config), run_id(run.config)
        path = self._put("run", key, formats.run_to_bytes(run))
        self._index("run", key, rid, run.name, run.config, path)
        if owner is not None:
            self.add_owner(owner, rid)
        self.evict()
        return rid

    def _key_of(self, rid: str) -> str | None:
        check_run_id(rid)
        row = (
            self._conn()
            .execute("SELECT key FROM entries WHERE kind = 'run' AND run_id = ?", (rid,))
            .fetchone()
        )
        return None if row is None else row[0]

    @guarded()
    def get_run(self, rid: str, notes: list[str] | None = None) -> Run | None:
        """The stored run with id ``rid``, or None (unknown, evicted, or damaged: quarantined
        with a note in ``notes``)."""
        key = self._key_of(rid)
        if key is None:
            return None

        return self._load("run", key, rid, functools.partial(self._run_from, key), notes)

    def find_run(self, config: Config, notes: list[str] | None = None) -> Run | None:
        """The stored run of ``config``, or None."""
        return self.get_run(run_id(config), notes)

    @guarded(bool)
    def has_run(self, rid: str) -> bool:
        return self._key_of(rid) is not None

    @guarded()
    def run_info(self, rid: str) -> RunInfo | None:
        rows = self._run_rows("WHERE e.run_id = ?", (check_run_id(rid),))
        return rows[0] if rows else None

    def _run_rows(self, where: str, args: tuple, join: str = "") -> list[RunInfo]:
        rows = (
            self._conn()
            .execute(
                "SELECT e.run_id, e.name, e.config, e.created, e.pinned, e.bytes FROM entries e "
                f"{join} {where} {'AND' if where else 'WHERE'} e.kind = 'run' "
                "ORDER BY e.created DESC, e.run_id",
                args,
            )
            .fetchall()
        )
        out = []
        for rid, name, cfg, created, pinned, size in rows:
            try:
                config = Config.from_dict(json.loads(cfg))
            except (ValueError, TypeError):
                continue  # an index row from an older Config: not listed
            out.append(RunInfo(rid, name, config, created, bool(pinned), size))
        return out

    @guarded(list)
    def runs(self, owner: str | None = None, pinned: bool | None = None) -> list[RunInfo]:
        """Stored runs, newest first: of one owner (browser), pinned ones, or all."""
        if owner is not None:
            return self._run_rows(
                "WHERE o.owner = ?", (owner,), join="JOIN owners o ON o.run_id = e.run_id"
            )
        if pinned is not None:
            return self._run_rows("WHERE e.pinned = ?", (int(pinned),))
        return self._run_rows("", ())

    def _writable(self) -> None:
        if self.read_only and self._memory is None:
            raise StoreError(f"data folder {self.root} is read-only")

    @guarded()
    def add_owner(self, owner: str, rid: str) -> None:
        """List run ``rid`` under ``owner`` (a browser id) in its "My runs"."""
        if not OWNER_RE.fullmatch(owner or ""):
            raise ValueError(f"owner={str(owner)[:40]!r} is not a browser id (hex digits)")
        self._writable()
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO owners (owner, run_id, added) VALUES (?, ?, ?)",
                (owner, check_run_id(rid), time.time()),
            )

    @guarded()
    def remove_owner(self, owner: str, rid: str) -> None:
        """Take ``rid`` off ``owner``'s list; the run itself goes when nobody else keeps it."""
        self._writable()
        with self._db() as db:
            db.execute("DELETE FROM owners WHERE owner = ? AND run_id = ?", (owner, rid))
            left = db.execute("SELECT 1 FROM owners WHERE run_id = ?", (rid,)).fetchone()
        info = self.run_info(rid)
        if left is None and info is not None and not info.pinned:
            self.delete_run(rid)

    @guarded(bool)
    def delete_run(self, rid: str) -> bool:
        """Remove a run and what was computed from it; True if it was there."""
        check_run_id(rid)
        if self.read_only:
            raise StoreError(f"data folder {self.root} is read-only: nothing was deleted")
        with self._db() as db:
            rows = db.execute("SELECT kind, key FROM entries WHERE run_id = ?", (rid,)).fetchall()
            db.execute("DELETE FROM entries WHERE run_id = ?", (rid,))
            db.execute("DELETE FROM owners WHERE run_id = ?", (rid,))
        self._unlink(rows)
        return any(kind == "run" for kind, _ in rows)

    @guarded(bool)
    def pin(self, rid: str, pinned: bool = True) -> bool:
        """Pin (or unpin) a run for the Classroom list; False if no such run is stored."""
        check_run_id(rid)
        if self.read_only:
            raise StoreError(f"data folder {self.root} is read-only: no run can be pinned")
        with self._db() as db:
            cur = db.execute(
                "UPDATE entries SET pinned = ? WHERE kind = 'run' AND run_id = ?",
                (int(pinned), rid),
            )
            key = self._key_of(rid)
        if key is not None:  # where a rebuilt index finds the pin
            mark = self.root / "pins" / key
            mark.touch() if pinned else mark.unlink(missing_ok=True)
        return cur.rowcount > 0

    @guarded()
    def lease(self, rid: str, holder: str, seconds: float = LEASE_SECONDS) -> None:
        """Protect ``rid`` (and its results) from eviction while ``holder`` shows it."""
        check_run_id(rid)
        if self.read_only:
            return  # nothing is evicted from a read-only folder
        with self._db() as db:
            db.execute(
                "INSERT INTO leases (run_id, holder, until) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, holder) DO UPDATE SET until = excluded.until",
                (rid, holder, time.time() + seconds),
            )

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the cross-process lock of ``key`` (one trainer/computer of it at a time); on a
        read-only folder (nothing is stored there) and, for the app's store, a folder whose
        lock cannot be taken, no lock."""
        if not KEY_RE.fullmatch(key):
            raise ValueError(f"bad lock key {key!r}")
        try:
            fh = None if self.read_only else open(self.root / "locks" / f"{key}.lock", "a+b")  # noqa: SIM115 - closed below
        except OSError as e:
            err = StoreError(f"data folder {self.root}: cannot take a lock ({e.strerror})")
            if self.strict:
                raise err from None
            self.note_problem(str(err))
            fh = None
        if fh is None:
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------------- results

    @guarded()
    def put_object(self, kind: str, key: str, obj, rid: str | None = None, name: str = "") -> None:
        """Keep a landscape/comparison result ``obj`` under ``key`` (see ``object_key``)."""
        path = self._put(kind, key, codec.to_bytes(obj))
        self._index(kind, key, rid, name, None, path)
        self.evict()

    @guarded()
    def get_object(self, kind: str, key: str, notes: list[str] | None = None):
        """The stored result, or None (unknown, evicted, or damaged: quarantined with a note)."""
        self._path(kind, key)  # ValueError for a malformed kind or key
        known = (
            self._conn()
            .execute("SELECT 1 FROM entries WHERE kind = ? AND key = ?", (kind, key))
            .fetchone()
        )
        if known is None:
            return None
        return self._load(kind, key, key[:RUN_ID_LEN], codec.from_bytes, notes)

    # ------------------------------------------------------------------------- size

    @guarded(dict)
    def usage(self) -> dict:
        """{"bytes", "max_bytes", "runs", "entries", "pinned", "quarantined",
        "quarantined_bytes"} of the folder now."""
        conn = self._conn()
        total, n = conn.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM entries").fetchone()
        runs, pinned = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(pinned), 0) FROM entries WHERE kind = 'run'"
        ).fetchone()
        aside = list((self.root / "quarantine").glob("*/*"))
        return {"bytes": total, "max_bytes": self.max_bytes, "runs": runs, "entries": n,
                "pinned": pinned, "quarantined": len(aside),
                "quarantined_bytes": sum(size_of(p) for p in aside)}  # fmt: skip

    @guarded(list)
    def evict(self) -> list[tuple[str, str]]:
        """Drop least-recently-used entries until under the cap; returns (kind, key) dropped.

        Never dropped: pinned runs, runs under a live lease, and results computed from either.
        A run that goes takes its results with it (they cannot be shown without it).
        """
        if self.read_only:
            return []
        return self._evict() or []


# ----------------------------------------------------------------------------- process-wide

_stores: dict[tuple, Store] = {}
_stores_lock = threading.Lock()


def default_store() -> Store:
    """The app's store of this process's environment (one per folder and cap, created once;
    ``strict=False``: after it opened, failures are recorded in ``problem``, never raised)."""
    key = (str(dir_from_env()), max_mb_from_env())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = Store(*key, strict=False)
        return _stores[key]


def train_stored(
    config: Config,
    progress=None,
    store: Store | None = None,
    train=None,
    notes: list[str] | None = None,
) -> Run:
    """The run of ``config``: from the store, or trained now and kept.

    One trainer per config across every process sharing the folder: the others wait on the
    config's lock and then read the stored run. Runs in the worker processes. ``train``:
    the trainer (default ``training.train``). A run that was trained but cannot be kept
    (read-only or full folder, over the cap) is still returned; why it was not kept goes to
    ``notes`` (and, for the app's store, ``store.problem``).
    """
    store = store or default_store()
    train = train or training.train
    run = store.find_run(config)
    if run is not None:
        return run
    with store.claim(run_key(config)):
        run = store.find_run(config)
        if run is None:
            run = train(config, progress)
            try:
                kept = store.put_run(run)  # None: the app's store did not keep it (problem)
            except StoreError as e:  # the training is paid for: hand the run back
                kept, store.problem = None, str(e)
            if kept is None and notes is not None:
                notes.append(store.problem or f"data folder {store.root}: the run was not stored")
    return run


def stored_or_computed(
    store: Store | None,
    kind: str,
    key: str,
    compute: Callable[[], object],
    accept: Callable[[object], bool],
    rid: str | None = None,
):
    """THE data-folder step of a derived result (a landscape, a comparison): the one stored
    under ``key`` when ``accept(found)``, else ``compute()``, kept under ``key`` (tied to run
    ``rid`` when that run is stored: it is evicted with it, and protected by its pin).

    No lock is taken: two processes asking at once may both compute. The one stored first
    wins: a result found under ``key`` once ``compute()`` returns is handed back instead and
    this one is dropped, so every reader gets the same stored object (the background warm-up
    never overwrites what a user's job kept). ``store`` None: computed, nothing kept."""
    if store is not None:
        found = store.get_object(kind, key)
        if found is not None and accept(found):
            return found
    result = compute()
    if store is None:
        return result
    found = store.get_object(kind, key)
    if found is not None and accept(found):
        return found
    store.put_object(kind, key, result, rid=rid if rid is not None and store.has_run(rid) else None)
    return result

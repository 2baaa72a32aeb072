"""The data folder: trained runs, landscapes and comparisons kept on disk, bounded.

Layout of the folder (``LANDSCAPE_DATA_DIR``, default ``~/.loss-landscape-lab``)::

    index.sqlite          one row per entry: kind, key, run id, size, last use, pin, owners
    objects/<kind>/<key>.npz   the entry itself, pickle-free (run_to_bytes / codec.to_bytes)
    locks/<key>.lock      advisory locks: one trainer of a config at a time, across processes

Keys are content addresses: a run's key is a hash of its Config (training is deterministic,
so the config *is* the run: the same config trained by anyone is trained once); a
landscape's or comparison's key is a hash of the request that made it. A run id is the
first ``RUN_ID_LEN`` hex digits of the run key, short enough for a URL.

Why SQLite in WAL mode: the server's script threads and its worker processes all read and
write the folder at once; WAL lets readers go on while one writer commits, and every
connection waits (``busy_timeout``) rather than failing while another holds the write lock.
Files are written to a temporary name and renamed into place, so a reader sees a whole file
or none.

Disk is bounded: after each write, least-recently-used entries go until the folder is under
``LANDSCAPE_DATA_MAX_MB``. Pinned runs (the Classroom list) and runs a page is showing
(a lease, renewed while shown) are never evicted, nor is what was derived from them. A
damaged entry (a file that does not read back) is dropped and reported, never raised.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from landscape.core import files
from landscape.data.config import Config
from landscape.storage import codec, formats
from landscape.training import loop as training
from landscape.training.loop import Run

DATA_DIR_ENV = "LANDSCAPE_DATA_DIR"
MAX_MB_ENV = "LANDSCAPE_DATA_MAX_MB"
DEFAULT_DIR = Path("~") / ".loss-landscape-lab"
DEFAULT_MAX_MB = 1024.0  # disk cap of the folder when LANDSCAPE_DATA_MAX_MB is not set
MAX_MB_LIMIT = 1e7  # largest cap accepted (10 TB)
RUN_ID_LEN = 10  # hex digits of a run id (40 bits: collisions need ~10^6 runs)
LEASE_SECONDS = 1800.0  # a shown run stays protected this long after it was last drawn
KINDS = ("run", "landscape", "comparison")
OWNER_RE = re.compile(r"[0-9a-f]{8,64}")  # browser ids: hex
RUN_ID_RE = re.compile(rf"[0-9a-f]{{{RUN_ID_LEN}}}")
KEY_RE = re.compile(r"[0-9a-f]{16,64}")

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL, key TEXT NOT NULL,
    run_id TEXT,            -- the run (kind run) or the run it was computed from, if any
    name TEXT NOT NULL DEFAULT '',
    config TEXT,            -- a run's Config as JSON
    bytes INTEGER NOT NULL, created REAL NOT NULL, used REAL NOT NULL,
    pinned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
CREATE INDEX IF NOT EXISTS entries_run ON entries (run_id);
CREATE TABLE IF NOT EXISTS owners (
    owner TEXT NOT NULL, run_id TEXT NOT NULL, added REAL NOT NULL,
    PRIMARY KEY (owner, run_id));
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT NOT NULL, holder TEXT NOT NULL, until REAL NOT NULL,
    PRIMARY KEY (run_id, holder));
"""


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


class Store:
    """A data folder. Safe to share between threads and processes (one object per process)."""

    def __init__(self, root: str | os.PathLike | None = None, max_mb: float | None = None):
        self.root = Path(root).expanduser() if root is not None else dir_from_env()
        self.max_bytes = int((max_mb if max_mb is not None else max_mb_from_env()) * 1e6)
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            (self.root / "objects" / kind).mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open_index()

    # ------------------------------------------------------------------------- index

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    def _open_index(self) -> None:
        try:
            self._conn().executescript(SCHEMA)
        except sqlite3.DatabaseError as e:  # a damaged index: keep it aside, start afresh
            if isinstance(e, sqlite3.OperationalError):  # locked, disk full...: not damage
                raise
            self._local.conn.close()
            self._local.__dict__.clear()
            aside = self.index_path.with_name(f"index.sqlite.damaged-{int(time.time())}")
            log.warning("data index %s is damaged (%s); moved to %s", self.index_path, e, aside)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.index_path) + suffix)
                if p.exists():
                    p.replace(str(aside) + suffix)
            self._conn().executescript(SCHEMA)
            self.reindex()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions are explicit)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.index_path, timeout=30, isolation_level=None)
            self._local.conn, self._local.pid = conn, os.getpid()
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in a write transaction (committed on success)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def reindex(self) -> int:
        """Index the runs found in the folder (after a damaged index); returns how many."""
        n = 0
        for path in sorted((self.root / "objects" / "run").glob("*.npz")):
            try:
                run = formats.run_from_bytes(path.read_bytes())
            except (OSError, ValueError):
                continue
            if path.stem == run_key(run.config):
                self._index("run", path.stem, run_id(run.config), run.name, run.config, path)
                n += 1
        return n

    # ------------------------------------------------------------------------- files

    def _path(self, kind: str, key: str) -> Path:
        if kind not in KINDS or not KEY_RE.fullmatch(key):
            raise ValueError(f"bad store entry {kind!r}/{key!r}")
        return self.root / "objects" / kind / f"{key}.npz"

    def _write(self, kind: str, key: str, data: bytes) -> Path:
        return files.write_atomic(self._path(kind, key), data)

    def _index(self, kind, key, rid, name, config, path) -> None:
        now = time.time()
        cfg = None if config is None else json.dumps(config.to_dict(), sort_keys=True)
        with self._db() as db:
            db.execute(
                "INSERT INTO entries (kind, key, run_id, name, config, bytes, created, used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
                "bytes = excluded.bytes, used = excluded.used",
                (kind, key, rid, name, cfg, path.stat().st_size, now, now),
            )

    def _read(self, kind: str, key: str, notes: list[str] | None):
        """The file's bytes, or None (missing: forgotten; a damaged one is dropped by the caller)."""
        try:
            data = self._path(kind, key).read_bytes()
        except FileNotFoundError:
            self._forget(kind, key)
            return None
        with self._db() as db:
            db.execute(
                "UPDATE entries SET used = ? WHERE kind = ? AND key = ?", (time.time(), kind, key)
            )
        return data

    def _forget(self, kind: str, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE kind = ? AND key = ?", (kind, key))

    def _drop_damaged(self, kind: str, key: str, label: str, err, notes: list[str] | None) -> None:
        msg = (
            f"The stored {kind} {label} was damaged and has been dropped ({err}); compute it again."
        )
        log.warning(msg)
        if notes is not None:
            notes.append(msg)
        self._remove(kind, key)

    def _remove(self, kind: str, key: str) -> None:
        self._forget(kind, key)
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._path(kind, key).unlink()

    # ------------------------------------------------------------------------- runs

    def put_run(self, run: Run, owner: str | None = None) -> str:
        """Keep ``run`` (under the key of its config); returns its run id."""
        key, rid = run_key(run.config), run_id(run.config)
        path = self._write("run", key, formats.run_to_bytes(run))
        self._index("run", key, rid, run.name, run.config, path)
        if owner is not None:
            self.add_owner(owner, rid)
        self.evict()
        return rid

    def _key_of(self, rid: str) -> str | None:
        check_run_id(rid)
        with self._db() as db:
            row = db.execute(
                "SELECT key FROM entries WHERE kind = 'run' AND run_id = ?", (rid,)
            ).fetchone()
        return None if row is None else row[0]

    def get_run(self, rid: str, notes: list[str] | None = None) -> Run | None:
        """The stored run with id ``rid``, or None (unknown, evicted, or damaged: dropped)."""
        key = self._key_of(rid)
        if key is None:
            return None
        data = self._read("run", key, notes)
        if data is None:
            return None
        try:
            run = formats.run_from_bytes(data)
            if run_key(run.config) != key:
                raise ValueError("its config does not match its name")
        # A damaged file can fail anywhere inside zip/NumPy (BadZipFile, EOFError, ...): any
        # failure to read it back is damage to report, never a crash of the page asking.
        except Exception as e:  # noqa: BLE001
            self._drop_damaged("run", key, rid, e, notes)
            return None
        return run

    def find_run(self, config: Config, notes: list[str] | None = None) -> Run | None:
        """The stored run of ``config``, or None."""
        return self.get_run(run_id(config), notes)

    def has_run(self, rid: str) -> bool:
        return self._key_of(rid) is not None

    def run_info(self, rid: str) -> RunInfo | None:
        rows = self._run_rows("WHERE e.run_id = ?", (check_run_id(rid),))
        return rows[0] if rows else None

    def _run_rows(self, where: str, args: tuple, join: str = "") -> list[RunInfo]:
        with self._db() as db:
            rows = db.execute(
                "SELECT e.run_id, e.name, e.config, e.created, e.pinned, e.bytes FROM entries e "
                f"{join} {where} {'AND' if where else 'WHERE'} e.kind = 'run' "
                "ORDER BY e.created DESC, e.run_id",
                args,
            ).fetchall()
        out = []
        for rid, name, cfg, created, pinned, size in rows:
            try:
                config = Config.from_dict(json.loads(cfg))
            except (ValueError, TypeError):
                continue  # an index row from an older Config: not listed
            out.append(RunInfo(rid, name, config, created, bool(pinned), size))
        return out

    def runs(self, owner: str | None = None, pinned: bool | None = None) -> list[RunInfo]:
        """Stored runs, newest first: of one owner (browser), pinned ones, or all."""
        if owner is not None:
            return self._run_rows(
                "WHERE o.owner = ?", (owner,), join="JOIN owners o ON o.run_id = e.run_id"
            )
        if pinned is not None:
            return self._run_rows("WHERE e.pinned = ?", (int(pinned),))
        return self._run_rows("", ())

    def add_owner(self, owner: str, rid: str) -> None:
        """List run ``rid`` under ``owner`` (a browser id) in its "My runs"."""
        if not OWNER_RE.fullmatch(owner or ""):
            raise ValueError(f"owner={str(owner)[:40]!r} is not a browser id (hex digits)")
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO owners (owner, run_id, added) VALUES (?, ?, ?)",
                (owner, check_run_id(rid), time.time()),
            )

    def remove_owner(self, owner: str, rid: str) -> None:
        """Take ``rid`` off ``owner``'s list; the run itself goes when nobody else keeps it."""
        with self._db() as db:
            db.execute("DELETE FROM owners WHERE owner = ? AND run_id = ?", (owner, rid))
            left = db.execute("SELECT 1 FROM owners WHERE run_id = ?", (rid,)).fetchone()
        info = self.run_info(rid)
        if left is None and info is not None and not info.pinned:
            self.delete_run(rid)

    def delete_run(self, rid: str) -> bool:
        """Remove a run and what was computed from it; True if it was there."""
        check_run_id(rid)
        with self._db() as db:
            rows = db.execute("SELECT kind, key FROM entries WHERE run_id = ?", (rid,)).fetchall()
            db.execute("DELETE FROM owners WHERE run_id = ?", (rid,))
        for kind, key in rows:
            self._remove(kind, key)
        return any(kind == "run" for kind, _ in rows)

    def pin(self, rid: str, pinned: bool = True) -> bool:
        """Pin (or unpin) a run for the Classroom list; False if no such run is stored."""
        check_run_id(rid)
        with self._db() as db:
            cur = db.execute(
                "UPDATE entries SET pinned = ? WHERE kind = 'run' AND run_id = ?",
                (int(pinned), rid),
            )
        return cur.rowcount > 0

    def lease(self, rid: str, holder: str, seconds: float = LEASE_SECONDS) -> None:
        """Protect ``rid`` (and its results) from eviction while ``holder`` shows it."""
        with self._db() as db:
            db.execute(
                "INSERT INTO leases (run_id, holder, until) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, holder) DO UPDATE SET until = excluded.until",
                (check_run_id(rid), holder, time.time() + seconds),
            )

    @contextlib.contextmanager
    def claim(self, key: str) -> Iterator[None]:
        """Hold the cross-process lock of ``key`` (one trainer/computer of it at a time)."""
        if not KEY_RE.fullmatch(key):
            raise ValueError(f"bad lock key {key!r}")
        with open(self.root / "locks" / f"{key}.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------------- results

    def put_object(self, kind: str, key: str, obj, rid: str | None = None, name: str = "") -> None:
        """Keep a landscape/comparison result ``obj`` under ``key`` (see ``object_key``)."""
        path = self._write(kind, key, codec.to_bytes(obj))
        self._index(kind, key, rid, name, None, path)
        self.evict()

    def get_object(self, kind: str, key: str, notes: list[str] | None = None):
        """The stored result, or None (unknown, evicted, or damaged: dropped with a note)."""
        with self._db() as db:
            known = db.execute(
                "SELECT 1 FROM entries WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        if known is None:
            return None
        data = self._read(kind, key, notes)
        if data is None:
            return None
        try:
            return codec.from_bytes(data)
        except Exception as e:  # noqa: BLE001 - see get_run
            self._drop_damaged(kind, key, key[:RUN_ID_LEN], e, notes)
            return None

    # ------------------------------------------------------------------------- size

    def usage(self) -> dict:
        """{"bytes", "max_bytes", "runs", "entries", "pinned"} of the folder now."""
        with self._db() as db:
            total, n = db.execute(
                "SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM entries"
            ).fetchone()
            runs, pinned = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(pinned), 0) FROM entries WHERE kind = 'run'"
            ).fetchone()
        return {"bytes": total, "max_bytes": self.max_bytes, "runs": runs, "entries": n,
                "pinned": pinned}  # fmt: skip

    def evict(self) -> list[tuple[str, str]]:
        """Drop least-recently-used entries until under the cap; returns (kind, key) dropped.

        Never dropped: pinned runs, runs under a live lease, and results computed from either.
        A run that goes takes its results with it (they cannot be shown without it).
        """
        dropped: list[tuple[str, str]] = []
        with self._db() as db:
            total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM entries").fetchone()[0]
            if total <= self.max_bytes:
                return dropped
            now = time.time()
            db.execute("DELETE FROM leases WHERE until < ?", (now,))
            rows = db.execute(
                "SELECT kind, key, run_id, bytes FROM entries e WHERE NOT EXISTS ("
                "  SELECT 1 FROM entries p WHERE p.kind = 'run' AND p.run_id = e.run_id "
                "  AND p.pinned = 1) "
                "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.run_id = e.run_id) "
                "ORDER BY used, created"
            ).fetchall()
            gone: set[tuple[str, str]] = set()
            for kind, key, rid, size in rows:
                if total <= self.max_bytes:
                    break
                if (kind, key) in gone:
                    continue
                victims = [(kind, key, size)]
                if kind == "run":
                    victims += db.execute(
                        "SELECT kind, key, bytes FROM entries WHERE run_id = ? AND kind != 'run'",
                        (rid,),
                    ).fetchall()
                    db.execute("DELETE FROM owners WHERE run_id = ?", (rid,))
                for vk, vkey, vsize in victims:
                    if (vk, vkey) not in gone:
                        db.execute("DELETE FROM entries WHERE kind = ? AND key = ?", (vk, vkey))
                        gone.add((vk, vkey))
                        dropped.append((vk, vkey))
                        total -= vsize
        for kind, key in dropped:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._path(kind, key).unlink()
        return dropped


# ----------------------------------------------------------------------------- process-wide

_stores: dict[tuple, Store] = {}
_stores_lock = threading.Lock()


def default_store() -> Store:
    """The store of this process's environment (one per folder and cap, created once)."""
    key = (str(dir_from_env()), max_mb_from_env())
    with _stores_lock:
        if key not in _stores:
            _stores[key] = Store(*key)
        return _stores[key]


def train_stored(config: Config, progress=None, store: Store | None = None, train=None) -> Run:
    """The run of ``config``: from the store, or trained now and kept.

    One trainer per config across every process sharing the folder: the others wait on the
    config's lock and then read the stored run. Runs in the worker processes. ``train``:
    the trainer (default ``training.train``).
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
            store.put_run(run)
    return run

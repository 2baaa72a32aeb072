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
removed or damaged is rebuilt from ``objects/``, pins from ``pins/``), and before each write
least-recently-used entries go until the new one fits under ``LANDSCAPE_DATA_MAX_MB``. Pinned
runs (the Classroom list) and runs a page is showing (a lease, renewed while shown) are never
evicted, nor is what was derived from them; an entry that cannot fit is refused, not stored.

The folder's own files are read as hostile as uploads, with the limit they were written
under (``MAX_ENTRY_BYTES``). An entry that does not read back is never deleted: it is moved
to ``quarantine/`` (outside the cap), said once, and computed again when next asked for; to
recover one, move it back into ``objects/<kind>/`` and restart (it is indexed if it reads).

Failures are one line: a folder that is read-only opens for reading (the last-use time is
not updated); a full disk skips the last-use update on reads; a write that cannot happen
raises ``StoreError`` naming the folder and why. A store opened with ``strict=False`` (the
app's) never raises after it opened: it keeps working from memory and records ``problem``,
one line for the pages to show.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import sqlite3
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
#: Uncompressed bytes one entry may take, written and read: what the training caps allow a
#: run (its trajectory up to ~400 MB), so every run a Config can make is kept and read back.
MAX_ENTRY_BYTES = formats.MAX_CLI_FILE_BYTES
TMP_MAX_AGE = 3600.0  # seconds: a temporary file this old is a failed write's, whoever wrote it
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


class StoreError(OSError):
    """The data folder cannot do what was asked: one line naming the folder and why."""


def _guarded(fallback=None):
    """Wrap a public Store method: a damaged index is rebuilt and the call retried once;
    any other SQLite or file-system failure becomes one ``StoreError`` line, raised by a
    strict store and recorded as ``problem`` (the call then returns ``fallback()``) by the
    app's. ValueError (a bad argument) passes through."""

    def wrap(fn):
        @functools.wraps(fn)
        def guarded(self, *args, **kwargs):
            try:
                try:
                    return fn(self, *args, **kwargs)
                except sqlite3.DatabaseError as e:
                    if isinstance(e, sqlite3.OperationalError):  # locked, full, read-only
                        raise
                    self._recover_index(e)
                    return fn(self, *args, **kwargs)
            except StoreError as e:
                err = e
            except sqlite3.Error as e:
                err = StoreError(f"data folder {self.root}: its index failed ({e})")
            except OSError as e:
                err = StoreError(f"data folder {self.root}: {e.strerror or e}")
            if self.strict:
                raise err from None
            self.note_problem(str(err))
            return None if fallback is None else fallback()

        return guarded

    return wrap


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _short(err) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class Store:
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
        self.root = Path(root).expanduser() if root is not None else dir_from_env()
        self.max_bytes = int((max_mb if max_mb is not None else max_mb_from_env()) * 1e6)
        self.strict = strict
        self.problem: str | None = None
        self.read_only = False
        self._local = threading.local()
        self._gen = 0  # bumped when the index is rebuilt: every thread reconnects
        self._lock = threading.Lock()
        self._said: set[str] = set()  # damaged entries already reported (read-only folder)
        self._memory: sqlite3.Connection | None = None  # keeps an in-memory index alive
        self._uri = str(self.index_path)
        self._make_folders()
        self._open_index()

    # ------------------------------------------------------------------------- opening

    def _make_folders(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"data folder {self.root}: it is a file, not a folder")
        try:
            for sub in ("locks", "pins", *(f"objects/{k}" for k in KINDS)):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            probe = self.root / "objects" / f".probe.{os.getpid()}.{threading.get_ident()}.tmp"
            probe.touch()
            probe.unlink()
        except OSError as e:
            if (
                e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM)
                or not (self.root / "objects").is_dir()
            ):
                raise StoreError(f"data folder {self.root}: {e.strerror or e}") from None
            self.read_only = True
            self.problem = (
                f"The data folder {self.root} is read-only: its runs open, new ones are kept "
                "in memory only."
            )
            return
        self._clean_tmp()

    def _clean_tmp(self) -> None:
        """Remove temporary files whose writer is gone (killed, or a failed write)."""
        now = time.time()
        for path in (self.root / "objects").glob("*/.*.tmp"):
            parts = path.name.split(".")  # "", key, pid, thread, "tmp"
            pid = int(parts[2]) if len(parts) == 5 and parts[2].isdigit() else 0
            with contextlib.suppress(OSError):
                if not _pid_alive(pid) or now - path.stat().st_mtime > TMP_MAX_AGE:
                    path.unlink()

    @property
    def index_path(self) -> Path:
        return self.root / "index.sqlite"

    def _open_index(self) -> None:
        if self.read_only:
            self._open_read_only()
            return
        fresh = not self.index_path.exists()
        try:
            self._conn().executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # locked, disk full...: not damage
                raise StoreError(f"data folder {self.root}: its index cannot be opened ({e})")
            self._set_aside(e)
            fresh = True
        with self._index_lock():
            if not fresh:  # pins of an index written before pins/ existed
                for (key,) in self._conn().execute(
                    "SELECT key FROM entries WHERE kind = 'run' AND pinned = 1"
                ):
                    (self.root / "pins" / key).touch()
            added = self._rebuild()
        if added:
            log.warning("data folder %s: %d entries were not in its index: added", self.root, added)

    def _open_read_only(self) -> None:
        """Open the index without writing; with none (or a damaged one), index in memory."""
        quoted = urllib.parse.quote(str(self.index_path.absolute()))
        if self.index_path.is_file():
            for uri in (f"file:{quoted}?mode=ro", f"file:{quoted}?immutable=1"):
                self._uri = uri
                try:
                    self._conn().execute("SELECT COUNT(*) FROM entries").fetchone()
                    return
                except sqlite3.Error:
                    self._drop_conn()
        self._uri = f"file:llab-index-{id(self)}?mode=memory&cache=shared"
        self._memory = self._conn()
        self._memory.executescript(SCHEMA)
        self._rebuild()

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions are explicit)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.key != (os.getpid(), self._gen):
            uri = self._uri.startswith("file:")
            conn = sqlite3.connect(self._uri, timeout=30, isolation_level=None, uri=uri)
            self._local.conn, self._local.key = conn, (os.getpid(), self._gen)
            conn.execute("PRAGMA busy_timeout=30000")
            if not uri:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local.__dict__.clear()

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        """One process at a time rebuilds or sets aside the index."""
        with self._lock, open(self.root / "locks" / "index.lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _set_aside(self, err) -> None:
        """Move a damaged index aside and start a new one (the caller rebuilds it)."""
        self._drop_conn()
        aside = self.index_path.with_name(f"index.sqlite.damaged-{time.time():.0f}")
        log.warning("data index %s is damaged (%s); moved to %s", self.index_path, err, aside)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.index_path) + suffix)
            if p.exists():
                p.replace(str(aside) + suffix)
        self._gen += 1
        self._conn().executescript(SCHEMA)

    def _healthy(self) -> bool:
        try:
            conn = sqlite3.connect(self.index_path, timeout=30)
            try:
                ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                return ok and conn.execute("SELECT COUNT(*) FROM entries").fetchone() is not None
            finally:
                conn.close()
        except sqlite3.Error:
            return False

    def _recover_index(self, err) -> None:
        """The index went bad while open: set it aside and rebuild it (once, across threads
        and processes: whoever comes second finds a healthy one and reconnects)."""
        if self.read_only:
            raise StoreError(f"data folder {self.root}: its index is damaged ({err})")
        self._drop_conn()
        with self._index_lock():
            if not self._healthy():
                self._set_aside(err)
                self._rebuild()
            self._gen += 1

    def reindex(self) -> int:
        """Index the entries of ``objects/`` the index lacks; returns how many (see _rebuild)."""
        with self._index_lock():
            return self._rebuild()

    def _rebuild(self) -> int:
        """Index every entry file under ``objects/`` that the index lacks: a run is read back
        and checked (pinned if ``pins/`` says so), a result is indexed by its size; a file that
        is not an entry goes to quarantine. Returns how many entries were added."""
        conn = self._conn()
        known = set(conn.execute("SELECT kind, key FROM entries").fetchall())
        added = 0
        for kind in KINDS:
            folder = self.root / "objects" / kind
            for path in sorted(folder.iterdir()) if folder.is_dir() else ():
                key = path.name[: -len(".npz")]
                if path.name.endswith(".tmp") or (kind, key) in known:
                    continue
                if not (path.name.endswith(".npz") and KEY_RE.fullmatch(key) and path.is_file()):
                    self._quarantine(kind, path, path.name, "not an entry of the folder", None)
                    continue
                if kind != "run":
                    self._index(kind, key, None, "", None, path)
                    added += 1
                    continue
                try:
                    run = formats.run_from_bytes(path.read_bytes(), max_bytes=MAX_ENTRY_BYTES)
                    if run_key(run.config) != key:
                        raise ValueError("its config does not match its name")
                except Exception as e:  # noqa: BLE001 - see _load
                    self._quarantine(kind, path, key[:RUN_ID_LEN], e, None)
                    continue
                self._index(kind, key, key[:RUN_ID_LEN], run.name, run.config, path)
                if (self.root / "pins" / key).exists():
                    conn.execute(
                        "UPDATE entries SET pinned = 1 WHERE kind = 'run' AND key = ?", (key,)
                    )
                added += 1
        return added

    def note_problem(self, msg: str) -> None:
        """Record (and log) a failure the app's store does not raise."""
        if msg != self.problem:
            log.warning(msg)
        self.problem = msg

    # ------------------------------------------------------------------------- files

    def _path(self, kind: str, key: str) -> Path:
        if kind not in KINDS or not KEY_RE.fullmatch(key):
            raise ValueError(f"bad store entry {kind!r}/{key!r}")
        return self.root / "objects" / kind / f"{key}.npz"

    def _write(self, kind: str, key: str, data: bytes) -> Path:
        path = self._path(kind, key)
        if path.is_dir() and not path.is_symlink():  # a folder where the entry goes
            self._quarantine(kind, path, key[:RUN_ID_LEN], "a folder, not a file", None)
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(
                f"data folder {self.root}: the {kind} was not stored ({e.strerror or e})"
            ) from None
        return path

    def _index(self, kind, key, rid, name, config, path) -> None:
        now = time.time()
        cfg = None if config is None else json.dumps(config.to_dict(), sort_keys=True)
        with self._db() as db:
            db.execute(
                "INSERT INTO entries (kind, key, run_id, name, config, bytes, created, used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
                "bytes = excluded.bytes, used = excluded.used, "
                "run_id = COALESCE(excluded.run_id, run_id)",
                (kind, key, rid, name, cfg, path.stat().st_size, now, now),
            )

    def _load(self, kind: str, key: str, label: str, decode, notes: list[str] | None):
        """The entry decoded, or None: missing (forgotten) or damaged (quarantined, said)."""
        path = self._path(kind, key)
        try:
            value = decode(path.read_bytes())
        except FileNotFoundError:
            self._forget(kind, key)
            return None
        except MemoryError:
            raise  # the server is short of memory now: no verdict on the file
        except (IsADirectoryError, NotADirectoryError) as e:
            self._quarantine(kind, path, label, e.strerror, notes)
            return None
        except OSError as e:  # unreadable now (I/O error, permissions): leave it be
            raise StoreError(
                f"data folder {self.root}: the stored {kind} {label} cannot be read "
                f"({e.strerror or e})"
            ) from None
        # A damaged file can fail anywhere inside zip/NumPy (BadZipFile, EOFError, ...): any
        # failure to read it back is damage to set aside, never a crash of the page asking.
        except Exception as e:  # noqa: BLE001
            self._quarantine(kind, path, label, e, notes)
            return None
        self._touch(kind, key)
        return value

    def _touch(self, kind: str, key: str) -> None:
        """Update the last-use time; skipped on a read-only or full folder (a read goes on)."""
        if self.read_only:
            return
        try:
            with self._db() as db:
                db.execute(
                    "UPDATE entries SET used = ? WHERE kind = ? AND key = ?",
                    (time.time(), kind, key),
                )
        except sqlite3.OperationalError as e:
            log.info("data folder %s: last-use time not updated (%s)", self.root, e)

    def _forget(self, kind: str, key: str) -> None:
        if self.read_only and self._memory is None:
            return
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE kind = ? AND key = ?", (kind, key))

    def _quarantine(self, kind: str, path: Path, label: str, err, notes: list[str] | None):
        """Move a file that did not read back to quarantine/ (never delete it); say so once."""
        key = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
        if self.read_only:
            msg = (
                f"The stored {kind} {label} is damaged ({_short(err)}); the data folder is "
                f"read-only, so it stays at {path}."
            )
        else:
            dest = self.root / "quarantine" / kind / path.name
            with contextlib.suppress(OSError):
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.exists():
                    dest = dest.with_name(f"{path.name}.{time.time_ns()}")
                os.replace(path, dest)
            msg = (
                f"The stored {kind} {label} did not read back ({_short(err)}); it was moved to "
                f"{dest} and will be computed again."
            )
        if KEY_RE.fullmatch(key):
            self._forget(kind, key)
        if msg in self._said:
            return
        if self.read_only:
            self._said.add(msg)
        log.warning(msg)
        if notes is not None:
            notes.append(msg)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, in a write transaction (committed on success)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _put(self, kind: str, key: str, data: bytes) -> Path:
        """Make room for ``data`` (or refuse, in one line), then write it."""
        if self.read_only:
            raise StoreError(f"data folder {self.root} is read-only: the {kind} was not stored")
        mb = len(data) / 1e6
        cap = f"{MAX_MB_ENV}={self.max_bytes / 1e6:g}"
        if len(data) > self.max_bytes:
            raise StoreError(
                f"data folder {self.root}: the {kind} ({mb:.1f} MB) is larger than its cap "
                f"({cap} MB): not stored"
            )
        if kind == "run":
            raw = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
            if raw > MAX_ENTRY_BYTES:
                raise StoreError(
                    f"data folder {self.root}: the run takes {raw / 2**20:.0f} MiB, over the "
                    f"{MAX_ENTRY_BYTES / 2**20:.0f} MiB an entry may take: not stored"
                )
        if not self._make_room(len(data), kind, key):
            raise StoreError(
                f"data folder {self.root}: pinned and shown runs fill its cap ({cap} MB): "
                f"the {kind} ({mb:.1f} MB) was not stored"
            )
        return self._write(kind, key, data)

    # ------------------------------------------------------------------------- runs

    @_guarded()
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

    @_guarded()
    def get_run(self, rid: str, notes: list[str] | None = None) -> Run | None:
        """The stored run with id ``rid``, or None (unknown, evicted, or damaged: quarantined
        with a note in ``notes``)."""
        key = self._key_of(rid)
        if key is None:
            return None

        def decode(data: bytes) -> Run:
            run = formats.run_from_bytes(data, max_bytes=MAX_ENTRY_BYTES)
            if run_key(run.config) != key:
                raise ValueError("its config does not match its name")
            return run

        return self._load("run", key, rid, decode, notes)

    def find_run(self, config: Config, notes: list[str] | None = None) -> Run | None:
        """The stored run of ``config``, or None."""
        return self.get_run(run_id(config), notes)

    @_guarded(bool)
    def has_run(self, rid: str) -> bool:
        return self._key_of(rid) is not None

    @_guarded()
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

    @_guarded(list)
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

    @_guarded()
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

    @_guarded()
    def remove_owner(self, owner: str, rid: str) -> None:
        """Take ``rid`` off ``owner``'s list; the run itself goes when nobody else keeps it."""
        self._writable()
        with self._db() as db:
            db.execute("DELETE FROM owners WHERE owner = ? AND run_id = ?", (owner, rid))
            left = db.execute("SELECT 1 FROM owners WHERE run_id = ?", (rid,)).fetchone()
        info = self.run_info(rid)
        if left is None and info is not None and not info.pinned:
            self.delete_run(rid)

    @_guarded(bool)
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

    def _unlink(self, rows) -> None:
        for kind, key in rows:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._path(kind, key).unlink()
            if kind == "run":
                (self.root / "pins" / key).unlink(missing_ok=True)

    @_guarded(bool)
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

    @_guarded()
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
            fh = None if self.read_only else open(self.root / "locks" / f"{key}.lock", "a+b")
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

    @_guarded()
    def put_object(self, kind: str, key: str, obj, rid: str | None = None, name: str = "") -> None:
        """Keep a landscape/comparison result ``obj`` under ``key`` (see ``object_key``)."""
        path = self._put(kind, key, codec.to_bytes(obj))
        self._index(kind, key, rid, name, None, path)
        self.evict()

    @_guarded()
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

    @_guarded(dict)
    def usage(self) -> dict:
        """{"bytes", "max_bytes", "runs", "entries", "pinned", "quarantined",
        "quarantined_bytes"} of the folder now."""
        conn = self._conn()
        total, n = conn.execute("SELECT COALESCE(SUM(bytes), 0), COUNT(*) FROM entries").fetchone()
        runs, pinned = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(pinned), 0) FROM entries WHERE kind = 'run'"
        ).fetchone()
        aside = [p for p in (self.root / "quarantine").glob("*/*") if not p.name.endswith(".txt")]
        return {"bytes": total, "max_bytes": self.max_bytes, "runs": runs, "entries": n,
                "pinned": pinned, "quarantined": len(aside),
                "quarantined_bytes": sum(_size(p) for p in aside)}  # fmt: skip

    def _make_room(self, size: int, kind: str, key: str) -> bool:
        """Evict until an entry of ``size`` bytes (replacing ``kind/key``) fits; False if the
        protected entries leave no room (then nothing is evicted)."""
        return self._evict(room=size, replacing=(kind, key)) is not None

    @_guarded(list)
    def evict(self) -> list[tuple[str, str]]:
        """Drop least-recently-used entries until under the cap; returns (kind, key) dropped.

        Never dropped: pinned runs, runs under a live lease, and results computed from either.
        A run that goes takes its results with it (they cannot be shown without it).
        """
        if self.read_only:
            return []
        return self._evict() or []

    def _evict(self, room: int = 0, replacing=("", "")) -> list[tuple[str, str]] | None:
        dropped: list[tuple[str, str]] = []
        with self._db() as db:
            total = db.execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM entries WHERE NOT (kind = ? AND key = ?)",
                replacing,
            ).fetchone()[0]
            if total + room <= self.max_bytes:
                return dropped
            now = time.time()
            db.execute("DELETE FROM leases WHERE until < ?", (now,))
            rows = db.execute(
                "SELECT kind, key, run_id, bytes FROM entries e WHERE NOT EXISTS ("
                "  SELECT 1 FROM entries p WHERE p.kind = 'run' AND p.run_id = e.run_id "
                "  AND p.pinned = 1) "
                "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.run_id = e.run_id) "
                "AND NOT (kind = ? AND key = ?) ORDER BY used, created",
                replacing,
            ).fetchall()
            if room and total - sum(r[3] for r in rows) + room > self.max_bytes:
                return None  # protected entries alone leave no room: evict nothing
            gone: set[tuple[str, str]] = set()
            for kind, key, rid, size in rows:
                if total + room <= self.max_bytes:
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
        self._unlink(dropped)
        return dropped


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
                notes.append(store.problem or f"data folder {store.root}: the run was not kept")
    return run

"""The data folder's files and index, kept honest (the base of ``datastore.Store``).

Every entry file under ``objects/`` is in the index: the index is rebuilt from the files
when it is missing or damaged (found at start or mid-session), pins from ``pins/``. A file
that does not read back is moved to ``quarantine/`` (never deleted) and said once. Writes go
to a temporary name (removed after a failed write; a dead writer's is removed at start)
and are refused in one line when the entry cannot fit under the cap. A read-only folder is
opened read-only (an in-memory index if it has none); a full one still reads (the last-use
update is skipped). Every failure is one ``StoreError`` line naming the folder and why (see
``guarded``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
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
from pathlib import Path

from landscape.core import files
from landscape.storage import formats

MAX_MB_ENV = "LANDSCAPE_DATA_MAX_MB"
RUN_ID_LEN = 10  # hex digits of a run id (40 bits: collisions need ~10^6 runs)
KINDS = ("run", "landscape", "comparison")
KEY_RE = re.compile(r"[0-9a-f]{16,64}")
#: Uncompressed bytes one entry may take, written and read: what the training caps allow a
#: run (its trajectory up to ~400 MB), so every run a Config can make is kept and read back.
MAX_ENTRY_BYTES = formats.MAX_CLI_FILE_BYTES
TMP_MAX_AGE = 3600.0  # seconds: a temporary file this old is a failed write's, whoever wrote it

log = logging.getLogger("landscape.storage.datastore")

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


class StoreError(OSError):
    """The data folder cannot do what was asked: one line naming the folder and why."""


def guarded(fallback=None):
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


class Folder:
    """The files and index of a data folder; ``datastore.Store`` adds runs and results.

    ``strict`` (default): failures raise ``StoreError``; ``strict=False`` (the app): they are
    recorded in ``problem`` and the call returns nothing. Subclasses define
    ``_run_from(key, data)``: the run in ``data``, checked against its key.
    """

    def __init__(self, root: Path, max_bytes: int, strict: bool = True):
        self.root = root
        self.max_bytes = max_bytes
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

    def _run_from(self, key: str, data: bytes):
        raise NotImplementedError

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
            parts = path.name.split(".")  # "", key, "npz", pid, random, "tmp" (core.files)
            pid = int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else 0
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
                raise StoreError(
                    f"data folder {self.root}: its index cannot be opened ({e})"
                ) from None
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
                    run = self._run_from(key, path.read_bytes())
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
        try:
            files.write_atomic(path, data)
        except OSError as e:
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

    def _unlink(self, rows) -> None:
        for kind, key in rows:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self._path(kind, key).unlink()
            if kind == "run":
                (self.root / "pins" / key).unlink(missing_ok=True)

    def _make_room(self, size: int, kind: str, key: str) -> bool:
        """Evict until an entry of ``size`` bytes (replacing ``kind/key``) fits; False if the
        protected entries leave no room (then nothing is evicted)."""
        return self._evict(room=size, replacing=(kind, key)) is not None

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


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0

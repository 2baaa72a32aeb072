"""The one atomic file writer: a reader sees the old file or the whole new one, never a part.

Every file the library writes for someone else to read (command-line outputs, the data
folder's entries, meshes, research results) goes through ``write_atomic`` or, for files that
belong together (``PREFIX.npz`` + ``PREFIX.html``), ``write_together``:

- each file is written to a temporary name in its own folder
  (``.<name>.<pid>.<random>.tmp``) (``os.replace`` is atomic only
  within one file system), flushed and fsync'ed (a crash after the rename must not leave an
  empty file behind the new name);
- then renamed over the target; the renames of ``write_together`` run with SIGINT/SIGTERM
  held back, so the files change together or not at all;
- on any failure (an exception in ``write``, a full disk, Ctrl-C) the temporaries are removed
  and the old files stay as they were.

A failure raises ``WriteError``: an ``OSError`` (callers that skip unwritable caches catch
that) and a ``ValueError`` (the command line prints it as one line, exit 2), whose message
names the file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

Writer = Callable[[IO], object]  # writes the content to the open file it is given


class WriteError(OSError, ValueError):
    """A file could not be written (``OSError`` and ``ValueError``, as ``io.UnsupportedOperation``)."""


def write_atomic(path: str | os.PathLike, write: Writer | bytes, binary: bool = True) -> Path:
    """Write one file atomically; ``write`` is ``write(file)`` or the bytes themselves."""
    path = Path(path)
    write_together({path: write}, binary=binary)
    return path


def write_together(
    outputs: Mapping[str | os.PathLike, Writer | bytes], binary: bool = True
) -> None:
    """Write every file of ``{path: write}`` to a temporary beside it, then rename them all."""
    temps: dict[Path, Path] = {}
    path = None
    try:
        for target, write in outputs.items():
            path = Path(target)
            # the writer's pid in the name: a cleaner can tell a live writer's file from a
            # dead one's (landscape.storage.folder removes those at start)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
            )
            temps[path] = Path(tmp)
            mode, enc = ("wb", None) if binary else ("w", "utf-8")
            with os.fdopen(fd, mode, encoding=enc) as f:
                if isinstance(write, bytes | bytearray | memoryview):
                    f.write(write)
                else:
                    write(f)
                f.flush()
                os.fsync(f.fileno())
        with _signals_held():
            for path, tmp in temps.items():
                os.replace(tmp, path)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        raise WriteError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C (SIGINT) and SIGTERM wait until the block ends (POSIX main thread only)."""
    held = (signal.SIGINT, signal.SIGTERM)
    usable = (
        hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    )
    if usable:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        if usable:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

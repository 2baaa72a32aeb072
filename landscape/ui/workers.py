"""Heavy jobs (training, surfaces, curvature, comparisons) in a small pool of worker processes.

Why processes: the app is one Streamlit server process in which every session's script runs
as a thread. Python holds one lock (the GIL) for all of them, and a training loop holds it
for most of every small optimiser step. With training in threads, ten sessions on a 2-core
machine used about 1.1 cores, and a loss-page slider move that takes 44 ms alone took 1.7 s
at the 95th percentile (benchmarks/load_test.py). In worker processes heavy jobs have GILs
of their own, and they run at a lower scheduling priority (``nice``), so the server's own
threads, which draw every page, get the CPU first: interactive work before batch work.

Use::

    pool = workers.shared_pool()
    run = pool.call(training.train, config, callbacks={"progress": show_epoch})

``call(fn, *args, callbacks={name: callable}, on_wait=..., **kwargs)`` runs
``fn(*args, **kwargs)`` in a free worker and returns its result (or raises its exception,
message intact). ``fn`` must be importable by name (a module-level function). Each name in
``callbacks`` becomes a keyword argument of ``fn`` in the worker: a stand-in that sends its
arguments back, and the caller's callable runs with them *in the calling thread*, so a
Streamlit progress bar updates as if the job ran in the page. When every worker is busy the
call waits in a first-come-first-served queue: ``on_wait(ahead)`` is called when it starts to
wait and whenever its place changes (``ahead``: queued jobs in front of it), and
``on_start()`` once it gets a worker, so the page can say where it is and take the note down
when the job starts.

- At most ``size`` jobs run at once (LANDSCAPE_MAX_HEAVY_JOBS, default 2); each worker uses
  ``threads`` torch threads (the cores divided by the workers, at least one).
- Cancellation: when the caller stops waiting (a callback raised, e.g. Streamlit stopping a
  script run because the user clicked elsewhere), the job is told to stop at its next callback
  and the worker is freed once it has. A job that does not stop within CANCEL_GRACE_S is
  killed and its worker replaced.
- A worker that dies (out of memory, a crash) is replaced; the call raises ``WorkerDied``
  with a message a page can show. Nothing else is lost: the server process is untouched.
- Results travel pickled over a pipe between this process and its own children, never from
  a user: that is the trusted side (uploads and saved runs are never unpickled; see
  landscape.training.loop.run_from_bytes).
- Registered data sets (CSV uploads) live in a per-process registry (``landscape.data.datasets``); a
  job whose arguments name one (a Config, a Run or a Panel whose ``dataset`` is registered)
  carries it to the worker, which registers it before running the job.
- ``LANDSCAPE_WORKERS=0`` runs jobs in the calling thread instead (same interface and the
  same bound on concurrent jobs): for debugging, or where processes cannot be started.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from landscape.data import datasets as data
from landscape.data import upload  # noqa: F401
from landscape.measures import curvature  # noqa: F401

# What jobs use, loaded when a worker starts so that its first job does not pay for it.
from landscape.pipelines import comparisons, pictures, slices  # noqa: F401
from landscape.training import loop as training  # noqa: F401

CORES = os.cpu_count() or 1
#: How many heavy jobs may run at once in one server (the number of worker processes).
MAX_HEAVY_JOBS = max(1, int(os.environ.get("LANDSCAPE_MAX_HEAVY_JOBS", "2")))
#: Torch threads per worker: the cores shared out, capped by LANDSCAPE_TORCH_THREADS.
MAX_THREADS = max(1, min(int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2")), CORES))
#: Scheduling priority of workers, relative to the server (higher = yields more readily).
NICE = int(os.environ.get("LANDSCAPE_WORKER_NICE", "10"))
CANCEL_GRACE_S = 60.0  # a cancelled job that runs on longer than this is killed
WAIT_TIMEOUT_S = 600.0  # a call that cannot get a worker for this long gives up
BUSY_MESSAGE = "The server is too busy right now; please try again in a minute."


class Cancelled(BaseException):
    """Raised inside a job (at a callback) when its caller stopped waiting.

    A BaseException, so that a job's own ``except Exception`` does not swallow it.
    """


class WorkerDied(RuntimeError):
    """The worker process running a job ended before the job did."""


class Busy(RuntimeError):
    """No worker became free within the wait limit."""


# ----------------------------------------------------------------------------- worker side

_CANCEL = b"cancel"


def _serve(fd: int, threads: int, nice: int) -> None:
    """A worker's main loop: jobs in, callback messages and one reply per job out."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    import torch

    from landscape.core import allocator

    torch.set_num_threads(threads)
    allocator.keep_freed_memory()  # each job's steps and points reuse their blocks

    conn = Connection(fd)
    with contextlib.suppress(EOFError, OSError):  # the server went away: end quietly
        _loop(conn)


def _loop(conn: Connection) -> None:

    while True:
        raw = conn.recv_bytes()
        if raw == _CANCEL:  # came after its job had already finished
            continue
        if not raw:  # the pool's shutdown message
            return
        try:
            fn, args, kwargs, names, datasets = pickle.loads(raw)
            for ds, info in datasets:
                data.register(ds, info)
            for name in names:
                kwargs[name] = _stand_in(conn, name)
            reply = ("ok", fn(*args, **kwargs))
        except Cancelled:
            reply = ("cancelled",)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            reply = ("err", _pickled_exception(exc), str(exc) or type(exc).__name__)
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
                _send(conn, reply)
                raise
        try:
            out = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the result itself could not be pickled
            out = pickle.dumps(("err", None, f"the result could not be sent back: {exc}"))
        conn.send_bytes(out)


def _stand_in(conn: Connection, name: str) -> Callable:
    parent = os.getppid()

    def callback(*args):
        if os.getppid() != parent or conn.poll() and conn.recv_bytes() == _CANCEL:
            raise Cancelled()
        _send(conn, ("cb", name, args))

    return callback


def _pickled_exception(exc: BaseException) -> bytes | None:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt
        return data
    except Exception:
        return None


def _send(conn: Connection, msg) -> None:
    # Plain pickle, not multiprocessing's: torch registers reducers with the latter that move
    # tensors into shared memory, which would tie results to this (temporary) process.
    conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))


# ----------------------------------------------------------------------------- server side

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the landscape package


def _import_path() -> list[str]:
    """PYTHONPATH for a worker: this package's folder, then the caller's own folders on
    sys.path (not the interpreter's), so that a job importable here is importable there."""
    system = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = [_ROOT]
    for p in sys.path:
        real = os.path.realpath(p or os.getcwd())
        mine = not any(real == s or real.startswith(s + os.sep) for s in system)
        if mine and os.path.isdir(real) and real not in out:
            out.append(real)
    return out


class _Worker:
    """One worker process: ``python -m landscape.ui.workers FD ...`` on one end of a socket pair.

    Not multiprocessing's spawn: that re-imports the parent's ``__main__`` (the streamlit or
    pytest launcher, or a user's script without a main guard) in every worker.
    """

    def __init__(self, threads: int, nice: int, number: int):
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(_import_path())
        cmd = [sys.executable, "-m", "landscape.ui.workers", str(theirs.fileno()), str(threads)]
        self.proc = subprocess.Popen(
            [*cmd, str(nice), f"worker-{number}"], pass_fds=[theirs.fileno()], env=env
        )
        theirs.close()
        self.conn = Connection(ours.detach())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cancel(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send_bytes(_CANCEL)

    def stop(self, kill: bool = False) -> None:
        try:
            if kill or not self.alive():
                raise OSError
            self.conn.send_bytes(b"")
            self.proc.wait(2.0)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        if self.alive():
            self.proc.kill()
            self.proc.wait(2.0)
        self.conn.close()


class Pool:
    """``size`` worker processes; ``call`` runs a job in a free one (see the module doc)."""

    def __init__(self, size: int = MAX_HEAVY_JOBS, threads: int | None = None, nice: int = NICE):
        self.size = max(1, size)
        self.threads = threads or max(1, MAX_THREADS // self.size)
        self.nice = nice
        self._cond = threading.Condition()
        self._free: list[_Worker] = []
        self._all: list[_Worker] = []
        self._made = 0
        self._closed = False
        self._queue: list[object] = []  # tickets of the calls waiting, first come first served

    # -- life cycle

    def start(self) -> Pool:
        """Start the workers now (they warm up in the background); calls also start them."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            while len(self._all) < self.size:
                w = self._new_worker()
                self._all.append(w)
                self._free.append(w)
        return self

    def _new_worker(self) -> _Worker:
        self._made += 1
        return _Worker(self.threads, self.nice, self._made)

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._all, self._free = self._all, [], []
            self._cond.notify_all()
        for w in workers:
            w.stop()

    def pids(self) -> list[int]:
        with self._cond:
            return [w.proc.pid for w in self._all]

    def busy(self) -> int:
        """Jobs running right now."""
        with self._cond:
            return len(self._all) - len(self._free)

    # -- jobs

    def call(
        self,
        fn: Callable,
        *args,
        callbacks: dict[str, Callable | None] | None = None,
        on_wait: Callable[[int], None] | None = None,
        on_start: Callable[[], None] | None = None,
        wait_timeout: float = WAIT_TIMEOUT_S,
        **kwargs,
    ) -> Any:
        callbacks = {k: v for k, v in (callbacks or {}).items() if v is not None}
        job = pickle.dumps(
            (fn, args, kwargs, list(callbacks), _registered_sets_in((args, kwargs))),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        w, waited = self._acquire(on_wait, wait_timeout)
        if waited and on_start is not None:
            try:
                on_start()
            except BaseException:
                self._release(w)
                raise
        finished = False
        try:
            while True:
                try:
                    if job is not None:
                        w.conn.send_bytes(job)
                        job = None
                    kind, *rest = self._receive(w)
                except (EOFError, OSError) as exc:
                    finished = True
                    w = self._replace(w)
                    raise WorkerDied(
                        "The worker process computing this stopped unexpectedly (out of "
                        "memory?). Nothing else was affected; try again, perhaps with a "
                        "smaller setting."
                    ) from exc
                if kind == "cb":
                    callbacks[rest[0]](*rest[1])
                    continue
                finished = True
                if kind == "ok":
                    return rest[0]
                if kind == "cancelled":
                    raise Cancelled()
                raise _rebuilt(*rest)
        finally:
            if finished:
                self._release(w)
            else:  # the caller stopped waiting: let the job stop, then free the worker
                w.cancel()
                threading.Thread(target=self._drain, args=(w,), daemon=True).start()

    def _receive(self, w: _Worker):
        while not w.conn.poll(0.25):
            if not w.alive():
                raise EOFError("worker exited")
        return pickle.loads(w.conn.recv_bytes())

    def _drain(self, w: _Worker) -> None:
        deadline = time.monotonic() + CANCEL_GRACE_S
        try:
            while time.monotonic() < deadline:
                if w.conn.poll(0.25):
                    if pickle.loads(w.conn.recv_bytes())[0] != "cb":
                        self._release(w)
                        return
                elif not w.alive():
                    break
        except (EOFError, OSError):
            pass
        self._release(self._replace(w))

    def _acquire(self, on_wait, timeout: float) -> tuple[_Worker, bool]:
        """A free worker, and whether the call had to queue for it. Calls queue in arrival
        order; ``on_wait(ahead)`` runs (outside the lock: it may draw on a page) when a call
        starts to wait and whenever its place in the queue changes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            if not self._all:
                self._cond.release()
                try:
                    self.start()
                finally:
                    self._cond.acquire()
            waited = bool(self._queue) or not self._free
            if waited:
                self._wait_turn(on_wait, deadline)
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            w = self._free.pop()
        if not w.alive():
            w = self._replace(w)
        return w, waited

    def _wait_turn(self, on_wait, deadline: float) -> None:
        """Queue (lock held) until this call is first in line and a worker is free."""
        ticket, said = object(), None
        self._queue.append(ticket)
        try:
            while not self._closed:
                ahead = self._queue.index(ticket)
                if ahead == 0 and self._free:
                    return
                if on_wait is not None and ahead != said:
                    said = ahead
                    self._cond.release()
                    try:
                        on_wait(ahead)
                    finally:
                        self._cond.acquire()
                    continue  # the queue may have moved meanwhile
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Busy(BUSY_MESSAGE)
                self._cond.wait(min(left, 1.0))
        finally:
            self._queue.remove(ticket)
            self._cond.notify_all()  # the places behind this one moved

    def waiting(self) -> int:
        """Calls queued for a worker right now."""
        with self._cond:
            return len(self._queue)

    def _release(self, w: _Worker) -> None:
        with self._cond:
            if w in self._all and not self._closed:
                self._free.append(w)
                self._cond.notify_all()  # the first in line must wake, whichever it is
                return
        w.stop()  # the pool was shut down meanwhile

    def _replace(self, w: _Worker) -> _Worker:
        w.stop(kill=True)
        with self._cond:
            new = self._new_worker()
            if w in self._all:
                self._all[self._all.index(w)] = new
            return new


class InlinePool:
    """The same interface, jobs run in the calling thread (LANDSCAPE_WORKERS=0)."""

    def __init__(self, size: int = MAX_HEAVY_JOBS):
        self.size = max(1, size)
        self._slots = threading.BoundedSemaphore(self.size)
        self._busy = 0
        self._waiting = 0
        self._lock = threading.Lock()

    def start(self) -> InlinePool:
        return self

    def shutdown(self) -> None:
        pass

    def pids(self) -> list[int]:
        return []

    def busy(self) -> int:
        return self._busy

    def waiting(self) -> int:
        return self._waiting

    def call(
        self, fn, *args, callbacks=None, on_wait=None, on_start=None,
        wait_timeout=WAIT_TIMEOUT_S, **kw,
    ):  # fmt: skip
        import torch

        if not self._slots.acquire(blocking=False):
            with self._lock:
                ahead, self._waiting = self._waiting, self._waiting + 1
            try:
                if on_wait is not None:
                    on_wait(ahead)  # not kept up to date here: a thread pool for debugging
                if not self._slots.acquire(timeout=wait_timeout):
                    raise Busy(BUSY_MESSAGE)
            finally:
                with self._lock:
                    self._waiting -= 1
            if on_start is not None:
                try:
                    on_start()
                except BaseException:
                    self._slots.release()
                    raise
        before = torch.get_num_threads()
        with self._lock:
            self._busy += 1
            torch.set_num_threads(max(1, MAX_THREADS // self._busy))
        try:
            kw.update({k: v for k, v in (callbacks or {}).items() if v is not None})
            return fn(*args, **kw)
        finally:
            with self._lock:
                self._busy -= 1
            torch.set_num_threads(before)
            self._slots.release()


def _rebuilt(pickled: bytes | None, message: str) -> BaseException:
    """The job's exception as raised in the worker (its type and message), when possible."""
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    return RuntimeError(message)


def _registered_sets_in(obj, depth: int = 0) -> list:
    """(Dataset, DatasetInfo) of the registered sets a job's arguments name (module doc)."""

    names: dict[str, None] = {}

    def walk(x, d: int) -> None:
        if d > 6:
            return
        if isinstance(x, str):
            if data.is_registered(x):
                names[x] = None
        elif isinstance(x, (list, tuple, set, frozenset)):
            for item in x:
                walk(item, d + 1)
        elif isinstance(x, dict):
            for item in x.values():
                walk(item, d + 1)
        else:
            for attr in ("dataset", "config", "run"):
                value = getattr(x, attr, None)
                if isinstance(value, str) or attr != "dataset" and value is not None:
                    walk(value, d + 1)

    walk(obj, depth)
    return [(data.registered_set(n), data.info(n)) for n in names]


# ----------------------------------------------------------------------------- the shared pool

_shared: Pool | InlinePool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> Pool | InlinePool:
    """The pool of this process (created on first use; shut down at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            mode = os.environ.get("LANDSCAPE_WORKERS", "processes").strip().lower()
            _shared = InlinePool() if mode in ("0", "inline", "threads") else Pool()
            atexit.register(_shared.shutdown)
        return _shared


if __name__ == "__main__":  # a worker process (see _Worker)
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))

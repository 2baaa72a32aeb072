"""Small jobs for tests/test_workers.py: importable by name, so worker processes can run them."""

from __future__ import annotations

import os
import time


def identity(x):
    return x


def info() -> dict:
    import torch

    return {"pid": os.getpid(), "nice": os.nice(0), "threads": torch.get_num_threads()}


def timed_sleep(seconds: float, path: str, tag: str) -> str:
    """Append 'start tag' / 'end tag' lines to `path` around a sleep (to see overlaps)."""
    with open(path, "a") as f:
        f.write(f"start {tag}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {tag}\n")
    return tag


def logged_wait(go: str, path: str, tag: str) -> str:
    """Like timed_sleep, but the job lasts until `go` exists (the test decides when it ends)."""
    with open(path, "a") as f:
        f.write(f"start {tag}\n")
    wait_for_file(go)
    with open(path, "a") as f:
        f.write(f"end {tag}\n")
    return tag


def ticks(n: int, path: str, progress=None) -> int:
    """Call progress(i) n times, 0.05 s apart, writing each tick to `path` first."""
    for i in range(n):
        with open(path, "a") as f:
            f.write(f"{i}\n")
        if progress is not None:
            progress(i)
        time.sleep(0.05)
    return n


def fail_value(message: str):
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling keeps only args=(message,): rebuilding fails
        super().__init__(f"{a} and {b}")


def fail_unpicklable():
    raise Unpicklable("first", "second")


def unpicklable_result():
    return lambda: None


def die():
    os._exit(3)


def tensor_result():
    import torch

    return torch.arange(6.0)


def wait_for_file(path: str, timeout: float = 300.0) -> bool:
    """Hold a worker until `path` exists (a cross-process event); True when it appeared."""
    from pathlib import Path

    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def hold_the_worker_until_a_job_queues(pool, monkeypatch, path: str):
    """Take `pool`'s one worker with a job that ends only when another call starts to wait
    for a worker (its on_wait fires): the queued case, driven by events, not by timing.
    Returns the thread running the holding job."""
    import threading
    from pathlib import Path

    real_call = pool.call

    def call(fn, *args, on_wait=None, **kw):
        def waiting(ahead):
            Path(path).touch()  # releases the holding job: the caller is now queued
            if on_wait is not None:
                on_wait(ahead)

        return real_call(fn, *args, on_wait=waiting, **kw)

    monkeypatch.setattr(pool, "call", call)
    holder = threading.Thread(target=real_call, args=(wait_for_file, path))
    holder.start()
    deadline = time.monotonic() + 60
    while pool.busy() < 1 and time.monotonic() < deadline:  # the call takes the worker at once
        time.sleep(0.01)
    return holder

"""Many processes, GPUs and machines: torch.distributed under ``torchrun``, resumable.

``torchrun`` starts one process per rank with the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
``MASTER_ADDR`` environment; ``init()`` joins the process group from it (torchrun's store,
keys prefixed per restart attempt): NCCL
with ``cuda:LOCAL_RANK`` where CUDA exists, else Gloo on the CPU with the node's cores split
between its ranks. Without torchrun, ``init()`` returns a one-process context and every
function here works without a process group, so one code path serves both.

What fixes the numbers is made once: rank 0's directions and centre weights are broadcast
(so nodes whose BLAS rounds differently still agree bit for bit), then ``agree`` checks, by
an all-reduce of checksums, that every rank holds the same directions, weights, grid and
data. ``evaluate_resumable`` shares the grid's blocks (``landscape.engine.chunkstore``) among the
ranks; each rank writes the blocks it computed into the Zarr store itself, rank 0 draws one
progress bar for the whole job by counting the blocks on disk, and a rerun (or a rank that
``torchrun --max-restarts`` restarted), on any number of ranks, computes only the blocks that
are not on disk as verified values of this configuration. A rank whose torchrun agent is
killed exits at once (``_die_with_agent``), so a killed job writes nothing more.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from landscape.engine.chunkstore import PointStore

# A rank that finished its share waits for the others at a barrier; allow for slow ranks of
# a long job (a failed rank does not wait this long: torchrun stops the whole group).
TIMEOUT = timedelta(hours=6)
STORE_TIMEOUT = timedelta(minutes=30)  # ranks of one attempt must all start within this
POLL_SECONDS = 0.5  # how often rank 0 counts the blocks on disk for the progress bar
ROUNDS = 2  # passes over the missing blocks before the job gives up (see evaluate_resumable)
ORPHAN_POLL_SECONDS = 0.2  # how often a rank checks that its torchrun agent is alive


class RankZeroError(ValueError):
    """A refusal decided on rank 0 and raised on every rank (only rank 0 reports it)."""


@dataclass(frozen=True)
class Context:
    """Where this process sits in the job; the default is one process, no process group."""

    rank: int = 0  # 0 .. world_size - 1
    world_size: int = 1
    local_rank: int = 0  # rank on this node (the GPU index)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # "gloo" | "nccl"; None without a process group

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def test_hold(variable: str) -> None:
    """Test hook, inert unless the environment variable is set: sleep that many seconds, so a
    test can kill a job at a chosen moment (after a block is written, while the final .npz
    is held before its rename) on a machine of any speed."""
    with contextlib.suppress(ValueError, OverflowError):
        time.sleep(max(0.0, float(os.environ.get(variable, "0"))))


def launched() -> bool:
    """True in a process started by torchrun (torch.distributed.run)."""
    return dist.is_torchelastic_launched()


def _cpu_threads(local_world: int) -> int:
    """This rank's share of the cores it may run on (LANDSCAPE_TORCH_THREADS overrides)."""
    if "LANDSCAPE_TORCH_THREADS" in os.environ:
        return max(1, int(os.environ["LANDSCAPE_TORCH_THREADS"]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_world))


def init() -> Context:
    """Join the torchrun job (or return the one-process context outside torchrun)."""
    if not launched():
        return Context()
    _die_with_agent()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend,
            store=_attempt_store(rank, world),
            rank=rank,
            world_size=world,
            timeout=TIMEOUT,
            device_id=device if device.type == "cuda" else None,
        )
    return Context(rank, world, local_rank, device, backend)


_watching: list[threading.Thread] = []


def _die_with_agent() -> None:
    """Exit this rank as soon as its torchrun agent (the parent process) is gone.

    torchrun starts each rank in a session of its own, so killing the job (the agent's
    process group, a scheduler's SIGKILL of the launcher) leaves the ranks running as
    orphans: they keep writing the point store, and once done they write PREFIX.npz and
    remove the store under the feet of the rerun that resumed from it. An orphan's work
    has no one to report to; it stops within ORPHAN_POLL_SECONDS.
    """
    if _watching:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_SECONDS)
        print(
            f"rank {os.environ.get('RANK', '?')}: its torchrun agent is gone; stopping",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)

    thread = threading.Thread(target=watch, name="landscape-agent-watch", daemon=True)
    thread.start()
    _watching.append(thread)


def _attempt_store(rank: int, world: int) -> dist.Store:
    """torchrun's store, with keys prefixed by the restart attempt.

    The same as ``init_method="env://"`` except for the prefix: torchrun keeps its store
    across ``--max-restarts``, and without a prefix the ranks of a restarted attempt can read
    the Gloo addresses of the dead attempt (connection refused, or a hang).
    """
    agent_hosts_it = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        world,
        is_master=not agent_hosts_it and rank == 0,
        timeout=STORE_TIMEOUT,
    )
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"landscape/attempt_{attempt}", store)


def share_cores(ctx: Context) -> None:
    """On the CPU, give this rank its share of the node's cores for the grid's points.

    Called after training (a built-in run is trained by every rank with the one-process
    thread count, so that its weights are those of the one-process run bit for bit).
    """
    if ctx.distributed and ctx.device.type == "cpu":
        torch.set_num_threads(_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def shutdown(ctx: Context) -> None:
    """Leave the process group (a no-op for one process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        dist.barrier(device_ids=ids)


# ----------------------------------------------------------------------------- agreement


def digest(*objects) -> str:
    """sha256 (hex) of tensors, arrays, dicts/lists of them, and JSON-able values.

    Tensors and arrays count by dtype, shape and bytes; dict entries by sorted key.
    """
    h = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, Tensor):
            obj = obj.detach().cpu().contiguous()
            h.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
            h.update(obj.view(-1).view(torch.uint8).numpy().tobytes() if obj.numel() else b"")
        elif isinstance(obj, np.ndarray):
            obj = np.ascontiguousarray(obj)
            h.update(f"A{obj.dtype.str}{obj.shape}".encode())
            h.update(obj.tobytes())
        elif isinstance(obj, dict):
            h.update(b"{")
            for k in sorted(obj, key=str):
                h.update(json.dumps(str(k)).encode())
                feed(obj[k])
            h.update(b"}")
        elif isinstance(obj, list | tuple):
            h.update(b"[")
            for item in obj:
                feed(item)
            h.update(b"]")
        else:
            h.update(json.dumps(obj, sort_keys=True, allow_nan=True).encode())

    for obj in objects:
        feed(obj)
    return h.hexdigest()


def agree(ctx: Context, what: str, checksum: str) -> None:
    """Check that every rank holds the same ``what`` (all-reduce of the checksum's min/max).

    Raises ValueError naming ``what`` on every rank when they differ.
    """
    if not ctx.distributed:
        return
    value = int(checksum[:15], 16)  # 60 bits: fits an int64
    lo = torch.tensor([value], dtype=torch.int64, device=ctx.device)
    hi = lo.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    if lo.item() != hi.item():
        raise ValueError(
            f"{what}: the ranks hold different values (checksums differ); every rank must "
            "see the same files and settings"
        )


def broadcast(ctx: Context, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rank 0's tensors on every rank (same keys, shapes and dtypes on every rank)."""
    if not ctx.distributed:
        return tensors
    out = {}
    for name in sorted(tensors):
        t = tensors[name].detach().to(ctx.device).contiguous().clone()
        dist.broadcast(t, src=0)
        out[name] = t.to(tensors[name].device)
    return {name: out[name] for name in tensors}


def share(ctx: Context, obj):
    """Rank 0's ``obj`` (a small picklable value) on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device)
    return box[0]


def make_once(ctx: Context, make: Callable[[], list[dict[str, Tensor]]]) -> list[dict[str, Tensor]]:
    """Directions made by ``make`` on every rank, replaced by rank 0's and checked equal.

    ``make`` is seeded, so the ranks' own results already match on one machine; sending
    rank 0's makes them match bit for bit across machines too, and the checksum proves it.
    """
    dirs = [broadcast(ctx, d) for d in make()]
    agree(ctx, "directions", digest(dirs))
    return dirs


# ----------------------------------------------------------------------------- the job


def _open_store(ctx, path, n_points, parts, overwrite) -> PointStore:
    """Rank 0 creates or resumes the store (or refuses); the others open it after.

    ``overwrite`` starts clean once per job: an attempt that ``torchrun --max-restarts``
    restarted resumes the work of the attempts before it.
    """
    overwrite = overwrite and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    store, error = None, None
    if ctx.is_main:
        try:
            store = PointStore.create_or_resume(path, n_points, parts, overwrite)
        except ValueError as e:
            error = str(e)
    error = share(ctx, error)
    if error is not None:
        raise RankZeroError(error)
    barrier(ctx)
    return store if store is not None else PointStore.open(path, n_points, parts)


def _poll(store: PointStore, bar: tqdm, stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        done = store.n_done()
        if done > bar.n:
            bar.update(done - bar.n)


def evaluate_resumable(
    ctx: Context,
    evaluate: Callable[[int, int], tuple[np.ndarray, np.ndarray | None]],
    n_points: int,
    store_path: str | Path,
    parts: dict[str, str],
    label: str,
    name: str,
    has_accuracy: bool,
    quiet: bool = False,
    overwrite: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every point's (loss, accuracy), computed by the ranks together, resumably.

    ``evaluate(a, b)`` computes points ``a .. b-1`` (losses, accuracies or None). Blocks
    already in the store at ``store_path`` that verify are kept (rank 0 prints ``resuming
    NAME: N/M points already computed`` on stderr, N the points of those blocks); the others
    are dealt round-robin to the ranks, and each rank writes its blocks as they finish.
    Returns the full arrays (accuracy None unless ``has_accuracy``) on every rank.
    """
    store = _open_store(ctx, store_path, n_points, parts, overwrite)
    if ctx.is_main and store.repaired:
        print(
            f"{store_path}: the store's metadata was damaged and is rewritten; "
            "only blocks that verify are kept",
            file=sys.stderr,
        )
    missing = share(ctx, store.missing_chunks() if ctx.is_main else None)
    done = n_points - sum(b - a for a, b in map(store.bounds, missing))
    if ctx.is_main and done:
        print(f"resuming {name}: {done}/{n_points} points already computed", file=sys.stderr)
    bar = tqdm(
        total=n_points,
        initial=done,
        desc=label,
        unit="pt",
        file=sys.stderr,
        disable=quiet or not ctx.is_main,
        dynamic_ncols=True,
    )
    stop = threading.Event()
    poller = None
    if ctx.distributed and ctx.is_main and not bar.disable:
        poller = threading.Thread(target=_poll, args=(store, bar, stop), daemon=True)
        poller.start()
    try:
        # A block that does not verify once every rank is done (another process removed or
        # replaced it meanwhile) is computed once more; results() then names what is missing.
        for _ in range(ROUNDS):
            for c in missing[ctx.rank :: ctx.world_size]:
                a, b = store.bounds(c)
                losses, accs = evaluate(a, b)
                store.write(c, losses, accs)
                test_hold("LANDSCAPE_TEST_HOLD_BLOCK")
                if poller is None:
                    bar.update(b - a)
            barrier(ctx)
            missing = share(ctx, store.missing_chunks() if ctx.is_main else None)
            if not missing:
                break
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    if bar.n < n_points:
        bar.update(n_points - bar.n)
    bar.close()
    losses, accs = store.results()
    return losses, (accs if has_accuracy else None)


def store_path_for(prefix: str | Path) -> Path:
    """The point store beside the outputs of ``--out PREFIX``: ``PREFIX.zarr``."""
    p = Path(prefix)
    return p.with_name(p.name + ".zarr")


# ----------------------------------------------------------------------------- evaluator


class Evaluator:
    """A slice evaluator that shares the points among the ranks and resumes from disk.

    Plugs into ``landscape.pipelines.slices.compute(..., evaluator=...)`` in place of
    ``slices.evaluate`` (same call signature). For the k-th call it makes rank 0's centre
    weights and directions everyone's, checks by checksum that every rank holds the same
    directions, grid, model and data, and evaluates the points with ``inner`` (the
    single-process evaluator) block by block into the store ``PREFIX.zarr/slice{k}``.
    """

    def __init__(
        self,
        ctx: Context,
        prefix: str | Path,
        inner: Callable,
        settings: dict | None = None,
        label: str = "points",
        quiet: bool = False,
        overwrite: bool = False,
        data_digest: Callable[[str], tuple[str, int]] | None = None,
    ) -> None:
        self.ctx, self.prefix, self.inner = ctx, str(prefix), inner
        # An inner evaluator that streams its data itself (a user's --data, read in batches)
        # names it by data_digest(split) -> (checksum, samples): the set is never held whole.
        self.data_digest = data_digest
        self.settings = settings or {}  # JSON-able facts that also fix the numbers (the loss...)
        self.label, self.quiet, self.overwrite = label, quiet, overwrite
        self.calls = 0

    def __call__(
        self, subject, dirs, coords, split="train", *, centre=None, method="auto", progress=None
    ):
        ctx = self.ctx
        model = subject.model() if centre is None else centre
        state = broadcast(ctx, model.state_dict())
        model.load_state_dict(state)
        dirs = [broadcast(ctx, dict(d)) for d in dirs]
        coords = np.asarray(coords, dtype=np.float64)
        if self.data_digest is None:
            X, y = subject.data(split)
            data_sum, n_data = digest(X, y, split), int(X.shape[0])
            on_device = _OnDevice(subject, ctx.device, split, (X, y))
        else:
            (data_sum, n_data), on_device = self.data_digest(split), subject
        parts = {
            "directions": digest(dirs),
            "grid": digest(coords),
            "model": digest(type(model).__qualname__, str(model), state),
            "data": data_sum,
            "settings": digest(self.settings),
        }
        for what, checksum in parts.items():
            agree(ctx, what, checksum)
        info: dict = {}
        dev_model = model if ctx.device.type == "cpu" else copy.deepcopy(model).to(ctx.device)
        dev_dirs = [{k: t.to(ctx.device) for k, t in d.items()} for d in dirs]

        def points(a: int, b: int):
            losses, accs, facts = self.inner(
                on_device, dev_dirs, coords[a:b], split, centre=dev_model, method=method
            )
            info.setdefault("method", facts.get("method", method))
            return losses, accs

        start = time.perf_counter()
        path = store_path_for(self.prefix) / f"slice{self.calls}"
        self.calls += 1
        result = evaluate_resumable(
            ctx,
            points,
            len(coords),
            path,
            parts,
            label=self.label,
            name=self.prefix,
            has_accuracy=subject.accuracy_fn is not None,
            quiet=self.quiet,
            overwrite=self.overwrite,
        )
        losses, accs = result
        if progress is not None:
            progress(len(coords), len(coords))
        info = {
            "method": _agreed_method(ctx, info.get("method"), method),
            "seconds": time.perf_counter() - start,
            "n_data": n_data,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "ranks": ctx.world_size,
        }
        return losses, accs, info


class _OnDevice:
    """The subject with its data of ``split`` on ``device`` (each rank's GPU, or the CPU)."""

    def __init__(self, subject, device: torch.device, split: str, data) -> None:
        self._subject, self._split = subject, split
        self._data = tuple(t.to(device) for t in data)

    def data(self, split: str):
        return self._data if split == self._split else self._subject.data(split)

    def model(self):
        return self._subject.model()

    def __getattr__(self, name):
        return getattr(self._subject, name)


def _agreed_method(ctx: Context, used: str | None, asked: str) -> str:
    """The evaluation path rank 0 used (the one asked for when rank 0 computed nothing)."""
    return share(ctx, used or asked)


def _slices_in(folder: Path) -> list[Path] | None:
    """The ``slice{k}`` entries of a point-store folder; None if it holds anything else."""
    entries = list(folder.iterdir())
    ok = all(e.is_dir() and e.name.startswith("slice") and e.name[5:].isdigit() for e in entries)
    return entries if ok else None


def check_store_folder(folder: str | Path) -> None:
    """ValueError unless ``folder`` is absent or a point-store folder of this program.

    Checked before any work, so that a user's own ``PREFIX.zarr`` is never written into
    nor removed.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or _slices_in(folder) is None):
        raise ValueError(
            f"{folder} exists and is not a point store of this program: move it away or "
            "pick another --out"
        )


def remove_store(folder: str | Path) -> None:
    """Delete a finished point-store folder (only its ``slice{k}`` stores, then the folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in _slices_in(folder) or []:
        shutil.rmtree(entry)
    with contextlib.suppress(OSError):
        folder.rmdir()

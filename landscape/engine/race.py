"""The ``auto`` method's choice: race the fast path against the reference loop on a surface's
first points, keep the faster one for the rest, and remember the winner per kind of model.

Auto costs at most the loser's calibration points more than the faster method alone (a timed
chunk is at most 1/RACE_SHARE of the surface), and only once per kind of model in a process:
the winner is remembered (``_WINNERS``, keyed by architecture, data shape, loss, threads and
directions), so later surfaces skip the race (``meta["race"] == {"remembered": method}``).
A surface the loop finishes in under RACE_MIN_S seconds is not raced at all (the loop's first
points time it; ``meta["race"]["skipped"]``), and its choice is not remembered.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor, nn

RACE_ROUNDS = 2  # timed rounds of each method at most; the fewer seconds per point wins
RACE_SHARE = 8  # a timed chunk of the fast path is at most 1/RACE_SHARE of the surface
RACE_CLEAR = 1.25  # after one round, a method this many times faster wins without a second
# A surface the loop finishes in less than this is not raced: the fast path could save at most
# a fraction of it, and timing points of a millisecond or two is noisier than the difference
# between the methods (a mis-pick then costs more than the race could win).
RACE_MIN_S = 0.25


def choose(seconds_per_point: dict[str, float]) -> str:
    """The method with the fewest measured seconds per point; a tie goes to the loop.

    The loop is the reference, so it wins ties and any method never measured (inf).
    """
    return min(seconds_per_point, key=lambda k: (seconds_per_point[k], k != "loop"))


def race(make_fast, loop, coords: np.ndarray, progress, clock=time.perf_counter, batches=1):
    """Evaluate ``coords`` with the faster of the fast path and ``loop``, timed on the first
    points. ``make_fast()`` gives the fast path's session, or None when the model has none
    (then the loop evaluates every point and the timings are None); it is called only when
    the race runs.

    The loop goes first: one warm-up point, then two timed points. When that rate finishes
    the surface (``coords`` on each of ``batches`` batches of data) in under RACE_MIN_S
    seconds, the loop evaluates the rest alone and nothing is raced (timings["skipped"] is
    True; the fast path never runs). Otherwise calibration: a warm-up of the fast path
    (first calls build kernels and its shared caches; 2 points), then up to RACE_ROUNDS
    timed rounds of one fast
    chunk (``fast.K`` points, at most 1/RACE_SHARE of the surface) and a quarter as many loop
    points (at least 2); the minimum seconds per point of each go to ``choose``. A first
    round where one method is RACE_CLEAR times faster decides alone. The winner is the
    method that finishes sooner (its seconds per point times the points left and the other's
    calibration points): it evaluates the rest and then recomputes the points the loser
    calibrated on, so every value of the surface comes from one method and the loser's only
    cost is its calibration points.
    Returns (losses, accs, winner name, timings); ``clock`` is injectable for tests.
    """
    total = len(coords)
    losses = np.empty(total, dtype=np.float64)
    accs = None if loop.accuracy_fn is None else np.empty(total, dtype=np.float64)
    runners = {"batched": None, "loop": loop}
    spans: dict[str, list[tuple[int, int]]] = {"batched": [], "loop": []}
    done = 0

    def take(name: str, n: int) -> float:
        """Evaluate the next n points with one method; seconds per point (inf if none left)."""
        nonlocal done
        n = min(n, total - done)
        if n <= 0:
            return math.inf
        start = clock()
        lo, ac = runners[name].run(coords[done : done + n])
        seconds = (clock() - start) / n
        _put(losses, accs, done, lo, ac)
        spans[name].append((done, done + n))
        done += n
        if progress is not None:
            progress(done, total)
        return seconds

    def finish(name: str) -> None:
        """Evaluate every point not yet done with one method."""
        if done < total:
            lo, ac = runners[name].run(coords[done:], offset(progress, done, total))
            _put(losses, accs, done, lo, ac)

    take("loop", 1)
    best = {"batched": math.inf, "loop": take("loop", 2)}
    small = best["loop"] * total * batches < RACE_MIN_S
    fast = None if small else make_fast()
    if fast is None:  # the loop alone: a small surface, or no fast path for this model
        finish("loop")
        timings = {"batched_s_per_point": None, "loop_s_per_point": best["loop"],
                   "recomputed_points": 0, "skipped": True}  # fmt: skip
        return losses, accs, "loop", timings if small else None
    runners["batched"] = fast
    chunk = max(1, min(fast.K, total // RACE_SHARE))
    take("batched", min(2, chunk))
    for _ in range(RACE_ROUNDS):
        best["batched"] = min(best["batched"], take("batched", chunk))
        best["loop"] = min(best["loop"], take("loop", max(2, chunk // 4)))
        low, high = sorted(best.values())
        if high >= RACE_CLEAR * low:
            break
    # Finish with the method that ends the surface soonest: its rate times the points left
    # plus the other's calibration points it must redo. That is the faster per point unless
    # the two are close, where redoing the other's chunk would cost more than it saves.
    left = total - done
    redo = {name: sum(b - a for a, b in spans["loop" if name == "batched" else "batched"])
            for name in runners}  # fmt: skip
    winner = choose({k: best[k] * (left + redo[k]) if left + redo[k] else 0.0 for k in best})
    loser = "loop" if winner == "batched" else "batched"
    finish(winner)
    for a, b in spans[loser]:  # the surface from one method: redo the loser's points
        lo, ac = runners[winner].run(coords[a:b])
        _put(losses, accs, a, lo, ac)
    timings = {
        "batched_s_per_point": None if math.isinf(best["batched"]) else best["batched"],
        "loop_s_per_point": None if math.isinf(best["loop"]) else best["loop"],
        "recomputed_points": sum(b - a for a, b in spans[loser]),
    }
    return losses, accs, winner, timings


#: Winners of past races, by what decides the cost (see ``_race_key``): a later surface of the
#: same model, data shape, loss and threads uses the remembered method without calibrating
#: again (as cuDNN's benchmark mode keeps its choice per shape). Bounded, least recent first
#: out; per process.
_WINNERS: OrderedDict[tuple, str] = OrderedDict()
MAX_WINNERS = 64
_WINNERS_LOCK = threading.Lock()


def race_key(model: nn.Module, loss_fn, X: Tensor, n_dirs: int, moved: list[str], accuracy_fn):
    shapes = tuple((k, tuple(p.shape), str(p.dtype)) for k, p in model.state_dict().items())
    loss = getattr(loss_fn, "__qualname__", type(loss_fn).__qualname__)
    return (
        type(model).__qualname__, str(model), shapes, tuple(X.shape), str(X.dtype),
        str(X.device), torch.get_num_threads(), loss, accuracy_fn is not None, n_dirs,
        tuple(moved),
    )  # fmt: skip


def remembered(key: tuple) -> str | None:
    with _WINNERS_LOCK:
        if key in _WINNERS:
            _WINNERS.move_to_end(key)
            return _WINNERS[key]
    return None


def remember(key: tuple, winner: str) -> None:
    with _WINNERS_LOCK:
        _WINNERS[key] = winner
        _WINNERS.move_to_end(key)
        while len(_WINNERS) > MAX_WINNERS:
            _WINNERS.popitem(last=False)


def _put(losses, accs, start: int, lo, ac) -> None:
    losses[start : start + len(lo)] = lo
    if accs is not None:
        accs[start : start + len(lo)] = ac


def offset(progress, done: int, total: int):
    if progress is None:
        return None
    return lambda d, _t: progress(done + d, total)

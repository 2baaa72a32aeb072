"""Presets computed ahead: at server start, every preset's default run (the Train,
Landscape and Geometry presets and the runs of every Compare preset) is trained into the data
folder in the background, then every preset's default landscape (the slice the Landscape
page computes when Compute is pressed with the form's defaults) and every Compare preset's
comparison (with the page's default settings), so that a class opening a preset gets it
from the store. Each goes where its page looks first, under the page's own key, through
the page's own step (``pictures.kept_or_computed``, ``comparison_presets.store_key`` with
``datastore.stored_or_computed``): a result a user's job stored meanwhile wins.

Never in a user's way: it runs in a process of its own (not one of the pool's workers, so it
never holds a worker a user's job could queue for), at the lowest scheduling priority (nice
19) with one torch thread, so every user's job and page gets the CPU first; and it takes no
config's training lock (a user asking for the same config trains it, or reads it from the
store, without waiting for this process). It stops when the server does, and between runs
when the server's process is gone.

``python -m landscape.ui.warm`` is what ``start()`` runs. LANDSCAPE_WARM_PRESETS=0 turns it
off (tests, benchmarks that time cold computations).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable

import torch

from landscape.data.config import Config
from landscape.pipelines import comparison_presets, pictures, presets
from landscape.pipelines.comparisons import Comparison, Settings
from landscape.storage import datastore
from landscape.training import loop as training

ENV = "LANDSCAPE_WARM_PRESETS"  # "0": no background warm-up
NICE = 19  # the lowest priority there is


class ServerGone(Exception):
    """The server's process is gone: the warm-up stops where it is."""


def _watch(alive: Callable[[], bool]) -> Callable:
    """A progress callback (training's, a slice's, a comparison's) that stops the work at
    its next step once the server is gone, rather than at the end of a long computation."""

    def progress(*_) -> None:
        if not alive():
            raise ServerGone

    return progress


def configs() -> list[Config]:
    """Every preset's default run, each once: the named presets, then the Compare presets'."""
    out = [presets.get(name) for name in presets.PRESETS]
    for preset in comparison_presets.PRESETS.values():
        out += [panel.config for panel in preset.panels]
    return list(dict.fromkeys(out))


def warm(
    store: datastore.Store,
    todo: Iterable[Config],
    train: Callable[[Config], training.Run] | None = None,
    alive: Callable[[], bool] = lambda: True,
) -> list[Config]:
    """Train and keep each config the store does not hold yet; returns the ones trained.

    No training lock is taken (see the module doc): a run a user kept meanwhile wins, and
    this one is dropped."""
    train = train or training.train
    done = []
    for config in todo:
        if not alive():
            break
        if store.find_run(config) is not None:
            continue
        run = train(config, _watch(alive))
        if store.find_run(config) is None:
            store.put_run(run)
        done.append(config)
    return done


def landscapes(
    store: datastore.Store,
    todo: Iterable[Config],
    alive: Callable[[], bool] = lambda: True,
) -> list[Config]:
    """Compute and keep the default landscape (``pictures.default_request``) of each stored
    run of ``todo`` the store does not hold yet; returns the configs computed. A config whose
    run is not stored (not trained yet, or not kept) is skipped."""
    done = []
    for config in todo:
        if not alive():
            break
        run = store.find_run(config)
        if run is None:
            continue
        request = pictures.default_request(run)
        computed = []

        def compute(request=request, run=run, computed=computed):
            computed.append(True)
            return pictures.compute(request, run, progress=_watch(alive))

        pictures.kept_or_computed(store, request, compute)
        if computed:
            done.append(config)
    return done


def comparisons(
    store: datastore.Store,
    keys: Iterable[str],
    alive: Callable[[], bool] = lambda: True,
) -> list[str]:
    """Measure and keep each Compare preset of ``keys`` with the page's default settings
    (``Settings()``, at ``comparison_presets.scale_from_env()``) that the store does not hold
    yet; returns the keys measured. Runs come from the store, else are trained here."""
    settings, scale = Settings(), comparison_presets.scale_from_env()

    def train(config: Config, progress=None) -> training.Run:
        run = store.find_run(config)
        return run if run is not None else training.train(config, progress)

    done = []
    for key in keys:
        if not alive():
            break
        preset = comparison_presets.get(key).scaled(scale)
        computed = []

        def compute(preset=preset, computed=computed):
            computed.append(True)
            return comparison_presets.run_preset(preset, settings, _watch(alive), train=train)

        datastore.stored_or_computed(
            store,
            "comparison",
            comparison_presets.store_key(key, scale, settings),
            compute,
            accept=lambda found: isinstance(found, Comparison),
        )
        if computed:
            done.append(key)
    return done


def warm_all(store: datastore.Store, alive: Callable[[], bool] = lambda: True) -> None:
    """Everything in order of use: the runs, the Landscape presets' default landscapes, the
    Compare presets' comparisons."""
    warm(store, configs(), alive=alive)
    landscapes(store, [presets.get(name) for name in presets.PRESETS], alive=alive)
    comparisons(store, list(comparison_presets.PRESETS), alive=alive)


def start() -> subprocess.Popen | None:
    """The warm-up process, started at the lowest priority (None when it is turned off)."""
    if os.environ.get(ENV, "1") == "0":
        return None
    env = {**os.environ, "LANDSCAPE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "landscape.ui.warm", str(os.getpid())],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.nice(NICE),  # noqa: PLW1509 - only os.nice, before exec
    )


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    parent = int(argv[0]) if argv else os.getppid()
    try:
        store = datastore.default_store()
    except (ValueError, OSError):
        return 0  # no data folder: nothing to keep the runs in
    with contextlib.suppress(ServerGone):
        warm_all(store, alive=lambda: os.getppid() == parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

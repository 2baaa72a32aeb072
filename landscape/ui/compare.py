"""Streamlit glue for the Compare page: bounded result caches with live progress.

``preset(key, settings, progress)`` and ``runs(named_runs, norms, settings, progress)``
answer the same question twice from a bounded ``st.cache_data`` cache. On a miss the work
runs in worker processes (``landscape.ui.common.run_heavy``; a cached answer never queues):
the runs a preset trains go through the process-wide run cache of ``landscape.ui.runs`` (a
run trained for one preset, or on the Train page, is not trained again for another), then
one worker job measures every panel.

Progress inside a cached function: ``landscape.ui.common.cached_job`` runs the callbacks
outside Streamlit's cache-replay recording.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from landscape.engine.subject import fingerprint
from landscape.pipelines import comparison_presets, comparisons
from landscape.pipelines.comparisons import Comparison, Panel, Settings
from landscape.storage import datastore
from landscape.training.loop import Run
from landscape.ui import kept
from landscape.ui.common import cached_job, run_heavy
from landscape.ui.runs import train_cached

CACHE_ENTRIES = 12  # comparisons kept per server (each a few MB: runs, surfaces)

Progress = Callable[[float, str], None] | None


def _measure(wrap: Callable, label: str):
    """``comparisons.compare`` in a worker process (its progress runs here, live)."""

    def measure(items, settings: Settings, progress: Progress = None) -> Comparison:
        return run_heavy(
            comparisons.compare,
            items,
            settings,
            label=label,
            callbacks={"progress": progress},
            wrap=wrap,
        )

    return measure


@cached_job(CACHE_ENTRIES)
def _preset(key: str, scale: float, settings: Settings, _progress=None, _wrap=None) -> Comparison:
    preset = comparison_presets.get(key).scaled(scale)
    return _kept(
        comparison_presets.store_key(key, scale, settings),
        lambda: comparison_presets.run_preset(
            preset,
            settings,
            _progress,
            train=lambda config, progress: train_cached(config, progress, wrap=_wrap),
            measure=_measure(_wrap, f"the comparison '{preset.title}'"),
        ),
    )


@cached_job(CACHE_ENTRIES)
def _runs(keys: tuple, labels: tuple, norms: tuple, settings: Settings, _runs, _progress=None,
          _wrap=None):  # fmt: skip
    items = [(r, Panel(lab, r.config, norm=n)) for r, lab, n in zip(_runs, labels, norms)]
    return _kept(
        datastore.object_key(
            "comparison", "runs", keys, labels, norms, dataclasses.asdict(settings)
        ),
        lambda: _measure(_wrap, "the comparison")(items, settings, _progress),
    )


def _kept(key: str, compute: Callable[[], Comparison]) -> Comparison:
    """``compute()``, answered from the data folder when it was measured before."""
    return datastore.stored_or_computed(
        kept.store(), "comparison", key, compute, accept=lambda found: isinstance(found, Comparison)
    )


def preset(key: str, settings: Settings, progress: Progress = None) -> Comparison:
    """The preset ``key`` measured with ``settings`` (scaled by
    ``comparison_presets.scale_from_env()``), cached."""
    comparison_presets.get(key)  # ValueError for an unknown key, before touching the cache
    return _preset(key, comparison_presets.scale_from_env(), settings, _progress=progress)


def runs(
    named: list[tuple[str, Run]], norms: list[str], settings: Settings, progress: Progress = None
) -> Comparison:
    """Runs of this session side by side; the runs' weight fingerprints key the cache."""
    keys = tuple(fingerprint(r) for _, r in named)
    labels = tuple(name for name, _ in named)
    return _runs(keys, labels, tuple(norms), settings, [r for _, r in named], _progress=progress)


def clear() -> None:
    """Empty the comparison caches (tests and benchmarks time cold computations with it)."""
    _preset.clear()
    _runs.clear()

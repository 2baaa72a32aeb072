"""The Compare page's one-click comparisons (``PRESETS``) and how to run one.

Each preset carries what the literature found and what this small run shows; the latter is a
measured statement (see benchmarks/bench_compare.py), not a hope, and says so where the small
scale does not reproduce the published effect. What was measured (``shows``,
``measured_seconds``, the cold time of the whole preset with training, ``measured_on``, and
the ``claims`` that back each number-bearing sentence of ``shows``, as [metric, panel, op,
factor, other panel or null]) lives in one data file per preset, ``presets_data/<key>.json``,
rewritten when the numbers are re-measured. The measuring itself is
``landscape.pipelines.comparisons``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from landscape.core import checks
from landscape.data.config import Config
from landscape.measures import roughness
from landscape.pipelines.comparisons import (
    Comparison,
    Panel,
    Progress,
    Settings,
    Trainer,
    compare,
    table,
)
from landscape.storage import datastore
from landscape.training import loop as training
from landscape.training.loop import Run

PRESETS_DATA = Path(__file__).with_name("presets_data")  # <key>.json per preset: measurements
SCALE_ENV = "LANDSCAPE_COMPARE_SCALE"  # tests: run presets scaled down, in (0, 1]; default 1


@dataclass(frozen=True)
class Claim:
    """One number-backed sentence of a preset's `shows` text, checkable against a measurement.

    `metric(panel) op factor * metric(other)` when `other` names a panel, else
    `metric(panel) op factor`. Metrics are the keys of `table` rows, plus "local minima" (of
    the panel's 2D slice, `landscape.measures.roughness.local_minima`). tests/test_comparisons.py
    runs every preset and checks every claim, so the text cannot drift from the numbers.
    """

    metric: str
    panel: str
    op: str  # "<", ">", "<=", ">="
    factor: float = 1.0
    other: str | None = None

    def holds(self, values: dict[str, dict]) -> bool:
        """`values`: panel label -> {metric: number}."""
        a = values[self.panel][self.metric]
        b = self.factor * (values[self.other][self.metric] if self.other else 1.0)
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[self.op]

    def __str__(self) -> str:
        rhs = f"{self.factor:g} x {self.metric}({self.other})" if self.other else f"{self.factor:g}"
        return f"{self.metric}({self.panel}) {self.op} {rhs}"

    def measured(self, values: dict[str, dict]) -> str:
        """The claim's numbers as this measurement gives them, e.g. "top eigenvalue: no skips
        12.4 = 31x with skips (the text says > 3x)"; the page prints it under the text, so
        the caption's figures are the table's."""
        a = values[self.panel][self.metric]
        if self.other is None:
            return f"{self.metric}: {self.panel} {a:.4g} (the text says {self.op} {self.factor:g})"
        b = values[self.other][self.metric]
        ratio = f"{a / b:.3g}x" if b else "∞"
        return (
            f"{self.metric}: {self.panel} {a:.4g} = {ratio} {self.other}'s {b:.4g} "
            f"(the text says {self.op} {self.factor:g}x)"
        )


def measured(preset: Preset, comp: Comparison) -> list[str]:
    """Each claim of ``preset`` with the figures ``comp`` measured (see ``Claim.measured``)."""
    values = claim_values(comp)
    return [c.measured(values) for c in preset.claims]


def claim_values(comp: Comparison) -> dict[str, dict]:
    """panel label -> every metric a Claim may name, measured in `comp`."""

    out = {}
    for row, p in zip(table(comp), comp.panels):
        out[p.label] = {**row, "local minima": roughness.local_minima(p.plane.loss)}
    return out


@dataclass(frozen=True)
class Preset:
    """A one-click comparison: panels, the settings to measure them with, and the story."""

    key: str  # registry key
    title: str  # heading of the comparison
    button: str  # short label of its one-click button
    panels: tuple[Panel, ...]
    literature: str  # what the literature found (with the reference)
    shows: str = ""  # what this small run shows: measured, honest where it does not reproduce
    settings: Settings = field(default_factory=Settings)
    measured_seconds: float | None = None  # cold run incl. training (where: measured_on)
    measured_on: str = ""  # the machine and threads the measurements were taken with
    claims: tuple[Claim, ...] = ()  # the numbers behind `shows`, checked by the tests

    def scaled(self, scale: float) -> Preset:
        """A smaller version (fewer epochs and samples, coarser grids) for fast tests.

        ``scale`` in (0, 1]: epochs and samples are multiplied by it (with floors), the grids
        shrink. ``scaled(1.0)`` is the preset itself.
        """
        checks.number_in("scale", scale, 0.0, 1.0, open_lo=True)
        if scale == 1.0:
            return self

        def small(c: Config) -> Config:
            n = max(200, int(c.n_samples * scale))
            return c.replace(
                epochs=max(2, int(c.epochs * scale)),
                n_samples=n,
                outliers=min(c.outliers, n // 10) if c.outliers else 0,
                loss_params=c.loss_params,
            )

        panels = tuple(dataclasses.replace(p, config=small(p.config)) for p in self.panels)
        s = self.settings.replace(
            resolution=max(5, int(self.settings.resolution * scale) | 1),
            line_points=max(11, int(self.settings.line_points * scale) | 1),
            trace_samples=max(4, int(self.settings.trace_samples * scale)),
        )
        return dataclasses.replace(self, panels=panels, settings=s, measured_seconds=None)


def run_preset(
    preset: Preset,
    settings: Settings | None = None,
    progress: Progress = None,
    train: Trainer | None = None,
    measure: Callable[..., Comparison] | None = None,
) -> Comparison:
    """Train the preset's runs (each distinct config once) and measure every panel.

    ``train(config, epoch_progress) -> Run`` defaults to ``training.train``; the page passes
    its cached trainer so a run trained before is not trained again. ``measure(items,
    settings, progress)`` defaults to ``compare``; the page passes one that runs it in a
    worker process. Training takes the first half of the progress bar, measuring the second.
    """
    settings = settings or preset.settings
    train = train or training.train
    measure = measure or compare
    t0 = time.perf_counter()
    configs = list(dict.fromkeys(p.config for p in preset.panels))
    runs: dict[Config, Run] = {}
    for i, c in enumerate(configs):
        label = next(p.label for p in preset.panels if p.config == c)
        runs[c] = train(c, _epoch_progress(progress, i, len(configs), label))
    t_train = time.perf_counter() - t0
    half = (lambda f, t: progress(0.5 + 0.5 * f, t)) if progress else None  # noqa: E731
    comp = measure([(runs[p.config], p) for p in preset.panels], settings, half)
    return Comparison(comp.panels, settings, t_train, time.perf_counter() - t0)


def _epoch_progress(progress: Progress, i: int, n: int, label: str):
    if progress is None:
        return None

    def cb(info: dict) -> None:
        f = (i + info["epoch"] / max(info["epochs"], 1)) / n
        progress(0.5 * f, f"training {label}: epoch {info['epoch']}/{info['epochs']}")

    return cb


# ---------------------------------------------------------------------------------------------
# presets


_DIGITS = dict(dataset="digits", n_samples=1797, batch_size=64)
_RESMLP = dict(
    _DIGITS,
    model="resmlp",
    depth=8,
    width=32,
    batchnorm=True,
    optimizer="momentum",
    lr=0.05,
    epochs=20,
)
_MLP_DIGITS = dict(_DIGITS, model="mlp", depth=2, width=64, optimizer="momentum", lr=0.05)
_OUTLIERS = dict(  # a line with its 30 rightmost of 300 points pushed 8 units down
    dataset="outliers",
    n_samples=300,
    noise=0.3,
    outliers=30,
    outlier_scale=8.0,
    model="mlp",
    depth=2,
    width=16,
    activation="tanh",
    optimizer="adam",
    lr=0.01,
    epochs=100,
    batch_size=32,
)


def _cfg(base: dict, **kw) -> Config:
    return Config(**{**base, **kw})


def _presets() -> dict[str, Preset]:
    skip = Preset(
        key="skip",
        button="Skips vs none",
        title="Skip connections vs none",
        panels=(
            Panel("with skips", _cfg(_RESMLP, skip=True)),
            Panel("no skips", _cfg(_RESMLP, skip=False)),
        ),
        literature=(
            "Li et al. (2018, Figs. 5 and 7): as networks get deeper, removing the skip "
            "connections turns a smooth, nearly convex landscape into a chaotic one with sharp, "
            "non-convex regions, and the no-skip nets train worse; with skips the landscape "
            "stays smooth at any depth. The effect is strong at 56 and 110 layers, mild at 20."
        ),
    )
    batch = Preset(
        key="batch",
        button="Small vs large batch",
        title="Small vs large batch",
        panels=(
            Panel("batch 16", _cfg(_MLP_DIGITS, batch_size=16, epochs=20)),
            Panel("full batch", _cfg(_MLP_DIGITS, batch_size=1437, epochs=500, lr=0.3)),
            Panel(
                "batch 16, wd 5e-4",
                _cfg(_MLP_DIGITS, batch_size=16, epochs=20, weight_decay=5e-4),
            ),
            Panel(
                "full batch, wd 5e-4",
                _cfg(_MLP_DIGITS, batch_size=1437, epochs=500, lr=0.3, weight_decay=5e-4),
            ),
        ),
        literature=(
            "Keskar et al. (2017): large-batch training converges to sharp minima that "
            "generalise worse. Li et al. (2018, Figs. 2-4) showed that without normalisation "
            "the comparison can flip (weight decay shrinks the weights and makes small-batch "
            "minima look sharp), while with filter normalisation the small batch is flatter "
            "with and without weight decay, matching its better test error."
        ),
    )
    norm = Preset(
        key="norm",
        button="Normalisation",
        title="Normalisation matters",
        panels=(
            Panel("filter-normalised", _cfg(_MLP_DIGITS, batch_size=64, epochs=20)),
            Panel("not normalised", _cfg(_MLP_DIGITS, batch_size=64, epochs=20), norm="none"),
            Panel(
                "rescaled x4, filter-normalised",
                _cfg(_MLP_DIGITS, batch_size=64, epochs=20),
                rescale=4.0,
            ),
            Panel(
                "rescaled x4, not normalised",
                _cfg(_MLP_DIGITS, batch_size=64, epochs=20),
                norm="none",
                rescale=4.0,
            ),
        ),
        literature=(
            "Li et al. (2018, section 4): ReLU nets are scale invariant, so a random direction "
            "of fixed size means different things for different weight scales and plots of "
            "different nets are not comparable; filter normalisation (each filter of the "
            "direction scaled to the norm of the weights' filter) fixes this. Dinh et al. "
            "(2017): rescaling makes any minimum as sharp as you like by the Hessian, without "
            "changing the function."
        ),
    )
    loss = Preset(
        key="loss",
        button="MSE · Huber · L1",
        title="Loss choice: MSE vs Huber vs L1",
        panels=(
            Panel("MSE", _cfg(_OUTLIERS, loss="mse")),
            Panel("Huber (delta 1)", _cfg(_OUTLIERS, loss="huber", loss_params={"delta": 1.0})),
            Panel("L1 (MAE)", _cfg(_OUTLIERS, loss="mae")),
        ),
        literature=(
            "Robust statistics (Huber 1964): squared error lets a few far-off points dominate "
            "the fit, while Huber and L1 grow only linearly in the residual and shrug them off. "
            "In the landscape, the MSE surface is a steep bowl whose curvature comes from the "
            "outliers; Huber and L1 are flatter (bounded gradient), L1 with kinks."
        ),
    )
    opt = Preset(
        key="optim",
        button="SGD · momentum · Adam",
        title="Optimisers: SGD vs momentum vs Adam",
        panels=(
            Panel("SGD", _cfg(_MLP_DIGITS, optimizer="sgd", lr=0.1, epochs=20)),
            Panel("SGD + momentum", _cfg(_MLP_DIGITS, lr=0.05, epochs=20)),
            Panel("Adam", _cfg(_MLP_DIGITS, optimizer="adam", lr=0.002, epochs=20)),
        ),
        literature=(
            "Wilson et al. (2017) found adaptive methods such as Adam generalise worse than SGD "
            "on the same problems; a common explanation (e.g. Zhou et al. 2020) is that SGD's "
            "noise escapes sharp minima and settles in flat ones more readily than Adam."
        ),
    )
    return {p.key: _measured(p) for p in (skip, batch, norm, loss, opt)}


def _measured(preset: Preset) -> Preset:
    """The preset with what was measured on it (``presets_data/<key>.json``) filled in."""
    facts = json.loads((PRESETS_DATA / f"{preset.key}.json").read_text(encoding="utf-8"))
    return dataclasses.replace(
        preset,
        shows=facts["shows"],
        measured_seconds=facts["measured_seconds"],
        measured_on=facts["measured_on"],
        claims=tuple(Claim(*c) for c in facts.get("claims", ())),
    )


PRESETS: dict[str, Preset] = _presets()


def get(key: str) -> Preset:
    """The preset ``key``; ValueError listing the keys when unknown."""
    if key not in PRESETS:
        raise ValueError(f"preset={key!r} is unknown: must be one of {list(PRESETS)}")
    return PRESETS[key]


def scale_from_env() -> float:
    """The preset scale from ``LANDSCAPE_COMPARE_SCALE`` (1 = the real presets)."""
    raw = os.environ.get(SCALE_ENV, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_ENV}={raw!r} is not a number: must be in (0, 1]") from None
    if not 0 < scale <= 1:
        raise ValueError(f"{SCALE_ENV}={raw!r} is out of range: must be in (0, 1]")
    return scale


def store_key(key: str, scale: float, settings: Settings) -> str:
    """Where the data folder keeps preset ``key`` (at ``scale``) measured with ``settings``
    (kind "comparison"): the Compare page and the background warm-up (landscape.ui.warm)."""
    return datastore.object_key("comparison", "preset", key, scale, dataclasses.asdict(settings))

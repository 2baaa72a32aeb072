"""Research figures: every mark says what it is, and the axes frame the data (issue 25)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from landscape.engine.surface import Surface
from landscape.plots import research
from landscape.plots import training as train_plots
from landscape.ui import research as ui_research


def test_every_dashed_spectrum_line_is_labelled():
    """Two of the spectrum's dashed lines had no label."""
    res = SimpleNamespace(grid=np.linspace(-1, 10, 50), density=np.ones(50),
                          top=np.array([9.0, 7.0, 5.0, 3.0, 2.0]), n_params=100)  # fmt: skip
    fig = research.spectrum_figure(res)
    lines = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    texts = [a.text for a in fig.layout.annotations]
    assert len(lines) == 5 and [f"λ{i}" for i in range(1, 6)] == [t.split(" ")[0] for t in texts]
    assert "top eigenvalues (Lanczos)" in [t.name for t in fig.data]


def test_rescaling_chart_ticks_are_ratios_not_bare_digits():
    """A stray "9" tick sat on the rescaling chart's log axis."""
    panel = lambda label, v: SimpleNamespace(label=label, values=v)  # noqa: E731
    base = panel("α = 1", {"a": 1.0, "b": 2.0})
    fig = research.rescaling_figure([base, panel("α = 5", {"a": 0.9, "b": 50.0})], ["a", "b"],
                                    {"a": "A", "b": "B"})  # fmt: skip
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks and all(t.startswith("x") for t in ticks)
    assert "x1" in ticks and "x20" in ticks  # the ratios 0.9 and 25 are framed


def test_stable_limit_chart_frames_its_points():
    """The stable-limit chart crammed its points at the left."""
    limit = 0.5
    fig = train_plots.stability_figure(limit, [(0.475, 0.1, False), (0.525, 1e9, True)])
    lo, hi = fig.layout.xaxis.range
    for x in (0.475, 0.525, limit):
        assert 0.15 < (math.log10(x) - lo) / (hi - lo) < 0.85


def test_connectivity_legend_shows_the_white_paths():
    """The plane's legend drew its white lines on white."""
    plane = Surface("plane", np.linspace(0, 1, 5), np.linspace(0, 1, 5), np.ones((5, 5)), None, {})
    res = SimpleNamespace(plane=plane, kind="bezier", line_xy=np.zeros((2, 3)),
                          curve_xy=np.zeros((2, 3)), points_xy=np.zeros((3, 2)))  # fmt: skip
    fig = research.connectivity_plane(res, log=False)
    assert fig.layout.legend.bgcolor == research.LEGEND_GROUND
    assert fig.layout.legend.font.color == "white"


def test_the_bezier_is_not_said_to_pass_through_theta():
    """Geometry said the learned curve "bends through θ", but a Bézier passes below it."""
    assert "bends through" not in ui_research.CONNECT_NOTICE
    assert "control point" in ui_research.CONNECT_NOTICE

"""Basin width: the Compare page's flatness figure of a 1D slice."""

from __future__ import annotations

import numpy as np


def basin_width(ts, loss, level: float) -> tuple[float, bool]:
    """Width of the basin around t=0 of a 1D slice: the length of the interval where loss <= level.

    Precisely: ``ts`` is sorted and contains 0 (the trained weights). The basin is the largest
    interval [a, b] containing 0 on which the piecewise-linear interpolation of ``loss``
    stays <= ``level``; a and b are the interpolated crossings of the level on either side.
    NaN/inf losses count as above every level. Returns ``(b - a, censored)``, where
    ``censored`` is True when the loss never rises above the level within the sliced range on
    at least one side: the true width is then at least the value returned. A centre loss
    above the level gives width 0.

    On a filter-normalised direction, t=1 is a step as large as the weights themselves
    (filter by filter), so widths are comparable between nets of different weight scales.
    """
    ts = np.asarray(ts, dtype=np.float64)
    z = np.asarray(loss, dtype=np.float64)
    if ts.ndim != 1 or ts.shape != z.shape or len(ts) < 2 or not np.all(np.diff(ts) > 0):
        raise ValueError("ts must be increasing and the same length as loss (at least 2 points)")
    zero = np.flatnonzero(ts == 0)
    if len(zero) != 1:
        raise ValueError("ts must contain t=0 (the trained weights) exactly once")
    z = np.where(np.isfinite(z), z, np.inf)
    c = int(zero[0])
    if not z[c] <= level:
        return 0.0, False
    right, cens_r = _edge(ts[c:], z[c:], level)
    left, cens_l = _edge(-ts[c::-1], z[c::-1], level)
    return float(right + left), bool(cens_r or cens_l)


def _edge(t: np.ndarray, z: np.ndarray, level: float) -> tuple[float, bool]:
    """Distance from t[0] (inside the basin) to the first crossing of the level along t."""
    above = np.flatnonzero(z > level)
    if len(above) == 0:
        return float(t[-1] - t[0]), True
    k = int(above[0])  # z[k-1] <= level < z[k]
    if not np.isfinite(z[k]):
        return float(t[k - 1] - t[0]), False
    frac = (level - z[k - 1]) / (z[k] - z[k - 1])
    return float(t[k - 1] + frac * (t[k] - t[k - 1]) - t[0]), False

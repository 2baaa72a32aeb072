"""Roughness numbers against plain loops written from their definitions."""

import numpy as np
import pytest

from landscape.measures import roughness


def _minima_loop(a):
    n = 0
    for i in range(1, a.shape[0] - 1):
        for j in range(1, a.shape[1] - 1):
            c = a[i, j]
            nbs = [a[i + di, j + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
            if np.isfinite(c) and all(not (nb <= c) for nb in nbs):
                n += 1
    return n


def _turns_loop(a, tol=1e-3):
    la = np.log10(a)
    eps = tol * (np.nanmax(la) - np.nanmin(la))
    total = []
    for line in list(la) + list(la.T):
        signs = []
        for k in range(len(line) - 1):
            d = line[k + 1] - line[k]
            if abs(d) > eps:
                signs.append(np.sign(d))
        total.append(sum(signs[k] != signs[k + 1] for k in range(len(signs) - 1)))
    return np.mean(total)


def _tv_loop(a):
    la = np.log10(a)
    tv = sum(abs(la[i + 1, j] - la[i, j]) for i in range(a.shape[0] - 1) for j in range(a.shape[1]))
    tv += sum(
        abs(la[i, j + 1] - la[i, j]) for i in range(a.shape[0]) for j in range(a.shape[1] - 1)
    )
    return tv / (la.max() - la.min())


AX = np.linspace(-1, 1, 21)
GX, GY = np.meshgrid(AX, AX)
BOWL = 0.1 + GX**2 + 2 * GY**2
EGG = 2.5 + np.sin(7 * GX) * np.sin(7 * GY) + 0.3 * (GX**2 + GY**2)


def test_a_bowl_has_one_minimum_and_turns_once_per_line():
    assert roughness.local_minima(BOWL) == 1
    assert roughness.turns_per_line(BOWL) == pytest.approx(1.0)
    assert roughness.tv_ratio(BOWL) <= 2 * (21 + 21)


@pytest.mark.parametrize("seed", range(4))
def test_random_and_egg_crate_surfaces_match_the_loops(seed):
    rng = np.random.default_rng(seed)
    for a in (np.exp(rng.standard_normal((9, 13))), EGG):
        assert roughness.local_minima(a) == _minima_loop(a)
        assert roughness.turns_per_line(a) == pytest.approx(_turns_loop(a))
        assert roughness.tv_ratio(a) == pytest.approx(_tv_loop(a))
    assert roughness.local_minima(EGG) > 4 and roughness.turns_per_line(EGG) > 2


def test_ties_and_nan_are_not_minima():
    a = np.ones((5, 5))
    assert roughness.local_minima(a) == 0  # a flat plateau: nothing strictly lower
    b = BOWL.copy()
    b[10, 10] = np.nan
    assert roughness.local_minima(b) == _minima_loop(b)


def test_convexity_summary_and_bad_grids():
    s = roughness.convexity_summary(np.array([[0.0, 0.2], [np.nan, 0.05]]))
    assert s["convexity_mean"] == pytest.approx(0.25 / 3)
    assert s["convexity_share"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2D grid"):
        roughness.local_minima(np.ones(5))

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


def _flood_regions(a: np.ndarray, level: float) -> int:
    """Independent count: a plain stack flood fill over 8-neighbours."""
    ny, nx = a.shape
    seen = np.zeros_like(a, dtype=bool)
    n = 0
    for i in range(ny):
        for j in range(nx):
            if seen[i, j] or not (np.isfinite(a[i, j]) and a[i, j] < level):
                continue
            n += 1
            stack = [(i, j)]
            seen[i, j] = True
            while stack:
                y, x = stack.pop()
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        v, u = y + dy, x + dx
                        inside = 0 <= v < ny and 0 <= u < nx
                        if inside and not seen[v, u] and np.isfinite(a[v, u]) and a[v, u] < level:
                            seen[v, u] = True
                            stack.append((v, u))
    return n


def test_regions_below_a_level_match_a_flood_fill():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random((9, 13))
        a[rng.random(a.shape) < 0.05] = np.nan
        for level in (0.2, 0.5, 0.8):
            assert roughness.regions_below(a, level) == _flood_regions(a, level)


def test_a_bowl_has_one_low_region_and_islands_count_apart():
    x = np.linspace(-1, 1, 41)
    bowl = x[None, :] ** 2 + x[:, None] ** 2 + 0.01
    assert roughness.low_loss_regions(bowl, np.arange(0.1, 2, 0.5)) == (1, 0.1)
    islands = bowl.copy()
    islands[5, 5] = islands[5, 35] = islands[35, 20] = 0.05  # three pits on the rim
    n, level = roughness.low_loss_regions(islands, np.arange(0.1, 2, 0.5))
    assert (n, level) == (4, 0.1)  # the basin and three islands below 0.1
    assert roughness.low_loss_regions(bowl + 10, [0.1, 1.0]) == (0, None)

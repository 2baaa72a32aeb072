"""Mode connectivity: the barrier of a net with itself, and a known two-well landscape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from research_toys import DATA, TwoWells, loss_of_output, relu_data, relu_mlp

from landscape.measures import connectivity


def test_barrier_of_a_net_with_itself_is_zero():
    m, data = relu_mlp(seed=0), relu_data()
    ts, losses = connectivity.straight_line(m, m, F.cross_entropy, data, points=11)
    own = float(F.cross_entropy(m(data[0]), data[1]).detach())
    assert np.all(losses == losses[0]) and losses[0] == pytest.approx(own, rel=1e-12)
    assert connectivity.barrier(ts, losses) == (0.0, 0.0)


def test_barrier_definitions_on_a_hand_made_profile():
    ts = np.linspace(0, 1, 5)
    losses = np.array([1.0, 2.0, 4.0, 2.5, 3.0])
    frankle, interp = connectivity.barrier(ts, losses)
    assert frankle == 4.0 - 2.0  # peak minus the mean of the endpoints
    assert interp == 4.0 - 2.0  # at t=0.5 the interpolation is 2.0 too
    losses = np.array([1.0, 3.0, 1.5, 2.9, 3.0])
    assert connectivity.barrier(ts, losses) == (pytest.approx(1.0), pytest.approx(3.0 - 1.5))


def test_endpoints_of_two_nets_are_their_own_losses():
    a, b, data = relu_mlp(seed=1), relu_mlp(seed=2), relu_data()
    ts, losses = connectivity.straight_line(a, b, F.cross_entropy, data, points=5)
    for m, v in ((a, losses[0]), (b, losses[-1])):
        assert v == pytest.approx(float(F.cross_entropy(m(data[0]), data[1])), rel=1e-12)
    mid = relu_mlp(seed=1)
    with torch.no_grad():
        for p, pa, pb in zip(mid.parameters(), a.parameters(), b.parameters()):
            p.copy_(0.5 * (pa + pb))
    assert losses[2] == pytest.approx(float(F.cross_entropy(mid(data[0]), data[1])), rel=1e-9)


# a two-segment chain cannot follow the circle: its best peak is about 0.27 (at θ = (0, 1)
# the segments' midpoints have r^2 = 0.5); a parabola gets much closer
@pytest.mark.parametrize("kind, peak", [("bezier", 0.2), ("chain", 0.5)])
def test_the_learned_curve_finds_the_low_path_between_two_wells(kind, peak):
    a, b = TwoWells(-1.0, 0.0), TwoWells(1.0, 0.0)
    res = connectivity.connect(
        a, b, loss_of_output, DATA, kind=kind, steps=600, lr=0.02, points=41, plane_res=11
    )
    assert res.barrier == pytest.approx(1.0)  # the straight line crosses (0, 0), loss 1
    assert res.curve_barrier < peak  # the curve goes round, near the unit circle
    theta = res.theta["p"]
    assert abs(float(theta[1])) > 0.5  # the middle point left the line
    # both paths lie in the plane, whose coordinates are distances from w_a
    assert res.points_xy[1] == pytest.approx([2.0, 0.0])
    assert np.allclose(res.line_xy[1], 0.0)
    # the plane's loss at the grid points agrees with the formula
    P = res.plane
    X, Y = np.meshgrid(P.xs, P.ys)
    e2 = np.sign(float(theta[1]))
    x, y = -1.0 + X, e2 * Y  # w_a = (-1, 0), e1 = +x, e2 = +-y
    assert np.allclose(P.loss, (x**2 + y**2 - 1) ** 2 + 0.1 * y**2, atol=1e-9)


def test_connect_rejects_different_architectures_and_bad_values():
    a = relu_mlp(sizes=(3, 6, 5, 2))
    b = relu_mlp(sizes=(3, 7, 5, 2))
    with pytest.raises(ValueError, match="same architecture"):
        connectivity.straight_line(a, b, F.cross_entropy, relu_data())
    with pytest.raises(ValueError, match="curve"):
        connectivity.connect(a, a, F.cross_entropy, relu_data(), kind="spline")
    with pytest.raises(ValueError, match="steps"):
        connectivity.connect(a, a, F.cross_entropy, relu_data(), steps=0)

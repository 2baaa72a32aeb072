"""Directions: normalisation semantics (Li et al.), seeds, orthogonality, interpolation, PCA."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from torch import nn

from landscape.core import directions as D


def conv_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3),  # (4, 1, 3, 3): 4 filters of 9 entries
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
        nn.ReLU(),
        nn.Linear(5, 3),
    )


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


def gaussian_like(model, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(p.shape, generator=g) for k, p in model.named_parameters()}


def filter_norms(t):
    return t.double().reshape(t.shape[0], -1).norm(dim=1)


# ----------------------------------------------------------------------------- normalisation


def test_filter_norm_matches_each_weight_filter():
    model = conv_net()
    d = D.random_direction(model, norm="filter", ignore="biasbn", seed=3)
    multi = [k for k, p in model.named_parameters() if p.ndim > 1]
    assert len(multi) == 3
    for k, w in model.named_parameters():
        if w.ndim > 1:
            torch.testing.assert_close(
                filter_norms(d[k]), filter_norms(w.detach()), rtol=1e-6, atol=1e-7
            )
            assert not torch.allclose(d[k], w.detach())  # a random direction, not the weights


def test_biasbn_zero_and_none_keeps_weights():
    model = conv_net()
    zeroed = D.random_direction(model, ignore="biasbn", seed=0)
    kept = D.random_direction(model, ignore=None, seed=0)
    one_d = [k for k, p in model.named_parameters() if p.ndim == 1]
    assert set(one_d) == {"0.bias", "1.weight", "1.bias", "4.bias", "6.bias"}
    params = dict(model.named_parameters())
    for k in one_d:
        assert torch.count_nonzero(zeroed[k]) == 0
        assert torch.equal(kept[k], params[k].detach())
    assert D.random_direction(model, ignore="none", seed=0)["1.weight"].equal(kept["1.weight"])


def test_layer_weight_none_semantics():
    model = conv_net()
    g = gaussian_like(model)
    layer = D.normalize_direction(g, model, norm="layer")
    weight = D.normalize_direction(g, model, norm="weight")
    none = D.normalize_direction(g, model, norm="none")
    for k, w in model.named_parameters():
        if w.ndim <= 1:
            continue
        w = w.detach()
        ratio = g[k].double().norm() / w.double().norm()
        torch.testing.assert_close(layer[k].double().norm(), w.double().norm(), rtol=1e-6, atol=0)
        torch.testing.assert_close(layer[k], g[k] / ratio.float(), rtol=1e-5, atol=1e-7)
        assert torch.equal(weight[k], g[k] * w)
        assert torch.equal(none[k], g[k])
        # layer keeps the tensor's shape of the direction; filter norms then differ per filter
        assert not torch.allclose(filter_norms(layer[k]), filter_norms(w), rtol=1e-3)


def test_normalize_does_not_touch_its_inputs():
    model = conv_net()
    g = gaussian_like(model)
    before = {k: v.clone() for k, v in g.items()}
    D.normalize_direction(g, model, norm="filter")
    assert all(torch.equal(before[k], g[k]) for k in g)


def test_zero_norm_filters_give_zero_not_nan():
    model = conv_net()
    with torch.no_grad():
        model[0].weight[1].zero_()  # a dead conv filter
        model[4].weight.zero_()  # a whole dead layer
    g = gaussian_like(model)
    g["6.weight"][0].zero_()  # a zero direction filter against a live weight filter
    for norm in ("filter", "layer"):
        d = D.normalize_direction(g, model, norm=norm)
        assert all(torch.isfinite(t).all() for t in d.values()), norm
        assert torch.count_nonzero(d["4.weight"]) == 0
    d = D.normalize_direction(g, model, norm="filter")
    assert torch.count_nonzero(d["0.weight"][1]) == 0
    assert torch.count_nonzero(d["6.weight"][0]) == 0
    assert torch.count_nonzero(d["0.weight"][0]) > 0


@pytest.mark.parametrize(
    "kw, field",
    [({"norm": "filters"}, "norm"), ({"ignore": "bias"}, "ignore"), ({"norm": None}, "norm")],
)
def test_unknown_options_raise(kw, field):
    with pytest.raises(ValueError, match=field):
        D.random_direction(mlp(), **kw)
    with pytest.raises(ValueError, match=field):
        D.normalize_direction(gaussian_like(mlp()), mlp(), **kw)


def test_mismatched_direction_raises():
    g = gaussian_like(mlp())
    g.pop("0.bias")
    with pytest.raises(ValueError, match="missing"):
        D.normalize_direction(g, mlp())
    g = gaussian_like(mlp())
    g["0.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape"):
        D.normalize_direction(g, mlp())


# ----------------------------------------------------------------------------- seeds, orthogonal


def test_seeded_and_reproducible():
    model = conv_net()
    a = D.random_directions(model, 2, seed=7)
    b = D.random_directions(model, 2, seed=7)
    c = D.random_directions(model, 2, seed=8)
    assert all(torch.equal(a[0][k], b[0][k]) and torch.equal(a[1][k], b[1][k]) for k in a[0])
    assert not torch.equal(a[0]["0.weight"], c[0]["0.weight"])
    assert not torch.equal(a[0]["0.weight"], a[1]["0.weight"])
    one = D.random_direction(model, seed=7)
    assert all(torch.equal(one[k], a[0][k]) for k in one)


@pytest.mark.parametrize("norm", ["filter", "layer", "weight", "none"])
def test_orthogonal_option(norm):
    model = conv_net()
    d1, d2 = D.random_directions(model, 2, norm=norm, seed=0, orthogonal=True)
    e1, e2 = D.random_directions(model, 2, norm=norm, seed=0, orthogonal=False)
    assert abs(D.cosine(d1, d2)) < 1e-6
    assert abs(D.cosine(e1, e2)) > 1e-3  # without the option they are not exactly orthogonal
    assert all(torch.equal(d1[k], e1[k]) for k in d1)  # the first direction is unchanged
    if norm == "filter":  # still filter-normalised after orthogonalisation
        w = model[0].weight.detach()
        torch.testing.assert_close(filter_norms(d2["0.weight"]), filter_norms(w), rtol=1e-6, atol=0)


def test_cosine_independent_of_scale_and_nan_for_zero():
    model = mlp()
    d1, d2 = D.random_directions(model, 2, norm="none", ignore=None)
    v1, v2 = D.flatten(d1).double(), D.flatten(d2).double()
    expected = float(v1 @ v2 / (v1.norm() * v2.norm()))
    assert D.cosine(d1, d2) == pytest.approx(expected, rel=1e-12)
    assert D.cosine({k: 3 * t for k, t in d1.items()}, d2) == pytest.approx(expected, rel=1e-6)
    assert np.isnan(D.cosine({k: 0 * t for k, t in d1.items()}, d2))


# ----------------------------------------------------------------------------- flatten, interpolation


def test_flatten_unflatten_match_parameters_to_vector():
    model = conv_net()
    params = D.weights_of(model)
    vec = D.flatten(params)
    assert torch.equal(vec, nn.utils.parameters_to_vector(model.parameters()).detach())
    back = D.unflatten(vec.numpy(), like=model)
    assert list(back) == [k for k, _ in model.named_parameters()]
    assert all(torch.equal(back[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="shape"):
        D.unflatten(vec[:-1], like=model)


def test_interpolation_direction_goes_from_start_to_end():
    start, end = mlp(0), mlp(1)
    d = D.interpolation_direction(start, end)
    for k, p in start.named_parameters():
        q = dict(end.named_parameters())[k]
        torch.testing.assert_close(p.detach() + d[k], q.detach(), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="end_weights"):
        D.interpolation_direction(mlp(), conv_net())


# ----------------------------------------------------------------------------- PCA


def plane_trajectory(model, n=12, noise=0.0, seed=0):
    """Checkpoints theta + a_k u + b_k v (+ noise) ending at theta: a path in a known plane."""
    rng = np.random.default_rng(seed)
    theta = D.flatten(D.weights_of(model)).double().numpy()
    q, _ = np.linalg.qr(rng.standard_normal((theta.size, 2)))  # orthonormal u, v
    t = np.linspace(0, 1, n)
    a = 3.0 * (1 - t) ** 2 * np.cos(4 * t)  # a curved path that ends at (0, 0)
    b = 1.0 * (1 - t) * np.sin(5 * t)
    traj = theta + a[:, None] * q[:, 0] + b[:, None] * q[:, 1]
    traj += noise * rng.standard_normal(traj.shape) * (np.arange(n) < n - 1)[:, None]
    return traj, q, theta


def test_pca_spans_known_plane_and_final_projects_to_origin():
    model = conv_net()
    traj, q, theta = plane_trajectory(model)  # a plane through every parameter
    d1, d2, ratio = D.pca_directions(traj, model, ignore=None)
    v1, v2 = D.flatten(d1).double().numpy(), D.flatten(d2).double().numpy()
    assert np.linalg.norm(v1) == pytest.approx(1, abs=1e-6)
    assert np.linalg.norm(v2) == pytest.approx(1, abs=1e-6)
    assert abs(v1 @ v2) < 1e-6
    span = np.stack([v1, v2], 1)
    np.testing.assert_allclose(span @ span.T, q @ q.T, atol=1e-6)  # same plane
    assert ratio.sum() == pytest.approx(1.0, abs=1e-6)
    assert ratio[0] >= ratio[1] > 0
    xs, ys = D.project(traj, model, d1, d2)
    assert xs[-1] == pytest.approx(0, abs=1e-9) and ys[-1] == pytest.approx(0, abs=1e-9)
    recon = theta + xs[:, None] * v1 + ys[:, None] * v2  # the plane holds the whole path
    np.testing.assert_allclose(recon, traj, atol=1e-5)
    assert xs[0] <= 0 and ys[0] <= 0  # sign convention: the path starts lower left


def test_pca_matches_sklearn_on_a_noisy_path():
    model = mlp()
    traj, _, theta = plane_trajectory(model, n=15, noise=0.05, seed=3)
    d1, d2, ratio = D.pca_directions(traj, model, ignore=None)
    ref = PCA(n_components=2).fit(traj - theta)
    np.testing.assert_allclose(ratio, ref.explained_variance_ratio_, rtol=1e-6)
    assert ratio.sum() < 0.999  # the noise leaves the plane
    for v, c in zip((d1, d2), ref.components_):
        v = D.flatten(v).double().numpy()
        assert abs(abs(v @ c) - 1) < 1e-5  # equal up to sign


def test_pca_ignore_biasbn_zeroes_one_dimensional_entries():
    model = conv_net()
    traj, _, _ = plane_trajectory(model, noise=0.01)
    d1, d2, _ = D.pca_directions(traj, model)  # the default, as every other direction's
    for k, p in model.named_parameters():
        if p.ndim == 1:
            assert torch.count_nonzero(d1[k]) == 0 and torch.count_nonzero(d2[k]) == 0
    e1, _, _ = D.pca_directions(traj, model, ignore=None)
    assert any(torch.count_nonzero(e1[k]) for k, p in model.named_parameters() if p.ndim == 1)


def test_pca_bad_input():
    model = mlp()
    traj, _, _ = plane_trajectory(model)
    with pytest.raises(ValueError, match="trajectory shape"):
        D.pca_directions(traj[:, :-1], model)
    with pytest.raises(ValueError, match="at least 3"):
        D.pca_directions(traj[-2:], model)
    bad = traj.copy()
    bad[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        D.pca_directions(bad, model)
    flat = np.repeat(traj[-1:], 4, axis=0)
    with pytest.raises(ValueError, match="does not move"):
        D.pca_directions(flat, model)


# ----------------------------------------------------------------------------- the original's
# A from-scratch re-implementation of net_plotter.py of tomgoldstein/loss-landscape (lists of
# tensors, in-place), fed the same seeded Gaussians as ours.


def orig_normalize_direction(direction, weights, norm):
    if norm == "filter":
        for d, w in zip(direction, weights):
            d.mul_(w.norm() / (d.norm() + 1e-10))
    elif norm == "layer":
        direction.mul_(weights.norm() / direction.norm())
    elif norm == "weight":
        direction.mul_(weights)
    elif norm == "dfilter":
        for d in direction:
            d.div_(d.norm() + 1e-10)
    elif norm == "dlayer":
        direction.div_(direction.norm())


def orig_normalize_for(direction, weights, norm, ignore):
    for d, w in zip(direction, weights):
        if d.dim() <= 1:
            if ignore == "biasbn":
                d.fill_(0)
            else:
                d.copy_(w)
        else:
            orig_normalize_direction(d, w, norm)


def orig_random(tensors, seed, norm, ignore):
    g = torch.Generator().manual_seed(seed)
    direction = [torch.randn(w.size(), generator=g) for w in tensors]
    orig_normalize_for(direction, [w.detach().clone() for w in tensors], norm, ignore)
    return direction


def bn_net_with_stats(seed=0):
    """conv_net with non-trivial running statistics (a few train-mode forwards)."""
    model = conv_net(seed)
    g = torch.Generator().manual_seed(seed + 10)
    with torch.no_grad():
        for _ in range(3):
            model.train()(torch.randn(16, 1, 8, 8, generator=g) * 2 + 0.5)
    return model.eval()


@pytest.mark.parametrize("norm", ["filter", "layer", "weight", "dfilter", "dlayer"])
@pytest.mark.parametrize("ignore", ["biasbn", None])
def test_weights_directions_match_the_original(norm, ignore):
    model = bn_net_with_stats()
    ours = D.random_direction(model, norm=norm, ignore=ignore, seed=5)
    ref = orig_random([p for p in model.parameters()], 5, norm, ignore)
    assert list(ours) == [k for k, _ in model.named_parameters()]
    for (k, d), r in zip(ours.items(), ref):
        torch.testing.assert_close(d, r, rtol=1e-5, atol=1e-7, msg=k)


@pytest.mark.parametrize("norm", ["filter", "dfilter", "dlayer"])
@pytest.mark.parametrize("ignore", ["biasbn", None])
def test_states_directions_match_the_original(norm, ignore):
    """dir_type="states": one Gaussian per floating-point state entry, normalised alike."""
    model = bn_net_with_stats()
    states = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    assert {"1.running_mean", "1.running_var"} <= set(states)
    ours = D.random_direction(model, norm=norm, ignore=ignore, seed=7, dir_type="states")
    ref = orig_random(list(states.values()), 7, norm, None)  # the original, buffers moving
    assert list(ours) == list(states)
    buffers = {"1.running_mean", "1.running_var"}
    for (k, d), r in zip(ours.items(), ref):
        if ignore == "biasbn" and d.ndim == 1 and k not in buffers:
            assert torch.count_nonzero(d) == 0, k  # biases, BatchNorm scale/shift: still
        else:
            torch.testing.assert_close(d, r, rtol=1e-5, atol=1e-7, msg=k)
    # the buffers move under either setting: a step of a scales the statistics by 1 + a
    torch.testing.assert_close(ours["1.running_var"], model.get_buffer("1.running_var"))
    torch.testing.assert_close(ours["1.running_mean"], model.get_buffer("1.running_mean"))


def test_dfilter_and_dlayer_are_unit_norm_whatever_the_weights():
    model = conv_net()
    for name, norm in (("dfilter", lambda t: filter_norms(t)), ("dlayer", lambda t: t.norm())):
        small = D.random_direction(model, norm=name, seed=2)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(10.0)
        big = D.random_direction(model, norm=name, seed=2)
        with torch.no_grad():
            for p in model.parameters():
                p.div_(10.0)
        for k, d in small.items():
            if d.ndim > 1:
                torch.testing.assert_close(norm(d.double()), torch.ones_like(norm(d.double())))
                torch.testing.assert_close(d, big[k])  # scale of the weights plays no part


@pytest.mark.parametrize("norm", ["dfilter", "dlayer"])
def test_orthogonal_option_for_direction_norms(norm):
    d1, d2 = D.random_directions(mlp(), 2, norm=norm, seed=4, orthogonal=True)
    assert abs(D.cosine(d1, d2)) < 1e-6


def test_states_interpolation_includes_float_buffers_only():
    a, b = bn_net_with_stats(0), bn_net_with_stats(1)
    d = D.interpolation_direction(a, b, dir_type="states")
    sa, sb = a.state_dict(), b.state_dict()
    assert list(d) == [k for k, v in sa.items() if v.is_floating_point()]
    assert "1.num_batches_tracked" not in d
    for k in d:
        torch.testing.assert_close(d[k], sb[k] - sa[k])
    assert list(D.interpolation_direction(a, b)) == [k for k, _ in a.named_parameters()]
    with pytest.raises(ValueError, match="dir_type="):
        D.interpolation_direction(a, b, dir_type="buffers")


def test_lstsq_projection_recovers_plane_coordinates_cos_does_not():
    """theta_k = final + x_k d1 + y_k d2 with non-orthogonal, non-unit d1, d2."""
    model = mlp()
    final = D.flatten(D.weights_of(model)).double().numpy()
    g = np.random.default_rng(0)
    v1, v2 = g.normal(size=final.size), g.normal(size=final.size)
    v2 = 0.6 * v1 + 0.8 * v2  # strongly correlated with v1
    d1, d2 = D.unflatten(2.0 * v1, model), D.unflatten(0.5 * v2, model)
    xs, ys = np.array([-1.0, 0.3, 2.0, 0.0]), np.array([0.5, -0.7, 1.5, 0.0])
    f1, f2 = D.flatten(d1).double().numpy(), D.flatten(d2).double().numpy()
    traj = final[None] + xs[:, None] * f1[None] + ys[:, None] * f2[None]
    px, py = D.project(traj, model, d1, d2, projection="lstsq")
    np.testing.assert_allclose(px, xs, atol=1e-4)
    np.testing.assert_allclose(py, ys, atol=1e-4)
    # the original's lstsq: np.linalg.lstsq on the stacked directions, per checkpoint
    A = np.vstack([f1, f2]).T
    for k in range(len(xs)):
        x, y = np.linalg.lstsq(A, traj[k] - final, rcond=None)[0]
        assert px[k] == pytest.approx(x, abs=1e-9) and py[k] == pytest.approx(y, abs=1e-9)
    cx, cy = D.project(traj, model, d1, d2)  # "cos": <theta - final, d> / ||d||
    np.testing.assert_allclose(cx, (traj - final) @ f1 / np.linalg.norm(f1), rtol=1e-12)
    assert not np.allclose(cx, xs, atol=1e-2)  # wrong for non-orthonormal directions
    with pytest.raises(ValueError, match="projection="):
        D.project(traj, model, d1, d2, projection="svd")

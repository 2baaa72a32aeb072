"""Datasets: shapes, dtypes, determinism by seed, class balance, splits and standardisation."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_iris

from landscape.data import datasets as data

CLASSIFICATION = [n for n, i in data.DATASETS.items() if i.task == "classification"]
REGRESSION = [n for n, i in data.DATASETS.items() if i.task == "regression"]


def _make(name, seed=0, **kw):
    extra = {"outliers": 10} if name == "outliers" else {}
    return data.make(name, n_samples=kw.pop("n_samples", 300), seed=seed, **extra, **kw)


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_shapes_and_dtypes(name):
    info, ds = data.DATASETS[name], _make(name)
    assert ds.task == info.task and ds.n_classes == info.n_classes
    assert ds.X_train.dtype == torch.float32 and ds.X_test.dtype == torch.float32
    assert tuple(ds.X_train.shape[1:]) == ds.input_shape == tuple(ds.X_test.shape[1:])
    assert len(ds.X_train) == len(ds.y_train) and len(ds.X_test) == len(ds.y_test)
    expected_dim = data.IMAGE_SHAPES.get(name) or {"2d": (2,), "1d": (1,)}.get(info.kind)
    if expected_dim:
        assert ds.input_shape == expected_dim
    if info.task == "classification":
        assert ds.y_train.dtype == torch.long
        assert set(ds.y_train.tolist()) == set(range(info.n_classes))
    else:
        assert ds.y_train.dtype == torch.float32
    assert torch.isfinite(ds.X_train).all() and torch.isfinite(ds.X_test).all()
    # 20% of the points are held out (sklearn rounds the test size up)
    n = len(ds.y_train) + len(ds.y_test)
    assert len(ds.y_test) == int(np.ceil(0.2 * n))


@pytest.mark.parametrize("name", list(data.DATASETS))
def test_deterministic_by_seed(name):
    a, b, c = _make(name, seed=3), _make(name, seed=3), _make(name, seed=4)
    data._make_cached.cache_clear()  # a fresh computation must agree too, not just the cache
    d = _make(name, seed=3)
    for x, y in ((a, b), (a, d)):
        assert torch.equal(x.X_train, y.X_train) and torch.equal(x.y_train, y.y_train)
        assert torch.equal(x.X_test, y.X_test) and torch.equal(x.y_test, y.y_test)
    assert not torch.equal(a.X_train, c.X_train)  # another seed, other data (or split)


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_class_balance_is_sane_and_split_is_stratified(name):
    ds = _make(name, n_samples=data.MAX_SAMPLES)
    tr = data.class_balance(ds.y_train, ds.n_classes)
    te = data.class_balance(ds.y_test, ds.n_classes)
    assert tr.min() > 0.5 / ds.n_classes  # no class starved
    np.testing.assert_allclose(tr, te, atol=0.03)  # stratified: both splits keep the balance


@pytest.mark.parametrize("name", ["moons", "circles", "spiral2", "spiral3", "blobs"])
def test_synthetic_sets_are_exactly_balanced(name):
    ds = _make(name, n_samples=600)
    y = torch.cat([ds.y_train, ds.y_test])
    counts = torch.bincount(y).tolist()
    assert max(counts) - min(counts) <= 1


def test_noise_zero_gives_clean_geometry():
    # circles without noise: two exact radii; xor without noise: the label is sign(x1 * x2)
    ds = data.make("circles", n_samples=200, noise=0.0)
    r = ds.X_train.norm(dim=1)
    assert torch.allclose(r[ds.y_train == 0], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(r[ds.y_train == 1], torch.tensor(0.5), atol=1e-5)
    x = data.make("xor", n_samples=200, noise=0.0)
    assert torch.equal((x.X_train[:, 0] * x.X_train[:, 1] > 0).long(), x.y_train)


def test_noise_level_moves_points():
    clean = data.make("moons", n_samples=400, noise=0.0, seed=1)
    noisy = data.make("moons", n_samples=400, noise=0.5, seed=1)
    assert (clean.X_train - noisy.X_train).abs().mean() > 0.1


def test_sine_is_the_stated_function_plus_noise():
    ds = data.make("sine", n_samples=2000, noise=0.1)
    x, y = ds.X_train[:, 0].double(), ds.y_train.double()
    resid = y - (torch.sin(2 * x) + 0.3 * x)
    assert abs(float(resid.std()) - 0.1) < 0.01 and abs(float(resid.mean())) < 0.01


def test_outliers_count_and_distance():
    base = data.make("outliers", n_samples=200, noise=0.1, outliers=0, test_fraction=0.05)
    ds = data.make(
        "outliers", n_samples=200, noise=0.1, outliers=20, outlier_scale=8.0, test_fraction=0.05
    )
    for d, n_expected in ((base, 0), (ds, 20)):
        x = torch.cat([d.X_train[:, 0], d.X_test[:, 0]]).double()
        y = torch.cat([d.y_train, d.y_test]).double()
        resid = y - (data.OUTLIER_SLOPE * x + data.OUTLIER_INTERCEPT)
        assert int((resid.abs() > 4).sum()) == n_expected  # off by ~8, the rest within noise


def test_digits_images_match_sklearn_and_are_scaled():
    ds = data.make("digits", n_samples=data.MAX_SAMPLES)
    assert len(ds.y_train) + len(ds.y_test) == 1797  # all of it (fewer than n_samples exist)
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1
    # every training image is an sklearn digit / 16 with its label
    ref = {
        tuple((img / 16.0).astype(np.float32).ravel()): t
        for img, t in zip(*load_digits(return_X_y=True))
    }
    for img, t in zip(ds.X_train[:50], ds.y_train[:50]):
        assert ref[tuple(img.numpy().ravel())] == int(t)
    std = data.make("digits", n_samples=5000, digits_scale="standard")
    assert abs(float(std.X_train.mean())) < 1e-3


def test_tabular_standardised_with_train_statistics_only():
    ds = data.make("iris", n_samples=150)
    torch.testing.assert_close(ds.X_train.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.X_train.std(0, unbiased=False), torch.ones(4), atol=1e-5, rtol=0)
    assert ds.X_test.mean(0).abs().max() > 1e-3  # test split not re-centred on itself
    X, _ = load_iris(return_X_y=True)
    assert len(ds.y_train) + len(ds.y_test) == len(X)


def test_shipped_subset_is_stratified_and_smaller():
    ds = data.make("digits", n_samples=500)
    assert len(ds.y_train) + len(ds.y_test) == 500
    assert data.class_balance(ds.y_train, 10).min() > 0.08


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"name": "nope"}, "dataset"),
        ({"n_samples": 10}, "n_samples"),
        ({"n_samples": 10**6}, "n_samples"),
        ({"noise": -0.1}, "noise"),
        ({"test_fraction": 0.9}, "test_fraction"),
        ({"seed": -1}, "seed"),
        ({"outliers": 900}, "outliers"),
        ({"digits_scale": "huge"}, "digits_scale"),
        ({"colour": 1}, "colour"),
    ],
)
def test_bad_arguments_raise_naming_the_field(kw, field):
    args = {"name": "moons", **kw}
    with pytest.raises(ValueError, match=field):
        data.make(**args)


def _shape_coords(points):
    u, v = (np.array([p[i] for p in points], dtype=float) for i in (0, 1))
    return data._shape_masks(u, v)


def test_shapes_outlines_contain_and_exclude_the_right_points():
    # in a shape's unit frame: (centre, on an arm of the cross, a diagonal corner, far out)
    pts = [(0, 0), (0.9, 0), (0.7, 0.7), (0.0, 0.75), (1.2, 0)]
    disk, square, triangle, cross, ring = _shape_coords(pts)
    assert disk.tolist() == [True, True, True, True, False]  # r = 0.99 at the corner
    assert square.tolist() == [True, False, True, True, False]
    assert cross.tolist() == [True, True, False, True, False]
    assert ring.tolist() == [False, True, True, True, False]
    assert triangle.tolist() == [True, False, True, True, False]  # |u| <= 0.6 (v + 0.7)


def test_shapes_images_are_colour_16x16_and_striped_classes_have_a_third_colour():
    rng = np.random.default_rng(0)
    X, y = data._shapes(200, 0.0, rng)  # no pixel noise: flat colours
    imgs = X.reshape(200, 3, 16, 16)
    assert ((imgs >= 0) & (imgs <= 1)).all()
    colours = [len(np.unique(im.reshape(3, -1).T.round(6), axis=0)) for im in imgs]
    plain = [c for c, k in zip(colours, y) if k < 5]
    striped = [c for c, k in zip(colours, y) if k >= 5]
    assert max(plain) <= 2  # background + shape
    assert np.mean([c == 3 for c in striped]) > 0.9  # + the stripe colour (unless clipped equal)
    assert np.bincount(y).tolist() == [20] * 10


def test_shapes_set_is_standardised_with_training_statistics():
    ds = data.make("shapes", n_samples=400, noise=0.1)
    assert ds.input_shape == (3, 16, 16) and ds.n_classes == 10
    flat = ds.X_train.reshape(len(ds.X_train), -1).double()
    np.testing.assert_allclose(flat.mean(0).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(flat.std(0, unbiased=False).numpy(), 1, atol=1e-4)

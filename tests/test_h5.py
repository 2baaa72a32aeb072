"""export --h5: the original code's HDF5 names, read back against the .npz."""

import io

import h5py
import numpy as np
import pytest

from landscape.cli.main import main
from landscape.engine.surface import Surface
from landscape.storage import formats, h5


def _plane(split="train", acc=True):
    xs, ys = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)  # not square: rows = y
    loss = 1 + xs[None, :] ** 2 + 2 * ys[:, None] ** 2
    return Surface("plane", xs, ys, loss, (1 - loss / 10) if acc else None, {"split": split})


def test_plane_in_the_originals_layout():
    s = _plane()
    with h5py.File(io.BytesIO(h5.surface_to_h5(s)), "r") as f:
        assert sorted(f) == ["train_acc", "train_loss", "xcoordinates", "ycoordinates"]
        x, y, z = f["xcoordinates"][:], f["ycoordinates"][:], f["train_loss"][:]
        np.testing.assert_array_equal(x, s.xs)
        np.testing.assert_array_equal(y, s.ys)
        # the original's plot_2D: X, Y = meshgrid(x, y); contour(X, Y, Z): Z[i, j] at (x[j], y[i])
        X, Y = np.meshgrid(x, y)
        assert X.shape == z.shape
        np.testing.assert_allclose(z, 1 + X**2 + 2 * Y**2)
        np.testing.assert_allclose(f["train_acc"][:], 100 * s.accuracy)  # percent


def test_line_test_split_and_no_accuracy():
    s = Surface("line", np.linspace(0, 1, 4), None, np.arange(4.0), None, {"split": "test"})
    with h5py.File(io.BytesIO(h5.surface_to_h5(s)), "r") as f:
        assert sorted(f) == ["test_loss", "xcoordinates"]
        np.testing.assert_array_equal(f["test_loss"][:], s.loss)


def test_export_h5_from_the_command_line_matches_the_npz(tmp_path):
    npz = tmp_path / "p.npz"
    main(["plane", "--dataset", "moons", "--n-samples", "60", "--depth", "1", "--width", "4",
          "--epochs", "2", "--res", "4", "--xres", "5", "--quiet", "--out", str(npz)])  # fmt: skip
    assert main(["export", str(npz), "--h5"]) == 0
    s = formats.load_surface(npz)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        np.testing.assert_array_equal(f["xcoordinates"][:], s.xs)
        np.testing.assert_array_equal(f["ycoordinates"][:], s.ys)
        np.testing.assert_array_equal(f["train_loss"][:], s.loss)
        np.testing.assert_array_equal(f["train_acc"][:], 100 * s.accuracy)


def test_an_unknown_split_is_refused():
    with pytest.raises(ValueError, match="split='val'"):
        h5.surface_to_h5(_plane(split="val"))

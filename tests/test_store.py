"""Surface files: exact round trip, no code execution on load, clear errors on bad files."""

import numpy as np
import pytest
import torch
from torch import nn

from landscape.core import directions as D
from landscape.engine.surface import Surface
from landscape.storage import formats as store


def plane_surface():
    rng = np.random.default_rng(0)
    loss = rng.random((3, 5)) * 10
    loss[0, 1] = np.nan
    loss[2, 4] = np.inf
    meta = {"norm": "filter", "ignore": None, "seeds": [0, 1], "cosine": 0.1 + 0.2, "tiny": 1e-300}
    return Surface(
        "plane", np.linspace(-1, 1, 5), np.array([-0.5, 0.0, 0.5]), loss, rng.random((3, 5)), meta
    )


def directions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))
    return D.random_directions(model, 2, ignore=None)


def assert_same(a: Surface, b: Surface):
    assert a.kind == b.kind and a.meta == b.meta
    for name in ("xs", "ys", "loss", "accuracy"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert x.tobytes() == y.tobytes(), name  # bit for bit, NaN and inf included


def test_round_trip_plane_with_directions(tmp_path):
    surf, dirs = plane_surface(), directions()
    path = tmp_path / "plane.npz"
    store.save_surface(path, surf, dirs)
    assert_same(store.load_surface(path), surf)
    back = store.load_directions(path)
    assert len(back) == 2
    for d, e in zip(dirs, back):
        assert list(d) == list(e)
        assert all(d[k].dtype == e[k].dtype and torch.equal(d[k], e[k]) for k in d)


def test_round_trip_line_without_accuracy_in_memory():
    surf = Surface("line", np.linspace(0, 1, 7), None, np.arange(7.0) ** 2, None, {"split": "test"})
    data = store.surface_to_bytes(surf)
    back, dirs = store.surface_from_bytes(data)
    assert_same(back, surf)
    assert dirs == []


def _touch(path):
    open(path, "w").close()


class Payload:
    """Unpickling this object runs _touch: a stand-in for code hidden in a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def test_loading_never_executes_code(tmp_path):
    """An archive whose meta is a pickled object must be refused, and the object never run."""
    marker = tmp_path / "executed"
    good = tmp_path / "good.npz"
    store.save_surface(good, plane_surface())
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["meta"] = np.array([Payload(str(marker))], dtype=object)
    evil = tmp_path / "evil.npz"
    np.savez(evil, **arrays)  # savez pickles object arrays
    with pytest.raises(ValueError):
        store.load_surface(evil)
    with pytest.raises(ValueError):
        store.load_directions(evil)
    assert not marker.exists()
    with np.load(evil, allow_pickle=True) as z:  # the payload is real: pickle would run it
        z["meta"]
    assert marker.exists()


def test_bad_files_raise_value_error(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="npz"):
        store.load_surface(junk)
    other = tmp_path / "other.npz"
    np.savez(other, header=np.array('{"format": "something-else", "version": 1}'))
    with pytest.raises(ValueError, match="format"):
        store.load_surface(other)
    plain = tmp_path / "plain.npz"
    np.savez(plain, x=np.zeros(3))
    with pytest.raises(ValueError, match="header"):
        store.load_surface(plain)


def test_save_rejects_non_json_meta(tmp_path):
    surf = plane_surface()
    surf.meta["model"] = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="meta"):
        store.save_surface(tmp_path / "x.npz", surf)
    with pytest.raises(ValueError, match="surface"):
        store.save_surface(tmp_path / "y.npz", {"loss": [1.0]})

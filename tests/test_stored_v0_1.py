"""A data folder, a saved run and a plane file written by version 0.1 (the flat layout, whose
codec tagged types by module path) still open after the restructure: tests/fixtures/v0_1."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from landscape.data.config import Config
from landscape.engine.surface import Surface
from landscape.pipelines.comparisons import Comparison
from landscape.pipelines.pictures import SurfaceRequest
from landscape.pipelines.slices import SliceResult
from landscape.storage import codec, datastore, formats
from landscape.training.loop import Run, train

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v0_1"
KEYS = json.loads((FIXTURE / "keys.json").read_text())


@pytest.fixture
def folder(tmp_path):
    """A copy: opening a folder may update its index (last use)."""
    shutil.copytree(FIXTURE / "data", tmp_path / "data")
    return datastore.Store(tmp_path / "data")


def test_the_stored_run_opens_pinned_and_equals_a_fresh_training(folder):
    config = Config.from_dict(KEYS["config"])
    notes: list[str] = []
    run = folder.get_run(KEYS["run_id"], notes)
    assert notes == [] and isinstance(run, Run) and run.config == config
    assert [i.run_id for i in folder.runs(pinned=True)] == [KEYS["run_id"]]
    fresh = train(config)  # training is deterministic: the stored weights are these
    # to float32 rounding: the cross-entropy is computed more exactly since v0.1 (log1p of the
    # other classes' terms), which moves each gradient step by a rounding error
    for k, t in fresh.state_dict.items():
        np.testing.assert_allclose(run.state_dict[k].numpy(), t.numpy(), rtol=1e-5, atol=1e-6)


def test_the_stored_landscape_and_comparison_decode(folder):
    land = folder.get_object("landscape", KEYS["landscape_key"])
    assert isinstance(land, SliceResult) and isinstance(land.request, SurfaceRequest)
    assert isinstance(land.request.config, Config)
    assert all(isinstance(s, Surface) for s in land.surfaces.values())
    assert land.main.loss.shape == (5, 5) and np.isfinite(land.main.loss).all()
    comp = folder.get_object("comparison", KEYS["comparison_key"])
    assert isinstance(comp, Comparison) and len(comp.panels) == 1
    # nothing was dropped as damaged
    assert folder.get_object("landscape", KEYS["landscape_key"]) is not None


def test_new_files_name_types_by_stable_tags_not_module_paths(folder):
    land = folder.get_object("landscape", KEYS["landscape_key"])
    text = codec.to_bytes(land)
    assert b"landscape." not in text  # no module path anywhere in the skeleton
    again = codec.from_bytes(text)
    assert again.request == land.request
    np.testing.assert_array_equal(again.main.loss, land.main.loss)


def test_an_unknown_tag_is_refused_not_imported():
    import io
    import zipfile

    raw = codec.to_bytes(Config())
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        skeleton = json.loads(np.load(io.BytesIO(raw))["skeleton"].tobytes())
        assert skeleton["root"]["dc"] == "config"
        assert "skeleton.npy" in z.namelist()
    skeleton["root"]["dc"] = "os:system"
    buf = io.BytesIO()
    np.savez(buf, skeleton=np.frombuffer(json.dumps(skeleton).encode(), np.uint8))
    with pytest.raises(ValueError, match="not a storable type"):
        codec.from_bytes(buf.getvalue())


def test_the_saved_run_and_plane_files_open():
    run = formats.load_run(FIXTURE / "run.npz")
    assert run.config == Config.from_dict(KEYS["config"])
    plane = formats.load_surface(FIXTURE / "plane.npz")
    assert plane.kind == "plane" and plane.loss.shape == (5, 5)
    assert len(formats.load_directions(FIXTURE / "plane.npz")) == 2

"""Hostile saved runs and surfaces: every one is ONE ValueError naming the file, found from the
zip directory and the .npy headers before anything is inflated, with little memory.

Every hostile file is built here, from a real run or surface (nothing binary is committed):
zip bombs written by hand (a deflate stream of zeros repeated, with its true CRC and size),
truncated and CRC-corrupt archives, wrong JSON shapes, inconsistent arrays, future versions.
"""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch

from landscape.data import upload
from landscape.data.config import Config
from landscape.engine.surface import Surface
from landscape.storage import formats as store
from landscape.training.loop import train

MiB = 2**20
PEAK_CAP = 64 * MiB  # traced peak memory of loading one hostile file
NAME = "evil.npz"
DROP = object()


@pytest.fixture(scope="module")
def run():
    return train(Config(n_samples=100, epochs=3, width=4))


@pytest.fixture(scope="module")
def good(run):
    return store.run_to_bytes(run)


# ----------------------------------------------------------------------------- builders


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def members(b: bytes) -> dict[str, np.ndarray]:
    """Our own (trusted) file's arrays, read by NumPy."""
    with np.load(io.BytesIO(b)) as z:
        return {k: z[k] for k in z.files}


def savez(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def js(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def edit(b: bytes, meta=None, config=None, **arrays) -> bytes:
    """The run `b` with meta/config fields changed (DROP removes one) and arrays replaced
    (DROP removes one; names use '__' for '/')."""
    m = members(b)
    for key, changes in (("meta_json", meta), ("config_json", config)):
        if changes is not None:
            d = json.loads(m[key].tobytes())
            for k, v in changes.items():
                d.pop(k, None) if v is DROP else d.__setitem__(k, v)
            m[key] = js(d)
    for k, v in arrays.items():
        k = k.replace("__", "/")
        m.pop(k, None) if v is DROP else m.__setitem__(k, v)
    return savez(m)


def raw_zip(entries: list[tuple[str, int, int, int, bytes]]) -> bytes:
    """A zip written by hand: (name, method, crc, uncompressed size, payload) per member, so
    sizes and methods can be anything a hostile file claims."""
    out, central = io.BytesIO(), []
    for name, method, crc, usize, payload in entries:
        offset, fname = out.tell(), name.encode()
        out.write(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc,
                              len(payload), usize, len(fname), 0))  # fmt: skip
        out.write(fname + payload)
        central.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                                   len(payload), usize, len(fname), 0, 0, 0, 0, 0, offset) + fname)  # fmt: skip
    start = out.tell()
    for c in central:
        out.write(c)
    size = out.tell() - start
    out.write(struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central), size,
                          start, 0))  # fmt: skip
    return out.getvalue()


def deflate_bomb(n_bytes: int, crc: int = 0) -> tuple[bytes, int]:
    """A raw deflate stream of `n_bytes` zeros (1 KiB per MiB) and the CRC continued from
    `crc`, made in a second: one fully flushed MiB of zeros compresses to the same bytes."""
    zeros, c = bytes(MiB), zlib.compressobj(9, zlib.DEFLATED, -15)
    c.compress(zeros)
    block = c.flush(zlib.Z_FULL_FLUSH)
    for _ in range(n_bytes // MiB):
        crc = zlib.crc32(zeros, crc)
    return block * (n_bytes // MiB) + c.flush(), crc


def bomb_member(name: str, dtype, n_bytes: int) -> tuple:
    """A deflated .npy member of `n_bytes` zeros whose header, size and CRC all tell the
    truth: the header in a stored deflate block, then the zeros."""
    header = npy_header(dtype, (n_bytes // np.dtype(dtype).itemsize,))
    c = zlib.compressobj(0, zlib.DEFLATED, -15)
    head = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH)
    stream, crc = deflate_bomb(n_bytes, zlib.crc32(header))
    return (name, 8, crc, len(header) + n_bytes, head + stream)


def stored(arrays: dict[str, np.ndarray]) -> list[tuple]:
    return [(k + ".npy", 0, zlib.crc32(npy(v)), len(npy(v)), npy(v)) for k, v in arrays.items()]


def bomb_run(good: bytes, n_bytes: int) -> bytes:
    """The run `good` whose trajectory member inflates to `n_bytes`."""
    m = members(good)
    del m["trajectory"]
    return raw_zip([*stored(m), bomb_member("trajectory.npy", np.float32, n_bytes)])


def npy_header(dtype, shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf,
        {
            "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
            "fortran_order": False,
            "shape": shape,
        },  # fmt: skip
    )
    return buf.getvalue()


def load_error(b: bytes, loader=store.run_from_bytes) -> str:
    """Load `b` and return the message of the ValueError it must raise (and nothing else),
    checking that the message names the file and the traced peak memory stays small."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            loader(b, name=NAME)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert NAME in msg, msg
    assert peak < PEAK_CAP, f"peak {peak / MiB:.1f} MiB"
    assert "allow_pickle" not in msg and "run_to_bytes" not in msg
    return msg


# ----------------------------------------------------------------------------- the good files


def test_run_round_trip_is_exact(run, good):
    back = store.run_from_bytes(good, name=NAME)
    assert back.config == run.config and back.name == run.name
    assert back.history == run.history and back.step_loss == run.step_loss
    assert back.trajectory.dtype == np.float32 and np.array_equal(back.trajectory, run.trajectory)
    assert list(back.state_dict) == list(run.state_dict)
    for k, t in run.state_dict.items():
        assert back.state_dict[k].dtype == t.dtype and torch.equal(back.state_dict[k], t)
    assert (back.diverged, back.diverged_epoch, back.n_params) == (False, None, run.n_params)


def test_diverged_run_round_trips():
    r = train(Config(n_samples=100, epochs=5, width=4, lr=1e6))
    assert r.diverged
    back = store.run_from_bytes(store.run_to_bytes(r))
    assert back.diverged_epoch == r.diverged_epoch and back.last_finite_loss == r.last_finite_loss


def test_load_run_from_a_path(tmp_path, run):
    path = tmp_path / "r.npz"
    store.save_run(path, run)
    assert store.load_run(path).config == run.config
    with pytest.raises(ValueError, match="no such file"):
        store.load_run(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- bombs and caps


def test_deflate_bomb_of_512_mib_is_refused_from_the_directory(good):
    b = bomb_run(good, 512 * MiB)
    assert len(b) < MiB  # half a megabyte on the wire
    info = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(b)).infolist()}
    assert info["trajectory.npy"].file_size > 512 * MiB  # what an unchecked reader inflates
    assert "cap is 32 MiB" in load_error(b)


def test_bzip2_member_is_refused(good):
    m = members(good)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for k, v in m.items():
            zf.writestr(k + ".npy", npy(v))
    assert "compression method 12" in load_error(buf.getvalue())


def test_header_claiming_a_trillion_floats_is_refused_without_allocating(good):
    m = members(good)
    del m["trajectory"]
    lie = npy_header(np.float32, (10**12,)) + bytes(64)
    entries = [*stored(m), ("trajectory.npy", 0, zlib.crc32(lie), len(lie), lie)]
    assert "declares shape (1000000000000,)" in load_error(raw_zip(entries))


def test_consistent_run_too_big_for_the_app_is_refused_before_inflating():
    """A run whose config allows a 267 MB trajectory, all zeros (it compresses to little):
    the total from the directory is over the app's cap, so nothing is inflated."""
    cfg = Config(n_samples=100, width=128, depth=8, epochs=500)
    from landscape.data import models

    with torch.device("meta"):
        model = models.build(cfg, cfg.make_dataset())
    state = model.state_dict()
    P = models.count_params(model)
    L = cfg.epochs + 1
    arrays = {
        "config_json": js(cfg.to_dict()),
        "meta_json": js(
            {
                "format": "landscape-run/1",
                "diverged": False,
                "diverged_epoch": None,
                "last_finite_loss": 0.5,
                "n_params": P,
                "seconds": 1.0,
                "name": "big",
                "state_keys": list(state),
            }
        ),  # fmt: skip
        "step_loss": np.zeros(10),
        "trajectory": np.zeros((L, P), np.float32),
        **{f"history/{k}": np.arange(L, dtype=np.float64) for k in store._HISTORY_KEYS},
        **{f"state/{i}": np.zeros(t.shape, np.float32) for i, t in enumerate(state.values())},
    }
    b = savez(arrays)
    del arrays
    assert "cap is 32 MiB" in load_error(b)
    assert store.run_from_bytes(b, max_bytes=store.MAX_CLI_FILE_BYTES).n_params == P  # the CLI


# ----------------------------------------------------------------------------- broken archives


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda g: b"", "not a complete zip archive"),
        (lambda g: b"not an npz at all", "not a complete zip archive"),
        (lambda g: g[: len(g) // 2], "not a complete zip archive"),
        (lambda g: g[:-10], "not a complete zip archive"),
        (lambda g: raw_zip([]), "the archive is empty"),
    ],
    ids=["empty-bytes", "text", "truncated-half", "truncated-end", "empty-zip"],
)
def test_broken_archives(good, make, words):
    assert words in load_error(make(good))


def test_empty_zip_archive_written_by_zipfile():
    buf = io.BytesIO()
    zipfile.ZipFile(buf, "w").close()
    assert "empty" in load_error(buf.getvalue()) or "readable" in load_error(buf.getvalue())


def test_crc_corrupt_member(good):
    entries = stored(members(good))
    name, method, crc, size, payload = entries[-1]
    flipped = payload[:-1] + bytes([payload[-1] ^ 0xFF])
    entries[-1] = (name, method, crc, size, flipped)
    assert "CRC" in load_error(raw_zip(entries))


def test_corrupt_deflate_data(good):
    b = bytearray(good)
    i = b.index(b"trajectory.npy") + 60
    b[i : i + 16] = bytes(16)
    load_error(bytes(b))


def test_object_array_is_refused_without_unpickling(good):
    m = members(good)
    del m["step_loss"]
    evil = npy(np.array([{"a": 1}], dtype=object))
    entries = [*stored(m), ("step_loss.npy", 0, zlib.crc32(evil), len(evil), evil)]
    assert "only numbers" in load_error(raw_zip(entries))


# ----------------------------------------------------------------------------- wrong JSON


def nested(depth: int) -> np.ndarray:
    return np.frombuffer(("[" * depth + "]" * depth).encode(), dtype=np.uint8)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"meta_json": js([])}, "not a saved run"),
        ({"config_json": js([])}, "config must be a JSON object"),
        ({"meta_json": nested(100_000)}, "nested too deeply"),
        ({"config_json": nested(100_000)}, "nested too deeply"),
        ({"meta_json": np.frombuffer(b"{not json", dtype=np.uint8)}, "not valid JSON"),
        ({"meta_json": np.frombuffer(b"\xff\xfe", dtype=np.uint8)}, "not UTF-8"),
        ({"meta_json": DROP}, "no run metadata"),
        ({"config_json": DROP}, "missing"),
    ],
    ids=[
        "meta-list",
        "config-list",
        "meta-deep",
        "config-deep",
        "meta-junk",
        "meta-bytes",
        "no-meta",
        "no-config",
    ],  # fmt: skip
)
def test_wrong_json(good, change, words):
    assert words in load_error(edit(good, **change))


@pytest.mark.parametrize(
    "key",
    [
        "diverged",
        "diverged_epoch",
        "last_finite_loss",
        "n_params",
        "seconds",
        "name",
        "state_keys",
    ],  # fmt: skip
)
def test_missing_meta_key(good, key):
    assert f"no {key!r}" in load_error(edit(good, meta={key: DROP}))


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"diverged": "yes"}, "wrong type"),
        ({"n_params": 1.5}, "wrong type"),
        ({"name": ["x"]}, "wrong type"),
        ({"seconds": -1}, "finite time"),
        ({"name": "x" * 1000}, "over 300 characters"),
        ({"n_params": 7}, "n_params=7"),
        ({"state_keys": ["a"]}, "do not fit the model"),
    ],
)
def test_wrong_meta_values(good, meta, words):
    assert words in load_error(edit(good, meta=meta))


@pytest.mark.parametrize(
    "config, words",
    [
        ({"width": 999}, "width=999"),
        ({"wings": 2}, "unknown Config field"),
        ({"dataset": "nope"}, "dataset='nope'"),
        ({"epochs": "many"}, "epochs='many'"),
        ({"width": 8}, "do not fit"),
    ],
)
def test_config_that_is_bad_or_does_not_fit_the_weights(good, config, words):
    msg = load_error(edit(good, config=config))
    assert words in msg or "has shape" in msg or "n_params" in msg


# ----------------------------------------------------------------------------- inconsistent


def test_weight_of_the_wrong_shape(good):
    m = members(good)
    msg = load_error(edit(good, state__0=np.zeros((3, 3), m["state/0"].dtype)))
    assert "has shape (3, 3)" in msg and "the model its config builds" in msg


def test_weight_of_the_wrong_dtype(good):
    m = members(good)
    msg = load_error(edit(good, state__0=m["state/0"].astype(np.float64)))
    assert "float64" in msg and "must be float32" in msg


def test_missing_weight(good):
    assert "is missing" in load_error(edit(good, state__1=DROP))


def test_extra_array(good):
    assert "unexpected arrays" in load_error(edit(good, extra=np.zeros(3)))


def test_empty_history_arrays(good):
    empty = {f"history__{k}": np.zeros(0) for k in store._HISTORY_KEYS}
    assert "history has 0 entries" in load_error(edit(good, **empty))


def test_history_arrays_of_different_lengths(good):
    assert "different lengths" in load_error(edit(good, history__test_loss=np.zeros(2)))


def test_history_epochs_out_of_order(good):
    assert "epochs must be 0, 1, 2" in load_error(edit(good, history__epoch=np.zeros(4)))


def test_trajectory_not_matching_history(good):
    m = members(good)
    msg = load_error(edit(good, trajectory=m["trajectory"][:2]))
    assert "trajectory has shape" in msg


def test_diverged_with_null_last_loss(good):
    m = members(good)
    n = len(m["history/epoch"])
    msg = load_error(
        edit(good, meta={"diverged": True, "diverged_epoch": n, "last_finite_loss": None})
    )
    assert "diverged" in msg and "finite last loss" in msg


def test_not_diverged_but_short(good):
    m = members(good)
    short = {f"history__{k}": m[f"history/{k}"][:2] for k in store._HISTORY_KEYS}
    msg = load_error(edit(good, trajectory=m["trajectory"][:2], **short))
    assert "did not diverge but has 1 of 3 epochs" in msg


def test_future_version_is_refused_clearly(good):
    msg = load_error(edit(good, meta={"format": "landscape-run/2"}))
    assert "format version 2" in msg and "newer version" in msg


def test_other_format_is_refused(good):
    assert "not a saved run" in load_error(edit(good, meta={"format": "something-else/1"}))


# ----------------------------------------------------------------------------- surfaces


def surface_bytes(**header_changes) -> bytes:
    s = Surface("plane", np.linspace(-1, 1, 5), np.linspace(-1, 1, 3), np.ones((3, 5)), None, {})
    b = store.surface_to_bytes(s, [{"w": torch.ones(2, 2)}, {"w": torch.zeros(2, 2)}])
    if not header_changes:
        return b
    m = members(b)
    header = json.loads(str(m["header"]))
    header.update(header_changes)
    m["header"] = np.array(json.dumps(header))
    return savez(m)


def surface_error(b: bytes) -> str:
    return load_error(b, loader=store.surface_from_bytes)


def test_surface_round_trip_still_exact():
    s, dirs = store.surface_from_bytes(surface_bytes())
    assert s.loss.shape == (3, 5) and torch.equal(dirs[1]["w"], torch.zeros(2, 2))


def test_surface_loss_disagreeing_with_axes():
    m = members(surface_bytes())
    m["loss"] = np.ones((5, 3))
    assert "agree" in surface_error(savez(m))


def test_surface_of_unknown_kind():
    assert "kind='cube'" in surface_error(surface_bytes(kind="cube"))


def test_surface_future_version():
    assert "newer version" in surface_error(surface_bytes(version=7))


def test_surface_wrong_shapes_of_header_and_meta():
    m = members(surface_bytes())
    m["meta"] = np.array("[]")
    assert "meta must be a JSON object" in surface_error(savez(m))
    assert "another format" in surface_error(savez({**m, "header": np.array("[]")}))
    assert "nested too deeply" in surface_error(savez({**m, "header": np.array("[" * 10**5)}))


def test_surface_axes_not_increasing():
    m = members(surface_bytes())
    m["xs"] = m["xs"][::-1].copy()
    assert "strictly increasing" in surface_error(savez(m))


def test_surface_directions_that_do_not_match():
    m = members(surface_bytes())
    m["d1/w"] = np.zeros((3, 3), np.float32)
    assert "direction 2 does not match" in surface_error(savez(m))


def test_surface_bomb_is_refused():
    m = members(surface_bytes())
    del m["loss"]
    b = raw_zip([*stored(m), bomb_member("loss.npy", np.float64, 64 * MiB)])
    assert "cap is 32 MiB" in surface_error(b)


def test_load_surface_from_a_path_names_the_file(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ValueError, match="bad.npz"):
        store.load_surface(path)


# ----------------------------------------------------------------------------- uploaded data


def csv_bytes(n=60) -> bytes:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    rows = "\n".join(f"{a:.4f},{int(a > 0)}" for a in x)
    return ("x,label\n" + rows).encode()


def test_run_on_an_uploaded_csv_carries_its_data_and_loads_after_a_restart():
    ds = upload.parse_csv(csv_bytes())
    name = upload.register(ds)
    r = train(Config(dataset=name, n_samples=60, epochs=3, width=4))
    b = store.run_to_bytes(r)
    upload.clear()  # what a server restart does to the registry
    back = store.run_from_bytes(b, name=NAME)
    assert back.config.dataset == name and name in upload.registered()
    again = back.dataset()
    for k in ("X_train", "y_train", "X_test", "y_test"):
        assert torch.equal(getattr(again, k), getattr(ds, k))
    assert torch.equal(back.model()(again.X_test), r.model()(ds.X_test))


def test_uploaded_data_that_does_not_match_its_name_is_refused():
    ds = upload.parse_csv(csv_bytes())
    name = upload.register(ds)
    b = store.run_to_bytes(train(Config(dataset=name, n_samples=60, epochs=2, width=4)))
    upload.clear()
    m = members(b)
    m["data/X_train"] = m["data/X_train"] + 1
    assert "not the data its config names" in load_error(savez(m))
    assert name not in upload.registered()


def test_run_on_an_upload_without_its_data_says_what_to_do():
    ds = upload.parse_csv(csv_bytes())
    name = upload.register(ds)
    b = store.run_to_bytes(train(Config(dataset=name, n_samples=60, epochs=2, width=4)))
    upload.clear()
    m = members(b)
    meta = json.loads(m["meta_json"].tobytes())
    del meta["data"]
    m = {k: v for k, v in m.items() if not k.startswith("data/")}
    m["meta_json"] = js(meta)
    msg = load_error(savez(m))
    assert "uploaded CSV" in msg and "upload the CSV" in msg and "not allowed" not in msg


def test_uploaded_data_over_the_caps_is_refused():
    ds = upload.parse_csv(csv_bytes())
    name = upload.register(ds)
    b = store.run_to_bytes(train(Config(dataset=name, n_samples=60, epochs=2, width=4)))
    upload.clear()
    m = members(b)
    big = upload.MAX_ROWS + 1
    m["data/X_train"] = np.zeros((big, 1), np.float32)
    m["data/y_train"] = np.zeros(big, np.int64)
    assert "the cap is 5000" in load_error(savez(m))

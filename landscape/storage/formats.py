"""Save and load runs and surfaces as .npz files, safely: every reader treats the file as hostile.

Both formats are plain NumPy .npz archives (a zip of .npy members) of numeric arrays and JSON
text: no pickle is ever written or read, so loading never executes code from the file.

Reading (`run_from_bytes`, `load_run`, `load_surface`, `load_directions`,
`surface_from_bytes`) goes through `landscape.storage.archive.Archive`, which checks before
inflating anything:

- the zip's directory and every member's .npy header (``landscape.storage.archive``: member
  count, names, compression, sizes, whitelisted dtypes, shapes that match the sizes);
- then the JSON members (capped at MAX_JSON_BYTES, nesting depth at MAX_JSON_DEPTH), every
  field of the metadata, and every array's shape and dtype against the format and, for a run,
  against its config: the state dict must have the keys, shapes and dtypes of the model the
  config builds (built on torch's meta device: no memory), the trajectory must have one row of
  that model's parameter count per epoch of the history.

Only then are the arrays inflated, each into a buffer of its declared size (zipfile never
yields more than the directory's size, and checks the CRC at the end). Anything wrong is
ONE ``ValueError`` naming the file and what is wrong, in words meant for a person.

Run format (``meta_json["format"] == "landscape-run/1"``): members ``config_json`` and
``meta_json`` (UTF-8 JSON as uint8 arrays), ``step_loss`` (float64), ``trajectory``
((epochs done + 1, P) float32), ``history/{epoch,train_loss,test_loss,train_acc,test_acc}``
(float64), ``state/{i}`` (the i-th tensor of ``meta_json["state_keys"]``). A run trained on an
uploaded CSV also carries the data it was trained on, bounded by the upload caps:
``data/{X_train,y_train,X_test,y_test}`` and ``meta_json["data"]`` = {task, n_classes,
feature_names, description}; loading registers it again (`landscape.data.upload.register`), so
the run works after a server restart and from the command line.

Surface format (header JSON ``{"format": "landscape-surface", "version": 1, ...}``):

- ``header``: a 0-d unicode array holding JSON: ``{"format", "version", "kind", "has_ys",
  "has_accuracy", "directions": [[param names...], ...]}``
- ``meta``: a 0-d unicode array holding ``Surface.meta`` as JSON
- ``xs``, ``loss`` and, when present, ``ys`` and ``accuracy``: the arrays as they were
- ``d{i}/{param name}``: tensor ``i`` of the directions (as NumPy arrays, same dtype)

The round trips are exact: arrays keep dtype and bits (NaN included) and the metadata is
JSON, which keeps floats exactly.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from typing import IO

import numpy as np
import torch
from torch import Tensor

from landscape.core import files
from landscape.data import datasets as data
from landscape.data import models, upload
from landscape.data.config import Config
from landscape.engine.surface import MAX_AXIS, Surface
from landscape.storage import archive
from landscape.training import loop as training

FORMAT = "landscape-surface"
VERSION = 1
RUN_FORMAT = "landscape-run"
RUN_VERSION = 1

#: Uncompressed bytes of all members of one file read by the app. A run trained in the app
#: and small enough to upload (5 MiB; weights barely compress) fits well under it.
MAX_FILE_BYTES = 32 * 2**20
#: The command line reads bigger runs: the training caps allow a 400 MB trajectory.
MAX_CLI_FILE_BYTES = 1024 * 2**20
MAX_NAME_CHARS = 300  # a run's display name

PathOrFile = str | os.PathLike | IO[bytes]

_HISTORY_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")
_DATA_KEYS = ("X_train", "y_train", "X_test", "y_test")


# ----------------------------------------------------------------------------- surfaces


def _text(obj) -> np.ndarray:
    return np.array(json.dumps(obj, allow_nan=True))


def _arrays(surface: Surface, directions: Sequence[dict[str, Tensor]]) -> dict[str, np.ndarray]:
    """Every array to write, keyed by its name in the archive."""
    try:
        meta = _text(surface.meta)
    except (TypeError, ValueError) as e:
        raise ValueError(f"surface.meta is not JSON-able: {e}") from None
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kind": surface.kind,
        "has_ys": surface.ys is not None,
        "has_accuracy": surface.accuracy is not None,
        "directions": [list(d) for d in directions],
    }
    out = {"header": _text(header), "meta": meta, "xs": surface.xs, "loss": surface.loss}
    if surface.ys is not None:
        out["ys"] = surface.ys
    if surface.accuracy is not None:
        out["accuracy"] = surface.accuracy
    for i, d in enumerate(directions):
        for name, t in d.items():
            out[f"d{i}/{name}"] = torch.as_tensor(t).detach().cpu().numpy()
    return {k: np.asarray(v) for k, v in out.items()}


def save_surface(
    file: PathOrFile, surface: Surface, directions: Sequence[dict[str, Tensor]] = ()
) -> None:
    """Write ``surface`` and optionally its directions (e.g. ``[d1, d2]``) to a .npz file.

    ``file`` is a path or a binary file object. A path without the ``.npz`` suffix gets it
    added by NumPy; pass the full name to know where it went.
    """
    if not isinstance(surface, Surface):
        raise ValueError(f"surface={type(surface).__name__} must be a landscape Surface")
    arrays = _arrays(surface, list(directions))
    if any(a.dtype == object for a in arrays.values()):
        raise ValueError("surface arrays must be numeric: object arrays are never saved")
    np.savez(file, **arrays)


_FLOATS = ("float64", "float32")


def _read_surface(arc: archive.Archive) -> tuple[Surface, list[dict[str, Tensor]]]:
    """Check every field and shape of a surface file, then inflate it."""
    label = arc.label
    header = arc.json("header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise archive.fail(label, "not a landscape surface file (its header names another format)")
    archive.check_version(label, "surface", header.get("version"), VERSION)
    kind = header.get("kind")
    if kind not in ("line", "plane"):
        raise archive.fail(label, f"surface kind={kind!r} is unknown: must be 'line' or 'plane'")
    has_ys, has_acc = header.get("has_ys"), header.get("has_accuracy")
    if not isinstance(has_ys, bool) or not isinstance(has_acc, bool):
        raise archive.fail(label, "the header's has_ys/has_accuracy must be true or false")
    if has_ys != (kind == "plane"):
        raise archive.fail(label, f"a {kind} {'must' if kind == 'plane' else 'cannot'} have ys")
    (nx,) = arc.require("xs", _FLOATS, 1)
    want = (nx,)
    if has_ys:
        (ny,) = arc.require("ys", _FLOATS, 1)
        want = (ny, nx)
        if not 1 <= ny <= MAX_AXIS:
            raise archive.fail(label, f"ys has {ny} points: must be 1 to {MAX_AXIS}")
    if not 1 <= nx <= MAX_AXIS:
        raise archive.fail(label, f"xs has {nx} points: must be 1 to {MAX_AXIS}")
    for name in ("loss", "accuracy") if has_acc else ("loss",):
        shape = arc.require(name, _FLOATS)
        if shape != want:
            raise archive.fail(
                label, f"{name} has shape {shape} but the axes give {want}: they must agree"
            )
    dirs = header.get("directions", [])
    if not isinstance(dirs, list) or not all(
        isinstance(d, list) and all(isinstance(n, str) for n in d) for d in dirs
    ):
        raise archive.fail(label, "the header's directions must be lists of parameter names")
    expected = {"header", "meta", "xs", "loss"} | ({"ys"} if has_ys else set())
    expected |= {"accuracy"} if has_acc else set()
    for i, names in enumerate(dirs):
        for n in names:
            shape = arc.require(f"d{i}/{n}", _FLOATS + ("float16",))
            if i and (n not in dirs[0] or shape != arc.shapes[f"d0/{n}"]):
                raise archive.fail(label, f"direction {i + 1} does not match direction 1 at {n!r}")
            expected.add(f"d{i}/{n}")
    extra = set(arc.names) - expected
    if extra:
        raise archive.fail(label, f"unexpected arrays {sorted(extra)[:5]}")
    meta = arc.json("meta")
    if not isinstance(meta, dict):
        raise archive.fail(label, "the surface's meta must be a JSON object")
    xs = arc.array("xs")
    ys = arc.array("ys") if has_ys else None
    for name, axis in (("xs", xs), ("ys", ys)):
        if axis is not None and (
            not np.all(np.isfinite(axis)) or (axis.size > 1 and not np.all(np.diff(axis) > 0))
        ):
            raise archive.fail(label, f"{name} must be finite and strictly increasing")
    surface = Surface(
        kind=kind,
        xs=xs,
        ys=ys,
        loss=arc.array("loss"),
        accuracy=arc.array("accuracy") if has_acc else None,
        meta=meta,
    )
    directions = [
        {n: torch.from_numpy(arc.array(f"d{i}/{n}").copy()) for n in names}
        for i, names in enumerate(dirs)
    ]
    return surface, directions


def _surface_file(file: PathOrFile, max_bytes: int):
    name = getattr(file, "name", None) if not isinstance(file, str | os.PathLike) else file
    with archive.Archive(file, archive.label(name), max_bytes, "surface") as arc:
        return _read_surface(arc)


def load_surface(file: PathOrFile, max_bytes: int = MAX_CLI_FILE_BYTES) -> Surface:
    """Read the Surface saved by ``save_surface``; one ValueError if the file is not one."""
    return _surface_file(file, max_bytes)[0]


def load_directions(file: PathOrFile, max_bytes: int = MAX_CLI_FILE_BYTES) -> list[dict]:
    """Read the directions saved with a surface (an empty list if none were saved)."""
    return _surface_file(file, max_bytes)[1]


def surface_to_bytes(surface: Surface, directions: Sequence[dict[str, Tensor]] = ()) -> bytes:
    """The .npz file as bytes (for a download button)."""
    buf = io.BytesIO()
    save_surface(buf, surface, directions)
    return buf.getvalue()


def surface_from_bytes(
    data: bytes, name: str | None = None, max_bytes: int = MAX_FILE_BYTES
) -> tuple[Surface, list[dict[str, Tensor]]]:
    """The Surface and its directions from bytes made by ``surface_to_bytes`` (e.g. an
    upload named `name`, used in messages)."""
    with archive.Archive(io.BytesIO(bytes(data)), archive.label(name), max_bytes, "surface") as arc:
        return _read_surface(arc)


# ----------------------------------------------------------------------------- runs


def _json_array(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def run_to_bytes(run) -> bytes:
    """A .npz (no pickles) of the run: arrays, plus config and metadata as JSON bytes; a run
    on an uploaded CSV carries that data too (see the module docstring)."""

    meta = {
        "format": f"{RUN_FORMAT}/{RUN_VERSION}",
        "diverged": run.diverged,
        "diverged_epoch": run.diverged_epoch,
        "last_finite_loss": run.last_finite_loss,
        "n_params": run.n_params,
        "seconds": run.seconds,
        "name": run.name,
        "state_keys": list(run.state_dict),
    }
    arrays = {
        "config_json": None,
        "meta_json": None,
        "step_loss": np.asarray(run.step_loss, dtype=np.float64),
        "trajectory": run.trajectory,
    }
    arrays.update(
        {f"history/{k}": np.asarray(run.history[k], dtype=np.float64) for k in _HISTORY_KEYS}
    )
    arrays.update(
        {f"state/{i}": t.detach().cpu().numpy() for i, t in enumerate(run.state_dict.values())}
    )
    if upload.is_upload(run.config.dataset):
        ds = run.dataset()
        meta["data"] = {
            "task": ds.task,
            "n_classes": ds.n_classes,
            "feature_names": list(ds.feature_names),
            "description": ds.description,
        }
        arrays.update({f"data/{k}": getattr(ds, k).numpy() for k in _DATA_KEYS})
    arrays["config_json"] = _json_array(run.config.to_dict())
    arrays["meta_json"] = _json_array(meta)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def save_run(path: str | os.PathLike, run) -> None:
    """Write `run_to_bytes(run)` to `path` (atomically: `landscape.core.files`)."""
    files.write_atomic(path, run_to_bytes(run))


def load_run(path: str | os.PathLike, max_bytes: int = MAX_CLI_FILE_BYTES):
    """The Run saved at `path` (read as `run_from_bytes` does, without reading it whole)."""
    with archive.Archive(path, archive.label(path), max_bytes, "saved run") as arc:
        return _read_run(arc)


def run_from_bytes(b: bytes, name: str | None = None, max_bytes: int = MAX_FILE_BYTES):
    """The Run in bytes made by `run_to_bytes`; never unpickles. One ValueError naming the
    file (`name`, e.g. the upload's file name) and what is wrong if it is not such a file."""
    if not isinstance(b, bytes | bytearray | memoryview):
        raise ValueError(
            f"{archive.label(name)}: expected the file's bytes, got {type(b).__name__}"
        )
    with archive.Archive(io.BytesIO(bytes(b)), archive.label(name), max_bytes, "saved run") as arc:
        return _read_run(arc)


def _read_meta(arc: archive.Archive) -> dict:
    label = arc.label
    if "meta_json" not in arc.shapes:
        raise archive.fail(label, "not a saved run of Loss Landscape Lab (no run metadata)")
    meta = arc.json("meta_json")
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith(RUN_FORMAT + "/"):
        raise archive.fail(label, "not a saved run of Loss Landscape Lab (no run metadata)")
    version = fmt.split("/", 1)[1]
    archive.check_version(label, "run", int(version) if version.isdigit() else version, RUN_VERSION)
    want = {
        "diverged": bool,
        "diverged_epoch": (int, type(None)),
        "last_finite_loss": (int, float, type(None)),
        "n_params": int,
        "seconds": (int, float),
        "name": str,
        "state_keys": list,
    }
    for key, types in want.items():
        if key not in meta:
            raise archive.fail(label, f"the run's metadata has no {key!r}")
        value = meta[key]
        if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
            raise archive.fail(label, f"the run's {key}={str(value)[:60]} has the wrong type")
    if not all(isinstance(k, str) for k in meta["state_keys"]):
        raise archive.fail(label, "the run's state_keys must be names")
    if len(meta["name"]) > MAX_NAME_CHARS:
        raise archive.fail(label, f"the run's name is over {MAX_NAME_CHARS} characters")
    if not (math.isfinite(meta["seconds"]) and meta["seconds"] >= 0):
        raise archive.fail(label, f"the run's seconds={meta['seconds']} must be a finite time")
    return meta


def _register_data(arc: archive.Archive, meta: dict, dataset_name) -> None:
    """Rebuild the uploaded data a run carries and register it under its content name."""

    label, spec = arc.label, meta["data"]
    if not isinstance(spec, dict):
        raise archive.fail(label, "the run's data description must be a JSON object")
    task, k, names = spec.get("task"), spec.get("n_classes"), spec.get("feature_names")
    desc = spec.get("description")
    if task not in ("classification", "regression"):
        raise archive.fail(label, f"the run's data task={task!r} is unknown")
    max_classes = upload.MAX_CLASSES if task == "classification" else 0
    lo = 2 if task == "classification" else 0
    if isinstance(k, bool) or not isinstance(k, int) or not lo <= k <= max_classes:
        raise archive.fail(
            label, f"the run's data n_classes={k!r} must be in [{lo}, {max_classes}]"
        )
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise archive.fail(label, "the run's data feature_names must be a list of names")
    if not isinstance(desc, str) or len(desc) > 2000:
        raise archive.fail(label, "the run's data description must be text")
    n_feat = len(names)
    if not 1 <= n_feat <= upload.MAX_COLS - 1:
        raise archive.fail(
            label, f"the run's data has {n_feat} features: 1 to {upload.MAX_COLS - 1}"
        )
    ydt = "int64" if task == "classification" else "float32"
    rows = 0
    for split in ("train", "test"):
        xs = arc.require(f"data/X_{split}", ("float32",), 2)
        (n,) = arc.require(f"data/y_{split}", (ydt,), 1)
        if xs != (n, n_feat) or n < 1:
            raise archive.fail(
                label, f"the run's data/X_{split} has shape {xs}: must be ({n}, {n_feat})"
            )
        rows += n
    if rows > upload.MAX_ROWS:
        raise archive.fail(label, f"the run's data has {rows} rows: the cap is {upload.MAX_ROWS}")
    t = {key: torch.from_numpy(arc.array(f"data/{key}").copy()) for key in _DATA_KEYS}
    for key in ("X_train", "X_test") + (("y_train", "y_test") if task == "regression" else ()):
        if not torch.isfinite(t[key]).all():
            raise archive.fail(label, f"the run's data/{key} has non-finite values")
    if task == "classification":
        for key in ("y_train", "y_test"):
            if t[key].min() < 0 or t[key].max() >= k:
                raise archive.fail(
                    label, f"the run's data/{key} has class indices outside 0..{k - 1}"
                )
    ds = data.Dataset(
        name="",
        task=task,
        n_classes=k,
        input_shape=(n_feat,),
        feature_names=tuple(names),
        description=desc,
        **t,
    )
    if upload.PREFIX + upload.content_hash(ds) != dataset_name:
        raise archive.fail(
            label, "the data in the run is not the data its config names (edited file?)"
        )
    upload.register(ds)


def _config(arc: archive.Archive, cfg: dict):

    label = arc.label
    try:
        return Config.from_dict(cfg)
    except (ValueError, TypeError) as e:
        if upload.is_upload(cfg.get("dataset")) and cfg["dataset"] not in upload.registered():
            raise archive.fail(
                label,
                "this run was trained on an uploaded CSV that the file does not carry (saved "
                "by an older version) and that is no longer on the server: upload the CSV on "
                "the Train page and train the run again",
            ) from None
        raise archive.fail(label, f"the run's config is not valid: {e}") from None


def _expected_state(config) -> tuple[dict[str, tuple[tuple, np.dtype]], int]:
    """Key -> (shape, NumPy dtype) of the state dict of the model `config` builds, and its
    parameter count, from a model built on torch's meta device (no memory, no init work)."""

    ds = config.make_dataset()
    with torch.device("meta"):
        model = models.build(config, ds)
    state = {
        k: (tuple(v.shape), torch.empty(0, dtype=v.dtype).numpy().dtype)
        for k, v in model.state_dict().items()
    }
    return state, models.count_params(model)


def _read_run(arc: archive.Archive):

    label = arc.label
    meta = _read_meta(arc)
    cfg = arc.json("config_json")
    if not isinstance(cfg, dict):
        raise archive.fail(label, "the run's config must be a JSON object")
    expected = {"config_json", "meta_json", "step_loss", "trajectory"}
    expected |= {f"history/{k}" for k in _HISTORY_KEYS}
    if "data" in meta:
        expected |= {f"data/{k}" for k in _DATA_KEYS}

        if not upload.is_upload(cfg.get("dataset")):
            raise archive.fail(
                label, "the run carries data but its config names a built-in dataset"
            )
        _register_data(arc, meta, cfg["dataset"])
    config = _config(arc, cfg)
    state, n_params = _expected_state(config)
    keys = meta["state_keys"]
    if keys != list(state):
        raise archive.fail(
            label,
            f"the weights do not fit the model its config builds ({config.model}): the file "
            f"has {len(keys)} tensors, the model {len(state)}",
        )
    for i, (key, (shape, dtype)) in enumerate(state.items()):
        got = arc.require(f"state/{i}", (dtype,))
        if got != shape:
            raise archive.fail(
                label, f"weight {key!r} has shape {got}: the model its config builds has {shape}"
            )
        expected.add(f"state/{i}")
    if meta["n_params"] != n_params:
        raise archive.fail(label, f"n_params={meta['n_params']} but the model has {n_params:,}")
    extra = set(arc.names) - expected
    if extra:
        raise archive.fail(label, f"unexpected arrays {sorted(extra)[:5]}")
    lengths = {arc.require(f"history/{k}", ("float64",), 1)[0] for k in _HISTORY_KEYS}
    n = lengths.pop()
    if lengths:
        raise archive.fail(label, "the history arrays have different lengths")
    if not 1 <= n <= config.epochs + 1:
        raise archive.fail(
            label, f"the history has {n} entries: must be 1 to epochs + 1 = {config.epochs + 1}"
        )
    traj = arc.require("trajectory", ("float32",), 2)
    if traj != (n, n_params):
        raise archive.fail(
            label, f"the trajectory has shape {traj}: must be ({n}, {n_params}), one row per epoch"
        )
    (steps,) = arc.require("step_loss", ("float64",), 1)
    if steps > training.MAX_STEPS:
        raise archive.fail(label, f"step_loss has {steps} entries: the cap is {training.MAX_STEPS}")
    diverged, d_epoch = meta["diverged"], meta["diverged_epoch"]
    last = meta["last_finite_loss"]
    if diverged:
        if d_epoch != n or last is None or not math.isfinite(last):
            raise archive.fail(
                label,
                f"the run says it diverged in epoch {d_epoch} with last finite loss "
                f"{meta['last_finite_loss']}: a diverged run needs epoch {n} (after its last "
                f"saved epoch) and a finite last loss",
            )
    elif d_epoch is not None or n != config.epochs + 1:
        raise archive.fail(
            label,
            f"the run did not diverge but has {n - 1} of {config.epochs} epochs "
            f"(diverged_epoch={d_epoch})",
        )
    history = {k: arc.array(f"history/{k}").tolist() for k in _HISTORY_KEYS}
    if history["epoch"] != list(range(n)):
        raise archive.fail(label, "the history's epochs must be 0, 1, 2, ...")
    history["epoch"] = [int(e) for e in history["epoch"]]
    return training.Run(
        config=config,
        history=history,
        step_loss=arc.array("step_loss").tolist(),
        trajectory=arc.array("trajectory"),
        state_dict={k: torch.from_numpy(arc.array(f"state/{i}")) for i, k in enumerate(keys)},
        diverged=diverged,
        diverged_epoch=d_epoch,
        last_finite_loss=None if last is None else float(last),
        n_params=n_params,
        seconds=float(meta["seconds"]),
        name=meta["name"],
    )

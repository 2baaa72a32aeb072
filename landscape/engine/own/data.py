"""A user's data set, read in batches: ``.npz`` with arrays ``X`` and ``y``, a CSV (the upload
parser and its messages, without the web caps; the last column is the target), or
``MODULE:FUNCTION`` returning a ``torch.utils.data.Dataset`` or ``(X, y)``.

``Data`` is the stream ``landscape.engine.surface.evaluate`` reads (``len`` and
``batch(start, stop)``), so a set larger than memory is never held whole.
"""

from __future__ import annotations

import math
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from landscape.data import upload
from landscape.engine.distributed import digest
from landscape.engine.own.loading import SPEC_RE, _existing_file, _one, import_object

DATA_SUFFIXES = (".npz", ".csv")
DIGEST_BATCH = 256  # samples per read of the data's checksum (the resume store's key)


# ----------------------------------------------------------------------------- data


@dataclass
class Data:
    """Samples to evaluate on, read in batches: ``(X, y)`` arrays or a torch Dataset."""

    arrays: tuple | None = None  # (X, y): numpy arrays or tensors sharing a first dim
    dataset: torch.utils.data.Dataset | None = None
    indices: np.ndarray | None = None  # the subset evaluated (None: all, in order)
    source: str = ""  # how the user named it

    def __len__(self) -> int:
        if self.indices is not None:
            return len(self.indices)
        return len(self.arrays[0]) if self.arrays is not None else len(self.dataset)

    def total(self) -> int:
        """Samples before ``--max-samples``."""
        return len(self.arrays[0]) if self.arrays is not None else len(self.dataset)

    def subset(self, max_samples: int | None, seed: int = 0) -> Data:
        """A fixed random subset of ``max_samples`` samples (sorted indices; seeded)."""
        if max_samples is None:
            return self
        n = self.total()
        if isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1:
            raise ValueError(f"--max-samples {max_samples!r} must be an integer >= 1")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"--sample-seed {seed!r} must be an integer >= 0")
        if max_samples >= n:
            return self
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(n, generator=gen)[:max_samples].sort().values.numpy()
        return Data(self.arrays, self.dataset, idx, self.source)

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``(X, y)`` tensors of at most ``batch_size`` samples each, in order."""
        n = len(self)
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            yield self.batch(start, stop)

    def batch(self, start: int, stop: int) -> tuple[Tensor, Tensor]:
        if self.arrays is not None:
            X, y = self.arrays
            sel = slice(start, stop) if self.indices is None else self.indices[start:stop]
            return _tensor(X[sel]), _tensor(y[sel])
        idx = range(start, stop) if self.indices is None else self.indices[start:stop]
        items = [self.dataset[int(i)] for i in idx]
        try:
            X, y = torch.utils.data.default_collate(items)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"--data {self.source!r}: items must be (input, target) pairs of tensors or "
                f"numbers: {_one(e)}"
            ) from None
        return _tensor(X), _tensor(y)

    def digest(self, batch_size: int = DIGEST_BATCH) -> str:
        """sha256 of every sample (inputs and targets, in order), read batch by batch."""

        return digest([digest(X, y) for X, y in self.batches(batch_size)])

    def all(self) -> tuple[Tensor, Tensor]:
        """Every sample in one pair (curvature and tests; memory of the whole set)."""
        return self.batch(0, len(self))


def _tensor(a) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a)
    if t.dtype == torch.float64:
        return t.float()  # user data is float64 more often than the model is
    if t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8):
        return t.long()
    return t


def _check_pair(X, y, where: str):
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or len(X) == 0:
        raise ValueError(
            f"--data {where}: X has shape {tuple(X.shape)} and y {tuple(y.shape)}: they must "
            "share a first dimension of at least 1 (one row per sample)"
        )
    for name, a in (("X", X), ("y", y)):
        kind = a.dtype.kind if isinstance(a, np.ndarray) else None
        if (kind is not None and kind not in "biuf") or (
            isinstance(a, Tensor) and (a.is_complex() or a.dtype == torch.bool)
        ):
            raise ValueError(f"--data {where}: {name} has dtype {a.dtype}: must be numbers")
        # NaN or inf evaluates to a surface of NaN: refused before any work, by sample
        finite = np.isfinite(a.reshape(len(a), -1)) if isinstance(a, np.ndarray) else None
        if finite is None and isinstance(a, Tensor) and a.is_floating_point():
            finite = torch.isfinite(a.reshape(len(a), -1)).numpy()
        if finite is not None and not finite.all():
            i = int(np.flatnonzero(~finite.all(1))[0])
            raise ValueError(
                f"--data {where}: {name} of sample {i} (counting from 0) is not finite "
                f"({np.asarray(a[i]).reshape(-1)[~finite[i]][0]}): every value must be a number"
            )
    return X, y


def check_labels(data: Data, n_out: int, loss: str) -> None:
    """Integer targets of a zoo loss on an output of ``n_out`` > 1 columns are class indices
    in [0, n_out): checked for every sample before any work, naming the first bad one."""
    if data.arrays is None or n_out < 2 or ":" in loss:
        return
    y = data.arrays[1]
    y = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
    if y.dtype.kind not in "iub" or y.ndim != 1:
        return
    bad = (y < 0) | (y >= n_out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"--data {data.source!r}: the label of sample {i} (counting from 0) is {y[i]}: the "
            f"model gives {n_out} classes, so labels must be in [0, {n_out - 1}]"
        )


def _read_npz(path: Path) -> Data:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "X" not in names or "y" not in names:
                raise ValueError(
                    f"--data {str(path)!r} has arrays {names}: it must hold arrays 'X' and 'y'"
                )
            X, y = z["X"], z["y"]
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"--data {str(path)!r} is not a readable .npz file: {_one(e)}") from None
    except ValueError as e:
        if "--data" in str(e):
            raise
        raise ValueError(f"--data {str(path)!r}: {_one(e)} (object arrays are refused)") from None
    return Data(arrays=_check_pair(X, y, repr(str(path))), source=str(path))


def _read_csv(path: Path) -> Data:
    """The upload parser without the web caps; the last column is the target.

    Integer targets stay the file's class indices (the model was trained on them); any other
    number is a float target; a text label is refused (the model's class order is unknown).
    """

    try:
        X, y = upload.to_arrays(
            upload.read_table(path.read_bytes(), math.inf, sys.maxsize, sys.maxsize)
        )
    except ValueError as e:
        raise ValueError(f"--data {str(path)!r}: {e}") from None
    if np.all(y == np.round(y)):
        if y.min() < 0:
            raise ValueError(f"--data {str(path)!r}: integer targets must be class indices >= 0")
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float32)
    return Data(arrays=(X.astype(np.float32), y), source=str(path))


def load_data(spec: str) -> Data:
    """``.npz`` (X, y), ``.csv`` (last column = target) or ``MODULE:FUNCTION``."""
    if not isinstance(spec, str) or not spec:
        raise ValueError("--data is required: a .npz, a .csv or MODULE:FUNCTION")
    suffix = Path(spec).suffix.lower()
    if suffix in DATA_SUFFIXES:
        p = _existing_file(spec, "--data")
        return _read_npz(p) if suffix == ".npz" else _read_csv(p)
    if not SPEC_RE.match(spec):
        raise ValueError(
            f"--data {spec!r} is not allowed: must be a .npz file with arrays X and y, a .csv "
            "file, or MODULE:FUNCTION"
        )
    fn = import_object(spec, "--data")
    try:
        out = fn()
    except Exception as e:
        raise ValueError(f"--data {spec!r} raised {_one(e)}") from None
    if isinstance(out, torch.utils.data.Dataset):
        try:
            n = len(out)
        except TypeError:
            raise ValueError(
                f"--data {spec!r} returned a Dataset without len(): use a map-style Dataset"
            ) from None
        if n == 0:
            raise ValueError(f"--data {spec!r} returned an empty Dataset")
        return Data(dataset=out, source=spec)
    if isinstance(out, (tuple, list)) and len(out) == 2:
        X, y = (a if isinstance(a, (np.ndarray, Tensor)) else np.asarray(a) for a in out)
        return Data(arrays=_check_pair(X, y, repr(spec)), source=spec)
    raise ValueError(
        f"--data {spec!r} returned a {type(out).__name__}: must return a torch Dataset or a "
        "pair (X, y)"
    )

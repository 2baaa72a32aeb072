"""Resumable on-disk store of grid points, one Zarr chunk per block of points, each verified.

A slice of the loss surface is a list of ``M`` grid points. They are cut into blocks of
``chunk`` consecutive points; block ``c`` is row ``c`` of a float64 Zarr array ``(n_blocks,
2 * chunk + 4)`` with one chunk per row: the block's losses, its accuracies (0 without one),
both padded with zeros to ``chunk``, then its tag: the 32-byte sha256 of the store's
configuration key (format, geometry and ``parts``), the block's index and its values. A block
is written whole, in one chunk write, by the one process that computed it; Zarr's local store
writes a chunk to a temporary file and renames it, so many processes write side by side with
no lock and no single writer, and a killed process loses at most the blocks it was computing.

A block counts as computed only when its row is read back and its tag verifies; nothing is
inferred from the chunk grid, from a fill value, or from which process was meant to write
it. So a block that was never written, a chunk of garbage bytes, a chunk copied from a store
of another configuration and a chunk of another geometry are all simply missing, and a rerun
computes them again (overwriting them).

The store's attributes hold the digests of what fixes the numbers (directions, grid, model,
data, settings: ``parts``). Opening a store whose readable attributes name other parts is
refused (one ``ValueError`` naming the parts that differ) unless ``overwrite``, which always
starts clean; attributes that cannot be read or do not match the geometry (a damaged or
edited ``zarr.json``, a store of an earlier version) are rewritten, and the blocks are then
trusted only as far as their tags verify. A path holding anything but a store's own files is
never written into nor deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import zarr

FORMAT = "landscape-points"
VERSION = 2  # 1: an (M, 3) array with a done flag per point (no tags: never trusted now)
TAG = 4  # float64 slots that hold a block's 32-byte sha256 tag
# Blocks of up to 32 points: the batched engine evaluates at most 32 points at once, and each
# block is one call with a fixed set-up cost, so smaller blocks only add overhead; a grid of
# fewer than 16 * 32 points is still cut into 16 blocks to share among ranks and to resume.
MIN_CHUNKS = 16
MAX_CHUNK = 32
# What a store's folder may hold: its metadata, its chunks, and Zarr's temporary name for a
# metadata file a killed process was writing. Anything else means the folder is not ours.
_OWN_ENTRY = re.compile(r"zarr\.json|c|zarr\.[0-9a-f]{32}\.partial")


def chunk_size(n_points: int) -> int:
    """Points per block for a grid of ``n_points`` (independent of the number of ranks)."""
    return max(1, min(MAX_CHUNK, math.ceil(n_points / MIN_CHUNKS)))


def looks_like_store(path: str | Path) -> bool:
    """True if ``path`` is a folder holding nothing but a point store's own files."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    return all(_OWN_ENTRY.fullmatch(e.name) for e in path.iterdir())


class PointStore:
    """A Zarr store of ``n_points`` results in verified blocks of ``chunk`` points."""

    def __init__(self, path: Path, array: zarr.Array, n_points: int, parts: dict[str, str]):
        self.path, self.array, self.parts = path, array, dict(parts)
        self.n_points = n_points
        self.chunk = chunk_size(n_points)
        self.n_chunks = math.ceil(n_points / self.chunk)
        self.width = 2 * self.chunk + TAG
        self.repaired = False  # True when its metadata was damaged and has been rewritten
        key = {"format": FORMAT, "version": VERSION, "n_points": n_points, "parts": self.parts}
        self._key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).digest()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create_or_resume(
        cls, path: str | Path, n_points: int, parts: dict[str, str], overwrite: bool = False
    ) -> PointStore:
        """The store at ``path`` for these ``parts``: resumed if it holds them, else new.

        A store whose attributes name other parts is refused (ValueError) unless
        ``overwrite``; ``overwrite`` always deletes the store and starts clean. Damaged
        metadata is rewritten (``repaired``). A path that exists but holds anything besides a
        store's own files is never deleted.
        """
        path = Path(path)
        n_points, parts = _checked(n_points, parts)
        if not (path.exists() or path.is_symlink()):
            return cls._create(path, n_points, parts)
        if not looks_like_store(path):
            raise ValueError(
                f"{path} exists and is not a point store of this program: "
                "move it away or pick another --out"
            )
        if overwrite:
            shutil.rmtree(path)
            return cls._create(path, n_points, parts)
        array, attrs = _read(path)
        old = attrs.get("parts")
        if attrs.get("format") == FORMAT and isinstance(old, dict) and old != parts:
            differ = sorted(k for k in parts.keys() | old.keys() if parts.get(k) != old.get(k))
            raise ValueError(
                f"{path} holds points of another configuration (different "
                f"{', '.join(differ)}): pass --overwrite to replace them, or pick another --out"
            )
        store = cls(path, array, n_points, parts) if array is not None else None
        if store is not None and attrs.get("version") == VERSION and store._geometry_ok():
            return store
        store = cls._create(path, n_points, parts, keep_chunks=True)
        store.repaired = True
        return store

    @classmethod
    def open(cls, path: str | Path, n_points: int, parts: dict[str, str]) -> PointStore:
        """The store ``create_or_resume`` made (in another process) for these parts."""
        n_points, parts = _checked(n_points, parts)
        array, _ = _read(Path(path))
        store = cls(Path(path), array, n_points, parts) if array is not None else None
        if store is None or not store._geometry_ok():
            raise ValueError(f"{path} is not a point store of {n_points} points")
        return store

    @classmethod
    def _create(
        cls, path: Path, n_points: int, parts: dict[str, str], keep_chunks: bool = False
    ) -> PointStore:
        """A new store; with ``keep_chunks`` only its ``zarr.json`` is (atomically) replaced,
        and the chunk files already there are kept, to be verified block by block."""
        chunk = chunk_size(n_points)
        spec = {
            "shape": (math.ceil(n_points / chunk), 2 * chunk + TAG),
            "chunks": (1, 2 * chunk + TAG),
            "dtype": "float64",
            "fill_value": 0.0,
            "attributes": {"format": FORMAT, "version": VERSION, "parts": parts},
        }
        if not keep_chunks:
            array = zarr.create_array(store=str(path), **spec)
            return cls(path, array, n_points, parts)
        with tempfile.TemporaryDirectory() as tmp:
            zarr.create_array(store=tmp, **spec)
            meta = (Path(tmp) / "zarr.json").read_bytes()
        partial = path / f"zarr.{uuid.uuid4().hex}.partial"  # the name zarr itself would use
        try:
            partial.write_bytes(meta)
            os.replace(partial, path / "zarr.json")
        finally:
            partial.unlink(missing_ok=True)
        array, _ = _read(path)
        if array is None:
            raise ValueError(f"{path}: cannot rewrite the store's metadata")
        return cls(path, array, n_points, parts)

    def _geometry_ok(self) -> bool:
        a = self.array
        return (
            a.ndim == 2
            and a.shape == (self.n_chunks, self.width)
            and a.chunks == (1, self.width)
            and a.dtype == np.float64
        )

    # ------------------------------------------------------------------ blocks

    def bounds(self, c: int) -> tuple[int, int]:
        """First point and one past the last point of block ``c``."""
        return c * self.chunk, min((c + 1) * self.chunk, self.n_points)

    def _tag(self, c: int, loss: np.ndarray, accuracy: np.ndarray) -> bytes:
        h = hashlib.sha256(self._key)
        h.update(c.to_bytes(8, "little"))
        h.update(np.ascontiguousarray(loss, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(accuracy, dtype="<f8").tobytes())
        return h.digest()

    def _rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every block's row and whether it could be read (a chunk of garbage cannot)."""
        with contextlib.suppress(Exception):  # one bad chunk fails the whole read: go slowly
            return np.asarray(self.array[:], dtype="<f8"), np.ones(self.n_chunks, dtype=bool)
        rows = np.zeros((self.n_chunks, self.width), dtype="<f8")
        readable = np.zeros(self.n_chunks, dtype=bool)
        for c in range(self.n_chunks):
            with contextlib.suppress(Exception):  # zarr and its codecs raise their own errors
                rows[c] = self.array[c]
                readable[c] = True
        return rows, readable

    def _verified(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, verified): the blocks whose tag matches this configuration and values."""
        rows, ok = self._rows()
        for c in np.flatnonzero(ok):
            a, b = self.bounds(int(c))
            loss, acc = rows[c, : b - a], rows[c, self.chunk : self.chunk + b - a]
            ok[c] = rows[c, -TAG:].tobytes() == self._tag(int(c), loss, acc)
        return rows, ok

    def missing_chunks(self) -> list[int]:
        """The blocks not on disk as this configuration's verified values, in order."""
        return [int(c) for c in np.flatnonzero(~self._verified()[1])]

    def n_verified(self) -> int:
        """Points in verified blocks (what a rerun need not compute)."""
        ok = self._verified()[1]
        return sum(b - a for a, b in map(self.bounds, np.flatnonzero(ok).tolist()))

    def n_done(self) -> int:
        """Points in chunk files, for a progress bar only: cheap to poll, not verified."""
        return min(self.n_points, int(self.array.nchunks_initialized) * self.chunk)

    def write(self, c: int, loss: np.ndarray, accuracy: np.ndarray | None = None) -> None:
        """Store block ``c`` with its tag (one chunk write: all of it lands, or none of it)."""
        a, b = self.bounds(c)
        loss = np.asarray(loss, dtype=np.float64).reshape(-1)
        if loss.size != b - a:
            raise ValueError(f"block {c} has {b - a} points, got {loss.size} losses")
        acc = np.zeros(b - a)
        if accuracy is not None:
            acc = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        row = np.zeros(self.width, dtype="<f8")
        row[: b - a], row[self.chunk : self.chunk + b - a] = loss, acc
        row[-TAG:] = np.frombuffer(self._tag(c, loss, acc), dtype="<f8")
        self.array[c] = row

    def results(self) -> tuple[np.ndarray, np.ndarray]:
        """(losses, accuracies) of every point; ValueError if a block is missing."""
        rows, ok = self._verified()
        if not ok.all():
            missing = sum(b - a for a, b in map(self.bounds, np.flatnonzero(~ok).tolist()))
            raise ValueError(f"{self.path}: {missing} of {self.n_points} points are missing")
        loss = np.concatenate([rows[c, : b - a] for c, (a, b) in enumerate(self._all())])
        acc = np.concatenate(
            [rows[c, self.chunk : self.chunk + b - a] for c, (a, b) in enumerate(self._all())]
        )
        return loss, acc

    def _all(self) -> list[tuple[int, int]]:
        return [self.bounds(c) for c in range(self.n_chunks)]


def _checked(n_points, parts) -> tuple[int, dict[str, str]]:
    if isinstance(n_points, bool) or not isinstance(n_points, int) or n_points < 1:
        raise ValueError(f"n_points={n_points!r} must be a positive integer")
    return n_points, {str(k): str(v) for k, v in parts.items()}


def _read(path: Path) -> tuple[zarr.Array | None, dict]:
    """The Zarr array at ``path`` and its attributes; (None, {}) if it cannot be read."""
    try:
        array = zarr.open_array(str(path), mode="r+")
        attrs = array.attrs.asdict()
    except Exception:  # zarr raises its own errors for a folder that is not an array
        return None, {}
    return array, attrs if isinstance(attrs, dict) else {}

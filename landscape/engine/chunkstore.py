"""Resumable on-disk store of grid points, one Zarr chunk per block of points.

A slice of the loss surface is a list of ``M`` grid points. They are cut into blocks of
``chunk`` consecutive points; block ``c`` is one chunk of a Zarr array ``values`` of shape
``(M, 3)``: column 0 the loss, column 1 the accuracy (0 without one), column 2 is 1.0 once
the block was computed. A block is written whole, in one chunk write, by the one process
that computed it; Zarr's local store writes a chunk to a temporary file and renames it, so
a chunk on disk is always complete. A block that was never written reads as Zarr's fill
value 0 in column 2: missing. So many processes can write side by side with no lock and no
single writer, a killed process loses at most the blocks it was computing, and a rerun
computes only the missing blocks.

The store's attributes hold the digests of what fixes the numbers (directions, grid, model,
data, settings: ``parts``). Opening a store made for other parts is refused (one
``ValueError`` naming the parts that differ) unless ``overwrite``: results of two
configurations are never mixed and finished work is never skipped silently.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import zarr

FORMAT = "landscape-points"
VERSION = 1
# Blocks of up to 32 points: the batched engine evaluates at most 32 points at once, and each
# block is one call with a fixed set-up cost, so smaller blocks only add overhead; a grid of
# fewer than 16 * 32 points is still cut into 16 blocks to share among ranks and to resume.
MIN_CHUNKS = 16
MAX_CHUNK = 32


def chunk_size(n_points: int) -> int:
    """Points per block for a grid of ``n_points`` (independent of the number of ranks)."""
    return max(1, min(MAX_CHUNK, math.ceil(n_points / MIN_CHUNKS)))


class PointStore:
    """A Zarr store of ``n_points`` results in blocks of ``chunk`` points (see module doc)."""

    def __init__(self, path: Path, array: zarr.Array) -> None:
        self.path, self.array = path, array
        self.n_points = int(array.shape[0])
        self.chunk = int(array.chunks[0])
        self.n_chunks = math.ceil(self.n_points / self.chunk)

    # ------------------------------------------------------------------ opening

    @classmethod
    def create_or_resume(
        cls, path: str | Path, n_points: int, parts: dict[str, str], overwrite: bool = False
    ) -> PointStore:
        """The store at ``path`` for these ``parts``: resumed if it holds them, else new.

        A store of other parts is refused (ValueError) unless ``overwrite``, which deletes it;
        a path that exists but is not such a store is never deleted.
        """
        path = Path(path)
        if not isinstance(n_points, int) or n_points < 1:
            raise ValueError(f"n_points={n_points!r} must be a positive integer")
        parts = {str(k): str(v) for k, v in parts.items()}
        if path.exists():
            old = cls._open_existing(path)
            if old is not None and old.parts == parts:
                return old
            if old is None:
                raise ValueError(
                    f"{path} exists and is not a point store of this program: "
                    "move it away or pick another --out"
                )
            if not overwrite:
                differ = sorted(
                    k for k in parts.keys() | old.parts.keys() if parts.get(k) != old.parts.get(k)
                )
                raise ValueError(
                    f"{path} holds points of another configuration (different "
                    f"{', '.join(differ)}): pass --overwrite to replace them, or pick another --out"
                )
            shutil.rmtree(path)
        attrs = {"format": FORMAT, "version": VERSION, "parts": parts}
        array = zarr.create_array(
            store=str(path),
            shape=(n_points, 3),
            chunks=(chunk_size(n_points), 3),
            dtype="float64",
            fill_value=0.0,
            attributes=attrs,
        )
        return cls(path, array)

    @classmethod
    def open(cls, path: str | Path) -> PointStore:
        """An existing store (made by ``create_or_resume`` in another process)."""
        store = cls._open_existing(Path(path))
        if store is None:
            raise ValueError(f"{path} is not a point store of this program")
        return store

    @classmethod
    def _open_existing(cls, path: Path) -> PointStore | None:
        try:
            array = zarr.open_array(str(path), mode="r+")
        except (FileNotFoundError, ValueError, TypeError, KeyError, OSError):
            return None
        except Exception:  # zarr raises its own errors for a folder that is not an array
            return None
        attrs = array.attrs.asdict()
        ok = (
            attrs.get("format") == FORMAT
            and attrs.get("version") == VERSION
            and isinstance(attrs.get("parts"), dict)
            and array.ndim == 2
            and array.shape[1] == 3
        )
        return cls(path, array) if ok else None

    @property
    def parts(self) -> dict[str, str]:
        return dict(self.array.attrs["parts"])

    # ------------------------------------------------------------------ blocks

    def bounds(self, c: int) -> tuple[int, int]:
        """First point and one past the last point of block ``c``."""
        return c * self.chunk, min((c + 1) * self.chunk, self.n_points)

    def done_mask(self) -> np.ndarray:
        """(n_points,) bool: the points whose block is on disk."""
        return self.array[:, 2] == 1.0

    def missing_chunks(self) -> list[int]:
        """The blocks not yet on disk, in order."""
        done = self.done_mask()
        return [c for c in range(self.n_chunks) if not done[self.bounds(c)[0]]]

    def n_done(self) -> int:
        """Points on disk, for a progress bar: counts chunk files, so it is cheap to poll.

        Exact except while the short last block is done and some other block is not
        (then it over-counts by fewer than ``chunk`` points).
        """
        return min(self.n_points, int(self.array.nchunks_initialized) * self.chunk)

    def write(self, c: int, loss: np.ndarray, accuracy: np.ndarray | None = None) -> None:
        """Store block ``c`` (one chunk write: all of it lands, or none of it)."""
        a, b = self.bounds(c)
        loss = np.asarray(loss, dtype=np.float64).reshape(-1)
        if loss.size != b - a:
            raise ValueError(f"block {c} has {b - a} points, got {loss.size} losses")
        block = np.zeros((b - a, 3))
        block[:, 0] = loss
        if accuracy is not None:
            block[:, 1] = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        block[:, 2] = 1.0
        self.array[a:b] = block

    def results(self) -> tuple[np.ndarray, np.ndarray]:
        """(losses, accuracies) of every point; ValueError if a block is missing."""
        values = self.array[:]
        missing = int((values[:, 2] != 1.0).sum())
        if missing:
            raise ValueError(f"{self.path}: {missing} of {self.n_points} points are missing")
        return values[:, 0].copy(), values[:, 1].copy()

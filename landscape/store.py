"""Save and load surfaces (and the directions that made them) as one .npz file.

Format (version 1), a plain NumPy .npz archive, written and read with
``allow_pickle=False`` so loading never executes code from the file:

- ``header``: a 0-d unicode array holding JSON: ``{"format": "landscape-surface",
  "version": 1, "kind", "has_ys", "has_accuracy", "directions": [[param names...], ...]}``
- ``meta``: a 0-d unicode array holding ``Surface.meta`` as JSON
- ``xs``, ``loss`` and, when present, ``ys`` and ``accuracy``: the arrays as they were
- ``d{i}/{param name}``: tensor ``i`` of the directions (as NumPy arrays, same dtype)

Everything lives in the one file, so a download is one file. The round trip is exact:
arrays keep dtype and bits (NaN included) and the metadata is JSON, which keeps floats
exactly (``Surface.meta`` is JSON-normalised when a surface is made).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import IO

import numpy as np
import torch
from torch import Tensor

from landscape.surface import Surface

FORMAT = "landscape-surface"
VERSION = 1

PathOrFile = str | os.PathLike | IO[bytes]


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


def _read(file: PathOrFile) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and every array of an archive, checked to be a surface file."""
    try:
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"file is not a readable .npz surface file: {e}") from None
    if "header" not in arrays:
        raise ValueError("file is not a landscape surface file: no header")
    try:
        header = json.loads(str(arrays["header"]))
    except ValueError as e:
        raise ValueError(f"file header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise ValueError("file header is not a JSON object")
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ValueError(
            f"file format={header.get('format')!r} version={header.get('version')!r}: "
            f"must be {FORMAT!r} version {VERSION}"
        )
    return header, arrays


def load_surface(file: PathOrFile) -> Surface:
    """Read the Surface saved by ``save_surface``."""
    header, arrays = _read(file)
    try:
        return Surface(
            kind=header["kind"],
            xs=arrays["xs"],
            ys=arrays["ys"] if header["has_ys"] else None,
            loss=arrays["loss"],
            accuracy=arrays["accuracy"] if header["has_accuracy"] else None,
            meta=json.loads(str(arrays["meta"])),
        )
    except KeyError as e:
        raise ValueError(f"surface file is missing {e}") from None


def load_directions(file: PathOrFile) -> list[dict[str, Tensor]]:
    """Read the directions saved with a surface (an empty list if none were saved)."""
    header, arrays = _read(file)
    try:
        return [
            {name: torch.from_numpy(arrays[f"d{i}/{name}"].copy()) for name in names}
            for i, names in enumerate(header["directions"])
        ]
    except KeyError as e:
        raise ValueError(f"surface file is missing direction tensor {e}") from None


def surface_to_bytes(surface: Surface, directions: Sequence[dict[str, Tensor]] = ()) -> bytes:
    """The .npz file as bytes (for a download button)."""
    buf = io.BytesIO()
    save_surface(buf, surface, directions)
    return buf.getvalue()


def surface_from_bytes(data: bytes) -> tuple[Surface, list[dict[str, Tensor]]]:
    """The Surface and its directions from bytes made by ``surface_to_bytes``."""
    return load_surface(io.BytesIO(data)), load_directions(io.BytesIO(data))

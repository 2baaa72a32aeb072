"""The original loss-landscape code's HDF5 surface layout, so its plot_1D.py, plot_2D.py and
h52vtp.py read our surfaces.

Layout (the original's ``plot_surface.py``): ``xcoordinates`` (nx,), for a plane
``ycoordinates`` (ny,), and ``<split>_loss`` / ``<split>_acc`` for the split the surface was
measured on (``train`` or ``test``). A plane's arrays have rows = y, shape (ny, nx): what the
original's ``X, Y = meshgrid(x, y)`` contour call expects (it stores square grids only; this is
the same array for those). Accuracy is in percent, as the original's ``eval_loss`` returns it.
"""

from __future__ import annotations

import io

import h5py
import numpy as np

from landscape.engine.surface import Surface

SPLITS = ("train", "test")


def surface_to_h5(surface: Surface) -> bytes:
    """``surface`` as the bytes of an HDF5 file in the original's layout."""
    split = surface.meta.get("split", "train")
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: the original's layout names train or test only")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["xcoordinates"] = np.asarray(surface.xs, dtype=np.float64)
        if surface.kind == "plane":
            f["ycoordinates"] = np.asarray(surface.ys, dtype=np.float64)
        f[f"{split}_loss"] = np.asarray(surface.loss, dtype=np.float64)
        if surface.accuracy is not None:
            f[f"{split}_acc"] = 100.0 * np.asarray(surface.accuracy, dtype=np.float64)
    return buf.getvalue()

"""A plane surface as a 3D mesh: ParaView ``.vtp``, Wavefront ``.obj``, binary ``.stl``.

``export`` (the command ``python -m landscape export PREFIX.npz --vtp [--obj] [--stl] [--log]
[--zmax Z]``, ``landscape.cli.export``) reads a surface file (``landscape.storage.formats``)
and writes the loss (or accuracy) over the plane as a height field: vertex ``(xs[j], ys[i], z[i, j])``, one quad per grid cell (two triangles in
STL, which has only triangles). Any grid shape works, square or not.

As the original loss-landscape's ``h52vtp``: ``--zmax`` clips heights above it, then
``--log`` draws ``ln(z + 0.1)`` (the 0.1 keeps a zero loss finite). Non-finite points
(a diverged region) get no cells: the mesh has a hole there, and the ``.vtp`` keeps their
raw value as point data (NaN shows in ParaView's NaN colour).

The formats are small enough to write here (no light library covers ``.vtp``): VTK XML
PolyData in ASCII (https://docs.vtk.org/en/latest/design_documents/VTKFileFormats.html),
OBJ text, and STL's 80-byte header + triangle records. Tests read all three back with the
``vtk`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape.core.files import write_atomic
from landscape.storage import formats as store
from landscape.storage import h5

FORMATS = ("vtp", "obj", "stl", "h5")  # h5: the original code's layout (landscape.storage.h5)
LOG_OFFSET = 0.1  # --log draws ln(z + 0.1), as the original h52vtp


def height_field(surface, field: str = "loss", log: bool = False, zmax: float | None = None):
    """The mesh of a plane surface: (points (N, 3), quads (Q, 4), raw values (N,)).

    Point ``i * nx + j`` is ``(xs[j], ys[i], z)``; quads join neighbouring grid points
    counter-clockwise (normals up) and skip cells with a non-finite corner.
    """
    if surface.kind != "plane" or surface.ys is None:
        raise ValueError(f"surface kind={surface.kind!r}: export needs a plane (2-D) surface")
    if field not in ("loss", "accuracy"):
        raise ValueError(f"field={field!r} is not allowed: must be 'loss' or 'accuracy'")
    values = surface.loss if field == "loss" else surface.accuracy
    if values is None:
        raise ValueError(f"field={field!r}: this surface has no accuracy")
    if zmax is not None and not (np.isfinite(zmax) and zmax > 0):
        raise ValueError(f"--zmax={zmax} must be a finite positive value")
    raw = np.asarray(values, dtype=np.float64)
    ny, nx = raw.shape
    z = raw.copy()
    ok = np.isfinite(z)
    if zmax is not None:
        z[ok] = np.minimum(z[ok], zmax)
    if log:
        if (z[ok] + LOG_OFFSET <= 0).any():
            raise ValueError(f"--log needs {field} > -{LOG_OFFSET} everywhere")
        z[ok] = np.log(z[ok] + LOG_OFFSET)
    fill = z[ok].max() if ok.any() else 0.0
    z[~ok] = fill  # a finite height for points no cell uses (ParaView bounds stay sane)
    gx, gy = np.meshgrid(surface.xs, surface.ys)  # (ny, nx)
    points = np.stack([gx.ravel(), gy.ravel(), z.ravel()], axis=1)
    idx = np.arange(ny * nx).reshape(ny, nx)
    quads = np.stack([idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]], axis=-1).reshape(
        -1, 4
    )
    cell_ok = ok[:-1, :-1] & ok[:-1, 1:] & ok[1:, 1:] & ok[1:, :-1]
    return points, quads[cell_ok.ravel()], raw.ravel()


def _ascii(values: np.ndarray, fmt: str) -> str:
    return " ".join(fmt % v for v in np.asarray(values).ravel())


def write_vtp(file, points: np.ndarray, quads: np.ndarray, values: np.ndarray, name: str):
    """VTK XML PolyData (ASCII): the points, the quads and ``values`` as point data."""
    n, q = len(points), len(quads)
    offsets = 4 * np.arange(1, q + 1)
    file.write(
        '<?xml version="1.0"?>\n'
        '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" '
        'header_type="UInt64">\n  <PolyData>\n'
        f'    <Piece NumberOfPoints="{n}" NumberOfVerts="0" NumberOfLines="0" '
        f'NumberOfStrips="0" NumberOfPolys="{q}">\n'
        f'      <PointData Scalars="{name}">\n'
        f'        <DataArray type="Float64" Name="{name}" format="ascii">\n'
        f"{_ascii(values, '%.17g')}\n        </DataArray>\n      </PointData>\n"
        "      <Points>\n"
        '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">\n'
        f"{_ascii(points, '%.17g')}\n        </DataArray>\n      </Points>\n"
        "      <Polys>\n"
        '        <DataArray type="Int64" Name="connectivity" format="ascii">\n'
        f"{_ascii(quads, '%d')}\n        </DataArray>\n"
        '        <DataArray type="Int64" Name="offsets" format="ascii">\n'
        f"{_ascii(offsets, '%d')}\n        </DataArray>\n      </Polys>\n"
        "    </Piece>\n  </PolyData>\n</VTKFile>\n"
    )


def write_obj(file, points: np.ndarray, quads: np.ndarray, name: str):
    """Wavefront OBJ: ``v x y z`` lines, then ``f a b c d`` (1-based) per quad."""
    file.write(f"# landscape surface: {name} over the plane\no {name}\n")
    np.savetxt(file, points, fmt="v %.9g %.9g %.9g")
    np.savetxt(file, quads + 1, fmt="f %d %d %d %d")


def triangles(points: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """(T, 3, 3) float: each quad as two triangles, counter-clockwise."""
    tri = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return points[tri]


def write_stl(file, points: np.ndarray, quads: np.ndarray, name: str):
    """Binary STL: 80-byte header, uint32 count, per triangle normal + 3 vertices + uint16."""
    tri = triangles(points, quads).astype(np.float32)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    record = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    out = np.zeros(len(tri), dtype=record)
    out["n"], out["v"] = normal, tri
    file.write(f"landscape surface: {name}".encode()[:80].ljust(80, b" "))
    file.write(np.uint32(len(tri)).tobytes())
    file.write(out.tobytes())


def export(
    npz: str | Path,
    formats: list[str],
    field: str = "loss",
    log: bool = False,
    zmax: float | None = None,
    out: str | Path | None = None,
) -> list[Path]:
    """Write ``OUT.vtp`` / ``OUT.obj`` / ``OUT.stl`` from a surface file; their paths.

    ``out`` defaults to the input path without ``.npz``. Each file appears whole (written
    under a temporary name, then renamed).
    """
    if not formats:
        raise ValueError("no format asked for: pass --vtp, --obj, --stl and/or --h5")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"format={bad[0]!r} is not allowed: must be one of {list(FORMATS)}")
    npz = Path(npz)
    try:
        with open(npz, "rb") as f:
            surface = store.load_surface(f)
    except OSError as e:
        raise ValueError(f"cannot read surface file {str(npz)!r}: {e.strerror}") from None
    base = Path(out) if out is not None else npz.with_suffix("")
    written = []
    if "h5" in formats:  # the surface itself, any kind: no mesh, no --log or --zmax
        path = base.with_name(f"{base.name}.h5")
        data = h5.surface_to_h5(surface)
        write_atomic(path, lambda f: f.write(data))
        written.append(path)
        formats = [f for f in formats if f != "h5"]
        if not formats:
            return written
    points, quads, values = height_field(surface, field, log, zmax)
    name = field + ("_log" if log else "")
    if log:  # the scalar holds what its name says: ln(z + 0.1), as the heights
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.log(values + LOG_OFFSET)
    for fmt in formats:
        path = base.with_name(f"{base.name}.{fmt}")
        if fmt == "vtp":
            write_atomic(path, lambda f: write_vtp(f, points, quads, values, name), binary=False)
        elif fmt == "obj":
            write_atomic(path, lambda f: write_obj(f, points, quads, name), binary=False)
        else:
            write_atomic(path, lambda f: write_stl(f, points, quads, name))
        written.append(path)
    return written

"""python -m landscape export: the .vtp/.obj/.stl files read back with VTK's own readers."""

import numpy as np
import pytest

from landscape.cli.main import main
from landscape.engine.surface import Surface
from landscape.storage import formats as store

vtk = pytest.importorskip("vtk")
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402


def plane_file(tmp_path, nan_at=None):
    """A 3x4 plane (not square) with known losses; optionally one NaN point."""
    xs = np.array([-1.0, -0.25, 0.5, 1.0])
    ys = np.array([-2.0, 0.0, 3.0])
    gx, gy = np.meshgrid(xs, ys)
    loss = 1.0 + gx**2 + 0.5 * gy**2  # (3, 4)
    if nan_at is not None:
        loss[nan_at] = np.nan
    acc = np.clip(1 - loss / 10, 0, 1)
    surf = Surface("plane", xs, ys, loss, acc, {"kind": "plane"})
    path = tmp_path / "surf.npz"
    store.save_surface(path, surf)
    return path, xs, ys, loss


def read(reader_cls, path):
    r = reader_cls()
    r.SetFileName(str(path))
    r.Update()
    return r.GetOutput()


def quads_of(poly) -> list[list[int]]:
    ids = vtk.vtkIdList()
    polys = poly.GetPolys()
    polys.InitTraversal()
    out = []
    while polys.GetNextCell(ids):
        out.append([ids.GetId(k) for k in range(ids.GetNumberOfIds())])
    return out


def test_vtp_obj_stl_hold_the_grid_and_its_cells(tmp_path, capsys):
    path, xs, ys, loss = plane_file(tmp_path)
    assert main(["export", str(path), "--vtp", "--obj", "--stl"]) == 0
    out = capsys.readouterr().out
    for ext in ("vtp", "obj", "stl"):
        assert f"wrote {tmp_path / ('surf.' + ext)}" in out

    poly = read(vtk.vtkXMLPolyDataReader, tmp_path / "surf.vtp")
    pts = vtk_to_numpy(poly.GetPoints().GetData())
    assert pts.shape == (12, 3)
    for i, y in enumerate(ys):  # point i*nx + j is (xs[j], ys[i], loss[i, j])
        for j, x in enumerate(xs):
            np.testing.assert_allclose(pts[i * 4 + j], [x, y, loss[i, j]])
    np.testing.assert_allclose(vtk_to_numpy(poly.GetPointData().GetArray("loss")), loss.ravel())
    cells = quads_of(poly)
    assert len(cells) == 2 * 3  # (ny-1) x (nx-1) quads
    # every quad is one grid cell: its corners are two neighbouring rows and columns
    for c in cells:
        rows, cols = {k // 4 for k in c}, {k % 4 for k in c}
        assert len(rows) == 2 and max(rows) - min(rows) == 1
        assert len(cols) == 2 and max(cols) - min(cols) == 1
    # normals point up (+z), as a height field's should: counter-clockwise seen from above
    a, b, c = (pts[k] for k in cells[0][:3])
    assert np.cross(b - a, c - a)[2] > 0

    stl = read(vtk.vtkSTLReader, tmp_path / "surf.stl")
    assert stl.GetNumberOfCells() == 2 * 6  # two triangles per quad
    stl_pts = vtk_to_numpy(stl.GetPoints().GetData())
    np.testing.assert_allclose(
        np.unique(stl_pts.round(5), axis=0), np.unique(pts.astype(np.float32).round(5), axis=0)
    )

    obj = read(vtk.vtkOBJReader, tmp_path / "surf.obj")
    assert obj.GetNumberOfPoints() == 12 and obj.GetNumberOfCells() == 6
    np.testing.assert_allclose(vtk_to_numpy(obj.GetPoints().GetData()), pts, rtol=1e-6)


def test_log_and_zmax_as_the_original_and_nan_cells_left_out(tmp_path):
    path, xs, ys, loss = plane_file(tmp_path, nan_at=(0, 0))
    assert (
        main(["export", str(path), "--vtp", "--log", "--zmax", "3", "--out", str(tmp_path / "L")])
        == 0
    )
    poly = read(vtk.vtkXMLPolyDataReader, tmp_path / "L.vtp")
    z = vtk_to_numpy(poly.GetPoints().GetData())[:, 2]
    finite = np.isfinite(loss.ravel())
    expect = np.log(np.minimum(loss.ravel()[finite], 3.0) + 0.1)
    np.testing.assert_allclose(z[finite], expect)
    scalar = vtk_to_numpy(poly.GetPointData().GetArray("loss_log"))
    assert np.isnan(scalar[0])
    # the scalar named loss_log holds ln(loss + 0.1) of the raw (unclipped) loss
    np.testing.assert_allclose(scalar[finite], np.log(loss.ravel()[finite] + 0.1), rtol=1e-6)
    assert len(quads_of(poly)) == 6 - 1  # the cell at the NaN corner is left out
    assert all(0 not in c for c in quads_of(poly))


def test_accuracy_field(tmp_path):
    path, *_ = plane_file(tmp_path)
    assert main(["export", str(path), "--obj", "--field", "accuracy"]) == 0
    obj = read(vtk.vtkOBJReader, tmp_path / "surf.obj")
    surf = store.load_surface(path)
    np.testing.assert_allclose(
        vtk_to_numpy(obj.GetPoints().GetData())[:, 2], surf.accuracy.ravel(), rtol=1e-6
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--vtp", "--zmax", "-1"], "--zmax=-1.0 must be a finite positive"),
        ([], "no format asked for"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, argv, message):
    path, *_ = plane_file(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["export", str(path), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_line_or_a_missing_file_is_refused(tmp_path, capsys):
    line = Surface("line", np.linspace(-1, 1, 5), None, np.ones(5), None, {"kind": "line"})
    store.save_surface(tmp_path / "line.npz", line)
    for target, message in (
        (tmp_path / "line.npz", "export needs a plane"),
        (tmp_path / "none.npz", "cannot read surface file"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["export", str(target), "--stl"])
        assert e.value.code == 2 and message in capsys.readouterr().err

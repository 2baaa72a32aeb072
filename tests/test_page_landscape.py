"""The Landscape page through AppTest, checked against the library called directly.

Runs are trained here once per module (tiny configs, well under a second each) and put into
the session through ``landscape.ui.runs`` before the page runs, so every test sees a real
trained net without paying for the presets. Grids are small (5 to 11 points per axis) except
where the test is about the maximum.
"""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from streamlit.testing.v1 import AppTest

from landscape.cli import reproduce
from landscape.cli.grammar import config_from_args, slice_request
from landscape.cli.main import build_parser
from landscape.core import directions
from landscape.data.config import Config
from landscape.engine import surface
from landscape.engine.surface import Surface
from landscape.pipelines import pictures, presets
from landscape.storage import datastore
from landscape.storage.formats import run_to_bytes
from landscape.training.loop import train
from landscape.ui import kept
from landscape.ui import landscape_page as ui
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py")
TINY = Config(n_samples=200, epochs=8, width=8)


@pytest.fixture(scope="module")
def tiny():
    return train(TINY)


@pytest.fixture(scope="module")
def wide():
    """Same data, different width: a different architecture."""
    return train(TINY.replace(width=12))


@pytest.fixture(scope="module")
def other_seed():
    """Same architecture, another seed: a second solution to interpolate to."""
    return train(TINY.replace(seed=1))


@pytest.fixture(scope="module")
def diverged():
    return train(TINY.replace(lr=1e6, optimizer="sgd", epochs=5))


@pytest.fixture(autouse=True)
def cold_cache():
    ui.clear()
    yield


# ----------------------------------------------------------------------------- helpers


def page(*runs, timeout: float = 120) -> AppTest:
    """The page with ``runs`` in the session (the newest, last one picked), after one run."""
    at = AppTest.from_file(PAGE, default_timeout=timeout)
    for run in runs:
        put_run(at, run)
    at.run()
    assert not at.exception, at.exception
    return at


def put_run(at: AppTest, run) -> None:
    """Add ``run`` to the session's run list (landscape.ui.runs' session dict, name -> Run)."""
    runs = (
        dict(at.session_state[ui_runs._SESSION_KEY])
        if ui_runs._SESSION_KEY in at.session_state
        else {}
    )
    runs[run.name] = run  # what ui_runs.add_run does for a run of a new config
    at.session_state[ui_runs._SESSION_KEY] = runs


def settle(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def plane_settings(at: AppTest, kind="random", n=7, lo=-1.0, hi=1.0, ny=None) -> AppTest:
    at.radio(key="lp_dim").set_value("2D plane")
    settle(at)
    at.selectbox(key="lp_kind2").set_value(kind)
    settle(at)
    at.slider(key="lp_nx2").set_value(n)
    at.slider(key="lp_ny2").set_value(ny or n)
    if kind != "pca":
        at.number_input(key=f"lp2{kind}_x0").set_value(lo)
        at.number_input(key=f"lp2{kind}_x1").set_value(hi)
        at.number_input(key=f"lp2{kind}_y0").set_value(lo)
        at.number_input(key=f"lp2{kind}_y1").set_value(hi)
    return at


def line_settings(at: AppTest, kind="random", n=9) -> AppTest:
    at.radio(key="lp_dim").set_value("1D line")
    settle(at)
    at.selectbox(key="lp_kind1").set_value(kind)
    settle(at)
    at.slider(key="lp_nx1").set_value(n)
    return at


def go(at: AppTest) -> AppTest:
    at.button(key="lp_go").click()
    return settle(at)


def figure(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[-1].proto.spec)


def trace(fig: dict, kind: str) -> dict:
    found = [t for t in fig["data"] if t.get("type") == kind]
    assert found, f"no {kind} trace in {[t.get('type') for t in fig['data']]}"
    return found[0]


def arr(value) -> np.ndarray:
    """A Plotly JSON array as NumPy: plain lists, or typed arrays {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            out = out.reshape([int(n) for n in str(shape).split(",")])
        return out.astype(np.float64)
    return np.array(value, dtype=np.float64)


def texts(at: AppTest, what: str) -> str:
    return " ".join(shown(e.value) for e in getattr(at, what))


def data(run, split="train"):
    ds = run.dataset()
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


# ----------------------------------------------------------------------------- no run


def test_no_run_explains_what_to_do():
    at = page()
    info = texts(at, "info")
    assert "No trained network" in info and "Train" in info and "preset" in info
    assert at.button(key="lp_go").disabled
    assert at.selectbox(key="lp_preset").options  # the presets are offered right here
    assert not at.error


def test_preset_trained_here_becomes_the_picked_run():
    at = page()
    at.selectbox(key="lp_preset").set_value("Linear regression with outliers (MSE)")
    at.button(key="lp_train_preset").click()
    settle(at)
    preset = presets.get("Linear regression with outliers (MSE)")
    assert at.selectbox(key="run__pick").value == datastore.run_id(preset)  # by short id
    assert not at.button(key="lp_go").disabled
    plane_settings(at, n=5)  # a regression net: no accuracy; two weights, one held fixed
    go(at)
    assert trace(figure(at), "contour")
    assert "nearly parallel" in texts(at, "warning")  # one movable weight: d1 || d2
    at.radio(key="lp2random_ignore").set_value("none")
    go(at)
    assert "nearly parallel" not in texts(at, "warning")
    line_settings(at, n=5)
    go(at)
    assert not [t for t in figure(at)["data"] if "accuracy" in t["name"]]


def test_malformed_upload_gives_an_error_and_loses_nothing(tiny):
    at = page(tiny)
    at.file_uploader(key="lp_upload").upload("broken.npz", b"not an npz at all")
    settle(at)
    assert "broken.npz" in texts(at, "error")
    assert not at.button(key="lp_go").disabled  # the session's run is still there


def test_saved_run_upload_becomes_the_picked_run(tiny):
    at = page()
    at.file_uploader(key="lp_upload").upload("run.npz", run_to_bytes(tiny))
    settle(at)
    assert not at.error
    assert not at.button(key="lp_go").disabled
    plane_settings(at, n=5)
    go(at)
    assert trace(figure(at), "contour")


# ----------------------------------------------------------------------------- numbers


def test_contour_equals_surface_plane_called_directly(tiny):
    at = plane_settings(page(tiny), n=7, ny=5, lo=-0.5, hi=0.5)
    at.number_input(key="lp_seed2random").set_value(3)
    go(at)
    c = trace(figure(at), "contour")
    model = tiny.model()
    d1, d2 = directions.random_directions(model, 2, seed=3)
    xs, ys = np.linspace(-0.5, 0.5, 7), np.linspace(-0.5, 0.5, 5)
    want = surface.plane(model, tiny.loss_fn(), data(tiny), d1, d2, xs, ys, method="loop")
    np.testing.assert_allclose(arr(c["x"]), xs)
    np.testing.assert_allclose(arr(c["y"]), ys)
    got = arr(c["customdata"])  # the raw loss behind the hover
    assert got.shape == (5, 7)
    np.testing.assert_allclose(got, want.loss, rtol=1e-5)
    np.testing.assert_allclose(10 ** arr(c["z"]), want.loss, rtol=1e-5)  # log
    assert "seed 3" in texts(at, "markdown")


def test_line_shows_train_and_test_loss_and_accuracy(tiny):
    at = line_settings(page(tiny), n=9)
    go(at)
    fig = figure(at)
    model = tiny.model()
    d = directions.random_direction(model, seed=0)
    ts = np.linspace(-1, 1, 9)
    for split in ("train", "test"):
        want = surface.line(model, tiny.loss_fn(), data(tiny, split), d, ts, tiny.accuracy_fn())
        loss = next(t for t in fig["data"] if t["name"] == f"{split} loss")
        acc = next(t for t in fig["data"] if t["name"] == f"{split} accuracy")
        np.testing.assert_allclose(arr(loss["y"]), want.loss, rtol=1e-5)
        np.testing.assert_allclose(arr(acc["y"]), want.accuracy, rtol=1e-6)
        assert acc["yaxis"] == "y2"  # accuracy on the twin axis
    at.toggle(key="lp_log1").set_value(True)
    settle(at)
    assert figure(at)["layout"]["yaxis"]["type"] == "log"


def test_several_random_lines_overlay_with_their_own_seeds(tiny):
    at = line_settings(page(tiny), n=5)
    at.slider(key="lp_nlines").set_value(3)
    go(at)
    fig = figure(at)
    model = tiny.model()
    ts = np.linspace(-1, 1, 5)
    for k in range(3):
        d = directions.random_direction(model, seed=k)
        want = surface.line(model, tiny.loss_fn(), data(tiny), d, ts)
        got = next(t for t in fig["data"] if t["name"] == f"train · d{k + 1} loss")
        np.testing.assert_allclose(arr(got["y"]), want.loss, rtol=1e-5)


def test_interpolation_reaches_the_trained_loss_at_one(tiny):
    at = line_settings(page(tiny), kind="interpolation", n=5)
    at.number_input(key="lp1interpolation_t0").set_value(0.0)
    at.number_input(key="lp1interpolation_t1").set_value(1.0)
    go(at)
    loss = next(t for t in figure(at)["data"] if t["name"] == "train loss")
    assert arr(loss["y"])[-1] == pytest.approx(tiny.history["train_loss"][-1], rel=1e-4)
    assert arr(loss["y"])[0] == pytest.approx(tiny.history["train_loss"][0], rel=1e-4)


def test_between_two_runs_and_mismatched_architectures(tiny, other_seed, wide):
    at = page(tiny, other_seed, wide)
    # the picker (by short id) shows the newest run first
    at.selectbox(key="run__pick").set_value(datastore.run_id(tiny.config))
    settle(at)
    line_settings(at, kind="between", n=5)
    assert set(at.selectbox(key="lp_other").options) == {other_seed.name, wide.name}
    at.selectbox(key="lp_other").set_value(other_seed.name)
    go(at)
    loss = next(t for t in figure(at)["data"] if t["name"] == "train loss")
    assert len(arr(loss["y"])) == 5 and not at.error
    at.selectbox(key="lp_other").set_value(wide.name)
    go(at)
    assert "same architecture" in texts(at, "error")


# ----------------------------------------------------------------------------- redraw


def test_switching_plot_type_and_colours_never_recomputes(tiny, monkeypatch, inline_jobs):
    calls = []
    real = pictures.compute
    monkeypatch.setattr(pictures, "compute", lambda *a, **k: calls.append(1) or real(*a, **k))
    at = plane_settings(page(tiny), n=7)
    go(at)
    assert len(calls) == 1
    assert trace(figure(at), "contour")
    at.radio(key="lp_plot").set_value("heatmap")
    settle(at)
    assert trace(figure(at), "heatmap")
    assert any(t.get("name", "").startswith("min loss") for t in figure(at)["data"])
    at.radio(key="lp_plot").set_value("3D")
    settle(at)
    assert trace(figure(at), "surface")
    assert trace(figure(at), "scatter3d")  # the minimum, marked
    s = trace(figure(at), "surface")  # log colours by default, heights in loss units
    np.testing.assert_allclose(arr(s["surfacecolor"]), np.log10(arr(s["z"])), rtol=1e-12)
    at.toggle(key="lp_logc").set_value(False)
    settle(at)
    slider = next(s for s in at.select_slider if s.key.startswith("lp_crange"))
    lo, hi = slider.value  # the full range of the loss, 41 log-spaced stops
    mid = float(np.geomspace(lo, hi, 41)[20])
    slider.set_value((lo, mid))
    settle(at)
    s = trace(figure(at), "surface")
    assert np.nanmax(arr(s["z"])) == pytest.approx(mid)  # clipped to the colour range
    assert "clipped" in json.dumps(figure(at)["layout"].get("annotations", []))
    assert len(calls) == 1  # none of that computed anything
    go(at)  # the same request again: answered from the cache
    assert len(calls) == 1


def test_direction_kinds_and_normalisations_rerun_cleanly(tiny):
    at = plane_settings(page(tiny), kind="pca", n=5)
    go(at)
    fig = figure(at)
    assert "% of variance" in fig["layout"]["xaxis"]["title"]["text"]
    path = next(t for t in fig["data"] if t.get("name") == "training path")
    assert len(arr(path["x"])) == len(tiny.trajectory)
    assert (
        abs(arr(path["x"])[-1]) < 1e-4 and abs(arr(path["y"])[-1]) < 1e-4
    )  # the trained net at (0,0)
    epoch = next(s for s in at.slider if s.key.startswith("lp_epoch"))
    epoch.set_value(2)
    settle(at)
    path = next(t for t in figure(at)["data"] if t.get("name") == "training path")
    assert len(arr(path["x"])) == 3  # the path drawn epoch by epoch
    for norm in ("layer", "weight", "none"):
        plane_settings(at, kind="random", n=5)
        at.selectbox(key="lp2random_norm").set_value(norm)
        go(at)
        assert f"{norm}-normalised" in figure(at)["layout"]["xaxis"]["title"]["text"]
    plane_settings(at, kind="hessian", n=5)
    go(at)
    assert "λ1" in figure(at)["layout"]["xaxis"]["title"]["text"]
    assert not at.error
    # Issue 25: λ1 here and Geometry's λmax differ because biases are left out: said here
    assert any("biases" in c.value and "Geometry" in c.value for c in at.caption)


# ----------------------------------------------------------------------------- extremes


def test_resolution_at_its_maximum(tiny):
    at = plane_settings(page(tiny), n=pictures.MAX_RES)
    go(at)
    assert arr(trace(figure(at), "contour")["customdata"]).shape == (101, 101)


@pytest.mark.parametrize("half", [1e-6, 1e3])
def test_tiny_and_huge_ranges_draw_without_exception(tiny, half):
    at = plane_settings(page(tiny), n=5, lo=-half, hi=half)
    go(at)
    c = trace(figure(at), "contour")
    assert arr(c["customdata"]).shape == (5, 5)
    assert not at.error


def test_diverged_run_gives_a_message_not_an_exception(diverged):
    assert diverged.diverged
    at = page(diverged)
    assert "diverged" in texts(at, "warning")
    plane_settings(at, n=5)
    go(at)
    assert trace(figure(at), "contour")
    plane_settings(at, kind="pca", n=5)
    go(at)
    assert "checkpoints" in texts(at, "error")  # PCA of a path that never moved


def test_nan_and_inf_points_are_masked_with_a_warning(tiny):
    at = page(tiny)
    xs = ys = np.linspace(-1, 1, 4)
    loss = np.arange(16, dtype=float).reshape(4, 4) + 1.0
    loss[0, 0], loss[1, 2] = np.nan, np.inf
    req = pictures.SurfaceRequest.for_run(tiny, dim=2, nx=4, ny=4)
    surf = Surface("plane", xs, ys, loss, None, {"method": "loop"})
    at.session_state["lp_result"] = pictures.LandscapeResult(req, {"train:0": surf}, [])
    settle(at)
    assert "2 of 16 points" in texts(at, "warning")
    z = arr(trace(figure(at), "contour")["z"])
    assert np.isnan(z[0, 0]) and np.isnan(z[1, 2]) and np.isfinite(z[3, 3])
    all_bad = Surface("plane", xs, ys, np.full((4, 4), np.nan), None, {})
    at.session_state["lp_result"] = pictures.LandscapeResult(req, {"train:0": all_bad}, [])
    settle(at)
    assert "nothing to draw" in texts(at, "warning")


# ----------------------------------------------------------------------------- downloads


def test_downloads_and_command_line(tiny):
    at = plane_settings(page(tiny), n=5)
    go(at)
    keys = {b.key for b in at.get("download_button")}
    assert {"lp_dl_npz0", "lp_dl_csv", "lp_dl_html"} <= keys
    cmd = texts(at, "code")
    assert cmd.startswith("python -m landscape plane")
    args = build_parser().parse_args(shlex.split(cmd)[3:])
    assert config_from_args(args) == TINY  # the page's run, retrained by the command
    assert slice_request(args) == reproduce.main_request(at.session_state["lp_result"])
    assert slice_request(args).nx == slice_request(args).ny == 5


# ----------------------------------------------------------------------------- the library part


@pytest.mark.parametrize(
    "kw",
    [
        dict(dim=2, direction="random", seed=2, nx=5, ny=4, xmin=-0.3, xmax=0.7, orthogonal=True),
        dict(
            dim=2,
            direction="random",
            norm="layer",
            ignore="none",
            dir_type="states",
            split="test",
            nx=3,
            ny=3,
            xmin=-1e-5,
            xmax=2e-5,
            ymin=-3e-5,
            ymax=1e-5,
        ),
        dict(dim=2, direction="pca", nx=5, ny=5),
        dict(dim=2, direction="pca", projection="lstsq", nx=4, ny=3, auto_range=False),
        dict(dim=2, direction="hessian", seed=1, nx=3, ny=3, xmin=-0.1, xmax=0.1),
        dict(dim=1, direction="interpolation", nx=6, xmin=-0.5, xmax=1.5),
        dict(dim=1, direction="random", n_lines=3, seed=5, nx=5),
        dict(dim=1, direction="between", nx=4, xmin=-0.25, xmax=1.25),
    ],  # fmt: skip
    ids=[
        "random",
        "random-tiny-range",
        "pca",
        "pca-lstsq",
        "hessian",
        "interpolation",
        "lines",
        "between",
    ],  # fmt: skip
)
def test_printed_command_line_reproduces_the_surface(kw, tiny, tmp_path, capsys):
    """Every kind of "Reproduce it" command the page shows runs as printed and gives back the
    page's surface (the run retrained from the printed flags; the second run from its file)."""
    import shlex

    from landscape.cli.main import main
    from landscape.storage import formats as store
    from landscape.storage.formats import run_to_bytes
    from landscape.training.loop import train

    other = None
    if kw["direction"] == "between":
        other = train(tiny.config.replace(seed=tiny.config.seed + 1))
        (tmp_path / "b.npz").write_bytes(run_to_bytes(other))
    req = pictures.SurfaceRequest.for_run(tiny, other, **kw)
    result = pictures.compute(req, tiny, other)
    cmd = reproduce.landscape_command(result, end_run_file=str(tmp_path / "b.npz"))
    assert "\n" not in cmd and cmd.startswith("python -m landscape ")
    argv = shlex.split(cmd)[3:]
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    assert main(argv + ["--quiet"]) == 0
    got = store.load_surface(str(tmp_path / "cli") + ".npz")
    np.testing.assert_array_equal(got.xs, result.main.xs)
    if got.ys is not None:
        np.testing.assert_array_equal(got.ys, result.main.ys)
    np.testing.assert_allclose(got.loss, result.main.loss, rtol=1e-5)
    capsys.readouterr()


def test_command_for_a_run_on_uploaded_data_loads_the_run(tmp_path, capsys):
    """The command line cannot name uploaded data: the command says so and loads the run."""
    import shlex

    from landscape.cli.main import main
    from landscape.data import upload
    from landscape.data.config import Config
    from landscape.storage import formats as store
    from landscape.storage.formats import run_to_bytes
    from landscape.training.loop import train

    rows = "\n".join(f"{i % 7 / 7:.3f},{(i * 3) % 5 / 5:.3f},{i % 2}" for i in range(60))
    name = upload.register(upload.parse_csv(f"a,b,label\n{rows}\n".encode(), target="label"))
    run = train(Config(dataset=name, n_samples=60, epochs=2, width=4))
    req = pictures.SurfaceRequest.for_run(run, dim=2, nx=3, ny=3)
    result = pictures.compute(req, run)
    comment, line = reproduce.landscape_command(result, run_file=str(tmp_path / "run.npz")).split(
        "\n"
    )
    assert comment.startswith("#") and "uploaded data" in comment
    (tmp_path / "run.npz").write_bytes(run_to_bytes(run))
    argv = shlex.split(line)[3:]
    assert "--load-run" in argv and "--dataset" not in argv
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    assert main(argv + ["--quiet"]) == 0
    got = store.load_surface(tmp_path / "cli.npz")
    np.testing.assert_allclose(got.loss, result.main.loss, rtol=1e-5)
    capsys.readouterr()


def test_csv_is_long_format_with_every_point(tiny):
    result = pictures.compute(pictures.SurfaceRequest.for_run(tiny, dim=2, nx=4, ny=3), tiny)
    lines = pictures.to_csv(result).splitlines()
    assert lines[0] == "x,y,loss,accuracy,split,line"
    assert len(lines) == 1 + 12
    x, y, loss, acc, split, line = lines[1 + 2 * 4 + 3].split(",")  # row i=2, column j=3
    s = result.main
    assert (float(x), float(y), float(loss)) == (s.xs[3], s.ys[2], s.loss[2, 3])
    assert float(acc) == s.accuracy[2, 3] and split == "train" and line == "0"


def test_pca_plane_sees_the_path_and_a_random_plane_does_not(tiny):
    model = tiny.model()
    theta = directions.flatten(directions.weights_of(model)).double().numpy()
    rows = tiny.trajectory.astype(np.float64) - theta  # (E, P)
    for kind, check in (("pca", lambda v: v > 0.9), ("random", lambda v: v < 0.1)):
        req = pictures.SurfaceRequest.for_run(tiny, dim=2, direction=kind, nx=3, ny=3)
        result = pictures.compute(req, tiny)
        assert check(result.path_share), (kind, result.path_share)
        # independent: least-squares fit of every offset by the two directions
        B = np.stack([directions.flatten(d).double().numpy() for d in result.directions], 1)
        coef, *_ = np.linalg.lstsq(B, rows.T, rcond=None)
        want = float(((B @ coef) ** 2).sum() / (rows**2).sum())
        assert result.path_share == pytest.approx(want, rel=1e-9)


def test_request_validation_names_the_field(tiny):
    with pytest.raises(ValueError, match="nx=500"):
        pictures.SurfaceRequest.for_run(tiny, nx=500)
    with pytest.raises(ValueError, match="xmax"):
        pictures.SurfaceRequest.for_run(tiny, xmin=1.0, xmax=-1.0)
    with pytest.raises(ValueError, match="direction='pca' is not allowed for dim=1"):
        pictures.SurfaceRequest.for_run(tiny, dim=1, direction="pca")
    with pytest.raises(ValueError, match="norm='bogus'"):
        pictures.SurfaceRequest.for_run(tiny, norm="bogus")


def test_trained_loss_is_the_centre_of_the_grid(tiny):
    for split in ("train", "test"):
        req = pictures.SurfaceRequest.for_run(tiny, dim=2, nx=5, ny=3, split=split)
        result = pictures.compute(req, tiny)
        assert result.centre_loss == pytest.approx(result.main.loss[1, 2], rel=1e-5)  # (0, 0)


@pytest.mark.slow
def test_a_queued_request_waits_then_draws_and_is_cached(tiny, monkeypatch, tmp_path):
    """With every worker busy, the page queues (its note drawn outside the cache's replay
    recording), computes once the worker is free, and the repeat is a clean cache hit."""
    import worker_jobs as jobs

    from landscape.ui import workers

    ui.clear()
    # An empty data folder: a picture kept by an earlier test would be answered without queueing.
    monkeypatch.setenv("LANDSCAPE_DATA_DIR", str(tmp_path / "data"))
    kept._store_or_error.clear()
    pool = workers.Pool(size=1).start()
    monkeypatch.setattr(workers, "_shared", pool)
    try:
        busy = jobs.hold_the_worker_until_a_job_queues(pool, monkeypatch, str(tmp_path / "go"))
        assert pool.busy() == 1  # the one worker is now taken
        at = plane_settings(page(tiny), n=5)
        assert busy.is_alive()  # so the request has to queue
        go(at)
        busy.join()
        assert (tmp_path / "go").exists()  # the request did queue (its on_wait released it)
        assert trace(figure(at), "contour")
        assert pool.busy() == 0
        assert not any("queued" in i.value for i in at.info)  # the note is gone afterwards
        go(at)  # answered from the cache: no replay error from the note
        assert trace(figure(at), "contour")
    finally:
        pool.shutdown()
        kept._store_or_error.clear()

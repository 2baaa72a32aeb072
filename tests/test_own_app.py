"""The operator's models (LANDSCAPE_MODELS=models.toml) and surface files in the app.

The model lives only in the tests (tests/own_net.py), copied with its weights and data into
a folder beside the operator's models.toml; results are checked against plain loops and an
exact Hessian written here."""

import base64
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from landscape.cli import reproduce
from landscape.pipelines import operator_models as om
from landscape.storage import formats as store

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py")
COMPARE = str(ROOT / "landscape/ui/server/app_pages" / "compare.py")

TOML = """
[[model]]
name = "my conv net"
factory = "own_net:make_net"
kwargs = { width = 4 }
weights = "net.safetensors"
data = "data.npz"
loss = "cross_entropy"
checkpoints = "ckpt_*.safetensors"
to = "other.safetensors"
"""


@pytest.fixture
def operator(tmp_path, monkeypatch, inline_jobs):
    """A models.toml with one entry, in a folder of its own (not the working directory)."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "own_net.py", folder / "own_net.py")
    sys.modules.pop("own_net", None)
    monkeypatch.syspath_prepend(str(folder))
    import own_net

    net = own_net.make_net()
    save_file(net.state_dict(), folder / "other.safetensors")
    gen = torch.Generator().manual_seed(0)
    for i in (1, 2, 3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        save_file(net.state_dict(), folder / f"ckpt_{i}.safetensors")
    save_file(net.state_dict(), folder / "net.safetensors")
    X, y = own_net.make_data()
    np.savez(folder / "data.npz", X=X, y=y)
    (folder / "models.toml").write_text(TOML)
    monkeypatch.setenv(om.ENV, str(folder / "models.toml"))
    yield own_net, net, (torch.from_numpy(X), torch.from_numpy(y))
    sys.modules.pop("own_net", None)


def _loss_at(net, data, point, dirs):
    state = {k: v.clone() for k, v in net.state_dict().items()}
    params = dict(net.named_parameters())
    for a, d in zip(point, dirs):
        for k in params:
            state[k] = state[k] + float(a) * d[k]
    moved = type(net)(4, 3)
    moved.load_state_dict(state)
    with torch.no_grad():
        return float(F.cross_entropy(moved.eval()(data[0]), data[1]))


def _plotly_array(value) -> np.ndarray:
    """A figure's array as plotly serialises it: a list, or {"dtype", "bdata": base64}."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def test_toml_entries_are_checked_with_one_clear_message(tmp_path):
    bad = tmp_path / "m.toml"
    for text, message in [
        ('[[model]]\nname = "a"\nfactory = "x:y"\nweights = "w"\n', "data is required"),
        ('[[model]]\nname = "a"\nfactory = "xy"\nweights = "w"\ndata = "d.npz"\n', "MODULE:FUNCTION"),
        ('[[model]]\nname = "a"\nfactory = "x:y"\nweights = "w"\ndata = "d"\nexec = 1\n', "unknown keys ['exec']"),
        ("[[model]\n", "is not valid TOML"),
    ]:  # fmt: skip
        bad.write_text(text)
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            om.load(bad)


@pytest.mark.slow
def test_models_toml_entry_drives_the_landscape_page(operator):
    own_net, net, data = operator
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    at.radio(key="lp_source").set_value("Operator's models").run()
    assert at.selectbox(key="lp_om_entry").options == ["my conv net"]
    at.slider(key="lp_om_nx").set_value(3)
    at.slider(key="lp_om_ny").set_value(3)
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    result = at.session_state["lp_om_result"]
    surf, (d1, d2) = result.main, result.directions
    for i, b in enumerate(surf.ys):
        for j, a in enumerate(surf.xs):
            assert surf.loss[i, j] == pytest.approx(_loss_at(net, data, (a, b), (d1, d2)), rel=1e-5)
    assert surf.meta["model"]["factory"] == "own_net:make_net"
    assert at.code[0].value == reproduce.own_model_command(
        result
    )  # "Reproduce it", run as written below
    assert len(at.get("plotly_chart")) == 1
    # every view of the page: heatmap, 3D, accuracy
    for kind in ("heatmap", "3D"):
        at.radio(key="lp_om_view_plot").set_value(kind).run()
        assert not at.exception and len(at.get("plotly_chart")) == 1
    # PCA of the checkpoints and the line to the other net
    at.selectbox(key="lp_om_kind2").set_value("pca").run()
    at.radio(key="lp_om_projection").set_value("lstsq")
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    pca = at.session_state["lp_om_result"]
    assert pca.path is not None and pca.path[0][-1] == pytest.approx(0.0, abs=1e-9)
    assert pca.request.projection == "lstsq" and pca.path_share > 0.5
    # the path up to a chosen checkpoint, on the contour and the heatmap, named by file
    at.radio(key="lp_om_view_plot").set_value("contour").run()
    (upto,) = [w for w in at.slider if w.key.startswith("lp_om_view_upto")]
    assert upto.value == len(pca.path[0]) - 1
    upto.set_value(1).run()
    for kind in ("contour", "heatmap"):
        at.radio(key="lp_om_view_plot").set_value(kind).run()
        traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
        (path,) = [t for t in traces if t.get("name") == "training path"]
        np.testing.assert_allclose(_plotly_array(path["x"]), pca.path[0][:2], rtol=1e-6)
        assert path["text"] == ["ckpt_1.safetensors", "ckpt_2.safetensors"]
    # several random lines overlaid, each the plain loop along its stored direction
    at.radio(key="lp_om_dim").set_value("1D line").run()
    at.slider(key="lp_om_nlines").set_value(3)
    at.slider(key="lp_om_nx").set_value(3)
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    lines = at.session_state["lp_om_result"]
    assert len(lines.surfaces) == 3 and len(lines.directions) == 3
    for surf, d in zip(lines.surfaces.values(), lines.directions):
        assert surf.loss[0] == pytest.approx(_loss_at(net, data, (surf.xs[0],), (d,)), rel=1e-5)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {"d1 loss", "d2 loss", "d3 loss"} <= {t.get("name") for t in traces}
    # the line from the first checkpoint
    at.selectbox(key="lp_om_kind1").set_value("interpolation").run()
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    assert at.session_state["lp_om_result"].request.direction == "interpolation"
    at.selectbox(key="lp_om_kind1").set_value("between").run()
    at.number_input(key="lp_om_x0").set_value(0.0)
    at.number_input(key="lp_om_x1").set_value(1.0)
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    line = at.session_state["lp_om_result"].main
    other = own_net.make_net()  # other.safetensors holds make_net()'s state
    assert line.loss[-1] == pytest.approx(_loss_at(other, data, (), ()), rel=1e-5)
    assert line.loss[0] == pytest.approx(_loss_at(net, data, (), ()), rel=1e-5)


def test_hessian_directions_of_an_operator_model_match_the_exact_hessian(operator):
    _, net, (X, y) = operator
    req = om.OwnRequest("my conv net", dim=2, direction="hessian", nx=3, ny=3, norm="none")
    result = om.compute(req)
    names = [k for k, p in net.named_parameters() if p.ndim > 1]  # biasbn: weights only
    shapes = [dict(net.named_parameters())[k].shape for k in names]
    sizes = [int(np.prod(s)) for s in shapes]
    frozen = {k: v.detach() for k, v in net.state_dict().items()}
    model = type(net)(4, 3).eval()

    def loss(flat):
        parts = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split(sizes), shapes))))
        out = torch.func.functional_call(model, {**frozen, **parts}, (X.double(),))
        return F.cross_entropy(out, y)

    w = torch.cat([frozen[k].reshape(-1) for k in names]).double()
    model.double()
    frozen = {k: v.double() if v.is_floating_point() else v for k, v in frozen.items()}
    H = torch.autograd.functional.hessian(loss, w.to(torch.float64))
    top = torch.linalg.eigvalsh(H).flip(0)[:2].numpy()
    np.testing.assert_allclose(result.eigenvalues, top, rtol=2e-3)


@pytest.mark.slow
def test_surface_file_from_the_cli_opens_on_landscape_and_compare(operator, tmp_path):
    from landscape.cli.main import main

    folder = Path(om.get("my conv net").folder)
    out = tmp_path / "cli"
    argv = ["plane", "--quiet", "--model-factory", "own_net:make_net", "--res", "3"]
    argv += ["--weights", str(folder / "net.safetensors"), "--data", str(folder / "data.npz")]
    assert main([*argv, "--out", str(out)]) == 0
    raw = (tmp_path / "cli.npz").read_bytes()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.file_uploader(key="lp_surface_file_upload").upload("cli.npz", raw).run()
    assert not at.exception and not at.error
    for kind in ("contour", "heatmap", "3D"):
        at.radio(key="lp_surface_file_view_plot").set_value(kind).run()
        assert not at.exception and len(at.get("plotly_chart")) == 1
    assert any("lowest loss" in c.value for c in at.caption)
    # a broken file: one message, the page keeps working
    at.file_uploader(key="lp_surface_file_upload").set_value(
        ("junk.npz", b"PK junk", "application/octet-stream")
    ).run()
    assert not at.exception and "not a surface file" in at.error[0].value
    # Compare: two files side by side on one colour scale
    cmp = AppTest.from_file(COMPARE, default_timeout=60).run()
    up = cmp.file_uploader(key="cmp_surface_files")
    up.upload("a.npz", raw).upload("b.npz", raw).run()
    assert not cmp.exception and not cmp.error
    assert len(cmp.get("plotly_chart")) >= 2
    # the CLI's surface read back is what the page drew
    assert store.load_surface(tmp_path / "cli.npz").loss.shape == (3, 3)


# ----------------------------------------------------------------------------- every option


def _params_loss(net, data, params: dict):
    """Cross-entropy of ``net`` (eval mode, its own buffers) with these parameter values."""
    model = type(net)(4, 3).eval()
    model.load_state_dict({**net.state_dict(), **params})
    with torch.no_grad():
        return float(F.cross_entropy(model(data[0]), data[1]))


def test_several_random_lines_are_seeds_in_a_row_and_equal_a_plain_loop(operator):
    own_net, net, data = operator
    req = om.OwnRequest("my conv net", dim=1, direction="random", seed=5, n_lines=3, nx=3,
                        norm="layer", ignore="none")  # fmt: skip
    result = om.compute(req)
    assert list(result.surfaces) == ["train:0", "train:1", "train:2"]
    subject = om.open_entry(om.get("my conv net"))
    for k, (surf, d) in enumerate(zip(result.surfaces.values(), result.directions)):
        (want,) = subject.directions(1, "layer", None, seed=5 + k)
        for name in want:
            torch.testing.assert_close(d[name], want[name])
        for t, loss in zip(surf.xs, surf.loss):
            assert loss == pytest.approx(_loss_at(net, data, (t,), (d,)), rel=1e-5)
    with pytest.raises(ValueError, match=r"n_lines=6 is out of range"):
        om.OwnRequest("my conv net", dim=1, n_lines=6)


def test_pca_projection_lstsq_is_the_least_squares_fit_of_each_checkpoint(operator):
    _, net, _ = operator
    folder = Path(om.get("my conv net").folder)
    ckpts = [store_state(folder / f"ckpt_{i}.safetensors") for i in (1, 2, 3)]
    got = {}
    for projection in ("cos", "lstsq"):
        req = om.OwnRequest("my conv net", direction="pca", projection=projection, nx=3, ny=3)
        result = om.compute(req)
        assert result.main.meta["request"]["projection"] == projection
        got[projection] = np.stack(result.path, axis=1)
    d1, d2 = result.directions
    names = [k for k, _ in net.named_parameters()]
    flat = [torch.cat([d[k].reshape(-1) for k in names]).double().numpy() for d in (d1, d2)]
    final = torch.cat([dict(net.named_parameters())[k].detach().reshape(-1) for k in names])
    rows = [torch.cat([c[k].reshape(-1) for k in names]) - final for c in ckpts]
    A = np.stack(flat, axis=1)
    want = np.stack([np.linalg.lstsq(A, r.double().numpy(), rcond=None)[0] for r in rows])
    np.testing.assert_allclose(got["lstsq"], want, atol=1e-6)
    # PCA axes are orthonormal: the dot product gives the same coordinates
    np.testing.assert_allclose(got["cos"], want, atol=1e-5)
    with pytest.raises(ValueError, match="projection='proj' must be one of"):
        om.OwnRequest("my conv net", direction="pca", projection="proj")


def store_state(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_line_from_the_first_checkpoint_to_the_net(operator):
    _, net, data = operator
    folder = Path(om.get("my conv net").folder)
    first = store_state(folder / "ckpt_1.safetensors")
    req = om.OwnRequest("my conv net", dim=1, direction="interpolation", xmin=0.0, xmax=1.0, nx=3)
    line = om.compute(req).main
    params = {k: v for k, v in first.items() if k in dict(net.named_parameters())}
    assert line.loss[0] == pytest.approx(_params_loss(net, data, params), rel=1e-5)
    assert line.loss[-1] == pytest.approx(_loss_at(net, data, (), ()), rel=1e-5)
    mid = {k: 0.5 * (v + dict(net.named_parameters())[k].detach()) for k, v in params.items()}
    assert line.loss[1] == pytest.approx(_params_loss(net, data, mid), rel=1e-5)


def _exact_hessian(net, X, y):
    """The Hessian of the mean cross-entropy over every parameter, float64, by autograd."""
    model = type(net)(4, 3).eval().double()
    frozen = {k: v.detach().double() if v.is_floating_point() else v
              for k, v in net.state_dict().items()}  # fmt: skip
    names = [k for k, _ in net.named_parameters()]
    shapes = [frozen[k].shape for k in names]
    sizes = [int(np.prod(s)) for s in shapes]

    def loss(flat):
        parts = dict(zip(names, (t.reshape(s) for t, s in zip(flat.split(sizes), shapes))))
        return F.cross_entropy(
            torch.func.functional_call(model, {**frozen, **parts}, (X.double(),)), y
        )

    w = torch.cat([frozen[k].reshape(-1) for k in names])
    return torch.autograd.functional.hessian(loss, w).numpy()


@pytest.mark.slow
def test_operator_models_are_measured_like_built_in_runs_on_compare(operator):
    """The Compare page's operator tab: the same table as for trained runs (basin width,
    λmax, trace, non-convexity), checked against an exact Hessian and plain-loop lines."""
    from landscape.pipelines import comparisons

    _, net, data = operator
    folder = Path(om.get("my conv net").folder)
    second = TOML.replace('"my conv net"', '"same net again"')
    (folder / "models.toml").write_text(TOML + second)
    at = AppTest.from_file(COMPARE, default_timeout=240).run()
    assert not at.exception
    at.select_slider(key="cmp_res").set_value(11)
    at.slider(key="cmp_ndirs").set_value(2)
    at.checkbox(key="cmp_conv").check()
    at.button(key="cmp_apply").click().run()
    at.multiselect(key="cmp_om_pick").set_value(["my conv net", "same net again"]).run()
    at.button(key="cmp_om_cmp_go").click().run()
    assert not at.exception and not at.error
    comp = at.session_state["cmp_result"]["comparison"]
    a, b = comp.panels
    assert [a.label, b.label] == ["my conv net", "same net again"] and a.run is None
    np.testing.assert_allclose(a.plane.loss, b.plane.loss, rtol=1e-6)  # the same net twice
    table = at.dataframe[0].value
    for row in ("top Hessian eigenvalue λmax", "Hessian trace (± s.e.)",
                "non-convexity: mean max(−λmin, 0)/λmax", "train loss"):  # fmt: skip
        assert row in table.index and table.loc[row, "my conv net"] != "—"
    assert table.loc["test loss", "my conv net"] == "—"  # one data set
    # against an exact eigendecomposition of the Hessian (every parameter, float64)
    H = _exact_hessian(net, *data)
    ev = np.linalg.eigvalsh(H)
    assert a.top_eigenvalue == pytest.approx(ev[-1], rel=2e-3)
    assert abs(a.trace - np.trace(H)) <= 4 * a.trace_stderr + 1e-3 * abs(np.trace(H))
    ratio = a.convexity[0]
    centre = ratio[ratio.shape[0] // 2, ratio.shape[1] // 2]
    assert centre == pytest.approx(max(-ev[0], 0.0) / ev[-1], rel=0.1, abs=1e-3)
    # the loss at the weights and the basin width, from lines evaluated by a plain loop
    assert a.loss == pytest.approx(_loss_at(net, data, (), ()), rel=1e-5)
    for line, d, w in zip(a.lines, _dirs_of(a), a.widths):
        plain = [_loss_at(net, data, (t,), (d,)) for t in line.xs]
        np.testing.assert_allclose(line.loss, plain, rtol=1e-5)
        assert w == pytest.approx(comparisons.basin_width(line.xs, plain, a.level)[0], rel=1e-6)
    assert len(at.get("plotly_chart")) >= 3  # line overlay, two planes (+ convexity maps)
    # the sharpness measures of trained runs, on the models' own data
    at.button(key="rs_sharp_go").click().run()
    assert not at.exception and not at.error
    sharp = at.session_state["rs_sharp"][1]
    assert [p.label for p in sharp] == ["my conv net", "same net again"]
    assert sharp[0].values["lambda_max"] == pytest.approx(ev[-1], rel=2e-3)
    assert sharp[0].loss == pytest.approx(_loss_at(net, data, (), ()), rel=1e-5)
    assert sharp[0].values["rho"] >= 0 and sharp[0].values == pytest.approx(sharp[1].values)


def _dirs_of(panel):
    """The panel's line directions, as the Compare page seeds them (random, filter, biasbn)."""
    subject = om.open_entry(om.get(panel.label))
    return subject.directions(max(2, len(panel.lines)), panel.norm, "biasbn", seed=0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(
            dim=2,
            direction="random",
            seed=3,
            norm="layer",
            ignore="none",
            dir_type="states",
            orthogonal=True,
            xmin=-0.5,
            ymax=0.5,
            nx=3,
            ny=4,
        ),
        dict(dim=2, direction="pca", projection="lstsq", nx=3, ny=3),
        dict(dim=1, direction="interpolation", xmin=0.0, nx=3),
        dict(dim=1, direction="between", nx=3),
        dict(dim=2, direction="hessian", seed=3, nx=3, ny=3, xmin=-0.2, xmax=0.2),
        dict(dim=1, direction="random", n_lines=2, seed=1, dir_type="states", nx=4),
    ],  # fmt: skip
    ids=["random", "pca", "interpolation", "between", "hessian", "lines"],
)
def test_the_shown_command_line_recomputes_the_app_slice(operator, kw, monkeypatch, tmp_path):
    import shlex

    from landscape.cli.main import main

    result = om.compute(om.OwnRequest("my conv net", **kw))
    line = reproduce.own_model_command(result)
    argv = shlex.split(line)[3:]
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    monkeypatch.chdir(om.get("my conv net").folder)
    assert main([*argv, "--quiet"]) == 0
    cli = store.load_surface(tmp_path / "cli.npz")
    np.testing.assert_allclose(cli.xs, result.main.xs)
    np.testing.assert_allclose(cli.loss, result.main.loss, rtol=1e-5)
    if kw["direction"] == "random" and kw["dim"] == 2:  # states directions beside a path
        assert 0 <= result.path_share <= 1

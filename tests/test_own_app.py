"""The operator's models (LANDSCAPE_MODELS=models.toml) and surface files in the app.

The model lives only in the tests (tests/own_net.py), copied with its weights and data into
a folder beside the operator's models.toml; results are checked against plain loops and an
exact Hessian written here."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from landscape import operator_models as om
from landscape import store

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "loss_landscape.py")
COMPARE = str(ROOT / "app_pages" / "compare.py")

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
    surf, (d1, d2) = result.surface, result.directions
    for i, b in enumerate(surf.ys):
        for j, a in enumerate(surf.xs):
            assert surf.loss[i, j] == pytest.approx(_loss_at(net, data, (a, b), (d1, d2)), rel=1e-5)
    assert surf.meta["model"]["factory"] == "own_net:make_net"
    assert len(at.get("plotly_chart")) == 1
    # every view of the page: heatmap, 3D, accuracy
    for kind in ("heatmap", "3D"):
        at.radio(key="lp_om_view_plot").set_value(kind).run()
        assert not at.exception and len(at.get("plotly_chart")) == 1
    # PCA of the checkpoints and the line to the other net
    at.selectbox(key="lp_om_kind2").set_value("pca").run()
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    pca = at.session_state["lp_om_result"]
    assert pca.path is not None and pca.path[0][-1] == pytest.approx(0.0, abs=1e-9)
    at.radio(key="lp_om_dim").set_value("1D line").run()
    at.selectbox(key="lp_om_kind1").set_value("interpolation").run()
    at.number_input(key="lp_om_x0").set_value(0.0)
    at.number_input(key="lp_om_x1").set_value(1.0)
    at.button(key="lp_om_go").click().run()
    assert not at.exception and not at.error
    line = at.session_state["lp_om_result"].surface
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
    from landscape.__main__ import main

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


@pytest.mark.slow
def test_operator_models_side_by_side_on_compare(operator):
    _, net, data = operator
    folder = Path(om.get("my conv net").folder)
    second = TOML.replace('"my conv net"', '"same net again"')
    (folder / "models.toml").write_text(TOML + second)
    at = AppTest.from_file(COMPARE, default_timeout=120).run()
    assert not at.exception
    at.multiselect(key="cmp_om_pick").set_value(["my conv net", "same net again"]).run()
    at.radio(key="cmp_om_cmp_kind").set_value("hessian")
    at.button(key="cmp_om_cmp_go").click().run()
    assert not at.exception and not at.error
    results = at.session_state["cmp_om_cmp_result"]
    assert [r.request.entry for r in results] == ["my conv net", "same net again"]
    # the same net twice: the same numbers; its centre loss is the net's own
    np.testing.assert_allclose(results[0].surface.loss, results[1].surface.loss, rtol=1e-6)
    assert results[0].centre_loss == pytest.approx(_loss_at(net, data, (), ()), rel=1e-5)
    assert results[0].eigenvalues[0] >= results[0].eigenvalues[1] > 0
    assert len(at.get("plotly_chart")) == 2

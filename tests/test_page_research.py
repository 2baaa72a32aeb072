"""The research tools on their pages, through AppTest: the Geometry page (paths between
minima, the spectrum), the Compare page's sharpness section and rescaling demo, and the
Train page's edge-of-stability option. Numbers shown are checked against the library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from landscape.data.config import MAX_BATCH, Config
from landscape.measures import connectivity, curvature, sharpness, stability
from landscape.pipelines import presets
from landscape.storage import datastore
from landscape.training.loop import train
from landscape.ui import research as ui
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]
TINY = Config(n_samples=200, epochs=8, width=8)


@pytest.fixture(scope="module")
def tiny_run():
    return train(TINY)


def page(name: str, *runs) -> AppTest:
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/app_pages" / name), default_timeout=600)
    if runs:
        at.session_state[ui_runs._SESSION_KEY] = {r.name + f" #{i}": r for i, r in enumerate(runs)}
    at.run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.slow
def test_geometry_paths_between_minima_shows_the_library_numbers():
    at = page("geometry.py")
    at.select_slider(key="geo_steps").set_value(50)
    at.select_slider(key="geo_res").set_value(11)
    at.button(key="geo_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    base = presets.get("MLP on moons")
    a, b = train(base), train(base.replace(seed=1))
    ref = connectivity.for_runs(a, b, kind="bezier", steps=50, plane_res=11)
    assert metric(at, "Straight-line barrier") == f"{ref.barrier:.4g}"
    assert metric(at, "Bezier curve barrier") == f"{ref.curve_barrier:.4g}"
    kinds = [t["type"] for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"]]
    assert "contour" in kinds  # the plane through the three points


def test_geometry_equal_seeds_is_a_message():
    at = page("geometry.py")
    at.number_input(key="geo_seed_b").set_value(0)
    at.button(key="geo_go").click().run()
    assert not at.exception
    assert "seeds are equal" in at.error[0].value


def test_geometry_spectrum_of_a_session_run(tiny_run):
    at = page("geometry.py", tiny_run)
    at.radio(key="geo_src").set_value("a run of this session").run()
    at.slider(key="geo_vectors").set_value(2)
    at.select_slider(key="geo_lsteps").set_value(20)
    at.button(key="geo_spec_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    ds = tiny_run.dataset()
    lam = curvature.top_eigen(tiny_run.model(), tiny_run.loss_fn(), (ds.X_train, ds.y_train),
                              k=1, tol=1e-3).eigenvalues[0]  # fmt: skip
    assert float(metric(at, "λmax")) == pytest.approx(lam, rel=1e-2)
    assert metric(at, "Parameters") == f"{sum(p.numel() for p in tiny_run.model().parameters()):,}"


@pytest.mark.slow
def test_compare_sharpness_section_and_rescaling_demo(tiny_run):
    other = train(TINY.replace(seed=1, optimizer="sgd", lr=0.1))
    at = page("compare.py", tiny_run, other)
    names = list(at.session_state[ui_runs._SESSION_KEY])
    at.selectbox(key="cmp_run_a").set_value(_rid(at, names[0]))
    at.selectbox(key="cmp_run_b").set_value(_rid(at, names[1]))
    at.button(key="cmp_go_runs").click().run()
    at.button(key="rs_sharp_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    table = next(d.value for d in at.dataframe if sharpness.LABELS["asam"] in d.value.index)
    assert list(table.columns) == names
    ds = tiny_run.dataset()
    data = (ds.X_train, ds.y_train)
    rho = sharpness.rho_sharpness(tiny_run.model(), tiny_run.loss_fn(), data, 0.05).value
    assert table.loc[sharpness.LABELS["rho"], names[0]] == f"{rho:.4g}"
    at.select_slider(key="rs_alpha").set_value(5.0)
    at.button(key="rs_rescale_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    demo = at.dataframe[-1].value
    assert list(demo.columns) == ["α = 1", "α = 5"]
    row = lambda m: demo.loc[sharpness.LABELS[m]]  # noqa: E731
    assert row("asam").iloc[0] == row("asam").iloc[1]  # invariant, to the 4 digits shown
    assert float(row("lambda_max").iloc[1]) > 3 * float(row("lambda_max").iloc[0])


def test_train_page_edge_of_stability_option():
    at = page("train.py")
    at.selectbox(key="tr_opt").set_value("sgd").run()  # the option is offered with SGD
    at.select_slider(key="tr_lr").set_value(1.0)
    at.slider(key="tr_epochs").set_value(20)
    at.checkbox(key="tr_eos").check()
    at.button[[b.label for b in at.button].index("Train")].click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    res = at.session_state[ui.EOS_KEY]
    ref = stability.track(res.config, every=5)
    assert np.allclose(res.sharpness, ref.sharpness, rtol=1e-3)
    assert metric(at, "2/η") == "2"
    shapes = [json.loads(c.proto.spec)["layout"].get("shapes", []) for c in at.get("plotly_chart")]
    assert any(s.get("y0") == 2.0 for ss in shapes for s in ss)  # the 2/η line
    # Issue 25: the run joins the session's runs and is the one section 2 shows (it said
    # "Press Train above", and the run could not be sliced).
    runs = at.session_state[ui_runs._SESSION_KEY]
    assert len(runs) == 1
    (run,) = runs.values()
    assert run.config == res.config.replace(batch_size=MAX_BATCH)
    assert at.selectbox(key="tr_show").value == datastore.run_id(run.config)
    assert not any("Press **Train** above" in c.value for c in at.caption)
    # the full-batch run is the tracked one: the same losses, step by step
    assert np.allclose(run.history["train_loss"][-1], res.loss[-1], rtol=1e-4)


def test_train_page_offers_sharpness_tracking_only_with_gradient_descent():
    """Issue 25: with Adam (the default) the option could be ticked and Train showed a red
    `optimizer='adam' is not allowed...`; now it is not offered, and the page says why."""
    at = page("train.py")
    assert at.selectbox(key="tr_opt").value == "adam"
    assert at.checkbox(key="tr_eos").disabled
    assert any("needs optimiser SGD" in c.value for c in at.caption)
    at.selectbox(key="tr_opt").set_value("sgd").run()
    assert not at.checkbox(key="tr_eos").disabled
    at.checkbox(key="tr_eos").check().run()
    at.selectbox(key="tr_opt").set_value("adam").run()  # ticked, then back to Adam
    at.slider(key="tr_epochs").set_value(2)
    at.button[[b.label for b in at.button].index("Train")].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert ui.EOS_KEY not in at.session_state  # trained as usual, without tracking


def _rid(at, name: str) -> str:
    """The picker's value of the session run ``name``: its short id."""
    return datastore.run_id(at.session_state[ui_runs._SESSION_KEY][name].config)


def test_geometry_settings_are_in_the_address_and_survive_a_page_switch():
    """Issue 25: Geometry's settings were not in the address, and a page switch set them back
    (seed B 7 -> 1)."""
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=120).run()
    at.switch_page("app_pages/geometry.py").run()
    at.number_input(key="geo_seed_b").set_value(7).run()
    at.radio(key="geo_src").set_value("a run of this session").run()
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/geometry.py").run()
    assert not at.exception, at.exception
    assert at.number_input(key="geo_seed_b").value == 7
    assert at.query_params["geo_seed_b"] == "7"
    link = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=120).run()
    other = list(presets.PRESETS)[1]
    link.query_params.update({"geo_seed_b": "7", "geo_vectors": "9", "geo_preset": other})
    link.switch_page("app_pages/geometry.py").run()
    assert link.number_input(key="geo_seed_b").value == 7
    assert link.selectbox(key="geo_preset").value == other
    assert link.slider(key="geo_vectors").value == 9
    assert not any("ignored" in c.value for c in link.caption)

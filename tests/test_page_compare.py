"""The Compare page through AppTest: every real preset runs, and all panels share one colour
scale (asserted from the Plotly specs); session runs compare side by side; settings, clipping
and bad values give pictures or messages, never exceptions."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from streamlit.testing.v1 import AppTest

from landscape.data.config import Config
from landscape.pipelines import comparison_presets
from landscape.storage import datastore
from landscape.training.loop import train
from landscape.ui import compare as ui
from landscape.ui import kept
from landscape.ui import runs as ui_runs
from tests import real_presets

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "landscape/ui/server/app_pages" / "compare.py")
TINY = Config(n_samples=200, epochs=8, width=8)


@pytest.fixture(scope="module")
def two_runs():
    return train(TINY), train(TINY.replace(seed=1, optimizer="sgd", lr=0.1))


@pytest.fixture(autouse=True)
def real_scale(monkeypatch):
    monkeypatch.delenv(comparison_presets.SCALE_ENV, raising=False)
    ui.clear()
    yield


def page(*runs, timeout: float = 600) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=timeout)
    if runs:
        at.session_state[ui_runs._SESSION_KEY] = {r.name + f" #{i}": r for i, r in enumerate(runs)}
    at.run()
    assert not at.exception, at.exception
    return at


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def contours(at: AppTest) -> list[dict]:
    """The comparison's contour panels (not the Gallery's pair the skip preset shows too)."""
    return [
        t
        for s in specs(at)
        if not s["layout"].get("title", {}).get("text", "").startswith("ResNet-")
        for t in s["data"]
        if t["type"] == "contour"
    ]


def arr(value) -> np.ndarray:
    """A Plotly JSON array as NumPy: plain lists, or typed arrays {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        if value.get("shape"):
            out = out.reshape([int(n) for n in str(value["shape"]).split(",")])
        return out.astype(np.float64)
    return np.array(value, dtype=np.float64)


def assert_one_scale(traces: list[dict]) -> None:
    """Every contour panel: the same zmin, zmax, levels, colour scale and colour bar."""
    first = traces[0]
    assert first["zauto"] is False and first["autocontour"] is False
    for t in traces:
        assert t["zmin"] == first["zmin"] and t["zmax"] == first["zmax"]
        assert t["contours"] == first["contours"]
        assert t["colorscale"] == first["colorscale"]
        assert t["contours"]["start"] == t["zmin"] and t["contours"]["end"] == t["zmax"]
        assert t["colorbar"] == first["colorbar"]
    # the shared range covers every panel's finite values (log10 of the loss)
    zs = np.concatenate([arr(t["z"]).ravel() for t in traces])
    zs = zs[np.isfinite(zs)]
    assert zs.min() == pytest.approx(first["zmin"]) and zs.max() == pytest.approx(first["zmax"])


def test_empty_page_explains_what_to_do():
    at = page()
    assert any("Pick a preset" in i.value for i in at.info)
    assert not at.get("plotly_chart")
    assert any("No trained runs" in i.value for i in at.info)


@pytest.mark.slow
@real_presets.GROUP
@pytest.mark.parametrize("key", list(comparison_presets.PRESETS))
def test_every_real_preset_runs_and_shares_one_colour_scale(key):
    """Each real preset drawn from its measurement (made once for this and
    tests/test_comparisons.py: see tests/real_presets.py)."""
    preset = comparison_presets.PRESETS[key]
    real_presets.measured(key)
    at = page()
    at.button(key=f"cmp_preset_{key}").click().run()
    assert not at.exception, (key, at.exception)
    assert not at.error, (key, [e.value for e in at.error])
    traces = contours(at)
    assert [t["name"] for t in traces] == [p.label for p in preset.panels]
    assert_one_scale(traces)
    table = at.dataframe[0].value
    assert list(table.columns) == [p.label for p in preset.panels]
    assert any(preset.literature[:40] in m.value for m in at.markdown)
    lines = [s for s in specs(at) if "first random direction" in s["layout"]["title"]["text"]]
    assert len(lines) == 1
    assert [t["name"] for t in lines[0]["data"] if t.get("showlegend", True)] == [
        p.label for p in preset.panels
    ]
    # the preset's runs joined the session's run list (pickable on the other pages)
    assert len(at.session_state[ui_runs._SESSION_KEY]) == len({p.config for p in preset.panels})


def test_session_runs_side_by_side(two_runs):
    a, b = two_runs
    at = page(a, b)
    names = list(at.session_state[ui_runs._SESSION_KEY])
    at.selectbox(key="cmp_run_a").set_value(_rid(at, names[0]))
    at.selectbox(key="cmp_run_b").set_value(_rid(at, names[1]))
    at.selectbox(key="cmp_norm_b").set_value("layer")
    at.button(key="cmp_go_runs").click().run()
    assert not at.exception and not at.error
    traces = contours(at)
    assert [t["name"] for t in traces] == names
    assert_one_scale(traces)
    table = at.dataframe[0].value
    assert list(table.columns) == names
    assert table.loc["directions", names[1]] == "layer"
    # the numbers drawn are the library's: the centre of each plane is the run's train loss
    for t, run in zip(traces, (a, b)):
        z = arr(t["customdata"])
        assert z[z.shape[0] // 2, z.shape[1] // 2] == pytest.approx(
            run.history["train_loss"][-1], rel=1e-5
        )


def test_settings_apply_recomputes_and_clip_is_shared(two_runs):
    at = page(*two_runs)
    names = list(at.session_state[ui_runs._SESSION_KEY])
    at.selectbox(key="cmp_run_a").set_value(_rid(at, names[0]))
    at.selectbox(key="cmp_run_b").set_value(_rid(at, names[1]))
    at.button(key="cmp_go_runs").click().run()
    at.select_slider(key="cmp_res").set_value(11)
    at.slider(key="cmp_ndirs").set_value(2)
    at.button(key="cmp_apply").click().run()
    assert not at.exception and not at.error
    traces = contours(at)
    assert all(arr(t["z"]).shape == (11, 11) for t in traces)
    lo, hi = 10 ** traces[0]["zmin"], 10 ** traces[0]["zmax"]
    clip = math.sqrt(lo * hi)
    at.number_input(key="cmp_clip").set_value(clip).run()
    assert not at.exception
    traces = contours(at)
    assert_one_scale(traces)
    assert 10 ** traces[0]["zmax"] == pytest.approx(clip, rel=1e-9)
    notes = [a["text"] for s in specs(at) for a in s["layout"].get("annotations", [])]
    assert any("clipped" in n for n in notes)


def test_one_run_twice_and_clip_below_every_value_is_a_message(two_runs):
    at = page(*two_runs)
    at.selectbox(key="cmp_norm_b").set_value("none")
    at.button(key="cmp_go_runs").click().run()  # both pickers on the newest run
    assert not at.exception and not at.error
    assert [t["name"] for t in contours(at)][1].endswith("(right)")
    at.number_input(key="cmp_clip").set_value(1e-9).run()
    assert not at.exception
    assert any("zmax=" in shown(e.value) for e in at.error)


def test_scaled_presets_for_speed_run_too(monkeypatch):
    """The scale switch the tests may use is honoured and said on the page."""
    monkeypatch.setenv(comparison_presets.SCALE_ENV, "0.2")
    at = page()
    at.button(key="cmp_preset_norm").click().run()
    assert not at.exception and not at.error
    assert any("Scaled-down preset" in c.value for c in at.caption)
    assert_one_scale(contours(at))


def test_the_skip_preset_shows_the_deep_pair_and_the_tables_figures(monkeypatch):
    """The headline lesson on Compare: the Gallery's deepest pair, drawn with Li et al.'s
    contour lines, chaotic without skips and smooth with; the claims' figures under the text
    are the table's."""
    monkeypatch.setenv(comparison_presets.SCALE_ENV, "0.2")
    at = page()
    at.button(key="cmp_preset_skip").click().run()
    assert not at.exception and not at.error
    deep = [s for s in specs(at) if s["layout"]["title"]["text"].startswith("ResNet-56")]
    titles = sorted(s["layout"]["title"]["text"] for s in deep)
    assert titles == ["ResNet-56, no skips: chaotic", "ResNet-56, with skips: smooth"]
    for s in deep:
        (c,) = [t for t in s["data"] if t["type"] == "contour"]
        assert c["contours"]["coloring"] == "lines" and c["contours"]["size"] == 0.5
    (measured,) = [c.value for c in at.caption if c.value.startswith("Measured in this run")]
    table = at.dataframe[0].value
    top = table.loc["top Hessian eigenvalue λmax"]
    # the same four significant digits as the table
    assert f"no skips {top['no skips']} = " in measured
    assert f"with skips's {top['with skips']} " in measured


@pytest.mark.slow
def test_a_queued_preset_waits_then_draws_and_is_cached(monkeypatch, tmp_path):
    """Every worker busy: the preset's training and measuring queue (the note drawn outside
    the cache's replay recording), then run; the repeat is a clean cache hit."""
    import worker_jobs as jobs

    from landscape.ui import workers

    monkeypatch.setenv(comparison_presets.SCALE_ENV, "0.2")
    ui_runs.run_cache().clear()
    # An empty data folder: runs or results kept by an earlier test would not queue.
    monkeypatch.setenv("LANDSCAPE_DATA_DIR", str(tmp_path / "data"))
    kept._store_or_error.clear()
    pool = workers.Pool(size=1).start()
    monkeypatch.setattr(workers, "_shared", pool)
    try:
        busy = jobs.hold_the_worker_until_a_job_queues(pool, monkeypatch, str(tmp_path / "go"))
        assert pool.busy() == 1
        at = page()
        assert busy.is_alive()  # so the preset's first job has to queue
        at.button(key="cmp_preset_norm").click().run()
        busy.join()
        assert (tmp_path / "go").exists()  # the preset's job did queue
        assert not at.exception and not at.error
        assert_one_scale(contours(at))
        assert not any("queued" in i.value for i in at.info)
        at.button(key="cmp_preset_norm").click().run()  # cached: nothing to replay
        assert not at.exception and not at.error
        assert_one_scale(contours(at))
    finally:
        pool.shutdown()
        kept._store_or_error.clear()


# ---------------------------------------------------------------------------------------------
# the shared colour scale itself (landscape.plots.compare)


def _plane(z):
    from landscape.engine.surface import Surface

    z = np.asarray(z, dtype=float)
    return Surface("plane", np.arange(z.shape[1]) - 1.0, np.arange(z.shape[0]) - 1.0, z, None)


def test_colour_scale_log_linear_clip_and_nan():
    from landscape.plots import compare as plots

    a, b = _plane([[1, 2, 3], [4, 0.5, 6]]), _plane([[10, np.nan, 30], [40, 2, np.inf]])
    s = plots.colour_scale([a, b])
    assert s["log"] and (s["lo"], s["hi"]) == (0.5, 40.0)
    assert s["zmin"] == pytest.approx(math.log10(0.5)) and s["zmax"] == pytest.approx(
        math.log10(40)
    )
    figs = plots.contour_panels([a, b], ["a", "b"], zmax=20.0)
    assert all(f.data[0].zmax == pytest.approx(math.log10(20.0)) for f in figs)
    note = figs[1].layout.annotations[0].text
    assert "2 NaN/inf points masked" in note and "2 points above 20 clipped" in note
    lin = plots.colour_scale([a, _plane([[-1, 0, 1], [2, 3, 4]])])  # a loss <= 0: linear
    assert not lin["log"] and lin["zmin"] == -1.0
    with pytest.raises(ValueError, match="no finite"):
        plots.colour_scale([_plane([[np.nan, np.inf], [np.nan, np.nan]])])
    with pytest.raises(ValueError, match="zmax="):
        plots.contour_panels([a], ["a"], zmax=0.1)
    with pytest.raises(ValueError, match="names"):
        plots.contour_panels([a, b], ["a"])


def _rid(at, name: str) -> str:
    """The picker's value of the session run ``name``: its short id."""
    return datastore.run_id(at.session_state[ui_runs._SESSION_KEY][name].config)


def test_the_address_names_the_comparison_after_a_page_switch_and_a_reload(monkeypatch):
    """Issue 25: after a page switch and back the page still showed the comparison, but the
    address had lost ?preset=, so Copy link gave a bare /compare; a reload of the address
    brings back the comparison and the log-axis toggle."""
    monkeypatch.setenv(comparison_presets.SCALE_ENV, "0.2")
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=600)
    at.switch_page("app_pages/compare.py").run()
    at.button(key="cmp_preset_norm").click().run()
    at.checkbox(key="cmp_log_y").check().run()
    assert at.query_params["preset"] == "norm"
    at.switch_page("app_pages/home.py").run()
    at.query_params.clear()  # the browser opens the other page without this page's parameters
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert at.query_params["preset"] == "norm"
    reload = AppTest.from_file(
        str(ROOT / "landscape/ui/server/lab.py"), default_timeout=600
    ).run()  # a fresh tab
    reload.query_params.update({"preset": "norm", "cmp_log_y": "true"})  # the copied link
    reload.switch_page("app_pages/compare.py").run()
    assert not reload.exception, reload.exception
    assert reload.checkbox(key="cmp_log_y").value is True
    assert reload.dataframe and any("Normalisation" in s.value for s in reload.subheader)

"""URL state and restore, through AppTest: hostile query strings never raise (hypothesis),
a link's values reach the widgets, "Load settings" validates its JSON, and the Train form
rebuilds exactly the Config it was given ("Open in Train" / "Reset to this preset")."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

import landscape.training.loop  # noqa: F401  the package first, not app_pages/loss_landscape.py
from landscape.data.config import Config
from landscape.pipelines import presets
from landscape.ui import kept, library

PAGES = Path(__file__).resolve().parents[1] / "landscape/ui/server/app_pages"

# Parameter names the pages bind, plus unknown ones; values from every family of junk.
NAMES = ["out_delta", "out_n", "out_c", "reg_range", "reg_losses", "ce_classes", "bin_losses",
         "reg_huber_delta", "reg_barron_alpha_neginf", "nosuch", "run", "", "a" * 300]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "1e308",
            "-1",
            "0",
            "",
            "true",
            "mse",
            "Huber",
            "2.5",
            "10",
            "[]",
            "{}",
            "%00",
            "../../etc/passwd",
            "<script>",
        ]
    ),  # fmt: skip
    st.text(max_size=40),
    st.floats(allow_nan=True).map(repr),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5))
def test_hostile_query_strings_never_raise(params):
    at = AppTest.from_file(str(PAGES / "loss_shapes.py"), default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, (params, at.exception)
    for s in at.slider:  # whatever the link said, every slider holds a value in its range
        vals = s.value if isinstance(s.value, tuple) else (s.value,)
        assert all(s.min <= v <= s.max for v in vals), (s.label, s.value)


def test_link_values_reach_the_widgets():
    at = AppTest.from_file(str(PAGES / "loss_shapes.py"), default_timeout=120)
    at.query_params.update({"out_delta": "2.5", "out_n": "10", "reg_range": ["-6.0", "6.0"]})
    at.run()
    assert not at.exception
    assert at.slider(key="out_delta").value == 2.5
    assert at.slider(key="out_n").value == 10
    assert at.slider(key="reg_range").value == (-6.0, 6.0)


@pytest.mark.parametrize(
    "raw, field",
    [
        ("", "empty"),
        ("[1, 2]", "JSON object"),
        ("{not json", "not JSON"),
        ('{"lr": -1}', "lr"),
        ('{"epochs": 100000}', "epochs"),
        ('{"dataset": "nope"}', "dataset"),
        ('{"unknown_field": 1}', "unknown_field"),
        ('{"loss": "cross_entropy", "loss_params": {"label_smoothing": "x"}}', "label_smoothing"),
    ],
)
def test_load_settings_rejects_bad_json_with_one_clear_error(raw, field):
    with pytest.raises(ValueError, match=field):
        library.config_from_json(raw)


def test_load_settings_accepts_a_downloaded_config():
    c = Config(dataset="spiral2", lr=0.1, epochs=30, seed=4, model="resmlp", depth=3)
    assert library.config_from_json(c.to_json()) == c


def _train_page_config(config: Config) -> tuple[Config, list[str]]:
    """Put ``config`` in the Train form the way "Open in Train" does; read the form back."""
    at = AppTest.from_file(str(PAGES / "train.py"), default_timeout=120)
    at.session_state[library.TRAIN_PENDING] = config
    at.run()
    assert not at.exception, at.exception
    notes = [i.value for i in at.info]
    got = at.session_state  # the form's values, read as the page builds its Config
    kw = {
        "dataset": got["tr_dataset"],
        "lr": got["tr_lr"],
        "epochs": got["tr_epochs"],
        "seed": int(got["tr_seed"]),
        "optimizer": got["tr_opt"],
        "batch_size": got["tr_batch"],
        "weight_decay": got["tr_wd"],
        "momentum": got["tr_mom"],
    }
    return kw, notes


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_reset_to_preset_fills_the_form(name):
    config = presets.get(name)
    kw, notes = _train_page_config(config)
    expected = {k: getattr(config, k) for k in kw}
    assert kw == expected, notes


def test_a_config_off_the_sliders_is_snapped_with_a_note():
    kw, notes = _train_page_config(Config(lr=0.07, batch_size=100))
    assert kw["lr"] == 0.05 and kw["batch_size"] == 128
    assert any("lr=0.07" in n for n in notes) and any("batch_size=100" in n for n in notes)


JUNK = {
    "train.py": {"tr_dataset": "nope", "tr_lr": "-3", "tr_epochs": "1e9", "tr_seed": "x",
                 "tr_opt": "<b>", "tr_n_moons": "nan", "tr_batch": ["1", "2"]},
    "loss_landscape.py": {"run": "../../etc", "lp_plot": "4D", "lp_nx2": "1000000",
                          "lp_dim": "", "lp_crange": ["a", "b"], "lp_seed2random": "-1"},
    "compare.py": {"preset": "nope", "runs": "x~y~z", "cmp_res": "7", "cmp_level": "inf",
                   "cmp_split": "validation", "cmp_seed": "1.5"},
}  # fmt: skip


@pytest.mark.parametrize("page", list(JUNK))
def test_junk_links_on_the_other_pages_never_raise(page):
    at = AppTest.from_file(str(PAGES / page), default_timeout=120)
    for k, v in JUNK[page].items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_home_lists_pinned_runs_and_opens_one_in_train(tmp_path, monkeypatch):
    """A run pinned from the command line is in Home's Classroom list; "Open in Train" puts
    its config in the Train form; the usage line names the folder and the cap."""
    from landscape.cli import main as cli
    from landscape.storage import datastore

    folder = tmp_path / "data"
    monkeypatch.setenv(datastore.DATA_DIR_ENV, str(folder))
    monkeypatch.setenv(datastore.MAX_MB_ENV, "50")
    kept._store_or_error.clear()
    try:
        flags = ["--dataset", "xor", "--epochs", "3", "--n-samples", "100", "--lr", "0.1"]
        out = str(tmp_path / "run.npz")
        assert cli.main(["train", "--store", *flags, "--quiet", "--out", out]) == 0
        config = Config(dataset="xor", epochs=3, n_samples=100, lr=0.1)
        rid = datastore.run_id(config)
        assert cli.main(["pin", rid]) == 0
        at = AppTest.from_file(str(PAGES.parent / "lab.py"), default_timeout=120).run()
        assert not at.exception, at.exception
        assert any(rid in t.value for t in at.text), [t.value for t in at.text]
        usage = " ".join(c.value for c in at.caption)
        assert str(folder) in usage and "of 50 MB" in usage and "1 pinned" in usage
        at.button(key=f"pin_train_{rid}").click().run()
        assert not at.exception, at.exception
        assert at.session_state["tr_dataset"] == "xor" and at.session_state["tr_lr"] == 0.1
        assert at.session_state["tr_epochs"] == 3
    finally:
        kept._store_or_error.clear()


def _landscape_with_a_run(params: dict) -> AppTest:
    from landscape.storage import datastore
    from landscape.training.loop import train
    from landscape.ui import runs as ui_runs

    at = AppTest.from_file(str(PAGES.parent / "lab.py"), default_timeout=120).run()
    at.switch_page("app_pages/loss_landscape.py")  # after the first run: Home comes first
    run = train(Config(n_samples=60, epochs=2, width=4))
    at.session_state[ui_runs._SESSION_KEY] = {run.name: run}
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="run__pick").value == datastore.run_id(run.config)
    for k, v in params.items():
        at.query_params[k] = v
    return at


def _note(at) -> str:
    (note,) = [c.value for c in at.caption if "were ignored" in c.value]
    return note


def test_a_path_as_run_is_noted_and_leaves_the_address(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_DATA_DIR", str(tmp_path / "data"))
    kept._store_or_error.clear()
    at = _landscape_with_a_run({"run": "../../../../etc/passwd"}).run()
    assert not at.exception, at.exception
    assert "run" in _note(at).split(" were ignored")[0]
    assert at.query_params.get("run") == at.selectbox(key="run__pick").value  # the run shown
    kept._store_or_error.clear()


def test_a_thousand_unknown_parameters_cost_what_three_do(tmp_path, monkeypatch):
    """Each ignored parameter used to leave the address in its own message, re-encoding the
    whole query string each time (1,000 parameters: seconds per run): now one message."""
    from streamlit.runtime.state.query_params import QueryParams

    monkeypatch.setenv("LANDSCAPE_DATA_DIR", str(tmp_path / "data"))
    kept._store_or_error.clear()
    sent: list[int] = []
    real = QueryParams._send_query_param_msg

    def counting(self):
        sent.append(len(self._query_params))
        return real(self)

    monkeypatch.setattr(QueryParams, "_send_query_param_msg", counting)
    work = {}
    for n in (3, 990):
        at = _landscape_with_a_run({f"zz{i}": "1" for i in range(n)})
        sent.clear()
        at.run()
        assert not at.exception, at.exception
        note = _note(at)
        assert "zz0" in note and (n == 3 or f"and {n - 12} more" in note)
        assert not [k for k in at.query_params if k.startswith("zz")]
        work[n] = (len(sent), sum(sent))  # messages, and parameters encoded in them
    assert work[990] == work[3], work
    kept._store_or_error.clear()


def test_the_private_streamlit_query_params_api_links_uses_is_still_there():
    """links.py trims the address in one message through Streamlit's internal QueryParams
    (st.query_params has no bulk removal): fail loudly here when an upgrade changes it."""
    from streamlit.runtime.state.query_params import QueryParams
    from streamlit.runtime.state.session_state_proxy import get_session_state

    assert callable(get_session_state)
    for name in ("get_all", "is_bound", "discard_param_no_forward_msg", "update"):
        assert callable(getattr(QueryParams, name, None)), name

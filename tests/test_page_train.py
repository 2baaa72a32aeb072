"""The Train page through Streamlit's AppTest: train a small config and see its curves, a
diverging config shows a warning (no exception), runs join the list, the cache is used, and
nothing trains on a widget change."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from streamlit.testing.v1 import AppTest

import landscape.data.datasets
import landscape.training.loop  # noqa: F401  the package first, not app_pages/loss_landscape.py
from landscape.data import models
from landscape.data.config import Config
from landscape.storage import datastore
from landscape.training import loop as training
from landscape.ui import runs as ui_runs

PAGE = str(Path(__file__).resolve().parents[1] / "landscape/ui/server/app_pages" / "train.py")


@pytest.fixture(autouse=True)
def fresh_cache():
    ui_runs.run_cache().clear()
    yield
    ui_runs.run_cache().clear()


def _app() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _arr(v) -> np.ndarray:
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def _figs(at) -> dict[str, dict]:
    """Every Plotly figure on the page by title: st.plotly_chart's, and the live panel's
    (landscape.ui.livechart, a component whose "figure" argument is the figure's JSON)."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    for c in at.get("component_instance"):
        args = json.loads(c.proto.json_args)
        if "figure" in args:
            figs.append(json.loads(args["figure"]))
    return {f["layout"].get("title", {}).get("text", ""): f for f in figs}


def _small(at, epochs=8, lr=0.01):
    """Set a small config; form widgets only count when submitted in the same run."""
    at.slider(key="tr_n_moons").set_value(300)
    at.slider(key="tr_epochs").set_value(epochs)
    at.select_slider(key="tr_lr").set_value(lr)


def _submit(at):
    at.button[[b.label for b in at.button].index("Train")].click()
    at.run()
    assert not at.exception, at.exception


def test_page_loads_with_preview_and_parameter_count():
    at = _app()
    figs = _figs(at)
    assert any("training points" in t for t in figs)  # the data preview
    assert [m.value for m in at.metric if m.label == "Parameters"] == ["1,218"]
    assert not at.error and not at.warning


@pytest.mark.parametrize("dataset", list(landscape.data.datasets.DATASETS))
def test_every_dataset_previews_and_counts_parameters(dataset):
    at = _app()
    at.selectbox(key="tr_dataset").set_value(dataset)
    at.run()
    assert not at.exception and not at.error
    assert any("training points" in t for t in _figs(at))
    (count,) = [m.value for m in at.metric if m.label == "Parameters"]
    assert int(count.replace(",", "")) > 0
    if landscape.data.datasets.DATASETS[dataset].kind == "image":  # the CNN is offered for images
        model_box = next(s for s in at.selectbox if s.label == "Model")
        assert {"Small CNN (images)", "Residual CNN (images)"} <= set(model_box.options)
        model_box.set_value("cnn")
        at.run()
        # the page's count is the built model's (digits: the documented 38,282)
        cfg = Config(dataset=dataset, model="cnn")
        expected = models.count_params(models.build(cfg, cfg.make_dataset()))
        assert [m.value for m in at.metric if m.label == "Parameters"] == [f"{expected:,}"]
        assert dataset != "digits" or expected == 38_282


def test_train_a_small_config_shows_curves_and_joins_the_list():
    at = _app()
    at.slider(key="tr_n_moons").set_value(300)
    at.slider(key="tr_depth_mlp").set_value(3)
    at.run()  # widget changes alone train nothing
    assert len(at.session_state["landscape_runs"]) == 0
    assert [m.value for m in at.metric if m.label == "Parameters"] == ["2,274"]  # 3x32 MLP
    at.slider(key="tr_depth_mlp").set_value(2)
    _small(at)
    _submit(at)
    runs = at.session_state["landscape_runs"]
    assert len(runs) == 1
    ((name, run),) = runs.items()
    assert run.config.epochs == 8 and run.config.n_samples == 300 and not run.diverged
    figs = _figs(at)
    loss = figs["Loss"]
    curves = {t["name"]: _arr(t["y"]) for t in loss["data"]}
    np.testing.assert_allclose(curves["train"], run.history["train_loss"])
    np.testing.assert_allclose(curves["test"], run.history["test_loss"])
    np.testing.assert_allclose(_arr(figs["Accuracy"]["data"][1]["y"]), run.history["test_acc"])
    assert "Decision regions" in figs
    assert any(f.startswith("Runs compared") for f in figs)  # the overlay of the run list
    assert list(at.dataframe[0].value["run"]) == [name]
    assert not at.warning and not at.error
    # the log toggle redraws the loss chart on a log axis
    at.toggle(key="tr_log").set_value(True)
    at.run()
    assert _figs(at)["Loss"]["layout"]["yaxis"]["type"] == "log"


def test_diverging_config_shows_a_warning_and_no_exception():
    at = _app()
    _small(at, epochs=20, lr=1e6)
    _submit(at)
    (run,) = at.session_state["landscape_runs"].values()
    assert run.diverged
    warnings = [w.value for w in at.warning]
    assert any("Diverged in epoch" in w and str(run.diverged_epoch) in w for w in warnings)
    assert not at.exception


def test_same_config_twice_is_not_trained_twice(monkeypatch, inline_jobs):
    calls = []
    real = training.train

    def counting(config, progress=None):
        calls.append(config)
        return real(config, progress)

    monkeypatch.setattr(training, "train", counting)
    at = _app()
    _small(at, epochs=3)
    _submit(at)
    _small(at, epochs=3)
    _submit(at)
    assert len(calls) == 1
    assert any("from the cache" in i.value for i in at.info)
    assert len(at.session_state["landscape_runs"]) == 1  # the same config is listed once
    # a second session gets the cached run too
    at2 = _app()
    _small(at2, epochs=3)
    _submit(at2)
    assert len(calls) == 1


def test_two_runs_overlay_and_delete():
    at = _app()
    _small(at, epochs=3)
    _submit(at)
    _small(at, epochs=3, lr=0.1)
    _submit(at)
    runs = at.session_state["landscape_runs"]
    assert len(runs) == 2
    overlay = next(f for t, f in _figs(at).items() if t.startswith("Runs compared"))
    assert {t["name"] for t in overlay["data"]} == set(runs)
    at.selectbox(key="tr_delete_pick").set_value(list(runs)[0])
    at.button(key="tr_delete").click()
    at.run()
    assert not at.exception
    assert len(at.session_state["landscape_runs"]) == 1


def test_regression_set_shows_the_fit_and_no_accuracy():
    at = _app()
    at.selectbox(key="tr_dataset").set_value("sine")
    at.run()
    assert not at.exception
    at.slider(key="tr_n_sine").set_value(200)
    at.slider(key="tr_epochs").set_value(5)
    _submit(at)
    figs = _figs(at)
    assert "Fitted function" in figs and "Accuracy" not in figs
    (run,) = at.session_state["landscape_runs"].values()
    assert run.config.loss == "mse"  # the default loss for regression data


def test_training_error_is_shown_as_a_message_not_a_traceback(monkeypatch, inline_jobs):
    def failing(config, progress=None):
        raise ValueError("width=999 is out of range: must be in [2, 256]")

    monkeypatch.setattr(training, "train", failing)
    at = _app()
    _small(at, epochs=2)
    _submit(at)
    assert [shown(e.value) for e in at.error] == ["width=999 is out of range: must be in [2, 256]"]
    assert len(at.session_state["landscape_runs"]) == 0


def test_upload_choice_waits_for_a_file_without_error():
    """Choosing 'Your own CSV' shows the uploader and a hint; nothing else on the page breaks."""
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="tr_dataset").set_value("__upload__").run()
    assert not at.exception, at.exception
    assert any("Upload a CSV" in i.value for i in at.info)


def _live_curve(at) -> dict:
    return _figs(at)["Loss (live)"]


def test_live_step_play_pause_and_lr_change_continue_from_the_weights():
    at = _app()
    at.slider(key="tr_n_moons").set_value(300)
    at.run()
    at.button(key="tr_live_step").click()  # one epoch: 240 points / batch 64 = 4 steps
    at.run()
    assert not at.exception, at.exception
    t = at.session_state["tr_live"]
    assert (t.steps, t.epochs_done) == (4, 1)
    step_trace = next(d for d in _live_curve(at)["data"] if d["name"] == "train (each step)")
    assert len(_arr(step_trace["y"])) == 4
    weights = [p.detach().clone() for p in t.model.parameters()]
    # paused: a new learning rate and optimiser apply to the same trainer and weights
    at.select_slider(key="tr_lr").set_value(0.1)
    at.selectbox(key="tr_opt").set_value("momentum")
    at.run()
    assert not at.slider(key="tr_mom").disabled  # the momentum slider follows the optimiser
    import torch

    assert all(torch.equal(a, b) for a, b in zip(weights, t.model.parameters()))
    at.button(key="tr_live_step").click()
    at.run()
    t2 = at.session_state["tr_live"]
    assert t2 is t and t.steps == 8 and t.config.lr == 0.1 and t.config.optimizer == "momentum"
    assert isinstance(t.opt, torch.optim.SGD) and t.opt.param_groups[0]["momentum"] == 0.9
    # play: the fragment trains a chunk on every run; pause stops it
    at.button(key="tr_live_play").click()
    at.run()
    assert at.session_state["tr_live_playing"] and t.steps > 8
    playing_steps = t.steps
    at.button(key="tr_live_pause").click()
    at.run()
    assert not at.session_state["tr_live_playing"] and t.steps == playing_steps
    assert not at.exception and not at.error


def test_momentum_slider_is_disabled_with_adam():
    at = _app()
    assert at.selectbox(key="tr_opt").value == "adam"
    assert at.slider(key="tr_mom").disabled


def test_diverged_run_draws_its_steps_and_marks_where_it_stopped():
    at = _app()
    at.select_slider(key="tr_lr").set_value(1e6)
    at.slider(key="tr_epochs").set_value(5)
    _submit(at)
    fig = _figs(at)["Loss"]
    names = [d.get("name") for d in fig["data"]]
    assert "diverged here" in names and fig["layout"]["yaxis"]["type"] == "log"
    steps = next(d for d in fig["data"] if d["name"] == "train (each step)")
    assert len(_arr(steps["y"])) >= 1  # drawn even when it diverged in epoch 1
    metrics = [m.label for m in at.metric]
    assert any(label.startswith("Train loss (epoch") for label in metrics)


def test_stability_demo_trains_both_sides_of_the_limit():
    at = _app()
    at.button(key="tr_stab_train").click()
    at.run()
    assert not at.exception, at.exception
    fig = _figs(at)["Step size vs the stable limit"]
    by = {d["name"]: d for d in fig["data"]}
    assert len(_arr(by["converged"]["x"])) == 1 and len(_arr(by["diverged"]["x"])) == 1
    from landscape.measures import steplimit as stability

    limit = stability.quadratic_limit(stability.DEMO)[1]
    assert _arr(by["converged"]["x"])[0] < limit < _arr(by["diverged"]["x"])[0]


def test_a_run_that_blew_up_at_once_is_drawn_and_labelled_honestly():
    """Issue 25, lr 1e6: the loss chart showed two dots and an X on an axis titled "loss
    (log)" beside a Log-scale toggle that was off, and the accuracy chart was empty."""
    at = _app()
    at.select_slider(key="tr_lr").set_value(1e6)
    at.slider(key="tr_epochs").set_value(5)
    _submit(at)
    (run,) = at.session_state["landscape_runs"].values()
    assert run.diverged and run.diverged_epoch == 1
    assert "tr_log" not in [t.key for t in at.toggle]  # no toggle that says "off"
    assert any("loss axis is logarithmic" in c.value for c in at.caption)
    loss = _figs(at)["Loss"]
    steps = next(d for d in loss["data"] if d["name"] == "train (each step)")
    assert "markers" in steps["mode"]  # each of the few steps is a visible point
    acc = _figs(at)["Accuracy"]
    assert all(d["mode"] == "markers" and len(_arr(d["y"])) == 1 for d in acc["data"])


def test_sgd_that_ends_at_chance_gets_a_warning():
    """Issue 25: SGD at lr 10 on moons ended at 50 % accuracy with no word on the page."""
    at = _app()
    at.selectbox(key="tr_opt").set_value("sgd").run()
    at.slider(key="tr_epochs").set_value(30)
    at.select_slider(key="tr_lr").set_value(10.0)
    _submit(at)
    (run,) = at.session_state["landscape_runs"].values()
    y = run.dataset().y_train
    chance = float(y.bincount().max()) / len(y)
    acc = run.history["train_acc"][-1]
    said = [w.value for w in at.warning if "No better than guessing" in w.value]
    assert bool(said) == (not run.diverged and acc <= chance + 0.02), (acc, chance, run.diverged)
    assert said, "lr 10 with SGD should end at chance on moons"


def test_the_run_table_says_dash_not_none_for_a_regression_run():
    """Issue 25: the run table showed "test acc None" for a regression run."""
    run = training.train(Config(dataset="sine", n_samples=100, epochs=2, loss="mse"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["landscape_runs"] = {"sine": run}
    at.run()
    (table,) = [d.value for d in at.dataframe if "test acc" in d.value.columns]
    assert list(table["test acc"]) == ["—"]


def _play_to_the_end(at, max_frames=20):
    at.button(key="tr_live_play").click()
    at.run()
    for _ in range(max_frames):  # each run trains one chunk
        assert not at.exception, at.exception
        if not at.session_state["tr_live_playing"]:
            return
        at.run()
    raise AssertionError("Play did not stop")


def test_live_play_stops_at_epochs_and_the_net_becomes_a_normal_run():
    at = _app()
    at.slider(key="tr_n_moons").set_value(300)
    at.slider(key="tr_epochs").set_value(2)  # 240 points / batch 64 = 4 steps an epoch
    at.run()
    _play_to_the_end(at)
    t = at.session_state["tr_live"]
    assert (t.steps, t.epochs_done) == (8, 2) and t.finished
    assert any("Finished: 2 epochs" in i.value for i in at.info)
    at.button(key="tr_live_play").click()
    at.run()  # Play at the end does nothing
    assert t.steps == 8 and not at.session_state["tr_live_playing"]
    # the live net is in the session's runs, and it is train(config) bit for bit
    runs = at.session_state["landscape_runs"]
    assert len(runs) == 1
    run = next(iter(runs.values()))
    ref = training.train(t.config)
    assert run.config == t.config == Config(n_samples=300, epochs=2)
    assert run.step_loss == ref.step_loss and np.array_equal(run.trajectory, ref.trajectory)
    # raising Epochs lets Play go on; the longer run joins the list too
    at.slider(key="tr_epochs").set_value(3)
    at.run()
    _play_to_the_end(at)
    assert (t.steps, t.epochs_done) == (12, 3) and len(at.session_state["landscape_runs"]) == 2


def test_live_run_opens_on_the_landscape_page():
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "lab.py"), default_timeout=120).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    at.slider(key="tr_n_moons").set_value(300)
    at.slider(key="tr_epochs").set_value(1)
    at.run()
    at.button(key="tr_live_step").click()
    at.run()
    assert at.session_state["tr_live"].finished
    at.button(key="tr_live_open").click()
    at.run()
    assert not at.exception, at.exception
    rid = datastore.run_id(Config(n_samples=300, epochs=1))
    assert at.session_state["run__pick"] == rid  # the Landscape page's picker shows it
    assert at.selectbox(key="run__pick").value == rid


def test_live_divergence_names_the_step_the_status_line_shows():
    at = _app()
    at.slider(key="tr_n_moons").set_value(300)
    at.select_slider(key="tr_lr").set_value(1e6)
    at.run()
    at.button(key="tr_live_step").click()
    at.run()
    assert not at.exception, at.exception
    t = at.session_state["tr_live"]
    assert t.diverged
    status = next(c.value for c in at.caption if c.value.startswith("step "))
    shown_step = int(status.split()[1].replace(",", ""))
    warning = next(w.value for w in at.warning if "Diverged" in w.value)
    assert f"after step {shown_step:,}:" in warning and shown_step == t.steps

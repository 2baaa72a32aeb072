"""Train: set up a small net, watch it learn, compare runs.

Thin page: widgets -> landscape.data.config.Config -> landscape.ui.runs.train_cached -> figures
from landscape.plots.training. Choices that change the data preview or the parameter count
(dataset, model, loss) sit in a fragment, so moving them redraws only the set-up panel; the
optimiser settings sit in a form, and only its Train button trains.
"""

import json
import math

import streamlit as st

from landscape.core import losses
from landscape.data import datasets as data
from landscape.data import models
from landscape.data.config import Config
from landscape.measures import steplimit
from landscape.plots import training as plots
from landscape.storage import formats
from landscape.training import loop as training
from landscape.training import predictions
from landscape.ui import charts, library
from landscape.ui import live as live_panel
from landscape.ui import research as ui_research
from landscape.ui import runs as ui_runs
from landscape.ui.common import md_escape, plot_text, show_error, torch_threads
from landscape.ui.links import url
from landscape.ui.train_form import BATCHES, DECAYS, LRS, WIDTHS
from landscape.ui.upload import upload_widget

torch_threads()

SHOW_KEY = "tr_show"  # the run shown in the results section
CHANCE_MARGIN = 0.02  # a final training accuracy this close to chance gets a warning
CACHE_NOTE = "tr_cache_note"
OVERLAY_NEW = "tr_overlay_new"  # runs trained since the overlay was last drawn
CHART_EVERY_S = 0.3  # redraw the live loss chart at most this often (seconds)


# ----------------------------------------------------------------------------- set-up


UPLOAD = "__upload__"  # the dataset choice that opens the CSV uploader


def _dataset_label(name: str) -> str:
    return "Your own CSV…" if name == UPLOAD else data.DATASETS[name].display


def _data_widgets() -> dict | None:
    """The dataset's settings as Config keywords; None while an upload is awaited."""
    name = st.selectbox("Dataset", [*data.DATASETS, UPLOAD], **url("tr_dataset"),
                        format_func=_dataset_label)  # fmt: skip
    if name == UPLOAD:
        uploaded = upload_widget("tr_upload")
        if uploaded is None:
            st.info("Upload a CSV: numeric feature columns and one target column, with a header.")
            return None
        rows = data.info(uploaded).size
        return {
            "dataset": uploaded,
            "n_samples": max(data.MIN_SAMPLES, min(rows, data.MAX_SAMPLES)),
        }
    info = data.info(name)
    st.caption(info.description)
    kw = {"dataset": name}
    if info.size is not None:
        size = info.size
        kw["n_samples"] = st.slider("Samples used", 50, size, size, 1, **url(f"tr_n_{name}"))
    else:
        kw["n_samples"] = st.slider(
            "Samples", 100, data.MAX_SAMPLES, 1000, 100, **url(f"tr_n_{name}")
        )
        kw["noise"] = st.slider("Noise", 0.0, 1.0, 0.3 if name == "outliers" else 0.2, 0.05,
                                **url(f"tr_noise_{name}"))  # fmt: skip
    if name == "outliers":
        kw["outliers"] = st.slider(
            "Outliers (how many)", 0, kw["n_samples"] // 2, 20, **url("tr_outliers")
        )
        kw["outlier_scale"] = st.slider(
            "Outlier distance", 0.0, 20.0, 8.0, 0.5, **url("tr_outlier_scale")
        )
    return kw


def _model_widgets(dataset: str) -> dict:
    image = data.info(dataset).kind == "image"
    options = [m for m in models.MODELS if image or m not in models.IMAGE_MODELS]
    model = st.selectbox("Model", options, index=options.index("mlp"), format_func=models.MODELS.get,
                         **url(f"tr_model_{'img' if image else 'flat'}"))  # fmt: skip
    kw = {"model": model}
    if model == "linear":
        return kw
    if model != "cnn":
        label = "Residual blocks" if model in models.RESIDUAL_MODELS else "Hidden layers"
        kw["depth"] = st.slider(label, 1, training.MAX_DEPTH, 2, **url(f"tr_depth_{model}"))
    kw["width"] = st.select_slider("Width (units / channels)", WIDTHS, 16 if model == "rescnn" else 32,
                                   **url(f"tr_width_{model}"))  # fmt: skip
    kw["activation"] = st.selectbox("Activation", list(models.ACTIVATIONS), **url("tr_act"))
    if model in models.RESIDUAL_MODELS:
        kw["skip"] = st.toggle("Skip connections", True, **url("tr_skip"),
                               help="Off removes the identity path of every block; every "
                               "parameter shape stays the same.")  # fmt: skip
    kw["batchnorm"] = st.toggle("BatchNorm", False, **url("tr_bn"))
    return kw


def _loss_choices(dataset: str) -> list[str]:
    """Losses that suit the data: regression losses everywhere (on classes: softmax vs one-hot),
    binary losses on 2-class sets, multiclass losses on any classification set."""
    info = data.info(dataset)
    if info.task == "regression":
        return losses.names("regression")
    binary = losses.names("binary") if info.n_classes == 2 else []
    return losses.names("multiclass") + binary + losses.names("regression")


def _loss_widgets(dataset: str) -> dict:
    choices = _loss_choices(dataset)
    group = data.info(dataset).task + str(data.info(dataset).n_classes == 2)
    default = "cross_entropy" if "cross_entropy" in choices else "mse"
    loss = st.selectbox("Loss", choices, index=choices.index(default), **url(f"tr_loss_{group}"),
                        format_func=lambda n: f"{losses.get(n).display} ({losses.get(n).task})")  # fmt: skip
    spec = losses.get(loss)
    if data.info(dataset).task == "classification" and spec.task == "regression":
        st.caption("A regression loss on classes compares softmax outputs with one-hot targets.")
    params = {}
    for p in spec.params:
        label = f"{p.name.replace('_', ' ').capitalize()} {losses.plain_label(p.label)}"
        params[p.name] = st.slider(label, float(p.min), float(p.max), float(p.default),
                                   **url(f"tr_lp_{loss}_{p.name}"), help=p.help or None)  # fmt: skip
    return {"loss": loss, "loss_params": params}


def _optimiser_widgets() -> tuple[dict, bool]:
    """Optimiser settings (no form: the momentum slider follows the optimiser) and the Train
    button; changing a value reruns only this panel, and only the button trains."""
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        kw = {
            "optimizer": c1.selectbox("Optimiser", list(training.OPTIMIZERS),
                                      format_func=training.OPTIMIZERS.get, index=2, **url("tr_opt")),
            "lr": c1.select_slider("Learning rate", LRS, 0.01, format_func=lambda v: f"{v:g}", **url("tr_lr")),
            "batch_size": c2.select_slider("Batch size", BATCHES, 64, **url("tr_batch"),
                                           help="5000 = the whole training set (full batch)."),
            "epochs": c2.slider("Epochs", 1, training.MAX_EPOCHS, 100, **url("tr_epochs")),
            "weight_decay": c3.select_slider("Weight decay", DECAYS, 0.0, format_func=lambda v: f"{v:g}",
                                             **url("tr_wd")),
            "seed": int(c3.number_input("Seed", 0, training.MAX_SEED, 0, **url("tr_seed"),
                                        help="Seeds the data, the initial weights and the batch order.")),
        }  # fmt: skip
        kw["momentum"] = c1.slider(
            "Momentum (SGD + momentum)", 0.0, 0.99, 0.9, 0.01, **url("tr_mom"),
            disabled=kw["optimizer"] != "momentum",
            help="Used by SGD + momentum only (Adam keeps its own running averages).",
        )  # fmt: skip
        kw["eos"] = ui_research.eos_checkbox(c3, kw["optimizer"])
        submitted = st.button("Train", type="primary", key="tr_train")
    return kw, submitted


def _preview(cfg_kw: dict) -> None:
    seed = int(st.session_state.get("tr_seed", 0))
    extra = {k: cfg_kw[k] for k in ("outliers", "outlier_scale") if k in cfg_kw}
    args = (cfg_kw["dataset"], cfg_kw["n_samples"], cfg_kw.get("noise", 0.2), 0.2, seed)

    def build():
        ds = data.make(*args, **extra)
        fig = plots.data_preview(ds.X_train.numpy(), ds.y_train.numpy(), data.info(ds.name).kind,
                                 title=f"{len(ds.y_train)} training points (seed {seed})",
                                 feature_names=[plot_text(n) for n in ds.feature_names[:2]])  # fmt: skip
        return fig.update_layout(height=260, margin=dict(l=0, r=0, t=30, b=0))

    fig = charts.chart(("tr_preview", *args, tuple(sorted(extra.items()))), build)
    st.plotly_chart(fig, key="tr_preview", config={"displayModeBar": False})


@st.cache_data(max_entries=256, show_spinner=False)
def _count_params(key: str, _kw: dict) -> int:
    cfg = Config(**_kw)
    return models.count_params(models.build(cfg, cfg.make_dataset()))


def _param_count(kw: dict) -> None:
    try:
        n = _count_params(repr(sorted(kw.items())), kw)
    except ValueError as e:
        show_error(e)
        return
    st.metric("Parameters", f"{n:,}")


@st.fragment
def setup_panel() -> None:
    """Data, model and loss choices (redraw only this panel), then the optimiser form."""
    st.subheader("1 · Set up")
    c1, c2, c3 = st.columns([1.3, 1, 1])
    with c1:
        kw = _data_widgets()
    if kw is None:
        return
    with c2:
        kw |= _model_widgets(kw["dataset"])
    with c3:
        kw |= _loss_widgets(kw["dataset"])
    with c1:
        _preview(kw)
    with c2:
        _param_count(kw)
    opt_kw, submitted = _optimiser_widgets()
    eos = opt_kw.pop("eos")  # full-batch GD with λmax tracked (edge of stability)
    st.session_state[live_panel.SETUP] = kw | opt_kw  # what Play / Step train (live panel)
    if submitted:
        if eos:
            ui_research.eos_run(kw | opt_kw, show_key=SHOW_KEY)
        else:
            _train_and_show(kw | opt_kw)


# ----------------------------------------------------------------------------- training


def _live_progress():
    """A progress bar and a loss chart that grows; returns the progress callback."""
    bar = st.progress(0.0, text="starting…")
    chart = st.empty()
    hist = {"epoch": [], "train_loss": [], "test_loss": []}
    state = {"last": -1.0}

    def progress(info: dict) -> None:
        e, E = info["epoch"], info["epochs"]
        bar.progress(min(e / E, 1.0), text=f"epoch {e}/{E} · train loss {info['train_loss']:.4g} · "
                                           f"test loss {info['test_loss']:.4g}")  # fmt: skip
        if info["diverged"]:
            return
        for k in hist:
            hist[k].append(info[k])
        if info["seconds"] - state["last"] >= CHART_EVERY_S or e == E:
            state["last"] = info["seconds"]
            chart.plotly_chart(plots.loss_curves(hist, epochs=E, title="Loss (live)"), key=None)

    return progress, bar, chart


def _train_and_show(kw: dict) -> None:
    try:
        cfg = Config(**kw)
    except ValueError as e:
        show_error(e)
        return
    cached = ui_runs.run_cache().get(cfg) is not None
    progress, bar, chart = _live_progress()
    try:
        run = ui_runs.train_cached(cfg, progress)
    except (ValueError, RuntimeError) as e:
        show_error(e)
        return
    finally:
        bar.empty()
        chart.empty()
    name = ui_runs.add_run(run)
    ui_runs.select_run(name, key=SHOW_KEY)
    st.session_state.setdefault(OVERLAY_NEW, []).append(name)
    st.session_state[CACHE_NOTE] = cached
    st.rerun()


# ----------------------------------------------------------------------------- results


def _steps_per_epoch(run) -> int:
    n = run.dataset().n_train
    bn = training.has_batchnorm(run.initial_model())
    return training.steps_per_epoch(n, min(run.config.batch_size, n), bn)


def _stop(run) -> tuple[float, float] | None:
    """(epoch, loss) where a diverged run stopped: the step after its last finite one."""
    if not run.diverged:
        return None
    return (len(run.step_loss) + 1) / _steps_per_epoch(run), run.last_finite_loss


def _divergence_warning(run) -> None:
    if run.diverged:
        st.warning(
            f"**Diverged in epoch {run.diverged_epoch}**: the loss became NaN/inf or blew up "
            f"to over {training.DIVERGENCE_FACTOR:g}x its start, so training stopped (the x on "
            f"the log-scale curve; the faint line is every step up to there). The metrics and "
            f"weights below are those of epoch {run.epochs_done}, the last sane point, on the "
            f"whole training set; the last finite mini-batch loss was "
            f"{run.last_finite_loss:.4g}. Try a smaller learning rate.",
            icon=":material/warning:",
        )


def _metrics(run) -> None:
    h = run.history
    cols = st.columns(5)
    when = f" (epoch {run.epochs_done})" if run.diverged else ""
    cols[0].metric("Train loss" + when, f"{h['train_loss'][-1]:.4g}")
    cols[1].metric("Test loss" + when, f"{h['test_loss'][-1]:.4g}")
    if run.accuracy_fn() is not None:
        cols[2].metric("Test accuracy", f"{h['test_acc'][-1]:.1%}")
    cols[3].metric("Parameters", f"{run.n_params:,}")
    cols[4].metric("Training time", f"{run.seconds:.1f} s", help=f"{run.epochs_done} epochs")


def _chance_warning(run) -> None:
    """A run that ends no better than guessing the commonest class (SGD at lr 10 on moons:
    50 %) gets a warning: nothing else on the page would say that it learnt nothing."""
    if run.diverged or run.accuracy_fn() is None:
        return
    y = run.dataset().y_train
    chance = float(y.bincount().max()) / max(len(y), 1)
    acc = run.history["train_acc"][-1]
    if math.isfinite(acc) and acc <= chance + CHANCE_MARGIN:
        st.warning(
            f"**No better than guessing**: the training accuracy is {acc:.1%}, and always "
            f"answering the commonest class scores {chance:.1%}. The net did not learn: the "
            "learning rate may be too large (each step jumps across the valley) or too small, "
            "or the net too small for the data. Try a learning rate 10x smaller first.",
            icon=":material/warning:",
        )


@st.fragment
def _curves(run) -> None:
    if run.diverged:  # a blow-up spans orders of magnitude: always drawn on a log axis
        st.caption("The loss axis is logarithmic: the diverged losses span orders of magnitude.")
        log_y = True
    else:
        log_y = st.toggle("Log-scale loss", False, **url("tr_log"))
    c1, c2 = st.columns(2)
    ident = ui_runs.ident(run)
    fig = charts.chart(
        ("tr_loss", ident, log_y),
        lambda: plots.loss_curves(run.history, run.step_loss, log_y=log_y,
                                  steps_per_epoch=_steps_per_epoch(run), stop=_stop(run)),
    )  # fmt: skip
    c1.plotly_chart(fig, key="tr_loss_chart")
    if run.accuracy_fn() is not None:
        acc = charts.chart(("tr_acc", ident), lambda: plots.accuracy_curves(run.history))
        c2.plotly_chart(acc, key="tr_acc_chart")
    else:
        with c2:
            _picture(run)


def _has_picture(run) -> bool:
    """2D data (decision regions) or one input feature (fitted function / class probabilities)."""
    kind = data.info(run.config.dataset).kind
    shape, task = tuple(run.dataset().input_shape), data.info(run.config.dataset).task
    return kind in ("2d", "1d") or shape == (1,) or (shape == (2,) and task == "classification")


def _picture(run) -> None:
    """Decision regions over 2D data, the fitted function over one feature of regression data,
    or the class probabilities along one feature of classification data."""
    ds = run.dataset()
    if not (ds.input_shape == (1,) or (ds.input_shape == (2,) and ds.task == "classification")):
        st.caption(
            md_escape(f"{ds.name}: {ds.input_shape} inputs have no 2D picture; see the curves.")
        )
        return
    st.plotly_chart(charts.chart(("tr_picture", ui_runs.ident(run)), lambda: _picture_figure(run)),
                    key="tr_picture")  # fmt: skip
    if data.info(ds.name).kind == "tabular":
        st.caption(
            md_escape(
                "Plotted in standardised units: each feature minus its mean, divided by its "
                "standard deviation, on the training split (what the net sees): "
                + ", ".join(ds.feature_names[:2])
                + "."
            )
        )


def _picture_figure(run):
    ds, model = run.dataset(), run.model()
    if ds.input_shape == (1,) and ds.task == "classification":
        xs, probs = predictions.class_probability_curve(model, ds)
        fig = plots.class_probabilities_1d(xs, probs, ds.X_train.numpy(), ds.y_train.numpy(),
                                           ds.X_test.numpy(), ds.y_test.numpy())  # fmt: skip
    elif ds.input_shape == (1,):
        xs, yhat = predictions.regression_curve(model, ds)
        fig = plots.regression_fit(xs, yhat, ds.X_train.numpy(), ds.y_train.numpy(), ds.X_test.numpy(),
                                   ds.y_test.numpy())  # fmt: skip
    else:  # 2D classification: moons, or a 2-feature CSV
        xs, ys, probs = predictions.decision_grid(model, ds, resolution=120)
        fig = plots.decision_boundary(xs, ys, probs, ds.X_train.numpy(), ds.y_train.numpy(),
                                      ds.X_test.numpy(), ds.y_test.numpy())  # fmt: skip
    if data.info(ds.name).kind == "tabular":  # standardised columns: say so in the axis titles
        names = [plot_text(f"{n} (standardised)") for n in ds.feature_names[:2]]
        fig.update_layout(**dict(zip(("xaxis_title", "yaxis_title"), names)))
    return fig


def _downloads(run) -> None:
    stem = f"run_{run.config.dataset}_{run.config.model}_s{run.config.seed}"
    c1, c2, c3 = st.columns(3)
    # Callables with on_click="ignore": the file is made when clicked, not stored at every
    # rerun (stored media went missing under load and the browser got 404s).
    c1.download_button("History (CSV)", lambda: training.history_csv(run), f"{stem}_history.csv",
                       "text/csv", key="tr_dl_csv", on_click="ignore")  # fmt: skip
    c2.download_button("Run: weights + config (.npz)", lambda: formats.run_to_bytes(run), f"{stem}.npz",
                       "application/octet-stream", key="tr_dl_npz", on_click="ignore",
                       help="Plain arrays and JSON, no pickle: the Landscape page can load it.")  # fmt: skip
    c3.download_button("Config (JSON)", lambda: json.dumps(run.config.to_dict(), indent=2),
                       f"{stem}_config.json", "application/json", key="tr_dl_json",
                       on_click="ignore")  # fmt: skip


def results_section() -> None:
    st.subheader("2 · Result")
    if not ui_runs.get_runs():
        st.caption(
            "Press **Train** above: the curves and the picture of the trained net appear here."
        )
        return
    run = library.run_picker("Run shown", SHOW_KEY)
    if st.session_state.pop(CACHE_NOTE, False):
        st.info("This configuration was trained before: the result comes from the cache.")
    _divergence_warning(run)
    _chance_warning(run)
    _metrics(run)
    _curves(run)
    if run.accuracy_fn() is not None and _has_picture(run):
        _picture(run)
    _downloads(run)


# ----------------------------------------------------------------------------- stability demo

STAB_FACTORS = (0.95, 1.05)  # learning rates as multiples of the stable limit 2 / lambda_max


def stability_demo() -> None:
    with st.expander("Demo: a learning rate just above the stable limit 2 / λmax"):
        lam, limit = steplimit.quadratic_limit(steplimit.DEMO)
        st.markdown(
            "Least squares on a noisy straight line is an exactly quadratic loss. Full-batch "
            "gradient descent on it converges only while the learning rate is below "
            f"**2 / λmax = {limit:.3g}** (λmax = {lam:.3g}, the largest curvature of the loss). "
            "Just above that line each step overshoots the valley floor a little further: the "
            "fitted line see-saws with a growing swing, then the loss blows up."
        )
        below, above = steplimit.demo_configs(STAB_FACTORS)
        c1, c2 = st.columns(2)
        if c1.button(f"Train at {STAB_FACTORS[0]}x and {STAB_FACTORS[1]}x the limit",
                     key="tr_stab_train"):  # fmt: skip
            for cfg in (below, above):
                name = ui_runs.add_run(ui_runs.train_cached(cfg))
                st.session_state.setdefault(OVERLAY_NEW, []).append(name)
            ui_runs.select_run(name, key=SHOW_KEY)
            st.rerun()
        if c2.button(f"Play {STAB_FACTORS[1]}x live, one step per frame", key="tr_stab_live"):
            live_panel.start(above, f"Demo: lr = {above.lr:.3g} = {STAB_FACTORS[1]} x 2 / λmax.")
            st.rerun()
        points = [
            (r.config.lr, r.last_finite_loss if r.diverged else r.history["train_loss"][-1], r.diverged)
            for r in ui_runs.get_runs().values()
            if r.config.replace(lr=steplimit.DEMO.lr) == steplimit.DEMO
        ]  # fmt: skip
        if points:
            st.plotly_chart(plots.stability_figure(limit, points), key="tr_stab_chart")


# ----------------------------------------------------------------------------- run list


def _percent(v: float) -> str:
    """An accuracy for the table; a dash where there is none (regression: NaN)."""
    return f"{v:.1%}" if math.isfinite(v) else "—"


def _run_table(runs: dict) -> None:
    rows = [
        {
            "run": name,
            "epochs": r.epochs_done,
            "train loss": r.history["train_loss"][-1],
            "test loss": r.history["test_loss"][-1],
            "test acc": _percent(r.history["test_acc"][-1]),  # NaN for regression
            "diverged": f"epoch {r.diverged_epoch}" if r.diverged else "",
            "params": r.n_params,
            "seconds": round(r.seconds, 2),
        }
        for name, r in runs.items()
    ]
    st.dataframe(rows, hide_index=True, key="tr_table")


@st.fragment
def _overlay(runs: dict) -> None:
    names = list(runs)
    if "tr_overlay" in st.session_state:  # keep the choice; add new runs, drop deleted ones
        new = st.session_state.pop(OVERLAY_NEW, [])
        kept = dict.fromkeys(st.session_state["tr_overlay"] + new)
        st.session_state["tr_overlay"] = [n for n in kept if n in runs]
    default = None if "tr_overlay" in st.session_state else names[-4:]  # state wins; no warning
    picked = st.multiselect("Overlay runs", names, default=default, key="tr_overlay")
    c1, c2 = st.columns([2, 1])
    metrics_ = ["test_loss", "train_loss", "test_acc", "train_acc"]
    metric = c1.radio("Curve", metrics_, horizontal=True, key="tr_overlay_metric",
                      format_func=lambda m: m.replace("_", " "))  # fmt: skip
    log_y = c2.toggle("Log scale", False, key="tr_overlay_log", disabled=metric.endswith("acc"))
    if picked:
        key = ("tr_overlay", tuple((n, ui_runs.ident(runs[n])) for n in picked), metric, log_y)
        fig = charts.chart(
            key, lambda: _overlay_figure({n: runs[n] for n in picked}, metric, log_y)
        )
        st.plotly_chart(fig, key="tr_overlay_chart")


def _overlay_figure(runs: dict, metric: str, log_y: bool):
    stops = {n: _stop(r) for n, r in runs.items() if r.diverged}
    return plots.overlay_curves(
        {plot_text(n): r.history for n, r in runs.items()},
        metric,
        log_y and "loss" in metric,
        {plot_text(n): v for n, v in stops.items()},
    )


def _delete(runs: dict) -> None:
    c1, c2 = st.columns([3, 1])
    if st.session_state.get("tr_delete_pick") not in (None, *runs):
        del st.session_state["tr_delete_pick"]
    name = c1.selectbox("Run", list(runs), key="tr_delete_pick", label_visibility="collapsed")
    if c2.button("Delete run", key="tr_delete"):
        ui_runs.delete_run(name)
        st.rerun()


def run_list_section() -> None:
    runs = ui_runs.get_runs()
    st.subheader(f"3 · This session's runs ({len(runs)})")
    ui_runs.dropped_note()
    if not runs:
        st.caption(
            "Every run you train joins this list; the Landscape and Compare pages can use it."
        )
        return
    for part in (_run_table, _overlay):  # a run that cannot be drawn never hides Delete
        try:
            part(runs)
        except ValueError as e:
            show_error(e)
    _delete(runs)


# ----------------------------------------------------------------------------- page

st.title("Train")
st.markdown(
    "Pick data, a network and a loss; press **Train** and watch the loss fall. Every run joins "
    "the list at the bottom, where you can overlay runs to compare losses, optimisers or "
    "learning rates. The Landscape page can then slice the loss surface around any of them."
)
for _note in library.apply_pending_train():  # "Open in Train", "Load settings", a preset
    st.info(_note)
_c1, _c2, _ = st.columns([1, 1, 4])
with _c1:
    library.reset_to_preset_widget()
with _c2:
    library.load_settings_widget()
# Each section on its own: a bad value in one (a message, not a traceback) never hides the
# others, so the run list and its Delete button are always drawn.
for section in (
    setup_panel,
    live_panel.panel,
    stability_demo,
    results_section,
    run_list_section,
    ui_research.eos_section,
):
    try:
        section()
    except ValueError as e:
        show_error(e)

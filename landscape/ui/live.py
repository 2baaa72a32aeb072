"""The Train page's live training panel: Play / Pause / Step, TensorFlow-Playground style.

The session keeps one `landscape.training.live.LiveTrainer`. While playing, the panel is a fragment
with `run_every=FRAME_S`: each run draws the loss curves and the decision regions (or the
regression fit), then trains one bounded chunk in the script thread (at most
`live.MAX_CHUNK_S`, sized by a `FramePacer` so that drawing costs at most ~10% of the server
time). Nothing else on the page reruns, and nothing in the panel is dimmed while it does
(Streamlit greys out elements a rerun has not written yet; lab.py's STYLE keeps the PANEL
container opaque, and every frame writes the same elements in the same order). The two
charts are `landscape.ui.livechart` charts, redrawn in place: an `st.plotly_chart` is a new
chart for every new figure and went blank until drawn. FRAME_S is shorter than a chunk on
purpose: Streamlit queues a timer rerun that arrives while the fragment runs (one at most:
requests are coalesced) and never lets it interrupt the run, so chunks follow each other
without idle gaps, and a click on Pause waits at most one chunk. The set-up widgets store
their current values under SETUP; a changed learning rate, momentum, weight decay, optimiser
or epoch count is applied at the next chunk and training goes on from the current weights;
a changed data set, model or loss starts a new live run. Play stops after Epochs epochs (or
at divergence), as Train would.

A live run that finished under one setting is `train(config)` bit for bit, so it becomes a
normal Run: it joins this session's runs (and the data folder and the training cache, as a
trained run does) and opens on the Landscape page. A run whose settings changed mid-way is
described by no Config, so it stays here (keeping it under its last Config would hand other
users weights that Config does not produce).
"""

from __future__ import annotations

import time

import streamlit as st

from landscape.data.config import Config
from landscape.plots import training as plots
from landscape.storage import datastore
from landscape.training import live
from landscape.training import loop as training
from landscape.ui import kept
from landscape.ui import runs as ui_runs
from landscape.ui.common import md_escape, show_error
from landscape.ui.livechart import live_chart

SETUP = "tr_live_setup"  # session key: the Train page's current Config keywords
TRAINER = "tr_live"  # session key: the LiveTrainer
PLAYING = "tr_live_playing"  # session key: True while Play is on
PACER = "tr_live_pacer"  # session key: the FramePacer
SPEED = "tr_live_speed"  # widget key: steps per frame ("as fast as it goes" or a number)
PINNED = "tr_live_pinned"  # session key: a demo's note while its own config, not SETUP, trains
KEPT = "tr_live_kept"  # session key: (id of the trainer, its config, its name in the runs)
FRAME_S = 0.25  # run_every while playing (frames follow back to back; see the docstring)
PANEL = "tr_live_panel"  # container key: lab.py's STYLE keeps this panel opaque while it reruns
LANDSCAPE_PAGE = "app_pages/loss_landscape.py"
LANDSCAPE_PICKER = "run__pick"  # the Landscape page's run picker: library.run_picker's widget key


SPEEDS = ["full speed", 1, 3, 10, 100]


def start(config: Config, note: str, speed=1) -> None:
    """Play `config` live (a demo), whatever the set-up widgets say, until Reset."""
    st.session_state[SPEED] = speed
    st.session_state[TRAINER] = live.LiveTrainer(config)
    st.session_state[PACER] = live.FramePacer()
    st.session_state[PINNED] = note
    st.session_state[PLAYING] = True


def _config() -> Config | None:
    if st.session_state.get(PINNED) and TRAINER in st.session_state:
        return st.session_state[TRAINER].config
    kw = st.session_state.get(SETUP)
    if kw is None:
        return None
    try:
        return Config(**kw)
    except ValueError as e:
        show_error(e)
        return None


def _trainer(cfg: Config) -> live.LiveTrainer:
    """The session's trainer for `cfg`: the same one with `cfg`'s optimiser settings applied,
    or a new one when the data, model or loss changed."""
    t = st.session_state.get(TRAINER)
    if t is None or not t.same_setup(cfg):
        t = live.LiveTrainer(cfg)
        st.session_state[TRAINER] = t
        st.session_state[PACER] = live.FramePacer()
    else:
        t.set_hyper(**{k: getattr(cfg, k) for k in live.HYPER})
    return t


def _set_playing(on: bool) -> None:
    st.session_state[PLAYING] = on
    st.rerun(scope="app")  # run_every is fixed when the fragment is declared


def _controls(cfg: Config) -> None:
    t = st.session_state.get(TRAINER)
    playing = st.session_state.get(PLAYING, False)
    c = st.columns([1, 1, 1, 1, 2])
    c[4].selectbox("Steps per frame", SPEEDS, key=SPEED, label_visibility="collapsed",
                   format_func=lambda v: v if isinstance(v, str) else f"{v} step{'s' * (v > 1)} per frame",
                   help="Full speed: as many steps as fit in a frame (drawing takes at most "
                   "about 10% of the time). A number: slow motion.")  # fmt: skip
    if c[0].button("Play", key="tr_live_play", icon=":material/play_arrow:", disabled=playing,
                   help="Train continuously and redraw as it learns.", width="stretch"):  # fmt: skip
        t = _trainer(cfg)
        if not t.done:
            _set_playing(True)
    if c[1].button("Pause", key="tr_live_pause", icon=":material/pause:", disabled=not playing,
                   width="stretch"):  # fmt: skip
        _set_playing(False)
    if c[2].button("Step", key="tr_live_step", icon=":material/skip_next:", disabled=playing,
                   help="One epoch (a pass over the training set), then pause.", width="stretch"):  # fmt: skip
        t = _trainer(cfg)
        t.step_epoch()
        t.evaluate()
    if c[3].button("Reset", key="tr_live_reset", icon=":material/restart_alt:", width="stretch"):
        st.session_state.pop(TRAINER, None)
        st.session_state.pop(PINNED, None)
        if playing:
            _set_playing(False)
        t = None


def _status(t: live.LiveTrainer) -> None:
    cfg = t.config
    h = t.frames
    text = (
        f"step {t.steps:,} · epoch {t.epoch:.1f} of {t.n_epochs} · train loss "
        f"{h['train_loss'][-1]:.4g} · {training.OPTIMIZERS[cfg.optimizer]}, lr {cfg.lr:g}"
    )
    st.caption(text)
    if st.session_state.get(PINNED):
        st.caption(st.session_state[PINNED] + " Reset returns to the set-up above.")
    if t.diverged:
        # the step count is the status line's: the weights after that many steps blew up
        st.warning(
            f"Diverged after step {t.diverged_step:,}: the loss blew up (marked with an x on "
            "the log-scale curve). Lower the learning rate and press Reset.",
            icon=":material/warning:",
        )
    elif t.finished:
        st.info(
            f"Finished: {t.epochs_done} epochs, the Epochs set above. Raise Epochs and press "
            "Play to go on, or Reset to start again."
        )
    elif t.steps >= t.max_steps:
        st.info(f"Stopped at the live-run cap of {t.max_steps:,} steps; Reset to start again.")
    if t.finished:
        _offer_run(t)


def _keep(t: live.LiveTrainer) -> str | None:
    """The finished, reproducible live run as a normal Run in this session's list (and the
    data folder and training cache, like a trained run); its name there, or None."""
    if not (t.finished and t.reproducible):
        return None
    done = st.session_state.get(KEPT)
    if done is None or done[:2] != (id(t), t.config):  # a longer run after Epochs was raised
        run = t.result()
        s = kept.store()
        if s is not None and not s.has_run(datastore.run_id(run.config)):
            s.put_run(run)
        ui_runs.run_cache().put(run)
        done = (id(t), t.config, ui_runs.add_run(run))
        st.session_state[KEPT] = done
    return done[2] if done[2] in ui_runs.get_runs() else None


def _offer_run(t: live.LiveTrainer) -> None:
    name = _keep(t)
    if name is None:
        if not t.reproducible:
            st.caption(
                "The settings changed during this run, so no configuration reproduces it: it "
                "is not added to the runs. Train the final settings with **Train** for a run "
                "the Landscape page can slice."
            )
        return
    c1, c2 = st.columns([3, 1])
    c1.caption(f"In this session's runs as **{md_escape(name)}**.")
    if c2.button("Open in Landscape", key="tr_live_open", icon=":material/landscape:"):
        ui_runs.select_run(name, key=LANDSCAPE_PICKER)
        st.switch_page(LANDSCAPE_PAGE)


def _draw(t: live.LiveTrainer) -> None:
    h = t.frames
    stop = None
    if t.diverged:  # where it stopped: the step after the last finite one, at its loss
        last = t.step_loss[-1] if t.step_loss else h["train_loss"][0]
        stop = ((t.steps + 1) / t.steps_per_epoch, last)
    hist = {"epoch": h["epoch"], "train_loss": h["train_loss"], "test_loss": h["test_loss"]}
    curve = plots.loss_curves(hist, t.step_loss, title="Loss (live)",
                              steps_per_epoch=t.steps_per_epoch, stop=stop)  # fmt: skip
    kind, pic = t.picture()
    c1, c2 = st.columns(2)
    with c1:
        live_chart(curve, key="tr_live_curve", frame=t.steps)
    if pic is None:
        c2.caption("This data has no 2D picture; the loss curve shows the progress.")
        return
    X, y = t.ds.X_train.numpy(), t.ds.y_train.numpy()
    if kind == "2d":
        fig = plots.decision_boundary(*pic, X, y, title="Decision regions (live)")
    else:  # "1d": picture() returns a picture only for these two kinds
        fig = plots.regression_fit(*pic, X, y, title="Fitted function (live)")
    with c2:
        live_chart(fig, key="tr_live_picture", frame=t.steps)


def _body() -> None:
    cfg = _config()
    if cfg is None:
        return
    # Every frame writes the same elements in the same order (controls, status, two charts):
    # an element that appears or goes away between frames makes the panel flash.
    with st.container(key=PANEL):
        _frame(cfg)


def _frame(cfg: Config) -> None:
    try:
        _controls(cfg)
        t = st.session_state.get(TRAINER)
        if t is None:
            st.caption(
                "Press **Play** to train the set-up above live, **Step** for one epoch at a "
                "time. Pause, change the learning rate or optimiser, and play on: training "
                "continues from the current weights."
            )
            return
        if st.session_state.get(PLAYING, False):
            # A frame draws first and trains its chunk after. Runs follow back to back, and
            # Streamlit drops the deltas a fragment run leaves unsent when the next run of
            # it starts: drawn last, the second chart missed most frames and stood still
            # for seconds. Drawn first, the charts go out while the chunk trains.
            t = _trainer(cfg)
            pacer = st.session_state[PACER]
            t0 = time.perf_counter()
            t.evaluate()
            _status(t)
            _draw(t)
            pacer.record_draw(time.perf_counter() - t0)
            if t.done:
                _set_playing(False)
            speed = st.session_state.get(SPEED, SPEEDS[0])
            t.run_for(pacer.train_seconds(), None if isinstance(speed, str) else speed)
        else:
            _status(t)
            _draw(t)
    except ValueError as e:
        show_error(e)


def panel() -> None:
    """The live panel; a fragment that ticks every FRAME_S seconds while playing."""
    st.subheader("Live training")
    run_every = FRAME_S if st.session_state.get(PLAYING, False) else None
    st.fragment(run_every=run_every)(_body)()

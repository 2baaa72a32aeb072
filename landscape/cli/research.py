"""Command-line subcommands for the research measures (registered by ``landscape.__main__``):

    python -m landscape sharpness ...   every sharpness measure of a run (--rescale: Dinh demo)
    python -m landscape connect ...     straight line, barrier and learned curve between 2 runs
    python -m landscape eos ...         full-batch GD with λmax tracked against 2/η
    python -m landscape spectrum ...    SLQ density of the Hessian and its top-k eigenvalues

Each writes ``OUT.json`` (the numbers) and ``OUT.html`` (a self-contained Plotly figure).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from landscape.cli import grammar, jobs
from landscape.cli import own as cli_own
from landscape.cli.output import ProgressBar
from landscape.core import checks, losses
from landscape.core.files import write_together
from landscape.engine import own as engine_own
from landscape.measures import connectivity as C
from landscape.measures import curvature, spectrum, stability
from landscape.measures import sharpness as S
from landscape.pipelines import presets
from landscape.plots import research as P


def _positive(kind=float):
    """An argparse type: ``checks.positive_text``, its error shown by argparse."""

    def parse(text: str):
        try:
            return checks.positive_text(text, kind)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _batch_help(p, text: str) -> None:
    """Say what --batch-size (a training flag of the configuration) means for this command."""
    for action in p._actions:
        if action.dest == "batch_size":
            action.help = text


_MEASURE_BATCH = ("built-in runs: examples per optimiser step of the run trained; with "
                  "--model-factory: samples per forward pass of the measure, batches weighted "
                  "n_b/N, the exact mean (default: all of --data at once)")  # fmt: skip


def register(sub) -> None:
    """Add the subcommands to ``sub``; ``cli`` is the main CLI module (its flag helpers)."""

    def common(p, run=True, config=True):
        if run:
            grammar.add_run_flags(p)
        else:
            p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
        if config:
            grammar.add_config_flags(p)
        p.add_argument("--split", choices=["train", "test"], default="train",
                       help="data the loss is measured on (default: train)")  # fmt: skip

    p = sub.add_parser("sharpness", help="every sharpness measure of a run, side by side",
                       description="λmax, trace, ε- (Keskar), ρ- (SAM) and adaptive (ASAM) "
                       "sharpness and the filter-normalised basin width of a trained net.")  # fmt: skip
    common(p)
    g = p.add_argument_group("sharpness")
    g.add_argument("--eps", type=_positive(), default=1e-3, help="Keskar's box size (default 1e-3)")
    g.add_argument("--rho", type=_positive(), default=0.05, help="SAM's L2 radius (default 0.05)")
    g.add_argument("--asam-rho", type=_positive(), default=0.5, help="ASAM's radius (default 0.5)")
    g.add_argument("--ascent-steps", type=_positive(int), default=20,
                   help="projected gradient-ascent steps (default 20)")  # fmt: skip
    g.add_argument("--probes", type=_positive(int), default=20, metavar="N",
                   help="Hessian-vector products of the trace estimate; its standard error is "
                   "printed (default 20)")  # fmt: skip
    g.add_argument("--trace-method", choices=list(curvature.TRACE_METHODS), default="hutchinson",
                   help="trace estimator: Hutchinson, or Hutch++ (Meyer et al. 2021: lower "
                   "variance when a few eigenvalues dominate) (default hutchinson)")  # fmt: skip
    g.add_argument("--rescale", type=_positive(), default=None, metavar="ALPHA",
                   help="also measure the same ReLU net with layer 1 x ALPHA, layer 2 / ALPHA "
                   "(Dinh et al. 2017)")  # fmt: skip
    g.add_argument("--out", metavar="PREFIX", default="landscape-sharpness",
                   help="write PREFIX.json and PREFIX.html (default: landscape-sharpness)")  # fmt: skip
    cli_own.add_flags(p, "measure")
    _batch_help(p, _MEASURE_BATCH)
    p.set_defaults(handler=run_sharpness)

    p = sub.add_parser("connect", help="paths between two minima: barrier and learned curve",
                       description="Loss along the straight line between two runs of one "
                       "architecture (barrier height, Frankle et al. 2020) and along a learned "
                       "Bezier curve or polygonal chain (Garipov et al. 2018).")  # fmt: skip
    common(p)
    g = p.add_argument_group("second run and curve")
    g.add_argument("--seed-b", type=int, default=None,
                   help="train the second run from the same flags with this seed (default: seed + 1)")  # fmt: skip
    g.add_argument("--load-run-b", metavar="PATH", help="use a saved run as the second net")
    g.add_argument("--curve", choices=["bezier", "chain"], default="bezier",
                   help="Bezier curve or polygonal chain (default: bezier)")  # fmt: skip
    g.add_argument("--curve-steps", type=_positive(int), default=300,
                   help="Adam steps training the middle point (default 300)")  # fmt: skip
    g.add_argument(
        "--curve-lr", type=_positive(), default=0.01, help="Adam step size (default 0.01)"
    )
    g.add_argument("--points", type=_positive(int), default=41, help="points along t (default 41)")
    g.add_argument(
        "--plane-res", type=int, default=21, help="plane grid per axis, 0 = none (default 21)"
    )
    g.add_argument("--out", metavar="PREFIX", default="landscape-connect",
                   help="write PREFIX.json and PREFIX.html (default: landscape-connect)")  # fmt: skip
    cli_own.add_flags(p, "connect")
    _batch_help(p, _MEASURE_BATCH)
    p.set_defaults(handler=run_connect)

    p = sub.add_parser("eos", help="edge of stability: λmax during full-batch GD vs 2/η",
                       description="Train with full-batch gradient descent (sgd or momentum) and "
                       "track the top Hessian eigenvalue against 2/η (Cohen et al. 2021). "
                       "Without --preset the edge-of-stability preset is used. With "
                       "--model-factory/--weights/--data: your net from its weights, with its "
                       "loss, on --data (--lr, --optimizer, --momentum, --weight-decay, --epochs "
                       "and --seed apply; the rest from that preset).")  # fmt: skip
    common(p, run=False)
    g = p.add_argument_group("tracking")
    g.add_argument(
        "--steps", type=_positive(int), default=None, help="GD steps (default: --epochs)"
    )
    g.add_argument(
        "--every", type=_positive(int), default=5, help="track λmax every k steps (default 5)"
    )
    g.add_argument(
        "--cold", action="store_true", help="start every Lanczos run from a random vector"
    )
    g.add_argument("--out", metavar="PREFIX", default="landscape-eos",
                   help="write PREFIX.json and PREFIX.html (default: landscape-eos)")  # fmt: skip
    cli_own.add_flags(p, "measure")
    _batch_help(
        p,
        "samples per forward pass of every Hessian-vector product (and, for your own "
        "model, of the full-batch gradient), weighted n_b/N: the exact full-batch values "
        "(default: all at once; own BatchNorm nets are refused, their training statistics "
        "depend on the batch)",
    )
    p.set_defaults(handler=run_eos)

    p = sub.add_parser("spectrum", help="Hessian eigenvalue density (SLQ) and top-k",
                       description="Stochastic Lanczos quadrature density of the Hessian's "
                       "eigenvalues, as PyHessian draws it, beside the top-k eigenvalues.")  # fmt: skip
    common(p)
    g = p.add_argument_group("spectrum")
    g.add_argument("--vectors", "--probes", dest="vectors", type=_positive(int), default=5,
                   help="random probe vectors (default 5)")  # fmt: skip
    g.add_argument("--lanczos-steps", "--iters", dest="lanczos_steps", type=_positive(int),
                   default=60, help="Lanczos steps per probe (default 60)")  # fmt: skip
    g.add_argument("--top-k", type=int, default=3, help="top eigenvalues by Lanczos (default 3)")
    g.add_argument(
        "--sigma", type=_positive(), default=1e-3, help="Gaussian width, relative (default 1e-3)"
    )
    g.add_argument("--out", metavar="PREFIX", default="landscape-spectrum",
                   help="write PREFIX.json and PREFIX.html (default: landscape-spectrum)")  # fmt: skip
    cli_own.add_flags(p, "measure")
    _batch_help(p, _MEASURE_BATCH)
    p.set_defaults(handler=run_spectrum)


# ----------------------------------------------------------------------------- helpers


def _paths(prefix: str) -> tuple[Path, Path]:
    base = Path(prefix[:-5] if prefix.endswith(".json") else prefix)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {prefix!r}: cannot create its folder: {e.strerror}") from None
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".html")


def _write(prefix: str, numbers: dict, fig) -> None:
    js, html = _paths(prefix)
    text = json.dumps(numbers, indent=1, default=_plain)
    page = fig.to_html(include_plotlyjs=True)
    write_together({js: lambda f: f.write(text), html: lambda f: f.write(page)}, binary=False)
    print(f"wrote {js}")
    print(f"wrote {html}")


def _plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def _data(run, split):
    ds = run.dataset()
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


def _own_model(args):
    """The user's model (``--model-factory``) or None for a built-in run; own-model flags
    without a factory are refused, like built-in flags with one."""
    if not args.model_factory:
        cli_own.refuse_own_flags(args)
        return None
    return cli_own.open_for_measure(args)


def _measure_batch(args, own, rooted: bool, n: int | None = None) -> int | None:
    """Samples per forward pass of a measure: ``--batch-size`` with an own model (or for
    ``eos``, whose GD is full-batch anyway), None (every sample at once) otherwise; a
    built-in run's --batch-size is its training batch. ``rooted``: the loss is a function
    of the whole mean (rmse: its root), which batch means cannot give exactly: refused."""
    size = args.batch_size if (own is not None or args.command == "eos") else None
    if size is None or (n is not None and size >= n):
        return None
    if size < 1:
        raise ValueError(f"--batch-size {size} must be an integer >= 1")
    if rooted:
        raise ValueError(
            f"--batch-size {size} with this loss: it is a function of the whole mean (rmse: "
            "its root), so batch means would not give it exactly; leave out --batch-size"
        )
    return size


def _subject(args):
    """``(name, model, loss_fn, (X, y), batch_size)`` of the user's model (all of --data) or
    of the built-in run on --split, model and data on --device."""
    own = _own_model(args)
    if own is not None:
        name, model, loss_fn, data = own.spec["factory"], own.model, own.loss, own.data.all()
    else:
        run = jobs.get_run(args)
        name, model, loss_fn, data = run.name, run.model(), run.loss_fn(), _data(run, args.split)
    device = engine_own.resolve_device(args.device)
    batch = _measure_batch(args, own, getattr(loss_fn, "post", None) is not None, len(data[0]))
    return name, model.to(device), loss_fn, tuple(t.to(device) for t in data), batch


# ----------------------------------------------------------------------------- commands


def run_sharpness(args) -> int:
    name, model, loss_fn, data, batch = _subject(args)
    settings = S.PanelSettings(eps=args.eps, rho=args.rho, asam_rho=args.asam_rho,
                               steps=args.ascent_steps, trace_samples=args.probes,
                               trace_method=args.trace_method, batch_size=batch)  # fmt: skip
    bar = ProgressBar("sharpness", args.quiet)
    if args.rescale is not None:
        panels = S.rescaling_demo(model, loss_fn, data, (1.0, args.rescale), settings,
                                  progress=lambda d, n, name: bar(d, n))  # fmt: skip
    else:
        panels = [S.panel(model, loss_fn, data, settings, name, lambda d, n, _: bar(d, n))]
    print("ε-, ρ- and adaptive sharpness: max L(w + δ) - L(w), the increase over L(w); "
          "Keskar's form: 100 (max L - L) / (1 + L)")  # fmt: skip
    method = "Hutch++" if args.trace_method == "hutchpp" else "Hutchinson"
    for p in panels:
        print(f"{p.label}: loss {p.loss:.5g}")
        for m in S.MEASURES:
            v, note = p.values[m], ""
            if m == "trace":
                note = f" ± {p.errors['trace']:.2g} ({args.probes} probes, {method})"
            elif m in ("eps", "rho", "asam"):
                note = f" increase; Keskar {S.keskar_percent(v, p.loss):.3g} %"
            print(f"  {S.LABELS[m]:<36} {v:>12.5g}{note}   ({p.seconds[m]:.2f} s)")
    fig = (P.rescaling_figure if len(panels) > 1 else P.sharpness_bars)(
        panels, S.MEASURES, S.LABELS
    )
    numbers = {"run": name, "settings": settings.__dict__,
               "panels": [{"label": p.label, "loss": p.loss, "values": p.values,
                           "stderr": p.errors, "seconds": p.seconds,
                           "keskar_percent": {m: S.keskar_percent(p.values[m], p.loss)
                                              for m in ("eps", "rho", "asam")}}
                          for p in panels],
               "increase_over_loss": ["eps", "rho", "asam"]}  # fmt: skip
    _write(args.out, numbers, fig)
    return 0


def run_connect(args) -> int:

    if args.plane_res != 0 and not 3 <= args.plane_res <= C.MAX_PLANE_RES:
        raise ValueError(
            f"--plane-res={args.plane_res} is out of range: 0 or 3 to {C.MAX_PLANE_RES}"
        )
    own = _own_model(args)
    kw = dict(kind=args.curve, steps=args.curve_steps, lr=args.curve_lr, points=args.points,
              plane_res=args.plane_res)  # fmt: skip
    bar = ProgressBar("connect", args.quiet)
    progress = lambda f, s: bar(int(100 * f), 100)  # noqa: E731
    device = engine_own.resolve_device(args.device)
    if own is not None:
        name_a, name_b = (f"{own.spec['factory']} · {w}" for w in (args.weights, args.to))
        model_a, model_b, loss_fn = own.model, own.other(args.to, "--to"), own.loss
        data = own.data.all()
    else:
        run_a = jobs.get_run(args)
        if args.load_run_b:
            run_b = jobs.read_run(args.load_run_b)
        else:
            seed_b = run_a.config.seed + 1 if args.seed_b is None else args.seed_b
            run_b = jobs.train(run_a.config.replace(seed=seed_b), args.quiet)
        name_a, name_b = run_a.name, run_b.name
        model_a, model_b, loss_fn = run_a.model(), run_b.model(), run_a.loss_fn()
        data = _data(run_a, args.split)
    rooted = own is not None and own.loss.post is not None
    kw["batch_size"] = _measure_batch(args, own, rooted, len(data[0]))
    data = tuple(t.to(device) for t in data)
    res = C.connect(model_a.to(device), model_b.to(device), loss_fn, data, progress=progress, **kw)
    bar(100, 100)
    print(f"A: {name_a}\nB: {name_b}\ndistance |B - A| = {res.distance:.4g}")
    print(f"straight line: barrier {res.barrier:.5g} (Frankle: max - mean of ends), "
          f"{res.barrier_interp:.5g} (vs interpolation)")  # fmt: skip
    print(f"{res.kind} curve: barrier {res.curve_barrier:.5g}, {res.curve_barrier_interp:.5g}")
    import plotly.io as pio

    figs = [P.connectivity_lines(res)]
    if res.plane is not None:
        figs.append(P.connectivity_plane(res))
    numbers = {k: getattr(res, k) for k in ("ts", "line_loss", "curve_loss", "barrier",
               "barrier_interp", "curve_barrier", "curve_barrier_interp", "kind", "distance",
               "seconds")}  # fmt: skip
    numbers |= {"run_a": name_a, "run_b": name_b}
    js, html = _paths(args.out)
    js.write_text(json.dumps(numbers, indent=1, default=_plain))
    parts = [pio.to_html(f, include_plotlyjs=(i == 0), full_html=False) for i, f in enumerate(figs)]
    html.write_text("<html><body>" + "\n".join(parts) + "</body></html>")
    print(f"wrote {js}\nwrote {html}")
    return 0


def run_eos(args) -> int:

    own = _own_model(args)
    if args.preset is None:
        args.preset = presets.EOS_PRESET
    config = grammar.config_from_args(args)
    device = engine_own.resolve_device(args.device)
    bar = ProgressBar("eos", args.quiet)
    kw = dict(every=args.every, warm=not args.cold,
              progress=lambda i: bar(i["step"], i["steps"]))  # fmt: skip
    if own is None:  # the one training loop (Trainer) runs a built-in run on the CPU
        if device.type != "cpu":
            raise ValueError(f"--device {args.device!r}: eos of a built-in run trains on the "
                             "CPU (--device cpu or auto); --device applies to your own model")  # fmt: skip
        batch = _measure_batch(args, None, losses.get(config.loss).post is not None)
        res = stability.track(config, steps=args.steps, batch_size=batch, **kw)
    else:  # the user's net from --weights, with its own loss over --data
        stability.check_optimizer(config.optimizer)
        data = own.data.all()
        batch = _measure_batch(args, own, own.loss.post is not None, len(data[0]))
        res = stability.track_model(
            own.model, own.loss, data, lr=config.lr, optimizer=config.optimizer,
            momentum=config.momentum, weight_decay=config.weight_decay,
            steps=config.epochs if args.steps is None else args.steps, seed=config.seed,
            batch_size=batch, device=device, **kw,
        )  # fmt: skip
    cross = res.first_crossing()
    print(f"2/η = {res.threshold:.4g}; λmax from {res.sharpness[0]:.4g} to max "
          f"{res.sharpness.max():.4g}; first within 5% of 2/η at step {cross}")  # fmt: skip
    print(f"training {res.seconds_train:.2f} s, tracking {res.seconds_track:.2f} s "
          f"(overhead {100 * res.overhead:.0f}%), {res.hvps.mean():.1f} HVPs per measurement")  # fmt: skip
    for note in res.notes:
        print(f"warning: {note}")
    fig = P.eos_figure(res.track_steps, res.sharpness, res.threshold, res.steps, res.loss)
    numbers = {k: getattr(res, k) for k in ("lr", "momentum", "threshold", "steps", "loss",
               "track_steps", "sharpness", "hvps", "seconds_train", "seconds_track", "warm",
               "diverged_step")}  # fmt: skip
    _write(args.out, numbers | {"overhead": res.overhead, "first_crossing": cross}, fig)
    return 0


def run_spectrum(args) -> int:

    name, model, loss_fn, data, batch = _subject(args)
    bar = ProgressBar("spectrum", args.quiet)
    res = spectrum.density(model, loss_fn, data, n_vectors=args.vectors, steps=args.lanczos_steps,
                           top_k=args.top_k, sigma=args.sigma, progress=bar,
                           batch_size=batch)  # fmt: skip
    print(f"{name}: {res.n_params:,} parameters; top eigenvalues "
          + ", ".join(f"{v:.4g}" for v in res.top))  # fmt: skip
    print(f"Ritz values [{res.ritz_min:.5g}, {res.ritz_max:.5g}] (extremes as computed, "
          f"inside the true spectrum; the plot adds a margin)")  # fmt: skip
    neg, neg_se = res.mass_below(0.0), res.mass_below_stderr(0.0)
    lo, hi = res.mass_below_bounds(0.0)
    print(f"share of eigenvalues below 0: {neg:.3f} ± {neg_se:.2g} over probes, within "
          f"[{lo:.3f}, {hi:.3f}] by the quadrature (weights of {res.nodes.shape[0]} probes x "
          f"{res.nodes.shape[1]} Lanczos steps; more --iters narrow it); "
          f"SLQ {res.seconds:.2f} s, top-k {res.seconds_top:.2f} s")  # fmt: skip
    numbers = {"run": name, "top": res.top, "nodes": res.nodes, "weights": res.weights,
               "ritz_min": res.ritz_min, "ritz_max": res.ritz_max, "share_below_0": neg,
               "share_below_0_stderr": neg_se, "share_below_0_bounds": [lo, hi],
               "grid": res.grid, "density": res.density, "seconds": res.seconds,
               "seconds_top": res.seconds_top}  # fmt: skip
    _write(args.out, numbers, P.spectrum_figure(res, f"{name}: Hessian spectrum"))
    return 0

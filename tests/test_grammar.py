"""The one argv <-> (Config, SliceRequest) grammar (landscape.cli.grammar), by round trip:

request_argv(config, request) -> the command line's own parser (landscape.cli.main) ->
config_from_args / slice_request must give back the same Config and canonical(request).
"""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.cli import grammar
from landscape.cli.grammar import ModelFlags, canonical, request_argv
from landscape.cli.main import build_parser
from landscape.core import directions
from landscape.data.config import Config
from landscape.engine import surface
from landscape.pipelines import presets, slices

PARSER = build_parser()


def parse(argv: list[str]):
    # through a shell, as a user pastes it: shlex.join -> shlex.split
    return PARSER.parse_args(shlex.split(shlex.join(argv)))


# ----------------------------------------------------------------------------- strategies

coord = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-1e-5, 1e-5, -0.3, 0.7, 1.5, 2.0**-30, -(2.0**-30), 1e4, -1e4, 0.1 + 0.2]
)


@st.composite
def ranges(draw):
    a, b = sorted((draw(coord), draw(coord)))
    if a == b:
        a, b = (a - 1.0, a) if a > 0 else (a, a + 1.0)
    return (a, b)


@st.composite
def requests(draw):
    dim = draw(st.sampled_from([1, 2]))
    kinds = slices.LINE_KINDS if dim == 1 else slices.PLANE_KINDS
    direction = draw(st.sampled_from(kinds))
    (x0, x1), (y0, y1) = draw(ranges()), draw(ranges())
    nx = draw(st.integers(slices.MIN_RES, 201))
    ny = draw(st.integers(slices.MIN_RES, min(surface.MAX_AXIS, surface.MAX_POINTS // nx)))
    return slices.SliceRequest(
        dim=dim,
        direction=direction,
        seed=draw(st.integers(0, 2**31 - 1)),
        n_lines=draw(st.integers(1, slices.MAX_LINES)),
        lines=draw(st.integers(0, slices.MAX_LINES)),
        orthogonal=draw(st.booleans()),
        norm=draw(st.sampled_from(directions.NORMS)),
        ignore=draw(st.sampled_from(directions.IGNORES)),
        dir_type=draw(st.sampled_from(slices.dir_types())),
        projection=draw(st.sampled_from(slices.projections())),
        xmin=x0, xmax=x1, ymin=y0, ymax=y1, nx=nx, ny=ny,
        split=draw(st.sampled_from(["train", "test"])),
        auto_range=draw(st.booleans()),
        method=draw(st.sampled_from(surface.METHODS)),
    )  # fmt: skip


CONFIGS = [
    Config(),
    Config(loss="huber", loss_params={"delta": 0.25}),
    Config(loss_params=Config().loss_params),
    Config(batchnorm=True, skip=False, model="resmlp", depth=3, width=7, activation="tanh"),
    Config(lr=1e-5, weight_decay=3e-7, momentum=0.5, optimizer="momentum"),
    Config(schedule="cosine", warmup_epochs=2, epochs=5, seed=123, noise=0.0, test_fraction=0.5),
    *(presets.get(name) for name in presets.PRESETS),
]


# ----------------------------------------------------------------------------- round trips


@settings(max_examples=150, deadline=None)
@given(request=requests(), config=st.sampled_from(CONFIGS))
def test_config_and_request_round_trip_through_the_command_line(request, config):
    end = "b.npz" if request.direction == "between" else None
    args = parse(request_argv(config, request, end_run=end))
    assert args.command == ("line" if request.dim == 1 else "plane")
    assert grammar.config_from_args(args) == config
    assert grammar.slice_request(args) == canonical(request)
    assert args.end_run == end if request.dim == 1 else True


@settings(max_examples=150, deadline=None)
@given(request=requests())
def test_a_loaded_run_round_trips_and_trains_nothing(request):
    end = "runs/b c.npz" if request.direction == "between" else None
    args = parse(request_argv(None, request, load_run="my run.npz", end_run=end))
    assert args.load_run == "my run.npz"
    assert all(getattr(args, f.name) is None for f in grammar.config_fields())
    assert grammar.slice_request(args) == canonical(request)


MODEL = ModelFlags(
    factory="my_models:make_net",
    weights="net.safetensors",
    data="data dir/data.npz",
    kwargs=(("width", 64),),
    loss="huber",
    device="cpu",
    max_samples=2000,
    checkpoints=("ckpt_1.safetensors", "ckpt_2.safetensors", "ckpt_10.safetensors"),
    to="other.safetensors",
)


@settings(max_examples=150, deadline=None)
@given(request=requests())
def test_an_own_model_round_trips(request):
    request = request.replace(split="train")  # an own model's data is its one split
    args = parse(request_argv(None, request, model=MODEL))
    assert ModelFlags.from_args(args) == MODEL.used_by(request.direction)
    assert grammar.slice_request(args) == canonical(request)


def test_canonical_keeps_what_the_direction_uses_and_is_idempotent():
    r = slices.SliceRequest(dim=2, direction="pca", seed=4, norm="layer", projection="lstsq",
                            auto_range=True, xmin=-3, nx=5, ny=7, n_lines=2, lines=3)  # fmt: skip
    c = canonical(r)
    assert c == slices.SliceRequest(dim=2, direction="pca", projection="lstsq", auto_range=True,
                                     nx=5, ny=7)  # fmt: skip
    assert canonical(c) == c
    h = canonical(r.replace(direction="hessian", dir_type="states", orthogonal=True))
    assert (h.seed, h.norm, h.dir_type, h.orthogonal) == (4, "layer", "weights", False)


def test_negative_tiny_numbers_are_words_argparse_reads_as_numbers():
    for x in (-1e-05, -(2.0**-40), -1e4, -0.0, 1e-300, 0.1 + 0.2):
        word = grammar.number(x)
        assert "e" not in word and float(word) == x
    r = slices.SliceRequest(dim=1, direction="random", xmin=-1e-5, xmax=-1e-6, nx=3)
    assert grammar.slice_request(parse(request_argv(Config(), r))) == canonical(r)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(config=Config(), load_run="r.npz"), "exactly one of"),
        (dict(config=None), "exactly one of"),
    ],
)
def test_request_argv_needs_one_subject(kw, message):
    with pytest.raises(ValueError, match=message):
        request_argv(request=slices.SliceRequest(), **kw)


@pytest.mark.parametrize(
    "request_, kw, message",
    [
        (slices.SliceRequest(dim=1, direction="between"), dict(config=Config()), "end_run"),
        (
            slices.SliceRequest(dim=2, direction="pca"),
            dict(config=None, model=ModelFlags("m:f", "w", "d", checkpoints=("a",))),
            "2 checkpoints",
        ),
        (
            slices.SliceRequest(dim=1, direction="between"),
            dict(config=None, model=ModelFlags("m:f", "w", "d")),
            "to",
        ),
    ],  # fmt: skip
)
def test_a_request_without_its_files_is_refused(request_, kw, message):
    with pytest.raises(ValueError, match=message):
        request_argv(request=request_, **kw)

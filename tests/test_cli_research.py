"""The research subcommands: they run, write their files, and reject bad input with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from landscape.cli.main import build_parser, main

TINY = ["--n-samples", "100", "--epochs", "3", "--width", "8", "--quiet"]


@pytest.mark.slow
def test_sharpness_with_rescaling_writes_numbers_that_show_the_invariance(tmp_path, capsys):
    out = tmp_path / "s"
    assert (
        main(["sharpness", *TINY, "--rescale", "3", "--ascent-steps", "3", "--out", str(out)]) == 0
    )
    numbers = json.loads((tmp_path / "s.json").read_text())
    a, b = (p["values"] for p in numbers["panels"])
    assert b["asam"] == pytest.approx(a["asam"], rel=1e-4)
    assert b["basin_width"] == pytest.approx(a["basin_width"], rel=1e-6)
    assert b["lambda_max"] > 2 * a["lambda_max"]
    assert (tmp_path / "s.html").stat().st_size > 1000


def test_connect_eos_and_spectrum_write_their_files(tmp_path):
    assert main(["connect", *TINY, "--curve-steps", "5", "--points", "5", "--plane-res", "5",
                 "--out", str(tmp_path / "c")]) == 0  # fmt: skip
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["barrier"] >= 0 and len(c["line_loss"]) == 5
    assert main(["eos", "--steps", "20", "--every", "10", "--n-samples", "100", "--quiet",
                 "--out", str(tmp_path / "e")]) == 0  # fmt: skip
    e = json.loads((tmp_path / "e.json").read_text())
    assert e["track_steps"] == [0, 10, 20] and e["threshold"] == pytest.approx(4.0)
    assert main(["spectrum", *TINY, "--vectors", "2", "--lanczos-steps", "8", "--top-k", "1",
                 "--out", str(tmp_path / "p")]) == 0  # fmt: skip
    p = json.loads((tmp_path / "p.json").read_text())
    assert len(p["top"]) == 1 and len(p["nodes"]) == 2


def test_research_outputs_are_written_together_or_not_at_all(tmp_path, monkeypatch, capsys):
    """An interrupted write leaves the old PREFIX.json and PREFIX.html (and no temporaries)."""
    import plotly.graph_objects as go

    (tmp_path / "e.json").write_text("old json")
    (tmp_path / "e.html").write_text("old html")

    def interrupted(self, *a, **kw):
        raise KeyboardInterrupt

    argv = ["eos", "--steps", "4", "--every", "2", "--n-samples", "100", "--quiet",
            "--out", str(tmp_path / "e")]  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(go.Figure, "to_html", interrupted)
        with pytest.raises(KeyboardInterrupt):
            main(argv)
    assert (tmp_path / "e.json").read_text() == "old json"
    assert (tmp_path / "e.html").read_text() == "old html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.html", "e.json"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "e.json").read_text())["track_steps"] == [0, 2, 4]
    assert "plotly" in (tmp_path / "e.html").read_text()
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv, text",
    [
        (["sharpness", "--rho", "-1"], "--rho"),
        (["sharpness", "--eps", "nan"], "--eps"),
        (["eos", "--optimizer", "adam", "--quiet"], "optimizer='adam'"),
        (["connect", "--plane-res", "2", "--quiet", "--epochs", "1"], "--plane-res"),
        (["spectrum", "--top-k", "-1", "--epochs", "1", "--quiet"], "top_k"),
        (
            ["sharpness", "--rescale", "2", "--activation", "tanh", "--epochs", "1", "--quiet"],
            "ReLU",
        ),
    ],
)
def test_bad_values_exit_2_with_one_line(argv, text, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert text in err and "\n" not in err and "Traceback" not in err


def test_every_research_flag_has_help():
    sub = build_parser()._subparsers._group_actions[0]
    for name in ("sharpness", "connect", "eos", "spectrum"):
        for action in sub.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


# ----------------------------------------------------------------------------- your own model


def _json(prefix):
    from pathlib import Path

    return json.loads(Path(f"{prefix}.json").read_text())


OWN = ["--model-factory", "own_net:make_net", "--weights", "net.safetensors", "--data",
       "data.npz", "--batch-size", "7", "--quiet"]  # fmt: skip


def test_own_model_sharpness_spectrum_and_connect_equal_the_library(user):
    import torch
    import torch.nn.functional as F

    from landscape.measures import connectivity, sharpness, spectrum

    X, y = (torch.from_numpy(a) for a in user.make_data(n=30))
    net = user.make_net()  # the weights of net.safetensors; the loss written out here
    assert main(["sharpness", *OWN, "--ascent-steps", "3", "--out", "s"]) == 0
    got = _json("s")["panels"][0]
    settings = sharpness.PanelSettings(steps=3)
    want = sharpness.panel(net, F.cross_entropy, (X, y), settings)
    assert got["loss"] == pytest.approx(want.loss, rel=1e-5)
    for m in sharpness.MEASURES:
        assert got["values"][m] == pytest.approx(want.values[m], rel=1e-4, abs=1e-7), m
    assert main(["spectrum", *OWN, "--vectors", "2", "--lanczos-steps", "8", "--top-k", "2",
                 "--out", "p"]) == 0  # fmt: skip
    got = _json("p")
    want = spectrum.density(net, F.cross_entropy, (X, y), n_vectors=2, steps=8, top_k=2)
    np.testing.assert_allclose(got["top"], want.top, rtol=1e-4)
    np.testing.assert_allclose(got["nodes"], want.nodes, rtol=1e-4, atol=1e-6)
    # connect: the second net is --to; a net with itself has no barrier
    assert main(["connect", *OWN, "--to", "other.safetensors", "--curve-steps", "2",
                 "--points", "5", "--plane-res", "0", "--out", "c"]) == 0  # fmt: skip
    got = _json("c")
    want = connectivity.straight_line(net, user.make_net(seed=5), F.cross_entropy, (X, y), 5)
    np.testing.assert_allclose(got["line_loss"], np.asarray(want[1]), rtol=1e-5)
    with torch.no_grad():  # each end is that net's own loss, computed plainly
        ends = [float(F.cross_entropy(m.eval()(X), y)) for m in (net, user.make_net(seed=5))]
    np.testing.assert_allclose([got["line_loss"][0], got["line_loss"][-1]], ends, rtol=1e-5)
    assert main(["connect", *OWN, "--to", "net.safetensors", "--curve-steps", "2",
                 "--points", "5", "--plane-res", "0", "--out", "self"]) == 0  # fmt: skip
    assert _json("self")["barrier"] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize(
    "argv, text",
    [
        (["spectrum", *OWN[2:], "--quiet"], "--weights needs --model-factory"),
        (["sharpness", "--model-factory", "own_net:nothing", *OWN[2:]], "has no 'nothing'"),
        (["spectrum", *OWN, "--epochs", "3"], "--epochs is a flag of built-in runs"),
        (["sharpness", *OWN, "--device", "cuda:99"], "--device 'cuda:99'"),
        (["spectrum", *OWN, "--device", "gpu"], "--device 'gpu' is not allowed"),
        (["eos", *OWN, "--n-samples", "10"], "--n-samples is a flag of built-in runs"),
        (["eos", *OWN, "--optimizer", "adam"], "optimizer='adam'"),
        (["connect", *OWN], "needs --to OTHER_WEIGHTS"),
        (["connect", *OWN, "--to", "net.safetensors", "--seed-b", "2"], "--seed-b is a flag"),
        (["connect", *OWN, "--to", "nope.safetensors"], "nope.safetensors"),
    ],
)
def test_own_model_bad_spec_exits_2_with_one_line(user, argv, text, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and text in err, err

"""The research subcommands: they run, write their files, and reject bad input with exit 2."""

from __future__ import annotations

import json

import pytest

from landscape.__main__ import build_parser, main

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

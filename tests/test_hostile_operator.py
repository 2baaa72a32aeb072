"""Own models, their data and the operator's models.toml, hostile (issue 23): deep nesting,
a module that never finishes importing, labels out of range and NaN in the data. Each is one
line (CLI exit 2, app st.error) found before any work, and a refused run leaves no store."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from safetensors.torch import save_file
from streamlit.testing.v1 import AppTest

from landscape.cli.main import main
from landscape.engine.own import loading
from landscape.pipelines import operator_models as om

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py")
DEEP = 100_000


def one_line_refusal(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def user_folder(tmp_path, monkeypatch):
    """tests/own_net.py, its weights and data in the working folder, as a user has them."""
    shutil.copy(ROOT / "tests" / "own_net.py", tmp_path / "own_net.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("own_net", None)
    import own_net

    save_file(own_net.make_net().state_dict(), "net.safetensors")
    yield own_net
    sys.modules.pop("own_net", None)


ARGV = ["plane", "--model-factory", "own_net:make_net", "--weights", "net.safetensors",
        "--data", "data.npz", "--res", "4", "--quiet", "--out", "p"]  # fmt: skip


def test_model_kwargs_nested_deep_is_one_line(user_folder, capsys):
    deep = "[" * DEEP + "]" * DEEP
    with pytest.raises(ValueError, match="--model-kwargs is nested too deeply"):
        loading.parse_kwargs(deep)
    X, y = user_folder.make_data(n=12)
    np.savez("data.npz", X=X, y=y)
    err = one_line_refusal([*ARGV, "--model-kwargs", '{"a": ' + deep + "}"], capsys)
    assert "nested too deeply" in err


def test_deep_models_toml_is_one_clear_message(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    with pytest.raises(ValueError, match="nested too deeply"):
        om.load(bad)
    bad.write_text("x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n")
    with pytest.raises(ValueError, match="nested too deeply"):
        om.load(bad)


@pytest.mark.parametrize(
    "case, needle",
    [("label", "the label of sample 5 (counting from 0) is 3"),
     ("nan", "X of sample 7 (counting from 0) is not finite (nan)"),
     ("inf_y", "y of sample 2 (counting from 0) is not finite (inf)")],
)  # fmt: skip
def test_bad_research_data_is_refused_before_any_work(user_folder, capsys, case, needle):
    X, y = user_folder.make_data(n=12)
    if case == "label":
        y[5] = 3  # 3 classes: labels 0..2
    elif case == "nan":
        X[7, 0, 2, 2] = np.nan
    else:
        y = y.astype(np.float32)
        y[2] = np.inf
    np.savez("data.npz", X=X, y=y)
    argv = ARGV if case != "inf_y" else [*ARGV, "--loss", "mse"]
    err = one_line_refusal(argv, capsys)
    assert "'data.npz'" in err and needle in err, err
    assert not Path("p.zarr").exists() and not Path("p.npz").exists()
    # the fixed data runs at once (nothing of the refused run is in the way)
    X, y = user_folder.make_data(n=12)
    np.savez("data.npz", X=X, y=y)
    assert main(ARGV) == 0 and Path("p.npz").exists()


SLOW_MODULE = """
import time
time.sleep(20)  # an import that does not finish (a hang, cut short to keep the test finite)
from own_net import make_net
"""


@pytest.fixture
def hanging_operator(tmp_path, monkeypatch, inline_jobs):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(ROOT / "tests" / "own_net.py", folder / "own_net.py")
    (folder / "slow_net.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("own_net", None)
    import own_net

    save_file(own_net.make_net().state_dict(), folder / "net.safetensors")
    X, y = own_net.make_data()
    np.savez(folder / "data.npz", X=X, y=y)
    (folder / "models.toml").write_text(
        '[[model]]\nname = "slow"\nfactory = "slow_net:make_net"\nweights = "net.safetensors"\n'
        'data = "data.npz"\n'
    )
    monkeypatch.setenv(om.ENV, str(folder / "models.toml"))
    monkeypatch.setattr(om, "IMPORT_SECONDS", 2.0, raising=False)
    getattr(om, "_import_verdicts", {}).clear()
    yield folder
    sys.modules.pop("own_net", None)
    sys.modules.pop("slow_net", None)
    getattr(om, "_import_verdicts", {}).clear()


def test_a_model_whose_import_hangs_is_unavailable_with_the_reason(hanging_operator):
    (entry,) = om.entries().values()
    with pytest.raises(ValueError, match=r"'slow' is unavailable: importing 'slow_net' did not"):
        om.open_entry(entry)
    assert "slow_net" not in sys.modules  # this process never imported it
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    at.radio(key="lp_source").set_value("Operator's models").run()
    at.slider(key="lp_om_nx").set_value(3)
    at.slider(key="lp_om_ny").set_value(3)
    at.button(key="lp_om_go").click().run()
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("'slow' is unavailable" in e and "slow_net" in e for e in errors), errors

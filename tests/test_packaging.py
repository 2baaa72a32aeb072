"""The project installs like a library: `pip install .` gives the package (with its shipped
data) and a `landscape` command that work from any folder."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines) -> list[str]:
    return [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]


def test_the_package_pins_what_requirements_txt_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert all("==" in d for d in project["dependencies"])
    assert project["scripts"]["landscape"] == "landscape.__main__:console"


@pytest.mark.slow
def test_pip_install_gives_a_landscape_command_that_works_from_another_folder(installed):
    site, elsewhere, env = installed.site, installed.elsewhere, installed.env
    code = (
        "import landscape, landscape.pipelines.gallery as g, landscape.pipelines.comparison_presets as c;"
        "print(landscape.__file__);"
        "print(len(list(g.HERE.glob('*.npz'))), len(list(c.PRESETS_DATA.glob('*.json'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    where, counts = out.stdout.split("\n")[:2]
    assert where.startswith(str(site))  # the installed copy, not the repository
    shipped, presets = map(int, counts.split())
    assert shipped == len(list((ROOT / "landscape/pipelines/gallery").glob("*.npz"))) > 0
    assert presets == len(list((ROOT / "landscape/pipelines/presets_data").glob("*.json"))) > 0
    run = subprocess.run(
        [str(installed.command), "plane", "--dataset", "moons", "--n-samples", "60", "--depth", "1",
         "--width", "4", "--epochs", "2", "--res", "3", "--quiet", "--out", "p"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "p.npz").is_file() and "wrote p.npz" in run.stdout


@pytest.mark.slow
def test_the_installed_copy_holds_the_whole_app(installed):
    """Every script the server runs, and its settings, are in the installed package."""
    server = ROOT / "landscape/ui/server"
    shipped = {
        p.relative_to(server)
        for p in server.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    got = {p.relative_to(installed.site / "landscape/ui/server") for p in (installed.site / "landscape/ui/server").rglob("*")
           if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert Path(".streamlit/config.toml") in shipped and Path("app_pages/train.py") in shipped
    assert shipped <= got


def test_landscape_app_runs_streamlit_on_the_packages_own_server(monkeypatch):
    """`landscape app --server.port N` becomes `streamlit run <package>/ui/server/app.py
    --server.port N` in the same process; other commands still refuse unknown flags."""
    from landscape.cli import app as cli_app
    from landscape.cli.main import main

    ran = []
    monkeypatch.setattr(os, "execv", lambda path, argv: ran.append((path, argv)))
    assert main(["app", "--server.port", "8502", "--server.headless", "true"]) == 0
    path, argv = ran[0]
    assert path == sys.executable
    assert argv[1:4] == ["-m", "streamlit", "run"]
    assert Path(argv[4]) == ROOT / "landscape/ui/server/app.py" == cli_app.SERVER
    assert argv[5:] == ["--server.port", "8502", "--server.headless", "true"]
    with pytest.raises(SystemExit) as e:
        main(["train", "--server.port", "8502"])
    assert e.value.code == 2

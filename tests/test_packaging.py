"""The project installs like a library: its pins and its `landscape` command. The installed
copy itself (the package, its data, the command and the app from another folder) is checked
in tests/e2e/test_installed.py, which installs it once per run."""

import os
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

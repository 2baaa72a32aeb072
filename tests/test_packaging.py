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
def test_pip_install_gives_a_landscape_command_that_works_from_another_folder(tmp_path):
    src = tmp_path / "src"  # a copy of the tracked files: building writes into the tree
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        rel = name.decode()
        if not (ROOT / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((ROOT / rel).read_bytes())
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "--target", str(site), str(src)], check=True, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
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
    script = site / "bin" / "landscape"
    run = subprocess.run(
        [str(script), "plane", "--dataset", "moons", "--n-samples", "60", "--depth", "1",
         "--width", "4", "--epochs", "2", "--res", "3", "--quiet", "--out", "p"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "p.npz").is_file() and "wrote p.npz" in run.stdout

"""`pip install .` then, from a folder far from the clone, the library, the `landscape`
command and `landscape app`: the installed copy serves the whole app with its own settings
(the Streamlit config beside its server script). One test, so the project is installed once
per run."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import _free_port, _need_browser, _new_page, start_server, stop_server
from tests.e2e.helpers import assert_clean, go_via_sidebar, open_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def check_library_and_command(installed) -> None:
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
    server = ROOT / "landscape/ui/server"
    tracked = {p.relative_to(server) for p in server.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    got = {p.relative_to(site / "landscape/ui/server") for p in (site / "landscape/ui/server").rglob("*")
           if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert Path(".streamlit/config.toml") in tracked and tracked <= got  # the whole server
    run = subprocess.run(
        [str(installed.command), "plane", "--dataset", "moons", "--n-samples", "60", "--depth", "1",
         "--width", "4", "--epochs", "2", "--res", "3", "--quiet", "--out", "p"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "p.npz").is_file() and "wrote p.npz" in run.stdout


def test_landscape_app_from_another_folder_serves_every_page(installed, browser, tmp_path):
    _need_browser()
    check_library_and_command(installed)
    port = _free_port()
    with open(tmp_path / "installed-server.log", "w") as log:
        proc = start_server(
            port,
            log,
            env=installed.env,
            command=[installed.command, "app"],
            cwd=installed.elsewhere,
        )
        try:
            with _new_page(browser) as page:
                url = f"http://127.0.0.1:{port}"
                open_page(page, url + "/landscape", "Loss landscape")
                page.get_by_text("Load a saved run").click()
                # maxUploadSize = 5 is the installed .streamlit/config.toml's, not Streamlit's 200
                page.get_by_text("5MB per file").first.wait_for(timeout=30_000)
                go_via_sidebar(page, "gallery", "Gallery")
                # the shipped slices, read from the installed package
                page.locator("[data-testid='stMain'] .js-plotly-plot").first.wait_for(
                    timeout=60_000
                )
                assert_clean(page)
                # the live charts' frontend (package data) and the installed plotly's plotly.js
                go_via_sidebar(page, "train", "Train")
                page.locator(".st-key-tr_live_step button").first.click()
                live = page.frame_locator(".st-key-tr_live_curve iframe")
                live.locator(".main-svg").first.wait_for(timeout=60_000)
                assert_clean(page)
        finally:
            stop_server(proc)
    assert not (installed.elsewhere / ".streamlit").exists()  # nothing borrowed from the folder

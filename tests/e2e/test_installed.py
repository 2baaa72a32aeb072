"""`pip install .` then `landscape app` from a folder far from the clone: the installed copy
serves the whole app with its own settings (the Streamlit config beside its server script)."""

import pytest

from tests.e2e.conftest import _free_port, _need_browser, _new_page, start_server, stop_server
from tests.e2e.helpers import assert_clean, go_via_sidebar, open_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_landscape_app_from_another_folder_serves_every_page(installed, browser, tmp_path):
    _need_browser()
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
        finally:
            stop_server(proc)
    assert not (installed.elsewhere / ".streamlit").exists()  # nothing borrowed from the folder

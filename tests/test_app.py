"""The app frame: navigation over every page, the home page renders without exception."""

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_page_renders_and_links_every_page():
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Loss Landscape Lab"
    text = " ".join(m.value for m in at.markdown)
    for topic in ("Loss shapes", "Train", "Landscape", "Compare", "Geometry"):
        assert topic in " ".join(s.value for s in at.subheader), topic
    assert "filter-normalised" in text


def _navigation() -> list[str]:
    """The page files lab.py hands to st.navigation, recorded as the frame runs."""
    seen, real = [], st.Page

    def page(path, *args, **kw):
        seen.append(path)
        return real(path, *args, **kw)

    with mock.patch.object(st, "Page", page):
        at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    return seen


def test_navigation_lists_every_page_file_once():
    pages = _navigation()
    assert sorted(pages) == sorted(
        f"app_pages/{p.name}" for p in (ROOT / "landscape/ui/server/app_pages").glob("*.py")
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", ["app_pages/geometry.py", "app_pages/loss_shapes.py"])
def test_a_page_of_the_navigation_opens_from_the_frame(path):
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=120).run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


WARM_UP = """
import asyncio, importlib.util, json, sys
from landscape.ui import workers
started = []
class Pool:  # a stand-in: no worker processes here
    def start(self):
        started.append(sorted(n for n in sys.modules if n.startswith("landscape.")))
        return self
workers.shared_pool = lambda: Pool()
before = sorted(n for n in sys.modules if n.startswith("landscape."))
spec = importlib.util.spec_from_file_location("served_app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
async def serve():
    async with module.app._user_lifespan(None):
        return len(started)
print(json.dumps({"script": str(module.app._resolved_script_path), "before": before,
                  "started": asyncio.run(serve()), "loaded": started[0]}))
"""


def test_the_server_entry_serves_the_frame_and_warms_up():
    """`streamlit run app.py` finds an st.App (Streamlit's own check) serving lab.py, whose
    start-up imports what the pages need and starts the worker pool before serving."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    info = discover_asgi_app(ROOT / "app.py")
    assert info.is_asgi_app and info.app_name == "app", info
    out = subprocess.run(
        [sys.executable, "-c", WARM_UP, str(ROOT / "app.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(got["script"]) == ROOT / "landscape/ui/server/lab.py"
    assert got["started"] == 1  # the pool starts once, before the first request is served
    pages_need = {
        "landscape.ui.library",
        "landscape.ui.links",
        "landscape.ui.runs",
        "landscape.plots",
    }
    assert not pages_need & set(got["before"]) and pages_need <= set(got["loaded"])

"""The app frame: navigation over every page, the home page renders without exception."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_page_renders_and_links_every_page():
    at = AppTest.from_file(str(ROOT / "lab.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Loss Landscape Lab"
    text = " ".join(m.value for m in at.markdown)
    for topic in ("Loss shapes", "Train", "Landscape", "Compare", "Geometry"):
        assert topic in " ".join(s.value for s in at.subheader), topic
    assert "filter-normalised" in text


def test_every_page_file_in_navigation_exists():
    src = (ROOT / "lab.py").read_text()
    pages = re.findall(r'st\.Page\(\s*"([^"]+)"', src)
    assert len(pages) == 7
    for p in pages:
        assert (ROOT / p).is_file(), p


def test_the_server_entry_serves_the_frame_and_warms_up():
    """`streamlit run app.py` finds an st.App (Streamlit's own check) serving lab.py, whose
    start-up imports what the pages need (the browser suite starts the server this way)."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    info = discover_asgi_app(ROOT / "app.py")
    assert info.is_asgi_app and info.app_name == "app", info
    src = (ROOT / "app.py").read_text()
    assert 'st.App("lab.py", lifespan=_warm)' in src
    assert "workers.shared_pool().start()" in src

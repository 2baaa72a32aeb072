"""The app frame: navigation over every page, the home page renders without exception."""

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def test_home_page_renders_and_links_every_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Loss Landscape Lab"
    text = " ".join(m.value for m in at.markdown)
    for topic in ("Loss shapes", "Train", "Landscape", "Compare", "Geometry"):
        assert topic in " ".join(s.value for s in at.subheader), topic
    assert "filter-normalised" in text


def test_every_page_file_in_navigation_exists():
    src = (ROOT / "app.py").read_text()
    pages = re.findall(r'st\.Page\(\s*"([^"]+)"', src)
    assert len(pages) == 7
    for p in pages:
        assert (ROOT / p).is_file(), p

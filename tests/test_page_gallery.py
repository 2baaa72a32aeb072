"""The Gallery page through AppTest: the shipped pair appears at once with its numbers, and a
slice opens on the Landscape page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from landscape import gallery

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "gallery.py")


def test_gallery_shows_the_deepest_pair_with_measured_captions():
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    deepest = max(e.n_layers for e in gallery.entries())
    pair = [e for e in gallery.entries() if e.n_layers == deepest]
    captions = [c.value for c in at.caption]
    for e in pair:
        assert gallery.caption(e) in captions
    assert len(at.get("plotly_chart")) == 2
    text = " ".join(m.value for m in at.markdown)
    assert "Reproduced" in text or "Not reproduced" in text
    assert len(at.dataframe) == 1

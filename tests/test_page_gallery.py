"""The Gallery page through AppTest: the shipped pair appears at once with its numbers, and a
slice opens on the Landscape page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from landscape.pipelines import gallery

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
    maps = [e for e in pair if e.convexity is not None]
    # the two slices, plus the convexity maps where both nets have one, each with its numbers
    assert len(at.get("plotly_chart")) == 2 + (2 if len(maps) == 2 else 0)
    if len(maps) == 2:
        for e in maps:
            assert gallery.convexity_caption(e) in captions
    text = " ".join(m.value for m in at.markdown)
    assert "Reproduced" in text or "Not reproduced" in text
    ok, finding = gallery.training_finding(gallery.entries())
    assert (("Reproduced: " + finding) in text) == ok and finding in text
    if len(maps) == 2:
        skip, noskip = sorted(maps, key=lambda e: not e.skip)
        ok, finding = gallery.convexity_finding(skip, noskip)
        assert finding in text
        assert (("Reproduced: " + finding) in text) == ok
    assert len(at.dataframe) == 1

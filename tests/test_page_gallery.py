"""The Gallery page through AppTest: the shipped pair appears at once with its numbers, and a
slice opens on the Landscape page."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

from landscape.pipelines import gallery

PAGE = str(Path(__file__).resolve().parents[1] / "landscape/ui/server/app_pages" / "gallery.py")


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


LAB = str(Path(__file__).resolve().parents[1] / "landscape/ui/server/lab.py")


def test_gallery_settings_are_in_the_address_and_survive_a_page_switch():
    """Issue 25: the depth and plot type were not in the address and went back to their
    defaults after a page switch (depth 20 -> 56)."""
    at = AppTest.from_file(LAB, default_timeout=60)
    at.switch_page("app_pages/gallery.py").run()
    depths = sorted({e.n_layers for e in gallery.entries()})
    at.segmented_control(key="gal_depth").set_value(depths[0]).run()
    at.switch_page("app_pages/home.py").run()
    at.switch_page("app_pages/gallery.py").run()
    assert not at.exception, at.exception
    assert at.segmented_control(key="gal_depth").value == depths[0]
    assert at.query_params["gal_depth"] == str(depths[0])
    link = AppTest.from_file(LAB, default_timeout=60).run()  # a fresh tab, then the link
    link.query_params.update({"gal_depth": str(depths[0]), "gal_kind": "3D"})
    link.switch_page("app_pages/gallery.py").run()
    assert link.segmented_control(key="gal_depth").value == depths[0]
    assert link.segmented_control(key="gal_kind").value == "3D"


def test_open_in_landscape_titles_links_and_clips_like_the_gallery():
    """Issue 25: the Landscape page showed the title `**** · 2D random…`, said "No trained
    network in this session yet" above the picture, kept nothing in the address and ran the
    colours unclipped from 0.46 to 2e5."""
    deepest = max(e.n_layers for e in gallery.entries())
    at = AppTest.from_file(LAB, default_timeout=60)
    at.switch_page("app_pages/gallery.py").run()
    at.button(key=f"gal_{deepest}_0_open").click().run()
    assert not at.exception, at.exception
    for page in (at, None):
        if page is None:  # the address, reloaded in a fresh session
            page = AppTest.from_file(LAB, default_timeout=60).run()
            page.query_params["gallery"] = f"{deepest}-0"
            page.switch_page("app_pages/loss_landscape.py").run()
            assert not page.exception, page.exception
        assert page.query_params["gallery"] == f"{deepest}-0"
        title = next(m.value for m in page.markdown if "2D random" in m.value)
        assert "****" not in title and f"ResNet\\-{deepest}" in title
        assert not any("No trained network" in i.value for i in page.info)
        assert any("weights do not ship" in c.value for c in page.caption)
        crange = page.select_slider(key="lp_crange")
        assert crange.value[1] <= 10.0 < float(crange.options[-1])

"""The home page in a real browser: its links open the pages they name."""

import pytest

from .helpers import assert_clean, open_page, settle

pytestmark = pytest.mark.e2e


def test_home_link_opens_the_loss_page(page, app_url):
    open_page(page, app_url, "Loss Landscape Lab")
    page.get_by_role("link", name="Open Loss shapes").click()
    page.wait_for_url("**/loss-shapes")
    page.locator("h1", has_text="Loss shapes").wait_for(timeout=60_000)
    settle(page)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert_clean(page)

"""The home page in a real browser: loads, no exception box, no console error."""

import pytest

pytestmark = pytest.mark.e2e


def wait_idle(page, timeout=60_000):
    """Wait until Streamlit has finished the current script run."""
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout
    )


def test_home_loads_clean(page, app_url, shots_dir):
    page.goto(app_url)
    wait_idle(page)
    page.wait_for_selector("h1:has-text('Loss Landscape Lab')")
    assert page.locator("[data-testid='stException']").count() == 0
    page.screenshot(path=str(shots_dir / "home.png"), full_page=True)
    assert not page.errors, page.errors

"""Every test session gets its own temporary data folder: nothing a test trains or computes
is written under the real home (LANDSCAPE_DATA_DIR is inherited by worker processes and by
the servers the browser tests start)."""

import os
import tempfile


def pytest_configure(config):
    os.environ["LANDSCAPE_DATA_DIR"] = tempfile.mkdtemp(prefix="landscape-test-data-")
    # The servers tests start do not train the presets in the background (tests/test_warm.py
    # checks that warm-up on its own): it would take CPU from the tests that time things.
    os.environ.setdefault("LANDSCAPE_WARM_PRESETS", "0")

"""Every test session gets its own temporary data folder: nothing a test trains or computes
is written under the real home (LANDSCAPE_DATA_DIR is inherited by worker processes and by
the servers the browser tests start)."""

import os
import tempfile


def pytest_configure(config):
    os.environ["LANDSCAPE_DATA_DIR"] = tempfile.mkdtemp(prefix="landscape-test-data-")

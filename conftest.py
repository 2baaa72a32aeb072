"""Root conftest: puts the repository root on sys.path so `import landscape` works in tests.

The app's config hides error details from users; in AppTest runs we want the real message
in the failure report, so tests turn full error details back on.
"""

import os

# Under pytest-xdist the two cores are shared by two test processes: one torch thread each.
_XDIST = "PYTEST_XDIST_WORKER" in os.environ
os.environ.setdefault("LANDSCAPE_TORCH_THREADS", "1" if _XDIST else "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see landscape/__init__

try:
    from streamlit import config as _st_config

    _st_config.set_option("client.showErrorDetails", "full")
except Exception:  # streamlit missing: the library tests still run
    pass


import pytest  # noqa: E402


@pytest.fixture
def inline_jobs(monkeypatch):
    """Heavy jobs in the calling thread instead of worker processes, for tests that count or
    fake calls to library functions with monkeypatch (which cannot reach another process)."""
    from landscape.ui import workers

    monkeypatch.setattr(workers, "_shared", workers.InlinePool())


if _XDIST:
    import torch  # noqa: E402

    torch.set_num_threads(1)

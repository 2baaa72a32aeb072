"""Every test session gets its own temporary data folder: nothing a test trains or computes
is written under the real home (LANDSCAPE_DATA_DIR is inherited by worker processes and by
the servers the browser tests start)."""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


def pytest_configure(config):
    os.environ["LANDSCAPE_DATA_DIR"] = tempfile.mkdtemp(prefix="landscape-test-data-")
    # The servers tests start do not train the presets in the background (tests/test_warm.py
    # checks that warm-up on its own): it would take CPU from the tests that time things.
    os.environ.setdefault("LANDSCAPE_WARM_PRESETS", "0")


@pytest.fixture(autouse=True)
def _keep_the_main_module():
    """Streamlit's AppTest runs its script as ``__main__`` and leaves it in ``sys.modules``. A
    later test in the same process that starts a "spawn" Pool would then have every child
    re-run that script's temporary file as its main module and die at start, and the Pool
    would wait for them forever. So each test gets the real ``__main__`` back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's folder with tests/own_net.py (conv + BatchNorm + scalar parameters), its
    weights (net.safetensors, other.safetensors) and data.npz; the working folder is there."""
    from safetensors.torch import save_file

    shutil.copy(Path(__file__).parent / "own_net.py", tmp_path / "own_net.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("own_net", None)
    import own_net

    save_file(own_net.make_net().state_dict(), "net.safetensors")
    save_file(own_net.make_net(seed=5).state_dict(), "other.safetensors")
    X, y = own_net.make_data(n=30)
    np.savez("data.npz", X=X, y=y)
    yield own_net
    sys.modules.pop("own_net", None)


@dataclass(frozen=True)
class Installed:
    """A `pip install .` of the tracked files into `site`, and a folder far from the clone."""

    site: Path
    elsewhere: Path
    env: dict

    @property
    def command(self) -> Path:
        return self.site / "bin" / "landscape"


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Installed:
    """The project installed as a user installs it (its dependencies are this venv's)."""
    root = Path(__file__).resolve().parents[1]
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"  # a copy of the tracked files: building writes into the tree
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        rel = name.decode()
        if (root / rel).is_symlink() or not (root / rel).is_file():
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((root / rel).read_bytes())
    site = tmp / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "--target", str(site), str(src)], check=True, cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return Installed(site, elsewhere, {**os.environ, "PYTHONPATH": str(site)})

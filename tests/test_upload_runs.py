"""A run trained on an uploaded CSV, downloaded: it loads in a fresh process (a restarted
server, the command line) and the page's "Reproduce it" command runs as printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landscape.cli import reproduce
from landscape.cli.main import main
from landscape.data import upload
from landscape.data.config import Config
from landscape.pipelines import pictures
from landscape.storage import formats as store
from landscape.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


def one_feature_csv(n=60, task="classification") -> bytes:
    x = np.random.default_rng(1).normal(size=n)
    if task == "classification":
        return ("x,label\n" + "\n".join(f"{a:.4f},{int(a > 0)}" for a in x)).encode()
    return ("x,price\n" + "\n".join(f"{a:.4f},{3 * a + 100:.3f}" for a in x)).encode()


@pytest.fixture(scope="module")
def upload_run():
    name = upload.register(upload.parse_csv(one_feature_csv()))
    return train(Config(dataset=name, n_samples=60, epochs=3, width=4))


def test_reproduce_command_of_an_upload_run_loads_the_run_file(upload_run, tmp_path):
    req = pictures.SurfaceRequest.for_run(
        upload_run, dim=2, direction="random", nx=3, ny=3, xmin=-1, xmax=1, ymin=-1, ymax=1
    )
    result = pictures.compute(req, upload_run)
    comment, cmd = reproduce.landscape_command(result).split("\n")
    assert comment.startswith("#") and "uploaded data" in comment
    argv = shlex.split(cmd)
    assert argv[:6] == ["python", "-m", "landscape", "plane", "--load-run", "run.npz"]
    assert "--dataset" not in argv  # an upload name is no flag the CLI accepts
    (tmp_path / "run.npz").write_bytes(store.run_to_bytes(upload_run))
    # a new process: the upload registry is empty, as after a server restart
    out = subprocess.run(
        [sys.executable, *argv[1:], "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LANDSCAPE_TORCH_THREADS": "1"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    back = store.load_surface(tmp_path / "landscape-plane.npz")
    np.testing.assert_allclose(back.loss, result.main.loss, rtol=1e-5, atol=1e-6)


def test_hessian_command_of_an_upload_run_loads_the_run_file(upload_run, tmp_path, capsys):
    req = pictures.SurfaceRequest.for_run(
        upload_run, dim=2, direction="hessian", nx=3, ny=3, xmin=-1, xmax=1, ymin=-1, ymax=1
    )
    result = pictures.compute(req, upload_run)
    comment, cmd = reproduce.landscape_command(result, run_file=str(tmp_path / "r.npz")).split("\n")
    argv = shlex.split(cmd)[3:]
    assert argv[:3] == ["plane", "--load-run", str(tmp_path / "r.npz")] and "hessian" in argv
    (tmp_path / "r.npz").write_bytes(store.run_to_bytes(upload_run))
    argv[argv.index("--out") + 1] = str(tmp_path / "cli")
    assert main([*argv, "--quiet"]) == 0
    capsys.readouterr()
    back = store.load_surface(tmp_path / "cli.npz")
    np.testing.assert_allclose(back.loss, result.main.loss, rtol=1e-5, atol=1e-6)


def test_reproduce_command_of_a_built_in_run_is_unchanged():
    run = train(Config(n_samples=100, epochs=2, width=4))
    req = pictures.SurfaceRequest.for_run(
        run, dim=1, direction="interpolation", nx=3, xmin=0, xmax=1
    )
    result = pictures.compute(req, run)
    assert "--load-run" not in reproduce.landscape_command(
        result
    ) and "--epochs 2" in reproduce.landscape_command(result)

"""Freed memory kept for reuse (landscape.core.allocator): fewer page faults, same numbers."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from landscape.core import allocator

ROOT = Path(__file__).resolve().parents[1]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# A transformer layer's forwards, holding each output's row sums as a surface holds its
# losses: the page faults of 20 forwards after a warm-up, and a checksum of the outputs.
FORWARDS = """
import resource, sys, torch
from torch import nn
from landscape.core import allocator
torch.set_num_threads(1)
kept = allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
torch.manual_seed(0)
layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval()
X = torch.randn(512, 16, 32)
with torch.inference_mode():
    for _ in range(3):
        layer(X)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    sums = [layer(X).sum(-1) for _ in range(20)]
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(kept, faults, float(torch.stack(sums).double().sum()))
"""


def _forwards(mode: str, **env) -> tuple[str, int, float]:
    clean = {k: v for k, v in os.environ.items() if k not in allocator.USER_TUNABLES}
    out = subprocess.run(
        [sys.executable, "-c", FORWARDS, mode], capture_output=True, text=True, check=True,
        cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env}, timeout=120,
    )  # fmt: skip
    kept, faults, checksum = out.stdout.split()
    return kept, int(faults), float(checksum)


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_kept_memory_is_reused_instead_of_faulted_in_again():
    _, default, expected = _forwards("default")
    kept, faults, checksum = _forwards("keep")
    assert kept == "True"
    assert faults * 3 < default, (faults, default)  # glibc's default gives blocks back
    assert checksum == expected  # the same numbers


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_a_users_own_malloc_tunables_win():
    kept, _, _ = _forwards("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert kept == "False"


def test_setting_is_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "_state", None)
    monkeypatch.setattr(allocator, "_set", lambda: calls.append(1) or False)
    assert allocator.keep_freed_memory() is False and allocator.keep_freed_memory() is False
    assert calls == [1]

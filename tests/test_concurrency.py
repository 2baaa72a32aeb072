"""Several users at once: work in one server thread must not break work in another.

Found by the load test (benchmarks/load_test.py --client ws, 10 sessions): a training run
failed with ``NameError: module is not installed as a submodule`` raised inside
``torch.fx``'s ``module_call_wrapper`` while another session computed a landscape. While
``torch.fx.symbolic_trace`` runs (``landscape.engine.batched.graph._trace``, the surface fast path), fx
patches ``torch.nn.Module.__call__`` for the whole process, so every model call in every
other thread goes through the tracer. `landscape.engine.batched.graph._ThreadSafeTracer` now lets other threads' calls through untouched.
The test below makes the overlap certain: a module
whose traced forward waits keeps the trace open while another thread trains.
"""

from __future__ import annotations

import threading

import torch
from torch import nn

from landscape.data.config import Config
from landscape.engine import batched
from landscape.training.loop import train


class _Holds(nn.Module):
    """Identity whose forward, run by the tracer, waits until told to finish."""

    def __init__(self, inside: threading.Event, release: threading.Event):
        super().__init__()
        self.inside, self.release = inside, release

    def forward(self, x):
        self.inside.set()
        self.release.wait(30)
        return x


def test_tracing_a_surface_model_does_not_break_a_concurrent_training():
    inside, release = threading.Event(), threading.Event()
    model = nn.Sequential(nn.Linear(2, 2), _Holds(inside, release))
    tracer = threading.Thread(target=batched.supports, args=(model,), daemon=True)
    tracer.start()
    try:
        assert inside.wait(30), "the trace never reached the waiting module"
        run = train(Config(n_samples=100, epochs=1, width=4))  # meanwhile, another user trains
    finally:
        release.set()
        tracer.join(30)
    assert len(run.history["epoch"]) == 2


def test_training_alone_is_fine():
    """The control: the same training with no trace open."""
    run = train(Config(n_samples=100, epochs=1, width=4))
    assert len(run.history["epoch"]) == 2 and torch.isfinite(torch.tensor(run.step_loss)).all()

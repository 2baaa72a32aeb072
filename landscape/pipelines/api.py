"""The notebook API: a loss slice of any ``nn.Module`` in one call.

In the spirit of loss-landscapes' ``random_line``/``random_plane``/``linear_interpolation``,
with the reference semantics of Li et al. (2018): Gaussian directions, filter-normalised
against the weights (a step of 1 is as long as the weights, filter by filter, so nets of
different scales compare), zero on biases and BatchNorm scale/shift (``ignore="biasbn"``);
every point is rebuilt from the centre weights, and the caller's model is left exactly as it
was. Each returns a ``landscape.engine.surface.Surface`` (``.loss[i, j]`` at ``xs[j]``,
``ys[i]``) computed by the one pipeline, ``landscape.pipelines.slices.compute``.

    import landscape
    s = landscape.random_plane(model, torch.nn.functional.cross_entropy, (X, y), steps=31)
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from landscape.engine.subject import Subject
from landscape.engine.surface import Surface
from landscape.pipelines import slices

LossFn = Callable[[Tensor, Tensor], Tensor]  # (output, y) -> scalar mean loss


def _subject(model: nn.Module, loss_fn: LossFn, data) -> Subject:
    return Subject.from_module(model, loss_fn, {"train": data})


def random_line(
    model: nn.Module, loss_fn: LossFn, data: tuple[Tensor, Tensor], distance: float = 1.0,
    steps: int = 41, normalization: str = "filter", ignore: str | None = "biasbn",
    seed: int = 0, method: str = "auto",
) -> Surface:  # fmt: skip
    """Loss along one random direction d: ``theta + t d`` for ``steps`` values of t in
    [-distance, distance] (an odd ``steps`` puts t = 0, the model itself, on the line)."""
    req = slices.SliceRequest(
        dim=1, direction="random", xmin=-distance, xmax=distance, nx=steps,
        norm=normalization, ignore=ignore, seed=seed, method=method,
    )  # fmt: skip
    return slices.compute(req, _subject(model, loss_fn, data)).main


def random_plane(
    model: nn.Module, loss_fn: LossFn, data: tuple[Tensor, Tensor], distance: float = 1.0,
    steps: int = 21, normalization: str = "filter", ignore: str | None = "biasbn",
    seed: int = 0, method: str = "auto",
) -> Surface:  # fmt: skip
    """Loss over the plane of two random directions: ``theta + a d1 + b d2`` on a
    ``steps`` x ``steps`` grid over [-distance, distance]^2 (Li et al.'s Fig. 5)."""
    req = slices.SliceRequest(
        dim=2, direction="random", xmin=-distance, xmax=distance, ymin=-distance,
        ymax=distance, nx=steps, ny=steps, norm=normalization, ignore=ignore, seed=seed,
        method=method,
    )  # fmt: skip
    return slices.compute(req, _subject(model, loss_fn, data)).main


def linear_interpolation(
    model_start: nn.Module, model_end: nn.Module, loss_fn: LossFn,
    data: tuple[Tensor, Tensor], steps: int = 41, start: float = 0.0, end: float = 1.0,
    method: str = "auto",
) -> Surface:  # fmt: skip
    """Loss on the straight line from ``model_start`` (t = 0) to ``model_end`` (t = 1), for
    ``steps`` values of t in [start, end] (Goodfellow et al. 2015). BatchNorm statistics move
    with the weights, so each end is that net's own loss."""
    req = slices.SliceRequest(dim=1, direction="between", xmin=start, xmax=end, nx=steps,
                              method=method)  # fmt: skip
    first, second = _subject(model_start, loss_fn, data), _subject(model_end, loss_fn, data)
    return slices.compute(req, first, second).main

"""The largest stable step of gradient descent on a quadratic loss: lr < 2 / lambda_max.

For a linear model with the mean squared error, L(w) = mean((A w - y)^2) with A = [X, 1], the
loss is exactly quadratic with the constant Hessian H = (2 / N) A^T A. Full-batch gradient
descent multiplies the error along each eigenvector of H by (1 - lr * lambda) per step: it
converges when every |1 - lr * lambda| < 1, i.e. lr < 2 / lambda_max, and above that limit
the error along the top eigenvector flips sign and grows every step: the fitted line
see-saws with a growing swing, then the loss blows up.

`quadratic_limit(config)` computes lambda_max of that Hessian on the training split, in
float64; `above_limit_configs(...)` gives the Train page's pair of demo runs just below and
just above the limit.
"""

from __future__ import annotations

import numpy as np

from landscape.data.config import Config

DEMO = Config(  # a noisy straight line, fitted by full-batch gradient descent
    dataset="outliers",
    n_samples=200,
    noise=0.3,
    outliers=0,
    model="linear",
    loss="mse",
    optimizer="sgd",
    lr=0.1,
    batch_size=5000,  # capped at the training set: full batch, one step per epoch
    epochs=120,
)


def quadratic_limit(config: Config) -> tuple[float, float]:
    """(lambda_max, 2 / lambda_max) of the training loss of a linear model under MSE.

    ValueError for any other model or loss (their loss is not quadratic: the limit then holds
    only locally, where the Hessian is measured, see landscape.measures.curvature)."""
    if config.model != "linear" or config.loss != "mse":
        raise ValueError(
            f"model={config.model!r}, loss={config.loss!r}: the exact step limit needs "
            "model='linear' and loss='mse' (a quadratic loss)"
        )
    ds = config.make_dataset()
    if ds.task != "regression":
        raise ValueError(f"dataset={config.dataset!r} must be a regression set")
    X = ds.X_train.double().reshape(ds.n_train, -1).numpy()
    A = np.hstack([X, np.ones((len(X), 1))])  # (N, D + 1): the bias is a weight on 1
    H = 2.0 / len(A) * A.T @ A
    lam = float(np.linalg.eigvalsh(H)[-1])
    return lam, 2.0 / lam


def demo_configs(factors=(0.9, 1.1), base: Config = DEMO) -> list[Config]:
    """`base` at learning rates `factor` x 2 / lambda_max (full batch, plain SGD)."""
    _, limit = quadratic_limit(base)
    return [base.replace(lr=float(f * limit)) for f in factors]

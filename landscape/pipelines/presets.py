"""Ready-made training configurations for the landscape pages, each with one line of why.

Every preset trains in seconds on two cores (see benchmarks/bench_training.py); the residual
pair differs only in `skip`, so their landscapes are comparable direction for direction.
"""

from __future__ import annotations

from landscape.data.config import Config

DEFAULT = Config()  # MLP 2x32 relu on 1000 moons, cross-entropy, Adam lr=0.01, 100 epochs

_DIGITS = dict(dataset="digits", n_samples=1797, batch_size=64)
_RESNET = dict(_DIGITS, model="rescnn", depth=4, width=16, epochs=30, lr=0.003, optimizer="adam")

EOS_PRESET = "Edge of stability (full-batch GD)"

PRESETS: dict[str, tuple[Config, str]] = {
    "MLP on moons": (
        DEFAULT,
        "The default run: a 2x32 ReLU MLP learns two interleaving moons with Adam; a smooth, "
        "wide basin.",
    ),
    "CNN on digits": (
        Config(**_DIGITS, model="cnn", width=32, epochs=30),
        "A small CNN (38,282 parameters) on scikit-learn's 8x8 digits: the landscape engine's "
        "benchmark model.",
    ),
    "ResNet on digits (skips)": (
        Config(**_RESNET, skip=True),
        "A residual CNN with 4 blocks (8 conv layers) with skip connections: a smooth bowl "
        "(Li et al. 2018, Fig. 5).",
    ),
    "ResNet on digits (no skips)": (
        Config(**_RESNET, skip=False),
        "The same network with the identity paths removed (every parameter shape identical). "
        "At 8 conv layers its slice is still a smooth bowl, like the skip net's: in Li et al. "
        "the difference grows with depth (mild at 20 layers, chaotic at 56). The Gallery page "
        "shows the deep pair.",
    ),
    EOS_PRESET: (
        Config(
            dataset="moons",
            n_samples=500,
            model="mlp",
            depth=2,
            width=32,
            activation="tanh",
            optimizer="sgd",
            lr=0.5,
            batch_size=5000,  # the whole training set: full-batch gradient descent
            epochs=500,
        ),
        "Full-batch gradient descent at step size 0.5 on a tanh MLP: the sharpness climbs to "
        "2/η = 4 and hovers there while the loss keeps falling, with spikes (the edge of "
        "stability, Cohen et al. 2021). Track it with the edge-of-stability option.",
    ),
    "Linear regression with outliers (MSE)": (
        Config(
            dataset="outliers",
            n_samples=200,
            noise=0.3,
            outliers=20,
            outlier_scale=8.0,
            model="linear",
            loss="mse",
            optimizer="sgd",
            lr=0.05,
            epochs=100,
            batch_size=32,
        ),
        "A line fitted by least squares to data with 10% outliers: a convex bowl whose minimum "
        "is dragged towards the outliers. Try Huber instead.",
    ),
}


def get(name: str) -> Config:
    """The Config of preset `name`; ValueError listing the presets when unknown."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown: must be one of {list(PRESETS)}")
    return PRESETS[name][0]

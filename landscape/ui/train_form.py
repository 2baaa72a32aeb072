"""The Train page's widget keys for a Config: what "Open in Train", "Load settings" and
"Reset to this preset" write into session state before the page draws its widgets.

Keep in step with app_pages/train.py (tests/test_links.py checks the round trip
config -> widgets -> Config on the page itself).
"""

from __future__ import annotations

from landscape.data import datasets as data
from landscape.data import models
from landscape.data.config import Config

# Options of the page's select sliders (a value outside them is snapped to the nearest);
# they hold every value the presets use, so "Reset to this preset" is exact.
LRS = [
    1e-4,
    3e-4,
    1e-3,
    2e-3,
    3e-3,
    0.01,
    0.03,
    0.05,
    0.1,
    0.3,
    0.5,
    1.0,
    3.0,
    10.0,
    100.0,
    1e3,
    1e6,
]
BATCHES = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 5000]
DECAYS = [0.0, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 0.1, 1.0]
WIDTHS = [2, 4, 8, 16, 32, 64, 128, 256]


def _nearest(value, options, name: str, said: list[str], log: bool = True):
    import math

    def dist(o):
        if log and o > 0 and value > 0:
            return abs(math.log(o) - math.log(value))
        return abs(o - value)

    best = min(options, key=dist)
    if best != value:
        said.append(f"{name}={value:g} is not on the slider: set to {best:g}")
    return best


def widget_values(config: Config) -> tuple[dict, list[str]]:
    """(session-state values of the Train widgets for ``config``, notes on what was adjusted)."""
    said: list[str] = []
    name = config.dataset
    if name not in data.DATASETS:
        said.append(
            f"dataset {name[:40]!r} was an uploaded CSV: choose 'Your own CSV…' and upload it "
            "again; the other settings are loaded"
        )
        return _rest(config, None, said), said
    return _rest(config, name, said), said


def _rest(config: Config, name: str | None, said: list[str]) -> dict:
    v: dict = {}
    if name is not None:
        v["tr_dataset"] = name
        info = data.DATASETS[name]
        if info.size is not None:
            v[f"tr_n_{name}"] = max(50, min(config.n_samples, info.size))
        else:
            n = int(round(config.n_samples / 100) * 100)
            v[f"tr_n_{name}"] = max(100, min(n, data.MAX_SAMPLES))
            if n != config.n_samples:
                said.append(f"n_samples={config.n_samples} is set to {v[f'tr_n_{name}']}")
            v[f"tr_noise_{name}"] = round(min(max(config.noise, 0.0), 1.0) * 20) / 20
        if name == "outliers":
            v["tr_outliers"] = config.outliers
            v["tr_outlier_scale"] = config.outlier_scale
        image = info.kind == "image"
        v[f"tr_model_{'img' if image else 'flat'}"] = config.model
        group = info.task + str(info.n_classes == 2)
        v[f"tr_loss_{group}"] = config.loss
    if config.model != "linear":
        if config.model != "cnn":
            v[f"tr_depth_{config.model}"] = config.depth
        v[f"tr_width_{config.model}"] = _nearest(config.width, WIDTHS, "width", said)
        v["tr_act"] = config.activation
        if config.model in models.RESIDUAL_MODELS:
            v["tr_skip"] = config.skip
        v["tr_bn"] = config.batchnorm
    for p, value in config.loss_params:
        v[f"tr_lp_{config.loss}_{p}"] = float(value)
    v["tr_opt"] = config.optimizer
    v["tr_lr"] = _nearest(config.lr, LRS, "lr", said)
    v["tr_mom"] = config.momentum
    v["tr_batch"] = _nearest(config.batch_size, BATCHES, "batch_size", said)
    v["tr_epochs"] = config.epochs
    v["tr_wd"] = _nearest(config.weight_decay, DECAYS, "weight_decay", said, log=False)
    v["tr_seed"] = config.seed
    return v

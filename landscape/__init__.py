"""Loss Landscape Lab: the library under the app.

See loss shapes, train small nets, and slice the loss surface around a trained network
along random filter-normalised directions (Li et al., NeurIPS 2018), PCA directions of the
training path, or Hessian eigen-directions.

The modules are importable without Streamlit; docs/ARCHITECTURE.md is the map of the layers.
"""

import importlib as _importlib
import os as _os

# OpenMP threads spin while they wait for each other; on a busy 2-core server that made a
# 1 s training run take 40-60 s (measured). Passive waiting costs little when the machine
# is quiet. Only takes effect if torch has not been imported yet; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


# The public API, loaded on first use so that ``import landscape`` stays light (no torch):
# name -> (module, attribute). Everything else is reached through the subpackages.
_API = {
    "random_line": ("landscape.pipelines.api", "random_line"),
    "random_plane": ("landscape.pipelines.api", "random_plane"),
    "linear_interpolation": ("landscape.pipelines.api", "linear_interpolation"),
    "open_model": ("landscape.engine.own", "open_model"),
    "OwnModel": ("landscape.engine.own", "OwnModel"),
    "Config": ("landscape.data.config", "Config"),
    "train": ("landscape.training.loop", "train"),
}
__all__ = sorted(_API)


def __getattr__(name: str):
    """The public API (``_API``), imported when first asked for."""
    if name not in _API:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    module, attr = _API[name]
    return getattr(_importlib.import_module(module), attr)

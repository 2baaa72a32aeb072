"""Loss Landscape Lab: the library under the app.

See loss shapes, train small nets, and slice the loss surface around a trained network
along random filter-normalised directions (Li et al., NeurIPS 2018), PCA directions of the
training path, or Hessian eigen-directions.

The modules are importable without Streamlit; docs/ARCHITECTURE.md is the map of the layers.
"""

import os as _os

# OpenMP threads spin while they wait for each other; on a busy 2-core server that made a
# 1 s training run take 40-60 s (measured). Passive waiting costs little when the machine
# is quiet. Only takes effect if torch has not been imported yet; a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def __getattr__(name: str):
    """``landscape.open_model`` (your own model) without importing torch on ``import landscape``."""
    if name in ("open_model", "OwnModel"):
        from landscape.engine import own

        return getattr(own, name)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")

"""Loss Landscape Lab: the library under the app.

See loss shapes, train small nets, and slice the loss surface around a trained network
along random filter-normalised directions (Li et al., NeurIPS 2018), PCA directions of the
training path, or Hessian eigen-directions.

The modules are importable without Streamlit; see docs/ARCHITECTURE.md for the contracts.
"""

__version__ = "0.1.0"

"""Plotly figure builders, one module per area: arrays in, go.Figure out.

pandas is imported here, fully, because plotly imports it lazily through sys.modules: two
threads drawing their first chart at once could otherwise get a half-initialised pandas.
"""

import pandas  # noqa: F401

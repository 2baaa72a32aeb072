"""The real comparison presets, measured once per test process.

Measuring a real preset takes 10-30 s, and three tests want each one (its claims, the
skip-connection direction, and the Compare page drawing it). So the measurement is kept in
the process's data folder under the key the Compare page looks up for its default settings:
whichever of those tests runs first in a test process measures, the others there read it
(the page then tests its drawing of a stored comparison; its measuring path is tested at a
small scale elsewhere). They carry one xdist group: with ``--dist loadgroup`` they would all
share one process (the default ``load`` keeps the e2e modules' shared browser page in order).
"""

from __future__ import annotations

import pytest

from landscape.pipelines import comparison_presets as CPP
from landscape.pipelines.comparisons import Comparison
from landscape.storage import datastore

GROUP = pytest.mark.xdist_group("real_presets")


def measured(key: str) -> Comparison:
    """The real preset ``key`` measured with its own (the page's default) settings."""
    preset = CPP.get(key)
    return datastore.stored_or_computed(
        datastore.default_store(),
        "comparison",
        CPP.store_key(key, 1.0, preset.settings),
        lambda: CPP.run_preset(preset),
        accept=lambda found: isinstance(found, Comparison),
    )

"""Landscape presets say what their pictures show: a caption that calls the slice smooth (or
rough, or chaotic) is checked against the roughness measured on that preset's slice."""

import numpy as np
import pytest

from landscape.core import directions
from landscape.engine import surface
from landscape.measures import roughness
from landscape.pipelines import gallery, presets
from landscape.training.loop import train

WORDS = ("smooth", "rough", "chaotic")


def _verdict(config) -> str:
    run = train(config)
    model, ds = run.model(), run.dataset()
    d1, d2 = directions.random_directions(model, 2, seed=0)
    ax = np.linspace(-1, 1, 11)
    s = surface.plane(model, run.loss_fn(), (ds.X_train, ds.y_train), d1, d2, ax, ax)
    return gallery.verdict({**roughness.summary(s.loss), **gallery.regions(s.loss)})


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [n for n, (_, text) in presets.PRESETS.items() if any(w in text for w in WORDS)]
)
def test_caption_words_match_the_measured_slice(name):
    config, text = presets.PRESETS[name]
    v = _verdict(config)
    claimed = [w for w in WORDS if w in text.split("Li et al.")[0]]  # what it says of itself
    assert claimed, f"{name}: say what the slice looks like before quoting the literature"
    assert v.startswith(claimed[0]), f"{name}: caption says {claimed[0]!r}, measured {v!r}"


def test_a_claims_measured_sentence_gives_the_tables_numbers():
    from landscape.pipelines.comparison_presets import Claim

    values = {"no skips": {"top eigenvalue": 12.4}, "with skips": {"top eigenvalue": 0.4}}
    text = Claim("top eigenvalue", "no skips", ">", 3.0, "with skips").measured(values)
    assert text == "top eigenvalue: no skips 12.4 = 31x with skips's 0.4 (the text says > 3x)"
    alone = Claim("top eigenvalue", "with skips", "<=", 1.0).measured(values)
    assert alone == "top eigenvalue: with skips 0.4 (the text says <= 1)"

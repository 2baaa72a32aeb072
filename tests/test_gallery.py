"""The gallery: the shipped slices say what their captions say, the build command works on a
tiny sweep, and a slice opens as a Landscape result."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from landscape.measures import roughness
from landscape.pipelines import comparison_presets, gallery
from landscape.pipelines.gallery import __main__ as cli
from landscape.storage import formats as store


def _minima_loop(a):
    n = 0
    for i in range(1, a.shape[0] - 1):
        for j in range(1, a.shape[1] - 1):
            nbs = [a[i + di, j + dj] for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]
            n += all(nb > a[i, j] for nb in nbs)
    return n


def test_shipped_slices_exist_are_small_and_their_numbers_match_their_pictures():
    items = gallery.entries()
    depths = {e.n_layers for e in items}
    assert 56 in depths and 8 in depths, "rebuild with: python -m landscape.pipelines.gallery"
    assert all({(n, True), (n, False)} <= {(e.n_layers, e.skip) for e in items} for n in depths)
    total = sum(p.stat().st_size for p in gallery.HERE.glob("*.npz"))
    assert total < 5e6  # a few MB at most
    for e in items:
        loss = e.surface.loss
        assert np.isfinite(loss).all()
        # the stored numbers are those of the stored picture (recomputed, and by a plain loop)
        assert e.row["local_minima"] == roughness.local_minima(loss) == _minima_loop(loss)
        assert e.row["turns_per_line"] == pytest.approx(roughness.turns_per_line(loss))
        # the documented command (defaults) rebuilds exactly these
        assert e.config == gallery.config_for(e.n_layers, e.skip)
        assert e.surface.meta["slice"] == dataclasses.asdict(gallery.Slice())


def test_captions_claim_only_what_the_numbers_show():
    for e in gallery.entries():
        text = gallery.caption(e)
        v = gallery.verdict(e.row)
        assert text.startswith(v)
        assert f"{e.row['local_minima']} local minim" in text
        assert f"{e.row['low_loss_regions']} separate low-loss region" in text
        assert (
            e.row["low_loss_regions"]
            == roughness.low_loss_regions(e.surface.loss, np.arange(0.1, 9.61, 0.5))[0]
        )
        if v == "smooth":
            assert e.row["low_loss_regions"] == 1 and e.row["turns_per_line"] <= 1.5
        if v == "chaotic":
            assert e.row["low_loss_regions"] >= 3


def test_verdict_thresholds():
    assert gallery.verdict({"low_loss_regions": 1, "turns_per_line": 1.0}) == "smooth"
    assert gallery.verdict({"low_loss_regions": 3, "turns_per_line": 1.2}) == "chaotic"
    assert gallery.verdict({"low_loss_regions": 1, "turns_per_line": 1.8}).startswith("rough")
    assert gallery.verdict({"low_loss_regions": 2, "turns_per_line": 1.0}).startswith("rough")
    # many local minima on a plateau above the drawn levels do not make a picture chaotic
    assert gallery.verdict({"low_loss_regions": 1, "turns_per_line": 1.2, "local_minima": 30}) == (
        "smooth"
    )


def test_the_deep_pair_tells_its_lesson_at_a_glance():
    """The picture a class comes for: without skips islands (chaotic), with skips one bowl."""
    e = {(e.n_layers, e.skip): e for e in gallery.entries()}
    assert gallery.verdict(e[(56, False)].row) == "chaotic"
    assert gallery.verdict(e[(56, True)].row) == "smooth"


@pytest.mark.slow
def test_build_command_writes_loadable_slices(tmp_path, capsys):
    code = cli.main(["--out", str(tmp_path), "--depths", "8", "--epochs", "1", "--res", "5",
                     "--samples", "16", "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert code == 0
    assert "| 8 | yes |" in capsys.readouterr().out
    items = gallery.entries(tmp_path)
    assert [(e.n_layers, e.skip) for e in items] == [(8, True), (8, False)]
    s = store.load_surface(tmp_path / gallery.file_name(8, False))
    assert s.loss.shape == (5, 5) and s.meta["slice"]["samples"] == 16
    # the run was kept and is reused (same config -> no retraining)
    assert len(list((tmp_path / "runs").glob("*.npz"))) == 2
    result = gallery.as_landscape_result(items[1])
    assert result.main is items[1].surface and result.request.nx == 5
    assert result.request.config.skip is False
    # the convexity map is made only for nets of at least --convexity-layers layers
    assert not list(tmp_path.glob("*_convexity.npz")) and items[1].convexity is None
    argv = ["--out", str(tmp_path), "--depths", "8", "--epochs", "1", "--res", "5", "--samples",
            "16", "--runs-dir", str(tmp_path / "runs"), "--skips", "no", "--convexity", "3",
            "--convexity-layers", "8"]  # fmt: skip
    assert cli.main(argv) == 0
    e = gallery.entries(tmp_path)[1]
    assert e.convexity.loss.shape == (3, 3) and np.all(e.convexity.loss >= 0)
    assert e.row["convexity_mean"] == pytest.approx(np.mean(e.convexity.loss))


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--depths", "9"], "n_layers"),
        (["--res", "2"], "res"),
        (["--span", "0"], "span"),
        (["--convexity-layers", "7"], "convexity_layers"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, field, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1


def test_config_for_is_the_stride_2_resnet():
    cfg = gallery.config_for(20, False)
    assert (cfg.model, cfg.depth, cfg.skip, cfg.batchnorm, cfg.dataset) == (
        "resnet", 3, False, True, "digits")  # fmt: skip
    assert gallery.config_for(20, False, dataset="shapes").dataset == "shapes"
    assert Path(gallery.HERE).is_dir()


def _entry(n, skip, mean, share, conv=True):
    ratio = np.full((3, 3), mean)
    surf = gallery.S.Surface("plane", np.zeros(3), np.zeros(3), ratio, None, {})
    row = {"convexity_mean": mean, "convexity_share": share}
    return gallery.Entry(n, skip, surf, surf if conv else None, row, gallery.config_for(n, skip))


def test_convexity_finding_needs_more_negative_curvature_by_both_numbers():
    ok, text = gallery.convexity_finding(_entry(56, True, 0.01, 0.0), _entry(56, False, 0.3, 0.5))
    assert ok and "0.300 vs 0.010" in text and "50% vs 0%" in text
    # a higher mean from a few points but a smaller share is not "more negative curvature"
    ok, _ = gallery.convexity_finding(_entry(56, True, 0.01, 0.2), _entry(56, False, 0.3, 0.1))
    assert not ok
    assert "3x3 grid" in gallery.convexity_caption(_entry(56, False, 0.3, 0.5))


def test_shipped_convexity_maps_match_their_numbers():
    for e in gallery.entries():
        if e.convexity is None:
            continue
        r = e.convexity.loss
        # the project's ratio: max(-lambda_min, 0) / lambda_max, never negative
        assert np.all(r[np.isfinite(r)] >= 0)
        assert e.row["convexity_mean"] == pytest.approx(float(np.nanmean(r)))
        assert e.row["convexity_share"] == pytest.approx(float(np.mean(r[np.isfinite(r)] > 0.1)))


def _trained(n, skip, loss):
    e = _entry(n, skip, 0.0, 0.0, conv=False)
    return dataclasses.replace(e, row={"train_loss": loss})


def test_training_finding_needs_the_deepest_no_skip_net_to_train_worst():
    items = [_trained(8, True, 0.01), _trained(8, False, 0.02), _trained(56, True, 0.01),
             _trained(56, False, 0.5)]  # fmt: skip
    ok, text = gallery.training_finding(items)
    assert ok and "8: 0.02, 56: 0.5" in text and "56 layers: 0.01" in text
    items[1] = _trained(8, False, 0.9)  # a shallower no-skip net trained worse
    assert not gallery.training_finding(items)[0]
    items[1], items[2] = _trained(8, False, 0.02), _trained(56, True, 0.7)  # its twin did too
    assert not gallery.training_finding(items)[0]


def test_compare_preset_quotes_the_shipped_gallery_numbers():
    # the skip preset's text points at the gallery: what it quotes is what ships
    text = json.loads((comparison_presets.PRESETS_DATA / "skip.json").read_text())["shows"]
    m = re.search(r"no-skip slice turns (\w+) \((\d+) local minima on a (\d+)x\d+ grid", text)
    assert m, "the skip preset no longer quotes the gallery: update this test"
    e = {(e.n_layers, e.skip): e for e in gallery.entries()}
    noskip, skip = e[(56, False)], e[(56, True)]
    assert m.group(1) == gallery.verdict(noskip.row)
    assert int(m.group(2)) == noskip.row["local_minima"]
    assert int(m.group(3)) == noskip.surface.loss.shape[0]
    assert "against one with skips" in text and skip.row["local_minima"] == 1

"""Surface figures: orientation, log levels, masking, clipping notes, markers, PCA titles."""

import json

import numpy as np
import pytest

from landscape.engine.surface import Surface
from landscape.plots import surfaces as P
from landscape.plots.landscape_page import plane_figure

XS = np.linspace(-1, 1, 7)
YS = np.array([-0.5, 0.0, 0.5, 1.0])


def bowl(accuracy=True):
    """loss = 0.01 + (x - 0.5)^2 + 4 (y - 0.5)^2 on a non-square grid: min at (0.5, 0.5)."""
    loss = 0.01 + (XS[None, :] - 1 / 3) ** 2 + 4 * (YS[:, None] - 0.5) ** 2  # (ny, nx)
    acc = 1 - loss / loss.max() if accuracy else None
    return Surface("plane", XS, YS, loss, acc, {})


def notes(fig):
    return " ".join(a.text for a in fig.layout.annotations)


def test_contour_orientation_and_log_levels():
    s = bowl()
    fig = P.contour_figure(s)
    c = fig.data[0]
    np.testing.assert_array_equal(c.x, XS)
    np.testing.assert_array_equal(c.y, YS)
    z = np.asarray(c.z)
    assert z.shape == (len(YS), len(XS))
    np.testing.assert_allclose(z, np.log10(s.loss))  # log-spaced levels by default
    np.testing.assert_allclose(np.asarray(c.customdata), s.loss)  # hover shows the real loss
    assert c.contours.start == pytest.approx(np.log10(s.loss.min()))
    ticks = [float(t) for t in c.colorbar.ticktext]
    assert min(ticks) >= s.loss.min() and max(ticks) <= s.loss.max() and len(ticks) >= 4
    linear = P.contour_figure(s, log=False).data[0]
    np.testing.assert_allclose(np.asarray(linear.z), s.loss)
    json.loads(fig.to_json())  # serialisable for st.plotly_chart


def test_contour_marks_min_and_centre():
    s = bowl()
    fig = P.contour_figure(s)
    star = next(t for t in fig.data if t.name and t.name.startswith("min"))
    i, j = np.unravel_index(np.argmin(s.loss), s.loss.shape)
    assert (star.x[0], star.y[0]) == (XS[j], YS[i]) == (pytest.approx(1 / 3), 0.5)
    assert any(t.name and "(0, 0)" in t.name for t in fig.data)
    acc = P.contour_figure(s, field="accuracy")
    best = next(t for t in acc.data if t.name and t.name.startswith("max"))
    assert (best.x[0], best.y[0]) == (XS[j], YS[i])


def test_nan_masked_and_clipping_indicated():
    s = bowl()
    s.loss[0, 0], s.loss[3, 6] = np.nan, np.inf
    fig = P.contour_figure(s, zmax=1.0)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(z[0, 0]) and np.isnan(z[3, 6])  # masked, never drawn as a value
    assert np.nanmax(z) <= 0.0 + 1e-12  # log10(zmax = 1)
    above = int(np.sum(s.loss[np.isfinite(s.loss)] > 1.0))
    assert above > 0
    assert "2 of 28 points NaN/inf" in notes(fig) and f"{above} points above zmax=1" in notes(fig)
    assert notes(P.contour_figure(bowl())) == ""
    heat = P.heatmap_figure(s, zmin=0.05)
    assert "below zmin" in notes(heat) and "NaN/inf" in notes(heat)
    surf3d = P.surface3d_figure(s, zmax=1.0)
    assert np.isnan(np.asarray(surf3d.data[0].z, dtype=float)[0, 0])


def test_log_falls_back_to_linear_for_non_positive_values():
    s = bowl()
    s.loss -= 1.0  # some values negative: a log scale is impossible
    z = np.asarray(P.contour_figure(s).data[0].z)
    np.testing.assert_allclose(z, s.loss)


def test_line_figure_overlays_lines_and_accuracy():
    ts = np.linspace(-1, 1, 9)
    a = Surface("line", ts, None, 1 + ts**2, 1 - ts**2 / 2, {})
    b = Surface("line", ts, None, 2 + ts**2, None, {})
    fig = P.line_figure([a, b], names=["train", "test"], log_y=True, marks={"trained": 0.0})
    names = [t.name for t in fig.data]
    assert names == ["train loss", "train accuracy", "test loss"]
    assert fig.data[1].yaxis == "y2" and fig.data[0].yaxis == "y"
    assert fig.layout.yaxis.type == "log"
    np.testing.assert_allclose(fig.data[2].y, 2 + ts**2)
    solo = P.line_figure(b)
    assert len(solo.data) == 1 and solo.layout.yaxis.type == "linear"


def test_trajectory_titles_and_path():
    s = bowl()
    fig = P.trajectory_figure(s, [-0.8, -0.3, 0.0], [-0.4, 0.2, 0.0], explained=[0.8123, 0.1])
    assert fig.layout.xaxis.title.text == "PC1 (81.2% of variance)"
    assert fig.layout.yaxis.title.text == "PC2 (10.0% of variance)"
    path = next(t for t in fig.data if t.name == "training path")
    assert list(path.x) == [-0.8, -0.3, 0.0] and list(path.text) == [
        "epoch 0",
        "epoch 1",
        "epoch 2",
    ]


def test_bad_arguments_raise():
    line = Surface("line", XS, None, XS**2, None, {})
    with pytest.raises(ValueError, match="plane"):
        P.contour_figure(line)
    with pytest.raises(ValueError, match="accuracy"):
        P.contour_figure(bowl(accuracy=False), field="accuracy")
    with pytest.raises(ValueError, match="zmin"):
        P.contour_figure(bowl(), zmin=2.0, zmax=1.0)
    with pytest.raises(ValueError, match="names"):
        P.line_figure([line], names=["a", "b"])
    with pytest.raises(ValueError, match="path_x"):
        P.trajectory_figure(bowl(), [0.0, 1.0], [0.0])


def _marks(fig):
    return {t.name.split(" ")[0]: t for t in fig.data if t.type == "scatter"}


def test_heatmap_marks_like_the_contour():
    """Issue 25: the heatmap marked the lowest loss with the contour view's trained-model
    cross and dropped the trained-model marker; both views now use the same symbols."""
    s = bowl()
    for fig in (P.contour_figure(s), P.heatmap_figure(s)):
        marks = _marks(fig)
        assert marks["min"].marker.symbol == "star"
        assert (marks["min"].x[0], marks["min"].y[0]) == (XS[4], 0.5)
        assert marks["trained"].marker.symbol == "x"
        assert (marks["trained"].x[0], marks["trained"].y[0]) == (0.0, 0.0)


@pytest.mark.parametrize(
    "i, j, where",
    [(3, 6, "bottom left"), (3, 0, "bottom right"), (0, 3, "top center"), (1, 6, "top left")],
)
def test_min_label_stays_inside_the_plot(i, j, where):
    """Issue 25: the PCA plane's "min" label was cut off at the plot's edge (it always sat
    above its marker); next to an edge it now sits on the side away from it."""
    loss = np.ones((len(YS), len(XS)))
    loss[i, j] = 0.1
    fig = P.contour_figure(Surface("plane", XS, YS, loss, None, {}))
    assert _marks(fig)["min"].textposition == where


def test_one_plane_figure_for_every_view():
    s = bowl()
    path = (np.array([0.9, 0.5, 0.1]), np.array([0.9, 0.4, 0.2]))
    contour = plane_figure(s, "contour", path=path, explained=[0.6, 0.3])
    assert [t.name for t in contour.data][-2:] == ["training path", "initialisation"]
    assert contour.layout.xaxis.title.text.startswith("PC1")
    heat = plane_figure(s, "heatmap", path=path, path_labels=["a", "b", "c"])
    assert heat.data[0].type == "heatmap" and heat.data[-1].name == "training path"
    assert list(heat.data[-1].text) == ["a", "b", "c"]
    three = plane_figure(s, "3D", zmax=1.0)
    assert three.data[0].type == "surface" and three.data[-1].name.startswith("min loss")
    acc = plane_figure(s, "heatmap", field="accuracy")
    assert _marks(acc)["max"].marker.symbol == "star"
    with pytest.raises(ValueError, match="kind"):
        plane_figure(s, "pie")


def test_line_contours_draw_the_given_levels_and_name_them():
    s = bowl()
    fig = P.contour_figure(s, lines=(0.1, 9.6, 0.5))
    c = fig.data[0]
    assert (c.contours.start, c.contours.end, c.contours.size) == (0.1, 9.6, 0.5)
    assert c.contours.coloring == "lines" and c.autocontour is False
    np.testing.assert_allclose(np.asarray(c.z), s.loss)  # the loss itself, not its log
    assert "0.1, 0.6, ..., 9.6" in c.colorbar.title.text
    with pytest.raises(ValueError, match="lines="):
        P.contour_figure(s, lines=(1.0, 0.5, 0.1))


def test_3d_colours_follow_a_log_z_axis():
    s = bowl()
    fig = P.surface3d_figure(s, log=True)
    surf = fig.data[0]
    assert fig.layout.scene.zaxis.type == "log"
    np.testing.assert_allclose(np.asarray(surf.surfacecolor), np.log10(s.loss))
    ticks = [float(t) for t in surf.colorbar.ticktext]
    assert min(ticks) >= s.loss.min() and max(ticks) <= s.loss.max()
    linear = P.surface3d_figure(s, log=False).data[0]
    np.testing.assert_allclose(np.asarray(linear.surfacecolor), s.loss)

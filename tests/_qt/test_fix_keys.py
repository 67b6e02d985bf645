"""Fixing a wrong label from the review's keys in a real napari window (Xvfb): ``a``
takes the model's mask, ``e`` paints, Return saves, Escape cancels, ``z`` undoes."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from tests._qt.test_citizen import _drawn, _open, _press

from chipqa.blocklist.csvread import read_blocklist

pytestmark = pytest.mark.gui


@pytest.fixture
def root(tmp_path):
    from tests.conftest import make_bands, write_chip

    out = tmp_path / "data"
    half = np.zeros((40, 40), bool)
    half[:, :20] = True
    # A no-cloud label on a half-cloudy chip (first by suspicion), and a right one.
    write_chip(out, "wrong", make_bands(40, half, 1), np.zeros((40, 40), np.uint8))
    write_chip(out, "right", make_bands(40, None, 2), np.zeros((40, 40), np.uint8))
    # Right cloudy labels, so that the threshold calibrated to the labels (as `chipqa
    # score` does) is a working one, not the highest (where every prediction is empty).
    for i in (3, 4):
        write_chip(out, f"cloudy{i}", make_bands(40, half, i), half.astype(np.uint8))
    return out


def _press_named(viewer, qtbot, key) -> None:
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, {"Return": Qt.Key.Key_Return, "Escape": Qt.Key.Key_Escape}[key])


def test_accept_the_models_mask_then_undo_it(make_napari_viewer, qtbot, root):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    assert w.session.current == "wrong"
    _press(viewer, qtbot, "a")
    row = read_blocklist(w.store.path)["wrong"]
    assert row.decision == "fix" and row.fix_source == "model"
    fixed = root.parent / f"{root.name}_chipqa_fixes" / row.fix_file
    with rasterio.open(fixed) as src:
        label = src.read(1)
    assert 0.4 < (label == 1).mean() < 0.6  # the model's half cloud, not the empty label
    # Back on the chip, the view shows the fixed label, and says it is a fix; the panel's
    # numbers are the fixed label's (not the empty original's) before any re-scoring.
    w.session.goto("wrong")
    _drawn(w, qtbot)
    share = w.session.row("wrong")["label_cloud_fraction"]
    assert 0.4 < share < 0.6 and w.session.row("wrong")["iou"] == 1.0
    qtbot.waitUntil(lambda: f"label {share:.0%}" in w.info.chip_label.text(), timeout=5_000)
    assert "label fixed" in w.info.chip_label.text()
    qtbot.waitUntil(lambda: w.loader.get("wrong").label is not None, timeout=10_000)
    assert (w.loader.get("wrong").label == label).all()
    _press(viewer, qtbot, "z")
    assert "wrong" not in {c for c, d in read_blocklist(w.store.path).items()}
    assert w.session.row("wrong")["label_cloud_fraction"] == 0.0  # the original's again
    assert "Undid" in w.status.text()
    w.session.goto("right")
    assert "Undid" not in w.status.text()  # said of the chip left behind
    qtbot.waitUntil(lambda: w.loader.is_ready("wrong"), timeout=10_000)
    assert (w.loader.get("wrong").label == 0).all()  # the original label again
    assert fixed.exists()  # a fix file is never deleted


def test_paint_a_label_with_the_review_keys_out_of_the_way(make_napari_viewer, qtbot, root):
    from napari.layers import Labels

    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    _press(viewer, qtbot, "e")
    painted = [ly for ly in viewer.layers if isinstance(ly, Labels)]
    assert len(painted) == 1 and viewer.layers.selection.active is painted[0]
    _press(viewer, qtbot, "k")  # a review key does nothing while painting
    assert not w.store.path.exists() or "wrong" not in read_blocklist(w.store.path)
    painted[0].data[:10, :] = 1  # brush strokes
    _press_named(viewer, qtbot, "Return")
    row = read_blocklist(w.store.path)["wrong"]
    assert row.decision == "fix" and row.fix_source == "painted"
    assert "Painting" not in w.status.text() and "Saved the painted label" in w.status.text()
    assert not [ly for ly in viewer.layers if isinstance(ly, Labels)]
    # Escape throws a painting away.
    w.session.goto("right")
    _drawn(w, qtbot)
    _press(viewer, qtbot, "e")
    _press_named(viewer, qtbot, "Escape")
    assert not [ly for ly in viewer.layers if isinstance(ly, Labels)]
    assert "right" not in read_blocklist(w.store.path)


def test_painting_side_by_side_lands_on_the_true_colour_pixels(make_napari_viewer, qtbot, root):
    from napari.layers import Labels

    from chipqa._qt.chip_layers import SIDE_BY_SIDE, SIDE_BY_SIDE_LAYER

    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    assert w.view == SIDE_BY_SIDE
    _press(viewer, qtbot, "e")
    (paint,) = [ly for ly in viewer.layers if isinstance(ly, Labels)]
    mosaic = viewer.layers[SIDE_BY_SIDE_LAYER]
    # The pixels under the paint layer are the chip's true colour, not the title strip.
    y, x = (np.asarray(paint.translate) - np.asarray(mosaic.translate)).astype(int)
    h, wd = paint.data.shape
    view = w.loader.get(w.session.current)
    np.testing.assert_array_equal(np.asarray(mosaic.data)[y : y + h, x : x + wd], view.true_colour)
    # A stroke on the chip's top rows is saved on its top rows.
    paint.data[:5, :] = 1
    _press_named(viewer, qtbot, "Return")
    row = read_blocklist(w.store.path)["wrong"]
    with rasterio.open(root.parent / f"{root.name}_chipqa_fixes" / row.fix_file) as src:
        saved = src.read(1)
    assert (saved[:5] == 1).all()


def test_painting_an_unlabelled_chip_starts_from_the_mask_at_the_scored_threshold(
    make_napari_viewer, qtbot, root
):
    from napari.layers import Labels
    from tests.conftest import make_bands, write_chip

    thin = np.zeros((40, 40), bool)
    thin[5:30, 5:30] = True
    write_chip(root, "nolabel", make_bands(40, thin, 7), None)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    w.session.goto("nolabel")
    _drawn(w, qtbot)
    w.loader.threshold = 0.3  # as if the chips had been scored (calibrated) at 0.3
    _press(viewer, qtbot, "e")
    (paint,) = [ly for ly in viewer.layers if isinstance(ly, Labels)]
    prob = w.loader.get("nolabel").prob
    assert ((prob >= 0.3) != (prob >= 0.5)).any()  # the two thresholds differ on this chip
    np.testing.assert_array_equal(np.asarray(paint.data), (prob >= 0.3).astype(np.uint8))

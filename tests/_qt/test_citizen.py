"""The Chip QA panel as a napari citizen, in a real napari window (Xvfb): its keys live
only while it does, leave the user's own layers their napari keys, never get trapped
by a control, and a filter starts at its first row."""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import make_bands, write_chip

from chipqa._qt.chip_layers import LABEL_OUTLINE, PRED_OUTLINE, SIDE_BY_SIDE_LAYER, TRUE_COLOUR
from chipqa._qt.review_widget import ChipQAWidget
from chipqa.blocklist.csvread import read_blocklist
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def source_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("citizen") / "data"
    generate_dataset(root, n_chips=12, size=40, error_rate=0.25, seed=5)
    # A chip labelled 100 % cloud over clear land: the commonest wrong label.
    write_chip(root, "aaac", make_bands(40), np.ones((40, 40), np.uint8))
    return root


@pytest.fixture
def root(source_root, tmp_path):
    import shutil

    out = tmp_path / "data"
    shutil.copytree(source_root, out)
    return out


def _open(viewer, qtbot, root) -> ChipQAWidget:
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w, name="Chip QA")
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    _drawn(w, qtbot)
    return w


def _drawn(w, qtbot) -> None:
    qtbot.waitUntil(
        lambda: w.loading is None and w.chip_layers.chip_id == w.session.current, timeout=30_000
    )


def _press(viewer, qtbot, key: str) -> None:
    """A real key press on the canvas, through napari's key handling."""
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    named = {"Right": Qt.Key.Key_Right, "Left": Qt.Key.Key_Left}
    qtbot.keyClick(canvas, named.get(key, key))


def test_keys_live_only_with_the_panel_and_leave_the_users_layers_alone(
    make_napari_viewer, qtbot, root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    order = list(w.session.order)
    assert w.keys_bound

    # A Shapes layer of the user's own: p and 2 are napari's there (polygon mode, vertex
    # insert), not "previous chip" and "block"; chipqa's other keys still work.
    shapes = viewer.add_shapes(name="my shapes")
    viewer.layers.selection.active = shapes
    _press(viewer, qtbot, "p")
    assert shapes.mode == "add_polygon"
    _press(viewer, qtbot, "2")
    assert shapes.mode == "vertex_insert"
    assert not w.store.path.exists() or not read_blocklist(w.store.path)
    _press(viewer, qtbot, "k")  # not a Shapes key: the review's
    assert read_blocklist(w.store.path)[order[0]].decision == "keep"
    # … and a Labels layer of the user's own keeps its keys too.
    labels = viewer.add_labels(np.zeros((40, 40), np.uint8), name="my labels")
    viewer.layers.selection.active = labels
    _press(viewer, qtbot, "2")
    assert labels.mode == "paint"
    _press(viewer, qtbot, "e")
    assert labels.mode == "erase"
    assert len(read_blocklist(w.store.path)) == 1
    assert "k" not in [str(k).lower() for k in labels.keymap]  # nothing bound on it

    # ←/→ step napari's dims slider when a layer has a dimension to step.
    viewer.layers.remove(shapes)
    viewer.layers.remove(labels)
    stack = viewer.add_image(np.zeros((5, 40, 40), np.uint8), name="my stack")
    step = viewer.dims.current_step[0]
    current = w.session.current
    _press(viewer, qtbot, "Right")
    assert viewer.dims.current_step[0] == step + 1 and w.session.current == current
    viewer.layers.remove(stack)
    _press(viewer, qtbot, "Right")  # nothing to step: the next chip
    assert w.session.current == order[2]

    # Focus: after the flag filter and the Keep button were used with the mouse, n is
    # still "next chip" (not "the item starting with n") and Space no second keep.
    from qtpy.QtCore import Qt

    qtbot.mouseClick(w.filters.flag_combo, Qt.MouseButton.LeftButton)
    w.filters.flag_combo.hidePopup()
    keep_button = next(
        b for b in w.findChildren(type(w.scoring.score_btn)) if b.text() == "Keep (k)"
    )
    assert "k" in keep_button.toolTip()
    before = w.session.current
    qtbot.mouseClick(keep_button, Qt.MouseButton.LeftButton)
    n_decided = len(read_blocklist(w.store.path))
    qtbot.keyClick(w, Qt.Key.Key_Space)  # keys typed in the panel reach napari
    qtbot.keyClick(w, "n")
    assert len(read_blocklist(w.store.path)) == n_decided
    assert w.filters.flag_combo.currentIndex() == 0
    assert w.session.current == order[order.index(before) + 2]

    # Closed with its dock's close button: the keys change nothing any more.
    rows = read_blocklist(w.store.path)
    viewer.window.remove_dock_widget(w)
    qtbot.waitUntil(lambda: not w.alive, timeout=5_000)
    assert not w.keys_bound
    for key in ("k", "1", "b", "n", "Right"):
        _press(viewer, qtbot, key)
    assert read_blocklist(w.store.path) == rows
    assert not [k for k in viewer.keymap]
    for layer in viewer.layers:
        assert not [k for k in layer.keymap], layer.name
    # The manifest's commands do nothing without a panel either.
    from chipqa._qt.commands import key_keep

    key_keep(viewer)
    assert read_blocklist(w.store.path) == rows


def test_a_filter_starts_at_its_first_row_and_the_table_shows_the_real_order(
    make_napari_viewer, qtbot, root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    for _ in range(5):
        w.run("next")
    assert w.session.position == 5
    idx = w.filters.flag_combo.findData("all_cloud_label")
    w.filters.flag_combo.setCurrentIndex(idx)
    assert w.session.position == 0 and w.session.order
    qtbot.waitUntil(lambda: w.table.currentIndex().row() == 0, timeout=5_000)
    header = w.table.horizontalHeader()
    assert w.table.table_model.headerData(header.sortIndicatorSection(), Qt_h()) == "suspicion"
    assert w.table.table_model.headerData(1, Qt_h()) == "decision"  # on screen at any width
    _press(viewer, qtbot, "b")  # the reason is the chip's own flag's
    d = read_blocklist(w.store.path)[w.session.order[0]]
    assert (d.decision, d.reason) == ("block", "all_cloud_wrong")
    # The canvas says what was recorded (once the next chip is drawn).
    qtbot.waitUntil(lambda: "recorded" in w.canvas_text.badge, timeout=5_000)
    assert w.session.order[0] in w.canvas_text.badge
    qtbot.waitUntil(lambda: "1 / 13</b>" in w.info.progress_label.text(), timeout=5_000)
    assert "block 1 (all_cloud_wrong 1)" in w.info.progress_label.text()


def test_the_canvas_never_shows_the_last_chips_decision_over_the_next_chip(
    make_napari_viewer, qtbot, root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    first = w.session.current
    _press(viewer, qtbot, "b")
    qtbot.waitUntil(lambda: "recorded" in w.canvas_text.badge, timeout=5_000)
    second = w.session.current
    assert second != first and w.canvas_text.badge.startswith(f"{second}: no decision yet")
    _press(viewer, qtbot, "p")  # back to the blocked chip: its own badge, or none yet
    assert w.session.current == first
    assert second not in w.canvas_text.badge
    qtbot.waitUntil(lambda: w.canvas_text.badge.startswith(f"{first}: BLOCK"), timeout=5_000)


def Qt_h():  # noqa: N802
    from qtpy.QtCore import Qt

    return Qt.Orientation.Horizontal


def test_the_layers_view_fits_the_chip_and_outlines_an_all_cloud_label(
    make_napari_viewer, qtbot, root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    w.session.goto("aaac")
    _drawn(w, qtbot)
    _press(viewer, qtbot, "g")
    assert [ly.name for ly in viewer.layers if ly.visible] == [
        TRUE_COLOUR,
        LABEL_OUTLINE,
        PRED_OUTLINE,
    ]
    assert SIDE_BY_SIDE_LAYER not in viewer.layers
    outline = viewer.layers[LABEL_OUTLINE].data
    assert outline[0].all() and outline[-1].all() and outline[:, 0].all()  # a frame
    assert not outline[10:30, 10:30].any()
    # The chip fills the canvas (not a corner of a bigger, hidden mosaic), also after
    # napari's own reset view; the yellow frame is on screen.
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    yellow = (shot[..., 0] > 200) & (shot[..., 1] > 170) & (shot[..., 2] < 80)
    ys, xs = np.nonzero(yellow)
    assert len(ys) > 100
    span = max((ys.max() - ys.min()) / shot.shape[0], (xs.max() - xs.min()) / shot.shape[1])
    assert span > 0.85  # the frame spans the canvas

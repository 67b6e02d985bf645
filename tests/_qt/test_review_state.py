"""The review's state in a real napari window: one writer (the controller), and a
second dataset opened in the same panel starts over."""

from __future__ import annotations

import shutil

import pytest
from tests._qt.test_citizen import _drawn, _open, _press

from chipqa.blocklist.csvread import read_blocklist
from chipqa.io.paths import side_paths
from chipqa.scoring import read_scores
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui


def _reopen(w, qtbot, root) -> None:
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    _drawn(w, qtbot)


def test_a_second_dataset_does_not_inherit_the_first_ones_blocklist_or_fixes(
    make_napari_viewer, qtbot, tmp_path
):
    first = tmp_path / "first"
    generate_dataset(first, n_chips=6, size=48, error_rate=0.3, seed=1)
    second = tmp_path / "second"
    shutil.copytree(first, second)  # another dataset with the same chip ids
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, first)
    mine = tmp_path / "mine.csv"
    w.scoring.blocklist_edit.setText(str(mine))
    w.scoring.take_blocklist_path()
    blocked = w.session.current
    _press(viewer, qtbot, "b")
    _drawn(w, qtbot)
    fixed = w.session.current
    _press(viewer, qtbot, "a")  # the model's mask as its label
    assert {d.decision for d in read_blocklist(mine).values()} == {"block", "fix"}
    assert w.dataset[fixed].fixed
    _reopen(w, qtbot, second)
    assert w.scoring.blocklist_edit.text() == str(side_paths(second).blocklist)
    assert w.store.path == side_paths(second).blocklist
    assert w.session.progress() == (0, 6)
    assert not w.dataset[fixed].fixed  # the first dataset's fix is not this one's
    assert (read_scores(side_paths(second).scores)["error"] == "").all()  # no "fix missing"
    w.session.goto(blocked)
    _drawn(w, qtbot)
    assert "BLOCK" not in w.canvas_text.badge and "recorded" not in w.canvas_text.badge
    model = w.table.table_model
    assert model.data(model.index(0, 1)) in ("", None)  # no decision shown
    # The first dataset's blocklist chosen for a dataset of other chips: a warning.
    other = tmp_path / "other"
    generate_dataset(other, n_chips=3, size=48, seed=7)
    _reopen(w, qtbot, other)
    w.scoring.blocklist_edit.setText(str(mine))
    w.scoring.take_blocklist_path()
    assert "are for chips that other does not have" in w.status.text()


def test_a_closed_panel_takes_its_layer_and_reopening_keeps_the_scores_model(
    make_napari_viewer, qtbot, tmp_path
):
    from chipqa._qt.chip_layers import SIDE_BY_SIDE_LAYER
    from chipqa._qt.review_widget import ChipQAWidget

    root = tmp_path / "data"
    generate_dataset(root, n_chips=6, size=48, error_rate=0.3, seed=4)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)  # scored with the baseline, not the default model
    assert SIDE_BY_SIDE_LAYER in viewer.layers
    scored = side_paths(root).scores.read_bytes()
    viewer.window.remove_dock_widget(w)
    qtbot.wait(50)
    assert [ly.name for ly in viewer.layers] == []  # nothing of the panel stays behind
    again = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(again, name="Chip QA")
    again.open_dataset(root)  # no model named: the one the scores were made with
    qtbot.waitUntil(lambda: again.session is not None and not again.scoring_running)
    _drawn(again, qtbot)
    assert again.scoring.model_edit.text() == "baseline" and again.settings.model == "baseline"
    assert side_paths(root).scores.read_bytes() == scored  # reused, not scored over
    assert [ly.name for ly in viewer.layers] == [SIDE_BY_SIDE_LAYER]  # no "side by side [1]"


def test_the_keys_line_and_the_status_show_their_whole_text(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=4, size=48, seed=2)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    for view in ("gallery", "side by side"):
        w.set_view(view)
        qtbot.wait(20)  # the layout follows the new text
        label = w.decisions.keys_label
        assert label.heightForWidth(label.width()) <= label.height(), view


def test_the_help_overlay_is_left_aligned_and_the_badge_back_at_the_right(
    make_napari_viewer, qtbot, tmp_path
):
    from chipqa._qt.chip_layers import text_overlay

    root = tmp_path / "data"
    generate_dataset(root, n_chips=4, size=48, seed=2)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    _press(viewer, qtbot, "h")
    overlay = text_overlay(viewer)
    assert overlay.visible and "chipqa keys" in overlay.text
    assert str(overlay.position).endswith("top_left")  # lines of keys read from the left
    _press(viewer, qtbot, "h")
    qtbot.waitUntil(lambda: w.canvas_text.badge != "")
    w.canvas_text.refresh()
    assert str(overlay.position).endswith("top_right") and "chipqa keys" not in overlay.text


def test_the_badge_sits_above_the_chip_not_over_its_panel_titles(
    make_napari_viewer, qtbot, tmp_path
):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=4, size=48, seed=2)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 700)  # a wide canvas: the chip fills its height
    w = _open(viewer, qtbot, root)
    _press(viewer, qtbot, "k")  # the badge says what was recorded: two lines
    _drawn(w, qtbot)
    w.set_view("side by side", force=True)  # fitted again to the canvas as it is now
    qtbot.waitUntil(lambda: "\n" in w.canvas_text.badge)
    camera = viewer.camera
    height = viewer.canvas.size[0]
    top_on_screen = (0 - camera.center[-2]) * camera.zoom + height / 2
    # The canvas text can be three lines (the decision, what was just recorded, a note
    # such as "loading…"); at 11 pt (about 17.6 px a line with its spacing) and the
    # overlay's padding they must fit above the mosaic's first row (the panel titles).
    assert top_on_screen >= 3 * 11 * 96 / 72 * 1.2 + 10, height


def test_the_blocklist_box_follows_the_blocklist_in_use(make_napari_viewer, qtbot, tmp_path):
    """A script (or the retrain panel) switching the blocklist through the controller:
    the box shows the file decisions go to, and leaving the box does not switch back."""
    root = tmp_path / "data"
    generate_dataset(root, n_chips=4, size=40, seed=2)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    elsewhere = tmp_path / "elsewhere.csv"
    w.controller.switch_blocklist(elsewhere)
    assert w.scoring.blocklist_edit.text() == str(elsewhere)
    w.scoring.blocklist_edit.editingFinished.emit()  # the box loses the focus
    assert w.store.path == elsewhere
    _press(viewer, qtbot, "k")
    assert list(read_blocklist(elsewhere).values())[0].decision == "keep"


def test_the_panel_follows_the_list_to_its_end_and_an_undo_that_lifts_the_filter(
    make_napari_viewer, qtbot, tmp_path
):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=6, size=40, error_rate=0.5, seed=3)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, root)
    # "undecided only": every listed chip decided, none left; the progress line says so.
    w.filters.undecided_check.setChecked(True)
    for _ in range(6):
        last = w.session.current
        _press(viewer, qtbot, "k")
    assert w.session.current is None
    qtbot.waitUntil(lambda: "6 / 6" in w.info.progress_label.text(), timeout=5_000)
    assert "No chip matches" in w.info.chip_label.text()
    # An undo of a chip the filter hides shows every chip again: so do the boxes.
    w.filters.undecided_check.setChecked(False)
    flagged = [f for f in w.session.flags_present if f not in str(w.session.row(last).get("flags"))]
    assert flagged, "the dataset needs a flag the last decided chip does not have"
    w.filters.flag_combo.setCurrentIndex(w.filters.flag_combo.findData(flagged[0]))
    assert w.session.flag == flagged[0]
    assert last not in w.session.order
    _press(viewer, qtbot, "z")
    assert w.session.current == last
    assert w.session.flag is None and not w.session.undecided_only
    assert w.filters.flag_combo.currentData() is None
    assert not w.filters.undecided_check.isChecked()

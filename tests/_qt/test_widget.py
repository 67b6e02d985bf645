"""The Chip QA widget in a real napari window (Xvfb): scoring, keys, layers, blocklist."""

from __future__ import annotations

import numpy as np
import pytest

from chipqa._qt.chip_layers import (
    FALSE_COLOUR,
    LABEL,
    LABEL_OUTLINE,
    PREDICTION,
    SCL_LAYER,
    SIDE_BY_SIDE_LAYER,
    TRUE_COLOUR,
)
from chipqa._qt.review_widget import ChipQAWidget, scores_path_for
from chipqa.data import open_dataset
from chipqa.render import true_colour
from chipqa.review.blocklist import read_blocklist
from chipqa.synth import generate_dataset

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("gui") / "data"
    generate_dataset(root, n_chips=16, size=48, error_rate=0.25, seed=11)
    return root


@pytest.fixture
def fresh_root(dataset_root, tmp_path):
    """A private copy, so that scores and blocklists of one test do not leak into another."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(dataset_root, root)
    return root


def _open(viewer, qtbot, root) -> ChipQAWidget:
    widget = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Chip QA")
    widget.open_dataset(root)
    qtbot.waitUntil(lambda: widget.session is not None, timeout=60_000)
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    return widget


def _press(viewer, qtbot, key: str) -> None:
    """A real key press on the canvas, through napari's key handling."""
    from qtpy.QtCore import Qt

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    keys = {"Right": Qt.Key.Key_Right, "Left": Qt.Key.Key_Left}
    if key in keys:
        qtbot.keyClick(canvas, keys[key])
    else:
        qtbot.keyClick(canvas, key)


def test_layers_show_the_chip_the_keys_go_to(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    ds = open_dataset(fresh_root)
    order = list(w.session.order)
    assert w.session.current == order[0]
    for layer in (TRUE_COLOUR, FALSE_COLOUR, LABEL, PREDICTION, SIDE_BY_SIDE_LAYER):
        assert layer in viewer.layers
    assert viewer.layers[SIDE_BY_SIDE_LAYER].visible and not viewer.layers[TRUE_COLOUR].visible

    def shown_is(chip_id):
        chip = ds.read(chip_id)
        tc = true_colour(chip.bands)
        np.testing.assert_array_equal(viewer.layers[TRUE_COLOUR].data, tc)
        np.testing.assert_array_equal(viewer.layers[LABEL].data, chip.label)
        mosaic = viewer.layers[SIDE_BY_SIDE_LAYER].data
        h, w = chip.shape
        np.testing.assert_array_equal(mosaic[18 : 18 + h, :w], tc)  # top-left panel
        assert viewer.layers[PREDICTION].metadata["chip_id"] == chip_id

    shown_is(order[0])
    _press(viewer, qtbot, "Right")
    _press(viewer, qtbot, "Right")
    shown_is(order[2])
    _press(viewer, qtbot, "Left")
    shown_is(order[1])
    # Keys still work with a Labels layer selected (its own keymap is searched first).
    viewer.layers.selection.active = viewer.layers[LABEL]
    _press(viewer, qtbot, "n")
    shown_is(order[2])
    _press(viewer, qtbot, "g")
    assert viewer.layers[LABEL_OUTLINE].visible and viewer.layers[TRUE_COLOUR].visible
    assert not viewer.layers[SIDE_BY_SIDE_LAYER].visible
    _press(viewer, qtbot, "n")  # layers mode keeps following the keys
    shown_is(order[3])


def test_key_driven_triage_writes_exactly_the_expected_blocklist(
    make_napari_viewer, qtbot, fresh_root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    order = list(w.session.order)
    for key in ["b", "1", "k", "u", "z", "k", "3", "Left", "j"]:
        _press(viewer, qtbot, key)
    rows = read_blocklist(w.store.path)
    expected = {
        order[0]: ("block", "all_cloud_wrong"),  # b: reason from the combo (first)
        order[1]: ("block", "all_cloud_wrong"),  # 1
        order[2]: ("keep", ""),  # k
        order[3]: ("keep", ""),  # u, z (undo), k
        order[4]: ("block", "shifted"),
    }  # 3
    assert {k: (v.decision, v.reason) for k, v in rows.items()} == expected
    assert w.store.path == scores_path_for(fresh_root).with_name("data_chipqa_blocklist.csv")
    assert rows[order[0]].model == "baseline"
    assert rows[order[0]].flags == str(w.session.row(order[0])["flags"])
    # Left went back to order[4], j jumps to the next chip without a decision.
    assert w.session.current == order[5]


def test_reopening_resumes_and_uses_the_saved_scores(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    first = w.session.current
    _press(viewer, qtbot, "k")
    _press(viewer, qtbot, "k")
    assert scores_path_for(fresh_root).is_file()
    w.close()
    w2 = _open(viewer, qtbot, fresh_root)
    assert w2.session.current == w2.session.order[2]
    assert w2.session.store.get(first).decision == "keep"
    assert "Loaded scores" in w2.status.text() or "Resumed" in w2.status.text()


def test_a_folder_that_is_not_a_dataset_is_a_message_not_a_crash(
    make_napari_viewer, qtbot, tmp_path
):
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    (tmp_path / "notes.txt").write_text("hello")
    assert w.open_dataset(tmp_path) is False
    assert "holds no chips" in w.status.text()
    assert w.session is None


def test_a_nonsense_blocklist_is_refused_and_kept(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    bl = fresh_root.parent / "data_chipqa_blocklist.csv"
    bl.write_text("this,is\nnot,a blocklist\n")
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_dataset(fresh_root)
    qtbot.waitUntil(lambda: w._worker is None and w.loader is not None, timeout=60_000)
    assert "not a chipqa blocklist" in w.status.text()
    _press(viewer, qtbot, "k")  # no crash, nothing written
    assert bl.read_text() == "this,is\nnot,a blocklist\n"
    # Choosing another path starts the review there.
    w.blocklist_edit.setText(str(fresh_root.parent / "other.csv"))
    w._on_blocklist_path_edited()
    assert w.session is not None
    _press(viewer, qtbot, "k")
    assert len(read_blocklist(fresh_root.parent / "other.csv")) == 1


def test_cancelling_scoring_keeps_the_viewer_usable(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "big"
    generate_dataset(root, n_chips=60, size=48, seed=2)
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_dataset(root)
    qtbot.waitUntil(lambda: w.progress_bar.value() > 0, timeout=60_000)
    w._on_cancel()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert "cancelled" in w.status.text()
    assert not scores_path_for(
        root
    ).exists()  # partial scores are not saved as the dataset's scores
    assert w.score_btn.isEnabled()


def test_sample_data_opens_for_review(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_SAMPLE_DIR", str(tmp_path / "sample"))
    monkeypatch.setattr("chipqa._sample_data.SAMPLE_CHIPS", 12)
    monkeypatch.setattr("chipqa._sample_data.SAMPLE_SIZE", 48)
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("chipqa", "synthetic")

    def docked():
        return [w for w in viewer.window.dock_widgets.values() if isinstance(w, ChipQAWidget)]

    qtbot.waitUntil(lambda: len(docked()) == 1, timeout=30_000)
    w = docked()[0]
    qtbot.waitUntil(lambda: w.session is not None and w._worker is None, timeout=60_000)
    assert len(w.session.order) == 12
    assert [ly.name for ly in viewer.layers].count(TRUE_COLOUR) == 1


def test_an_unreadable_chip_shows_its_error_and_the_review_goes_on(
    make_napari_viewer, qtbot, fresh_root
):
    ids = sorted(p.name for p in (fresh_root / "train_features").iterdir())
    (fresh_root / "train_features" / ids[0] / "B03.tif").write_bytes(b"not a tiff")
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    assert w.session.order[-1] == ids[0]  # unreadable chips rank last
    w.session.goto(ids[0])
    w.show_current()
    qtbot.waitUntil(lambda: "B03.tif" in w.chip_label.text(), timeout=10_000)
    assert not viewer.layers[SIDE_BY_SIDE_LAYER].data.any()  # no other chip's pixels on screen
    _press(viewer, qtbot, "b")  # a broken chip can still be blocked
    assert read_blocklist(w.store.path)[ids[0]].flags == "unreadable"


def test_closing_the_viewer_during_scoring_is_clean(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "big"
    generate_dataset(root, n_chips=80, size=48, seed=4)
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_dataset(root)
    qtbot.waitUntil(lambda: w.progress_bar.value() > 0, timeout=60_000)
    worker = w._worker
    viewer.close()
    qtbot.waitUntil(lambda: worker is None or not worker.is_running, timeout=60_000)
    assert not scores_path_for(root).exists()  # an interrupted run writes no scores file


def test_filters_and_export_from_the_widget(make_napari_viewer, qtbot, fresh_root, tmp_path):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    idx = w.flag_combo.findData("all_cloud_label")
    assert idx > 0
    w.flag_combo.setCurrentIndex(idx)
    listed = [w.table_model.chip_at(r) for r in range(w.table_model.rowCount())]
    assert listed == w.session.order and listed
    assert all("all_cloud_label" in w.session.row(c)["flags"] for c in listed)
    _press(viewer, qtbot, "2")
    w.undecided_check.setChecked(True)
    assert listed[0] not in w.session.order
    out = w.export(tmp_path / "export.csv")
    assert list(read_blocklist(out)) == [listed[0]]


def _retrain_settings(w, epochs: int) -> None:
    p = w.retrain
    p.encoder.setCurrentText("mobilenet_v2")
    p.epochs.setValue(epochs)
    p.batch.setValue(4)
    p.device.setCurrentText("cpu")


@pytest.mark.slow
def test_retrain_in_a_subprocess_loads_the_new_model_and_rescores(
    make_napari_viewer, qtbot, fresh_root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    _press(viewer, qtbot, "1")  # block the most suspicious chip
    blocked = next(iter(w.store.decisions))
    _retrain_settings(w, epochs=1)
    assert w.retrain.start()
    _press(viewer, qtbot, "k")  # reviewing goes on while it trains
    qtbot.waitUntil(lambda: not w.retrain.running, timeout=240_000)
    kinds = [e["event"] for e in w.retrain.last_events]
    assert kinds[0] == "start" and kinds[-1] == "done", w.retrain.status.text()
    ckpt = w.retrain.checkpoint
    assert ckpt.is_file()
    from chipqa.predictors import read_checkpoint

    _, info = read_checkpoint(ckpt)
    assert blocked not in info.train_chips and blocked in info.blocklist
    qtbot.waitUntil(
        lambda: w._worker is None and w.predictor.name.startswith("unet-"), timeout=120_000
    )
    assert set(w.session.scores["model"]) == {w.predictor.name}
    qtbot.waitUntil(lambda: w.retrain.before_iou is not None, timeout=60_000)
    text = w.retrain.result.text()
    assert "before (baseline)" in text and ckpt.name in text and "…" not in text


def test_cancelling_retraining_ends_the_process_and_writes_no_checkpoint(
    make_napari_viewer, qtbot, fresh_root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    _retrain_settings(w, epochs=500)
    assert w.retrain.start()
    qtbot.waitUntil(
        lambda: any(e["event"] == "step" for e in w.retrain.last_events), timeout=120_000
    )
    w.retrain.cancel()
    qtbot.waitUntil(lambda: not w.retrain.running, timeout=60_000)
    assert "Cancelled" in w.retrain.status.text()
    assert not w.retrain.checkpoint.exists()
    assert not list(w.retrain.checkpoint.parent.glob("*.ckpt*"))
    assert w.predictor.name == "baseline"


def test_opening_a_dataset_folder_in_napari_docks_the_widget(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    viewer.open(str(fresh_root), plugin="chipqa")

    def docked():
        return [w for w in viewer.window.dock_widgets.values() if isinstance(w, ChipQAWidget)]

    qtbot.waitUntil(lambda: len(docked()) == 1, timeout=30_000)
    w = docked()[0]
    qtbot.waitUntil(lambda: w.session is not None and w._worker is None, timeout=60_000)
    assert w.dataset.root == fresh_root and len(w.session.order) == 16
    assert viewer.layers[SIDE_BY_SIDE_LAYER].metadata["chip_id"] == w.session.current


def test_a_chip_with_an_scl_shows_its_cloud_classes_beside_the_model(
    make_napari_viewer, qtbot, fresh_root
):
    from chipqa.render import SCL_COLOURS

    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    ds = open_dataset(fresh_root)

    # A chip whose SCL has high-probability cloud (the generator writes an SCL per chip).
    def has_cloud_and_ground(scl):
        return (scl == 9).sum() > 50 and (~np.isin(scl, (0, 3, 8, 9, 10))).sum() > 50

    cid = next(c for c in w.session.order if has_cloud_and_ground(ds.read(c).scl))
    w.session.goto(cid)
    w.show_current()
    chip = ds.read(cid)
    h, wd = chip.shape
    mosaic = viewer.layers[SIDE_BY_SIDE_LAYER].data
    assert mosaic.shape[1] == 3 * wd + 2 * 6  # three columns: true colour | SCL | model
    scl_panel = mosaic[18 : 18 + h, wd + 6 : 2 * wd + 6].astype(int)
    high = chip.scl == 9
    red = np.array(SCL_COLOURS[9])
    assert np.abs(scl_panel[high] - red).max(axis=1).mean() < 80  # tinted red where SCL says 9
    surface = ~np.isin(chip.scl, (0, 3, 8, 9, 10))
    assert np.abs(scl_panel[surface] - red).max(axis=1).mean() > 120  # not elsewhere
    # The canvas (what the reviewer sees) shows that red, which no other panel uses.
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    reddish = (shot[..., 0] > 180) & (shot[..., 1] < 110) & (shot[..., 2] < 90)
    assert reddish.sum() > 20
    # Layers mode: the SCL is a labels layer of its own, with the chip's codes.
    _press(viewer, qtbot, "g")
    np.testing.assert_array_equal(viewer.layers[SCL_LAYER].data, chip.scl)
    assert viewer.layers[SCL_LAYER].metadata["chip_id"] == cid
    colour = viewer.layers[SCL_LAYER].colormap.map(np.array([9]))[0]
    np.testing.assert_allclose(colour[:3], red / 255, atol=0.01)

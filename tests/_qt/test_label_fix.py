"""Fixing a label in a real napari window (Xvfb): the model's mask, painting, save, cancel,
undo."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import rasterio

from chipqa._qt.label_fix import LabelFixer
from chipqa.blocklist.csvread import read_blocklist
from chipqa.blocklist.store import BlocklistStore
from chipqa.data import open_dataset
from chipqa.io.paths import side_paths
from chipqa.review.fixes import FixError
from conftest import make_bands, write_chip

pytestmark = pytest.mark.gui

SIZE = 32


@pytest.fixture
def root(tmp_path):
    """One clear chip wrongly labelled 100 % cloud, with a corner without a label."""
    root = tmp_path / "ds"
    wrong = np.ones((SIZE, SIZE), np.uint8)
    wrong[-4:, -4:] = 255
    write_chip(root, "over", make_bands(SIZE), wrong)
    write_chip(root, "other", make_bands(SIZE, seed=1), np.zeros((SIZE, SIZE), np.uint8))
    return root


@pytest.fixture
def fixer(make_napari_viewer, root):
    viewer = make_napari_viewer(show=True)
    store = BlocklistStore(side_paths(root).blocklist, reviewer="ana")
    return LabelFixer(viewer, store, root)


def _key(fixer, qtbot, key) -> None:
    """A real key press on the canvas, through napari's key handling."""
    canvas = fixer.viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def _fix_label(root, store, chip_id="over") -> np.ndarray:
    with rasterio.open(side_paths(root).fixes / store.get(chip_id).fix_file) as src:
        return src.read(1)


@pytest.mark.slow  # the first Labels layer of a process compiles napari's colour kernels
def test_accept_the_model_mask_then_paint_save_and_undo_each(fixer, root, qtbot):
    from qtpy.QtCore import Qt

    store, viewer = fixer.store, fixer.viewer
    done: list[str] = []
    fixer.finished.connect(done.append)

    # a: the model's mask at the threshold in use becomes the label
    prob = np.zeros((SIZE, SIZE), np.float32)
    prob[:, :10] = 0.9
    prob[:, 10:12] = 0.55  # above 0.5, below 0.6
    model_fix = fixer.accept_model("over", prob, 0.6, model="baseline", info={"suspicion": 0.9})
    assert (model_fix.decision, model_fix.fix_source, model_fix.model) == (
        "fix",
        "model",
        "baseline",
    )
    label = _fix_label(root, store)
    assert (label[:, :10] == 1).all() and (label[:-4, 10:] == 0).all()
    assert (label[-4:, -4:] == 255).all()  # the label's no-data corner is kept
    chip = open_dataset(root, cache="off").read("over")
    np.testing.assert_array_equal(chip.label, label)

    # e: paint the label in a Labels layer
    layer = fixer.start_painting("over", chip.label, model="baseline")
    assert fixer.painting and layer in viewer.layers
    assert viewer.layers.selection.active is layer
    assert layer.mode == "paint" and layer.selected_label == 1
    layer.selected_label = 7
    assert layer.selected_label == 1  # only cloud (1) and clear (0) can be painted
    layer.brush_size = 5
    layer.paint((16, 24), 1)  # a cloud stroke on the clear side
    layer.paint((30, 30), 1)  # over the no-data corner: stays no data
    layer.paint((16, 4), 0)  # the eraser's value: clear
    layer.fill((5, 20), 1)  # the bucket on the clear region joins it to the cloud
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    yellowish = (shot[..., 0] > 100) & (shot[..., 1] > 80) & (shot[..., 2] < 60)
    assert yellowish.any()  # the painted cloud is on screen
    _key(fixer, qtbot, Qt.Key.Key_Return)  # saves
    assert done == ["over"] and not fixer.painting and layer not in viewer.layers
    painted = store.get("over")
    assert (painted.decision, painted.fix_source) == ("fix", "painted")
    assert painted.fix_file != model_fix.fix_file
    label = _fix_label(root, store)
    assert (label[-4:, -4:] == 255).all()
    assert label[16, 4] == 0 and label[16, 24] == 1 and label[5, 20] == 1
    assert set(np.unique(label)) <= {0, 1, 255}

    # undo takes back the painted fix (the model's fix is in effect again), then that one
    assert store.undo() == "over"
    assert read_blocklist(store.path)["over"].fix_file == model_fix.fix_file
    assert store.undo() == "over" and "over" not in read_blocklist(store.path)
    rec = open_dataset(root, cache="off")["over"]
    assert not rec.fixed
    assert (side_paths(root).fixes / painted.fix_file).is_file()  # kept on disk


def test_escape_or_removing_the_layer_cancels_without_recording(fixer, root, qtbot):
    from qtpy.QtCore import Qt

    done: list[str] = []
    fixer.finished.connect(done.append)
    layer = fixer.start_painting("over", np.ones((SIZE, SIZE), np.uint8))
    layer.paint((10, 10), 0)
    _key(fixer, qtbot, Qt.Key.Key_Escape)
    assert done == ["over"] and not fixer.painting and layer not in fixer.viewer.layers
    layer = fixer.start_painting("other", np.zeros((SIZE, SIZE), np.uint8))
    fixer.viewer.layers.remove(layer)  # deleted by hand
    assert done == ["over", "other"] and not fixer.painting
    assert fixer.save() is None
    assert len(fixer.store) == 0 and not side_paths(root).fixes.exists()


def test_a_save_that_fails_keeps_the_painting_open(fixer, root, monkeypatch):
    layer = fixer.start_painting("over", np.zeros((SIZE, SIZE), np.uint8))
    layer.paint((8, 8), 1)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("chipqa.io.atomic.os.replace", full)
    with pytest.raises(FixError, match="No space left"):
        fixer.save()
    assert fixer.painting and layer in fixer.viewer.layers  # nothing painted is lost
    assert len(fixer.store) == 0 and list(side_paths(root).fixes.iterdir()) == []
    monkeypatch.undo()
    d = fixer.save()
    assert d.decision == "fix" and _fix_label(root, fixer.store)[8, 8] == 1

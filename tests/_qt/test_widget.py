"""The Chip QA widget in a real napari window (Xvfb): scoring, keys, layers, blocklist."""

from __future__ import annotations

import html
import time

import numpy as np
import pytest

from chipqa._qt.chip_layers import (
    LABEL,
    LABEL_OUTLINE,
    PREDICTION,
    SCL_LAYER,
    SIDE_BY_SIDE_LAYER,
    TRUE_COLOUR,
    text_overlay,
)
from chipqa._qt.review_widget import ChipQAWidget, scores_path_for
from chipqa.blocklist.csvread import read_blocklist
from chipqa.data import open_dataset
from chipqa.io.atomic import atomic_write_csv
from chipqa.predictors import SpectralBaseline
from chipqa.render import true_colour
from chipqa.review.session import default_reason
from chipqa.scoring import read_scores
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
    widget.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: widget.session is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not widget.scoring_running, timeout=60_000)
    _drawn(widget, qtbot)
    return widget


def _drawn(w, qtbot, timeout: int = 30_000) -> None:
    """Wait until the current chip is on screen (it may still be loading after a key)."""
    qtbot.waitUntil(
        lambda: w.loading is None and w.chip_layers.chip_id == w.session.current, timeout=timeout
    )


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


@pytest.mark.slow
def test_layers_show_the_chip_the_keys_go_to(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    ds = open_dataset(fresh_root)
    order = list(w.session.order)
    assert w.session.current == order[0]
    layer = w.chip_layers.layer
    # Side by side: the mosaic alone is in the viewer (napari's reset view fits it).
    assert [ly.name for ly in viewer.layers] == [SIDE_BY_SIDE_LAYER]
    # the panel says why the chip ranks first, as the scores table does
    why = w.session.row(order[0])["why"]
    assert why
    shown = f"why: <b>{html.escape(why)}</b>"
    qtbot.waitUntil(lambda: shown in w.info.chip_label.text(), timeout=5_000)

    def shown_is(chip_id):
        assert w.session.current == chip_id
        _drawn(w, qtbot)
        chip = ds.read(chip_id)
        tc = true_colour(chip.bands)
        np.testing.assert_array_equal(layer(TRUE_COLOUR).data, tc)
        np.testing.assert_array_equal(layer(LABEL).data, chip.label)
        mosaic = layer(SIDE_BY_SIDE_LAYER).data
        h, wd = chip.shape
        np.testing.assert_array_equal(mosaic[18 : 18 + h, :wd], tc)  # top-left panel
        assert layer(PREDICTION).metadata["chip_id"] == chip_id

    shown_is(order[0])
    _press(viewer, qtbot, "Right")
    _press(viewer, qtbot, "Right")
    shown_is(order[2])
    _press(viewer, qtbot, "Left")
    shown_is(order[1])
    _press(viewer, qtbot, "n")
    shown_is(order[2])
    _press(viewer, qtbot, "g")
    assert viewer.layers[LABEL_OUTLINE].visible and viewer.layers[TRUE_COLOUR].visible
    assert SIDE_BY_SIDE_LAYER not in viewer.layers
    # chipqa's own Labels layer selected: the review keys beat napari's Labels keys there.
    viewer.layers.selection.active = viewer.layers[LABEL]
    _press(viewer, qtbot, "n")  # layers mode keeps following the keys
    shown_is(order[3])


@pytest.mark.slow
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
        order[0]: ("block", default_reason(w.session.row(order[0])["flags"])),  # b: its flag
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


@pytest.mark.slow
def test_reopening_resumes_and_uses_the_saved_scores(make_napari_viewer, qtbot, fresh_root):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    first, second = w.session.order[:2]
    _press(viewer, qtbot, "k")
    _press(viewer, qtbot, "k")
    path = scores_path_for(fresh_root)
    assert path.is_file()
    w.close()
    # Rank the saved table by hand (by chip id): a review that reuses the saved scores
    # follows this order; one that scored the chips again would not.
    saved = read_scores(path).sort_values("chip_id").reset_index(drop=True)
    saved["suspicion"] = np.linspace(1.0, 0.0, len(saved))
    atomic_write_csv(saved, path)
    w2 = _open(viewer, qtbot, fresh_root)
    assert w2.session.order == list(saved["chip_id"])
    assert {w2.session.store.get(c).decision for c in (first, second)} == {"keep"}
    undecided = [c for c in w2.session.order if c not in (first, second)]
    assert w2.session.current == undecided[0]  # resumes at the first undecided chip
    assert "Resumed: 2 of 16" in w2.status.text()


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
    w.open_dataset(fresh_root, "baseline")
    qtbot.waitUntil(lambda: w.project is not None and not w.scoring_running, timeout=60_000)
    assert "not a chipqa blocklist" in w.status.text()
    _press(viewer, qtbot, "k")  # no crash, nothing written
    assert bl.read_text() == "this,is\nnot,a blocklist\n"
    # Choosing another path starts the review there.
    w.scoring.blocklist_edit.setText(str(fresh_root.parent / "other.csv"))
    w.scoring.take_blocklist_path()
    assert w.session is not None
    _press(viewer, qtbot, "k")
    assert len(read_blocklist(fresh_root.parent / "other.csv")) == 1


@pytest.mark.slow
def test_cancelling_scoring_keeps_the_viewer_usable(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "big"
    generate_dataset(root, n_chips=60, size=48, seed=2)
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.scoring.progress_bar.value() > 0, timeout=60_000)
    w.scoring.cancel()
    qtbot.waitUntil(lambda: not w.scoring_running, timeout=60_000)
    assert "cancelled" in w.status.text()
    assert not scores_path_for(
        root
    ).exists()  # partial scores are not saved as the dataset's scores
    assert w.scoring.score_btn.isEnabled()


def test_sample_data_opens_for_review(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPQA_SAMPLE_DIR", str(tmp_path / "sample"))
    monkeypatch.setattr("chipqa._sample_data.SAMPLE_CHIPS", 12)
    monkeypatch.setattr("chipqa._sample_data.SAMPLE_SIZE", 48)
    monkeypatch.setattr("chipqa._qt.scoring_bar.DEFAULT_MODEL", "baseline")
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("chipqa", "synthetic")

    def docked():
        return [w for w in viewer.window.dock_widgets.values() if isinstance(w, ChipQAWidget)]

    qtbot.waitUntil(lambda: len(docked()) == 1, timeout=30_000)
    w = docked()[0]
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    assert len(w.session.order) == 12
    # The first chip is shown side by side once its load (off the GUI thread) is done.
    names = lambda: [ly.name for ly in viewer.layers]  # noqa: E731
    qtbot.waitUntil(lambda: SIDE_BY_SIDE_LAYER in names(), timeout=30_000)
    assert [ly.name for ly in viewer.layers].count(SIDE_BY_SIDE_LAYER) == 1


def test_an_unreadable_chip_shows_its_error_and_the_review_goes_on(
    make_napari_viewer, qtbot, fresh_root
):
    ids = sorted(p.name for p in (fresh_root / "train_features").iterdir())
    (fresh_root / "train_features" / ids[0] / "B03.tif").write_bytes(b"not a tiff")
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    assert w.session.order[-1] == ids[0]  # unreadable chips rank last
    w.session.goto(ids[0])
    w.canvas.show_current()
    qtbot.waitUntil(lambda: "B03.tif" in w.info.chip_label.text(), timeout=10_000)
    _drawn(w, qtbot)
    # No other chip's pixels on screen, and no black square: a card saying why, on the
    # canvas, and the reason in the overlay.
    card = w.chip_layers.layer(SIDE_BY_SIDE_LAYER).data
    assert card[..., 0].mean() > card[..., 2].mean()  # the dark red card
    assert not w.chip_layers.layer(TRUE_COLOUR).data.any()
    overlay = text_overlay(viewer)
    assert overlay.visible and ids[0] in overlay.text and "B03.tif" in overlay.text
    _press(viewer, qtbot, "b")  # a broken chip can still be blocked
    assert read_blocklist(w.store.path)[ids[0]].flags == "unreadable"


def test_closing_the_viewer_during_scoring_is_clean(make_napari_viewer, qtbot, tmp_path):
    root = tmp_path / "big"
    generate_dataset(root, n_chips=80, size=48, seed=4)
    viewer = make_napari_viewer(show=True)
    w = ChipQAWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.open_dataset(root, "baseline")
    qtbot.waitUntil(lambda: w.scoring.progress_bar.value() > 0, timeout=60_000)
    job = w.scoring.job
    viewer.close()
    qtbot.waitUntil(lambda: job is None or not job.running, timeout=60_000)
    assert not scores_path_for(root).exists()  # an interrupted run writes no scores file


def test_filters_and_export_from_the_widget(make_napari_viewer, qtbot, fresh_root, tmp_path):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    idx = w.filters.flag_combo.findData("all_cloud_label")
    assert idx > 0
    w.filters.flag_combo.setCurrentIndex(idx)
    listed = [w.table.table_model.chip_at(r) for r in range(w.table.table_model.rowCount())]
    assert listed == w.session.order and listed
    assert all("all_cloud_label" in w.session.row(c)["flags"] for c in listed)
    _press(viewer, qtbot, "2")
    w.filters.undecided_check.setChecked(True)
    assert listed[0] not in w.session.order
    out = w.decisions.export(tmp_path / "export.csv")
    assert list(read_blocklist(out)) == [listed[0]]


def _retrain_settings(w, epochs: int) -> None:
    p = w.retrain
    assert p.init.currentText() == "pretrained"  # the tab's default: fine-tune the real model
    p.init.setCurrentText("random")  # a tiny encoder trains fast on 2 cores
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
    asked = []  # a one-epoch model may be worse than the baseline: the reviewer says yes
    w.confirm = lambda title, text: asked.append(text) or True
    assert w.retrain.start()
    _press(viewer, qtbot, "k")  # reviewing goes on while it trains
    qtbot.waitUntil(lambda: not w.retrain.running, timeout=240_000)
    kinds = [e["event"] for e in w.retrain.last_events]
    assert kinds[0] == "start" and kinds[-1] == "done", w.retrain.status.text()
    curve = w.retrain.curve.model  # every step's loss and the epoch's points are on the curve
    assert len(curve.steps) == kinds.count("step") > 0
    assert [x for x, _ in curve.epoch_loss] == [1.0] and [x for x, _ in curve.iou] == [1.0]
    assert curve.summary().startswith("done in") and "best validation IoU" in curve.summary()
    ckpt = w.retrain.checkpoint
    assert ckpt.is_file()
    from chipqa.predictors import read_checkpoint

    _, info = read_checkpoint(ckpt)
    assert blocked not in info.train_chips and blocked in info.blocklist
    qtbot.waitUntil(
        lambda: not w.scoring_running and w.predictor.name.startswith("unet-"), timeout=120_000
    )
    assert set(w.session.scores["model"]) == {w.predictor.name}
    qtbot.waitUntil(lambda: w.retrain.before_iou is not None, timeout=60_000)
    text = w.retrain.result.text()
    assert "before (baseline)" in text and ckpt.name in text and "…" not in text
    if w.retrain.after_iou < w.retrain.before_iou:  # asked before replacing a better model
        assert asked and "Validation IoU fell" in asked[0]
    else:
        assert not asked


@pytest.mark.slow
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


def test_opening_a_dataset_folder_in_napari_docks_the_widget(
    make_napari_viewer, qtbot, fresh_root, monkeypatch
):
    monkeypatch.setattr("chipqa._qt.scoring_bar.DEFAULT_MODEL", "baseline")
    viewer = make_napari_viewer(show=True)
    viewer.open(str(fresh_root), plugin="chipqa")

    def docked():
        return [w for w in viewer.window.dock_widgets.values() if isinstance(w, ChipQAWidget)]

    qtbot.waitUntil(lambda: len(docked()) == 1, timeout=30_000)
    w = docked()[0]
    qtbot.waitUntil(lambda: w.session is not None and not w.scoring_running, timeout=60_000)
    _drawn(w, qtbot)
    assert w.dataset.root == fresh_root and len(w.session.order) == 16
    assert viewer.layers[SIDE_BY_SIDE_LAYER].metadata["chip_id"] == w.session.current


@pytest.mark.slow
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
    _drawn(w, qtbot)
    chip = ds.read(cid)
    h, wd = chip.shape
    mosaic = w.chip_layers.layer(SIDE_BY_SIDE_LAYER).data
    assert mosaic.shape[1] == 3 * wd + 2 * 6  # three columns: true colour | SCL | model
    scl_panel = mosaic[18 : 18 + h, wd + 6 : 2 * wd + 6].astype(int)
    high = chip.scl == 9
    red = np.array(SCL_COLOURS[9])
    assert np.abs(scl_panel[high] - red).max(axis=1).mean() < 80  # tinted red where SCL says 9
    surface = ~np.isin(chip.scl, (0, 3, 8, 9, 10))
    assert np.abs(scl_panel[surface] - red).max(axis=1).mean() > 120  # not elsewhere

    # The canvas (what the reviewer sees) shows that red, which no other panel uses.
    def red_on_canvas() -> int:
        shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        return int(((shot[..., 0] > 180) & (shot[..., 1] < 110) & (shot[..., 2] < 90)).sum())

    qtbot.waitUntil(lambda: red_on_canvas() > 20, timeout=10_000)
    # Layers mode: the SCL is a labels layer of its own, with the chip's codes.
    _press(viewer, qtbot, "g")
    np.testing.assert_array_equal(viewer.layers[SCL_LAYER].data, chip.scl)
    assert viewer.layers[SCL_LAYER].metadata["chip_id"] == cid
    colour = viewer.layers[SCL_LAYER].colormap.map(np.array([9]))[0]
    np.testing.assert_allclose(colour[:3], red / 255, atol=0.01)


class SlowBaseline(SpectralBaseline):
    """The baseline, with a slow per-chip prediction (what the viewer asks for) that can
    fail the first ``fail`` times as a GPU out of memory does. Scoring is not slowed."""

    def __init__(self, delay: float, fail: int = 0):
        super().__init__()
        self.delay, self.fail, self.calls = delay, fail, 0

    def predict_numpy(self, bands):
        self.calls += 1
        time.sleep(self.delay)
        if self.calls <= self.fail:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().predict_numpy(bands)


@pytest.fixture
def slow_predictor(monkeypatch):
    """Makes the widget load a :class:`SlowBaseline` and prefetch nothing, so that every
    chip the reviewer goes to is loaded only then."""

    def install(delay: float, fail: int = 0) -> SlowBaseline:
        predictor = SlowBaseline(delay, fail)
        monkeypatch.setattr("chipqa.predictors.load_predictor", lambda *a, **k: predictor)
        monkeypatch.setattr("chipqa._qt.review_canvas.PREFETCH", 0)
        return predictor

    return install


@pytest.mark.slow
def test_a_slow_chip_never_blocks_the_keys(make_napari_viewer, qtbot, fresh_root, slow_predictor):
    slow_predictor(delay=2.0)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    order = list(w.session.order)
    _drawn(w, qtbot)
    t0 = time.perf_counter()
    _press(viewer, qtbot, "Right")
    took = time.perf_counter() - t0
    assert took < 0.5, f"the key press waited {took:.2f} s for the chip"
    # The old chip stays, dimmed, and the widget says the next one is loading.
    assert w.session.current == order[1] and w.loading == order[1]
    assert "loading" in w.info.chip_label.text()
    assert text_overlay(viewer).visible and f"loading {order[1]}" in text_overlay(viewer).text
    assert w.chip_layers.layer(SIDE_BY_SIDE_LAYER).metadata["chip_id"] == order[0]
    assert w.chip_layers.layer(SIDE_BY_SIDE_LAYER).opacity < 0.5
    # Decisions go on while it loads.
    _press(viewer, qtbot, "k")
    assert read_blocklist(w.store.path)[order[1]].decision == "keep"
    assert w.session.current == order[2]
    _drawn(w, qtbot)
    chip = open_dataset(fresh_root).read(order[2])
    np.testing.assert_array_equal(w.chip_layers.layer(TRUE_COLOUR).data, true_colour(chip.bands))
    assert w.chip_layers.layer(SIDE_BY_SIDE_LAYER).metadata["chip_id"] == order[2]
    assert w.chip_layers.layer(SIDE_BY_SIDE_LAYER).opacity == 1.0
    assert "loading" not in text_overlay(viewer).text  # only the chip's decision line
    qtbot.waitUntil(lambda: "loading" not in w.info.chip_label.text(), timeout=5_000)


@pytest.mark.slow
def test_a_chip_that_failed_to_load_is_loaded_again_when_revisited(
    make_napari_viewer, qtbot, fresh_root, slow_predictor
):
    predictor = slow_predictor(delay=0.0, fail=1)
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    order = list(w.session.order)
    qtbot.waitUntil(lambda: "out of memory" in w.info.chip_label.text(), timeout=30_000)
    assert "out of memory" in text_overlay(viewer).text
    assert (
        w.chip_layers.layer(SIDE_BY_SIDE_LAYER) is None
        or not w.chip_layers.layer(TRUE_COLOUR).data.any()
    )
    _press(viewer, qtbot, "Right")
    _drawn(w, qtbot)
    _press(viewer, qtbot, "Left")  # back to the chip that failed: it is loaded again
    _drawn(w, qtbot)
    assert predictor.calls == 3
    chip = open_dataset(fresh_root).read(order[0])
    np.testing.assert_array_equal(w.chip_layers.layer(TRUE_COLOUR).data, true_colour(chip.bands))
    assert w.chip_layers.layer(SIDE_BY_SIDE_LAYER).metadata["chip_id"] == order[0]
    qtbot.waitUntil(lambda: "cannot be shown" not in w.info.chip_label.text(), timeout=5_000)


def test_retrain_from_the_pretrained_model_names_its_encoder_and_says_how_long(
    make_napari_viewer, qtbot, fresh_root
):
    viewer = make_napari_viewer(show=True)
    w = _open(viewer, qtbot, fresh_root)
    p = w.retrain
    p.device.setCurrentText("cpu")
    p.init.setCurrentText("random")
    p.encoder.setCurrentText("mobilenet_v2")
    p.init.setCurrentText("pretrained")
    # The box shows the encoder that is trained, and cannot be changed.
    assert p.encoder.currentText() == "efficientnet-b4" and not p.encoder.isEnabled()
    args = p._command("train")
    assert args[args.index("--encoder") + 1] == "efficientnet-b4"
    p.epochs.setValue(3)
    assert "16 chips of 48² × 3 epochs" in p.estimate.text() and "on this CPU" in p.estimate.text()
    assert p.start()
    try:
        assert p.checkpoint.name.startswith("unet-efficientnet-b4-")
        assert "16 chips of 48²" in p.status.text()  # said before any step
    finally:
        p.cancel()
        qtbot.waitUntil(lambda: not p.running, timeout=60_000)
    p.init.setCurrentText("random")  # the reviewer's own choice comes back
    assert p.encoder.currentText() == "mobilenet_v2" and p.encoder.isEnabled()

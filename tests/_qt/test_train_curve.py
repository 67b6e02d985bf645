"""The Retrain tab's loss / IoU curve: the points it keeps from the trainer's progress
events, what it paints (Xvfb), and how the Retrain panel feeds and clears it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from chipqa._qt.train_curve import (
    EPOCH_LOSS_COLOUR,
    IOU_COLOUR,
    NO_RUN_HINT,
    STEP_LOSS_COLOUR,
    CurveData,
    TrainCurve,
    format_eta,
)
from chipqa.training.progress import ProgressWriter

EPOCHS, STEPS = 3, 4
LOSS = [1.6, 1.3, 1.1, 1.05, 0.95, 0.9, 0.8, 0.78, 0.7, 0.66, 0.6, 0.58]
TRAIN_LOSS, VAL_IOU = [1.26, 0.86, 0.64], [0.16, 0.48, 0.81]


def run_events(t0: float = 1_000.0, **start) -> list[dict]:
    """A three-epoch run's events, as ``chipqa train`` writes them (fields of a real run)."""
    evs = [
        {"event": "start", "time": t0, "train_chips": 13, "val_chips": 2, "epochs": EPOCHS,
         "steps_per_epoch": STEPS, "encoder": "mobilenet_v2", "blocked": 1, **start},
    ]  # fmt: skip
    t = t0
    for epoch in range(EPOCHS):
        for k in range(STEPS):
            t += 2.0
            step = epoch * STEPS + k + 1
            eta = (EPOCHS * STEPS - step) * 2.0
            evs.append(
                {"event": "step", "time": t, "epoch": epoch, "step": step,
                 "loss": LOSS[step - 1], "eta_s": eta} | _fold(start)
            )  # fmt: skip
        evs.append(
            {"event": "epoch", "time": t, "epoch": epoch, "train_iou": 0.3 + 0.2 * epoch,
             "train_loss": TRAIN_LOSS[epoch], "val_iou": VAL_IOU[epoch], "val_loss": 1.2,
             "eta_s": (EPOCHS - 1 - epoch) * STEPS * 2.0} | _fold(start)
        )  # fmt: skip
    return evs


def _fold(start: dict) -> dict:
    return {k: start[k] for k in ("fold", "folds") if k in start}


def done_event(best: float = 0.81, **fold) -> dict:
    return {"event": "done", "time": 2_000.0, "best_val_iou": best, "best_iou_on": "validation",
            "seconds": 26.0, **fold}  # fmt: skip


# ------------------------------------------------------------------ the series (no Qt)
def test_a_run_gives_one_point_per_step_and_per_epoch_on_an_epoch_axis():
    data = CurveData()
    for ev in run_events()[:7]:  # start, 4 steps, epoch 0, the first step of epoch 1
        data.add(ev)
    assert data.steps == [(s / STEPS, LOSS[s - 1]) for s in range(1, 6)]
    assert data.epoch_loss == [(1.0, TRAIN_LOSS[0])] and data.iou == [(1.0, VAL_IOU[0])]
    assert data.x_end() == EPOCHS  # the axis shows the whole run from the start
    text = data.summary()
    assert "epoch 2/3" in text and "loss 0.950" in text and "validation IoU 0.160" in text
    assert "about 14 s left" in text
    for ev in run_events()[7:]:
        data.add(ev)
    assert [x for x, _ in data.epoch_loss] == [1.0, 2.0, 3.0]
    assert [y for _, y in data.iou] == VAL_IOU
    data.add(done_event())
    assert data.summary() == "done in 26 s · best validation IoU 0.810"


def test_the_step_loss_is_smoothed_over_a_fifth_of_an_epoch():
    data = CurveData()
    data.add(run_events()[0])  # 4 steps per epoch: too few to smooth
    for s in range(1, 5):
        data.add({"event": "step", "epoch": 0, "step": s, "loss": LOSS[s - 1]})
    assert data.smoothed == data.steps
    data.add(run_events()[0] | {"steps_per_epoch": 100})
    noisy = [1.0 + 0.2 * (-1) ** s for s in range(100)]
    for s, loss in enumerate(noisy, start=1):
        data.add({"event": "step", "epoch": 0, "step": s, "loss": loss})
    smoothed = [y for _, y in data.smoothed]
    assert smoothed[0] == pytest.approx(noisy[0])  # no start-up bias towards 0
    assert max(smoothed[50:]) - min(smoothed[50:]) < 0.1  # the ±0.2 zigzag is flattened
    assert np.mean(smoothed[50:]) == pytest.approx(1.0, abs=0.02)


def test_nan_and_missing_values_leave_no_point_and_no_time_left():
    data = CurveData()
    evs = run_events()[:6]
    evs[2] = evs[2] | {"loss": math.nan, "eta_s": math.nan}
    evs[5] = evs[5] | {"val_iou": math.nan, "train_loss": math.inf}
    for ev in evs:
        data.add(ev)
    assert len(data.steps) == 3 and math.nan not in [y for _, y in data.steps]
    assert data.epoch_loss == [] and data.iou == []
    data.add({"event": "step", "epoch": 1, "step": 5, "loss": 0.9, "eta_s": math.nan})
    assert "left" not in data.summary()
    assert not data.add({"event": "epoch"}) and not data.add({"event": "warning"})


def test_a_run_without_validation_chips_shows_the_training_iou():
    data = CurveData()
    evs = run_events(val_chips=0)[:6]
    del evs[5]["val_iou"], evs[5]["val_loss"]
    for ev in evs:
        data.add(ev)
    assert data.iou_on == "training" and data.iou == [(1.0, 0.3)]
    assert "training IoU 0.300" in data.summary()


def test_each_fold_starts_its_own_curve_and_the_time_left_counts_the_folds_to_come():
    data = CurveData()
    for ev in run_events(t0=0.0, fold=1, folds=3):
        data.add(ev)
    data.add(done_event(0.7, fold=1, folds=3))
    assert "fold 1/3" in data.summary() and "held-out" in data.summary()
    fold2 = run_events(t0=100.0, fold=2, folds=3)
    for ev in fold2[:2]:  # start and the first step: 22 s left of this fold
        data.add(ev)
    assert data.steps == [(0.25, LOSS[0])] and data.epoch_loss == [] and data.iou == []
    assert data.fold_seconds == [100.0]
    assert data.time_left() == pytest.approx(22.0 + 100.0)  # and one more fold of ~100 s
    text = data.summary()
    assert text.startswith("fold 2/3 · epoch 1/3")
    assert "about 2 min left (all folds)" in text and "folds before: 0.700" in text
    for ev in run_events(t0=500.0, fold=1, folds=2)[:1]:  # a new out-of-fold run
        data.add(ev)
    assert (
        data.fold_seconds == [] and data.fold_best == {} and data.summary().startswith("fold 1/2")
    )


def test_a_new_run_and_clear_forget_the_last_one():
    data = CurveData()
    for ev in run_events():
        data.add(ev)
    data.add({"event": "error", "message": "NaN loss"})
    assert data.summary() == "failed: NaN loss"
    data.add(run_events()[0])
    assert data.empty and data.state == "running"
    assert "waiting for the first step" in data.summary()
    data.clear()
    assert data.empty and data.summary() == NO_RUN_HINT


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (math.nan, ""), (0.2, "almost done"), (40.4, "about 40 s left"),
     (200, "about 3 min left"), (7_300, "about 2 h 02 min left")],
)  # fmt: skip
def test_time_left_in_words(seconds, text):
    assert format_eta(seconds) == text


# ------------------------------------------------------------------ the widget (Xvfb)
def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def _pixels(widget: TrainCurve, colour: str, tol: int = 24) -> np.ndarray:
    """(row, column) of the pixels of ``colour`` inside the plot (not legend or labels)."""
    from qtpy.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    h, w = img.height(), img.width()
    raw = np.frombuffer(img.constBits().asstring(img.sizeInBytes()), np.uint8)
    bgr = raw.reshape(h, img.bytesPerLine() // 4, 4)[:, :w, :3]
    rgb = bgr[..., ::-1].astype(int)
    hit = np.all(np.abs(rgb - _rgb(colour)) <= tol, axis=-1)
    r = widget.plot_rect
    inside = np.zeros_like(hit)
    if r is not None:
        inside[int(r.top()) : int(r.bottom()) + 1, int(r.left()) : int(r.right()) + 1] = True
    return np.argwhere(hit & inside)


@pytest.fixture
def curve(qtbot):
    w = TrainCurve()
    qtbot.addWidget(w)
    w.resize(480, 240)
    w.show()
    qtbot.waitExposed(w)
    return w


def _drawn_at(widget: TrainCurve, epoch: float, iou: float) -> tuple[float, float]:
    """(row, column) where the axes say ``epoch`` (bottom) and ``iou`` (right) are."""
    r = widget.plot_rect
    (x0, x1), (y0, y1) = (widget.plot_item.getAxis(a).range for a in ("bottom", "right"))
    return r.bottom() - (iou - y0) / (y1 - y0) * r.height(), r.left() + (epoch - x0) / (
        x1 - x0
    ) * r.width()


def _iou_row_at(widget: TrainCurve, epoch: float) -> float:
    """The mean row of the IoU pixels within 4 columns of ``epoch`` (its dot there)."""
    iou = _pixels(widget, IOU_COLOUR)
    near = iou[np.abs(iou[:, 1] - _drawn_at(widget, epoch, 0.0)[1]) <= 4]
    assert len(near) > 5
    return near[:, 0].mean()


@pytest.mark.gui
def test_the_curve_draws_falling_loss_and_rising_iou(curve, qtbot):
    curve.add_events(run_events()[:6])  # the first epoch: its IoU 0.16 is low on a 0-1 axis
    qtbot.wait(10)
    lo, hi = curve.plot_item.getAxis("right").range
    assert -0.05 <= lo <= 0 and 1 <= hi <= 1.05  # IoU's own axis runs from 0 to 1
    assert abs(_iou_row_at(curve, 1.0) - _drawn_at(curve, 1.0, VAL_IOU[0])[0]) < 4
    assert curve.line.text().startswith("epoch 1/3 · about 16 s left · loss 1.050")
    curve.add_events(run_events()[6:])
    qtbot.wait(10)
    iou, loss = _pixels(curve, IOU_COLOUR), _pixels(curve, EPOCH_LOSS_COLOUR)
    steps = _pixels(curve, STEP_LOSS_COLOUR)
    assert len(iou) > 30 and len(loss) > 30 and len(steps) > 30
    mid = curve.plot_rect.center().x()
    left, right = iou[iou[:, 1] < mid], iou[iou[:, 1] > mid]
    assert right[:, 0].mean() < left[:, 0].mean() - 20  # IoU rises: higher on the right
    left, right = loss[loss[:, 1] < mid], loss[loss[:, 1] > mid]
    assert right[:, 0].mean() > left[:, 0].mean() + 20  # loss falls: lower on the right
    # the last epoch's IoU (0.81) is drawn where the right axis reads 0.81, at epoch 3
    assert abs(_iou_row_at(curve, 3.0) - _drawn_at(curve, 3.0, VAL_IOU[2])[0]) < 4
    # every step's loss is on the curve: its first and last steps are drawn where they lie
    first, last = steps[steps[:, 1] == steps[:, 1].min()], steps[steps[:, 1] == steps[:, 1].max()]
    assert abs(first[:, 1].min() - _drawn_at(curve, 1 / STEPS, 0)[1]) < 3
    assert abs(last[:, 1].max() - _drawn_at(curve, EPOCHS, 0)[1]) < 3
    assert "about 0 s" not in curve.summary() and curve.line.text().startswith("epoch 3/3")


@pytest.mark.gui
def test_each_fold_starts_a_fresh_curve_in_the_window(curve, qtbot):
    curve.add_events(run_events(t0=0.0, fold=1, folds=3) + [done_event(0.7, fold=1, folds=3)])
    qtbot.wait(10)
    assert len(_pixels(curve, IOU_COLOUR)) > 30 and len(_pixels(curve, EPOCH_LOSS_COLOUR)) > 30
    curve.add_events(run_events(t0=100.0, fold=2, folds=3)[:3])  # start, two steps
    qtbot.wait(10)
    assert len(_pixels(curve, IOU_COLOUR)) == 0 and len(_pixels(curve, EPOCH_LOSS_COLOUR)) == 0
    steps = _pixels(curve, STEP_LOSS_COLOUR)  # the new fold's first two steps only
    assert len(steps) > 5 and steps[:, 1].max() < _drawn_at(curve, 0.6, 0)[1]
    assert curve.line.text().startswith("fold 2/3 · epoch 1/3 · about")
    assert "(all folds)" in curve.toolTip()


@pytest.mark.gui
def test_no_run_nan_and_one_point_are_drawn_without_a_crash(curve, qtbot):
    assert curve.summary() == NO_RUN_HINT and curve.minimumSizeHint().height() >= 160
    curve.grab()
    assert curve.plot_rect is None  # only the hint: no axes, no series
    start, first = run_events()[:2]
    curve.add_event(start)
    curve.grab()
    assert curve.plot_rect is not None and len(_pixels(curve, STEP_LOSS_COLOUR)) == 0
    curve.add_event(first | {"loss": math.nan})
    curve.add_event({"event": "epoch", "epoch": 0, "train_loss": math.nan, "val_iou": math.nan})
    assert len(_pixels(curve, IOU_COLOUR)) == 0 and len(_pixels(curve, EPOCH_LOSS_COLOUR)) == 0
    curve.add_event(run_events()[2])  # one real point: a dot
    assert len(_pixels(curve, STEP_LOSS_COLOUR)) > 5
    curve.clear()
    curve.grab()
    assert curve.plot_rect is None and curve.summary() == NO_RUN_HINT


@pytest.mark.gui
def test_a_narrow_low_curve_still_draws(curve, qtbot):
    curve.add_events(run_events())
    curve.resize(220, 160)
    qtbot.wait(10)
    assert curve.width() == 220  # the long line above the plot does not widen a narrow dock
    assert len(_pixels(curve, IOU_COLOUR)) > 10
    assert curve.line.text().startswith("epoch 3/3") and curve.line.text().endswith("…")


# ------------------------------------------------------------------ in the Retrain panel
@pytest.fixture
def panel(qtbot, tmp_path):
    from chipqa._qt.retrain_panel import RetrainPanel

    review = SimpleNamespace(dataset=SimpleNamespace(root=tmp_path / "data"))
    p = RetrainPanel(review, lambda title, text: False)
    qtbot.addWidget(p)
    p.resize(420, 700)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


@pytest.mark.gui
def test_the_panel_follows_the_progress_file_on_its_curve(panel, qtbot, tmp_path):
    panel.progress_path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(panel.progress_path)
    events = run_events()
    for ev in events[:6]:
        writer.emit(ev["event"], **{k: v for k, v in ev.items() if k not in ("event", "time")})
    panel._poll()
    data = panel.curve.model
    assert len(data.steps) == 4 and data.iou == [(1.0, VAL_IOU[0])]
    assert "epoch 1/3" in panel.curve.summary() and "left" in panel.curve.summary()
    assert len(_pixels(panel.curve, IOU_COLOUR)) > 5  # the first epoch's IoU dot
    assert panel.curve.height() >= 160
    for ev in events[6:]:
        writer.emit(ev["event"], **{k: v for k, v in ev.items() if k not in ("event", "time")})
    writer.close()
    panel._poll()
    assert [x for x, _ in data.iou] == [1.0, 2.0, 3.0] and len(data.steps) == EPOCHS * STEPS


@pytest.mark.gui
def test_a_new_run_clears_the_curve(panel, qtbot):
    panel.curve.add_events(run_events())
    assert not panel.curve.model.empty
    panel._command = lambda kind: ["-c", "import sys; sys.exit(3)"]  # a run that fails at once
    panel._launch("train")
    assert panel.curve.model.empty and panel.curve.summary() == NO_RUN_HINT
    qtbot.waitUntil(lambda: not panel.running, timeout=30_000)
    assert "failed" in panel.status.text() and panel.curve.model.empty

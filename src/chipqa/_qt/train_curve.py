"""The Retrain tab's curve: training loss and IoU as a run goes, with the time left.

:class:`CurveData` turns the trainer's progress events (see
:class:`chipqa.training.progress.ProgressWriter`) into plain series of ``(epoch, value)``
points; it has no Qt and can be tested alone. :class:`TrainCurve` shows it in a
pyqtgraph plot: the training loss of every step (faint, and smoothed), the training loss
of every epoch and the validation IoU of every epoch (the training IoU when the run has
no validation chips). Loss is read on the left axis, scaled to its values; IoU on the
right one, from 0 to 1, in a second view linked to the first one's x axis. The line above
the plot gives the latest values and the time left.

The x axis is in epochs: step ``s`` of a run with ``n`` steps per epoch lies at ``s / n``,
and the point of epoch ``e`` (counted from 0) at ``e + 1``, where that epoch ends. An
out-of-fold run trains one model per fold: each fold's ``start`` begins the series
afresh and the line above the plot says which fold is training, with the time left for
all the folds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QEvent, QPoint, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QPalette
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

Point = tuple[float, float]

STEP_LOSS_COLOUR = "#ff9f43"  # orange: the loss of every step
EPOCH_LOSS_COLOUR = "#e8590c"  # dark orange: the mean loss of every epoch
IOU_COLOUR = "#22b8cf"  # cyan: IoU of every epoch (right axis)
NO_RUN_HINT = "No run yet: press Train to see the loss and the IoU here."
IOU_PADDING = 0.04  # the IoU axis runs a little past 0 and 1: dots at 1.0 stay whole


# ------------------------------------------------------------------ model (no Qt)
def _number(value) -> float | None:
    """``value`` as a finite float; None when it is missing, not a number, NaN or ±inf."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_eta(seconds: float | None) -> str:
    """The time left in words: ``about 40 s left``, ``about 3 min left``,
    ``about 2 h 05 min left``; an empty string when it is not known."""
    seconds = _number(seconds)
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


class CurveData:
    """The series of one training run (of its current fold, for an out-of-fold run).

    Feed it progress events with :meth:`add`; NaN and missing values leave no point.
    """

    def __init__(self) -> None:
        self.fold_seconds: list[float] = []  # how long each finished fold took
        self.fold_best: dict[int, float] = {}  # best IoU of each finished fold
        self.clear()

    def clear(self) -> None:
        """Forget everything: a new run starts."""
        self.fold_seconds.clear()
        self.fold_best.clear()
        self.fold: int | None = None
        self.folds: int | None = None
        self._fold_started: float | None = None
        self._new_series()
        self.state = "idle"  # idle, running, done, failed, cancelled

    def _new_series(self) -> None:
        self.steps: list[Point] = []  # (epoch, loss) of every step
        self.smoothed: list[Point] = []  # the same, smoothed (see smoothing())
        self._ema = 0.0
        self.epoch_loss: list[Point] = []  # (epoch, mean training loss)
        self.iou: list[Point] = []  # (epoch, validation IoU, or training IoU)
        self.iou_on = "validation"
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.epoch: int | None = None  # the epoch running (from 0)
        self.eta_s: float | None = None
        self.info = ""  # what is trained on what
        self.message = ""  # the error of a failed run
        self.best: float | None = None
        self.seconds: float | None = None
        self._last_time: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.steps or self.epoch_loss or self.iou)

    def add(self, ev: dict) -> bool:
        """Take one progress event; True when it changed what is shown."""
        kind = ev.get("event")
        t = _number(ev.get("time"))
        if kind == "start":
            self._start(ev, t)
        elif kind == "step":
            spe = self.steps_per_epoch
            epoch, step = _number(ev.get("epoch")), _number(ev.get("step"))
            self.epoch = int(epoch) if epoch is not None else self.epoch
            x = step / spe if spe and step is not None else (epoch or 0) + 1
            loss = _number(ev.get("loss"))
            if loss is not None:
                self._add_step(x, loss)
            self.eta_s = _number(ev.get("eta_s"))
        elif kind == "epoch":
            epoch = _number(ev.get("epoch"))
            if epoch is None:
                return False
            self.epoch = int(epoch)
            x = epoch + 1
            loss = _number(ev.get("train_loss"))
            if loss is not None:
                self.epoch_loss.append((x, loss))
            self.iou_on = "validation" if "val_iou" in ev else "training"
            iou = _number(ev.get("val_iou" if "val_iou" in ev else "train_iou"))
            if iou is not None:
                self.iou.append((x, iou))
            self.eta_s = _number(ev.get("eta_s"))
        elif kind == "done":
            self.state = "done"
            self.eta_s = None
            self.best = _number(ev.get("best_val_iou"))
            self.seconds = _number(ev.get("seconds"))
            if ev.get("best_iou_on") in ("validation", "training"):
                self.iou_on = ev["best_iou_on"]
            if self.fold is not None and self.best is not None:
                self.fold_best[self.fold] = self.best
        elif kind == "error":
            self.state, self.eta_s = "failed", None
            self.message = str(ev.get("message", ""))
        elif kind == "cancelled":
            self.state, self.eta_s = "cancelled", None
        else:
            return False
        if kind in ("step", "epoch") and self.state == "idle":
            self.state = "running"  # a run followed from its middle
        self._last_time = t if t is not None else self._last_time
        return True

    def _start(self, ev: dict, t: float | None) -> None:
        fold = _number(ev.get("fold"))
        if fold is None or self.fold is None or int(fold) <= 1 or int(fold) < self.fold:
            self.clear()  # a new run (an out-of-fold one starts at fold 1)
        elif int(fold) != self.fold and self._fold_started is not None and t is not None:
            self.fold_seconds.append(t - self._fold_started)  # the fold before is over
        if fold is not None:
            self.fold, self.folds = int(fold), int(_number(ev.get("folds")) or fold)
            self._new_series()
        self._fold_started = t
        self.state = "running"
        epochs, spe = _number(ev.get("epochs")), _number(ev.get("steps_per_epoch"))
        self.epochs = int(epochs) if epochs else None
        self.steps_per_epoch = int(spe) if spe else None
        val = _number(ev.get("val_chips"))
        self.iou_on = "training" if val == 0 else "validation"
        self.info = (
            f"training {ev.get('encoder', 'a U-Net')} on {ev.get('train_chips', '?')} chips, "
            f"validating on {ev.get('val_chips', '?')}"
        )

    def x_end(self) -> float:
        """The right end of the x axis: the run's epochs (or as far as it went)."""
        last = max((s[-1][0] for s in (self.steps, self.epoch_loss, self.iou) if s), default=0)
        return max(float(self.epochs or 0), last, 1.0)

    def smoothing(self) -> float:
        """The smoothing weight of the step loss: over about a fifth of an epoch."""
        span = max((self.steps_per_epoch or 1) / 5, 1.0)
        return min(1 - 1 / span, 0.98)

    def _add_step(self, x: float, loss: float) -> None:
        """One step's loss, and its exponential moving average with the start-up bias
        removed (as TensorBoard smooths)."""
        self.steps.append((x, loss))
        w = self.smoothing()
        self._ema = self._ema * w + (1 - w) * loss
        self.smoothed.append((x, self._ema / (1 - w ** len(self.steps)) if w > 0 else loss))

    def time_left(self) -> float | None:
        """Seconds left: of this run, or of every fold still to train."""
        if self.state != "running" or self.eta_s is None:
            return None
        if self.fold is None or self.folds is None:
            return self.eta_s
        if self.fold_seconds:
            per_fold = sum(self.fold_seconds) / len(self.fold_seconds)
        elif self._fold_started is not None and self._last_time is not None:
            per_fold = self._last_time - self._fold_started + self.eta_s
        else:
            return self.eta_s
        return self.eta_s + max(self.folds - self.fold, 0) * per_fold

    def summary(self) -> str:
        """The line above the plot: fold, epoch, time left, latest loss and IoU."""
        if self.state == "idle":
            return NO_RUN_HINT
        parts = [f"fold {self.fold}/{self.folds}"] if self.fold is not None else []
        if self.state == "failed":
            return " · ".join([*parts, f"failed: {self.message}"])
        if self.state == "cancelled":
            return " · ".join([*parts, "cancelled"])
        if self.state == "done":
            parts.append("done" + (f" in {self.seconds:.0f} s" if self.seconds else ""))
            if self.best is not None:
                parts.append(f"best {self.iou_on} IoU {self.best:.3f}")
            if self.fold is not None:
                parts.append("scoring its held-out chips")
            return " · ".join(parts)
        if self.epoch is None:
            return " · ".join([*parts, self.info, "waiting for the first step"])
        parts.append(f"epoch {self.epoch + 1}/{self.epochs or '?'}")
        eta = format_eta(self.time_left())  # early in the line: a narrow dock elides the end
        if eta:
            parts.append(eta + (" (all folds)" if self.fold is not None else ""))
        if self.steps:
            parts.append(f"loss {self.steps[-1][1]:.3f}")
        if self.iou:
            parts.append(f"{self.iou_on} IoU {self.iou[-1][1]:.3f}")
        if self.fold_best:
            best = ", ".join(f"{v:.3f}" for _, v in sorted(self.fold_best.items()))
            parts.append(f"best IoU of the folds before: {best}")
        return " · ".join(parts)


# ------------------------------------------------------------------ widget
def _xy(points: Sequence[Point]) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    return xy[:, 0], xy[:, 1]


def _pen(colour: str, width: float, alpha: int = 255):
    c = QColor(colour)
    c.setAlpha(alpha)
    return pg.mkPen(c, width=width)


def _dots(colour: str) -> dict:
    return {"symbol": "o", "symbolSize": 7, "symbolBrush": colour, "symbolPen": None}


class TrainCurve(QWidget):
    """Loss and IoU of the training run as it goes (see the module's docstring)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = CurveData()
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.line = QLabel()  # the summary above the plot, or the hint when no run is shown
        self.plot = pg.PlotWidget()
        self.legend = QLabel()
        for label in (self.line, self.legend):  # cut, not widening a narrow dock
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(2)
        lay.addWidget(self.line)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.legend)

        item = self.plot_item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.hideButtons()
        item.setDownsampling(auto=True, mode="mean")  # more steps than pixels: averaged
        item.setClipToView(True)
        item.showGrid(y=True, alpha=0.15)
        item.showAxis("right")
        self.iou_view = pg.ViewBox(enableMenu=False)  # IoU: its own 0-1 axis on the right
        self.iou_view.setMouseEnabled(x=False, y=False)
        item.scene().addItem(self.iou_view)
        item.getAxis("right").linkToView(self.iou_view)
        self.iou_view.setXLink(item)
        self.iou_view.setYRange(0.0, 1.0, padding=IOU_PADDING)
        item.getViewBox().sigResized.connect(self._follow_plot)

        self.step_line = item.plot(pen=_pen(STEP_LOSS_COLOUR, 1.0, 90), antialias=True)
        self.smooth_line = item.plot(
            pen=_pen(STEP_LOSS_COLOUR, 1.5), antialias=True, **_dots(STEP_LOSS_COLOUR)
        )
        self.epoch_line = item.plot(
            pen=_pen(EPOCH_LOSS_COLOUR, 2.0), antialias=True, **_dots(EPOCH_LOSS_COLOUR)
        )
        self.iou_line = pg.PlotDataItem(
            pen=_pen(IOU_COLOUR, 2.0), antialias=True, **_dots(IOU_COLOUR)
        )
        self.iou_view.addItem(self.iou_line)
        self._apply_palette()
        self._refresh()

    def sizeHint(self) -> QSize:
        return QSize(320, 220)

    def minimumSizeHint(self) -> QSize:
        return QSize(200, 160)

    # ---------------------------------------------------------------- events in
    def add_event(self, ev: dict) -> None:
        """Take one progress event and redraw when it changed the curve."""
        if self.model.add(ev):
            self._refresh()

    def add_events(self, events: Iterable[dict]) -> None:
        """Take several progress events and redraw once."""
        changed = [self.model.add(ev) for ev in events]
        if any(changed):
            self._refresh()

    def clear(self) -> None:
        """Empty the curve (a new run starts)."""
        self.model.clear()
        self._refresh()

    def summary(self) -> str:
        return self.model.summary()

    @property
    def plot_rect(self) -> QRectF | None:
        """Where the series are drawn, in this widget's pixels; None while only the hint
        shows."""
        if self.plot.isHidden():
            return None
        vb = self.plot_item.getViewBox()
        rect = QRectF(self.plot.mapFromScene(vb.sceneBoundingRect()).boundingRect())
        return rect.translated(self.plot.mapTo(self, QPoint(0, 0)).toPointF())

    # ---------------------------------------------------------------- drawing
    def _refresh(self) -> None:
        m = self.model
        idle = m.state == "idle" and m.empty
        self.setToolTip(m.summary())
        self.plot.setHidden(idle)
        self.legend.setHidden(idle)
        self._show_line()
        if idle:
            return
        self.step_line.setData(*_xy(m.steps))
        self.smooth_line.setData(*_xy(m.smoothed))
        self.smooth_line.setSymbol("o" if len(m.smoothed) == 1 else None)  # one step: a dot
        self.epoch_line.setData(*_xy(m.epoch_loss))
        self.iou_line.setData(*_xy(m.iou))
        self.plot_item.setXRange(0.0, m.x_end(), padding=0.02)
        iou = "val IoU" if m.iou_on == "validation" else "train IoU"
        self.legend.setText(
            f"<span style='color:{STEP_LOSS_COLOUR}'>━━</span> loss/step&nbsp;&nbsp; "
            f"<span style='color:{EPOCH_LOSS_COLOUR}'>━●━</span> loss/epoch&nbsp;&nbsp; "
            f"<span style='color:{IOU_COLOUR}'>━●━</span> {iou}&nbsp;&nbsp; · x: epoch"
        )

    def _show_line(self) -> None:
        """The summary on one line, cut at the end in a narrow dock (the tooltip has it
        all); the hint, wrapped and centred, while no run is shown."""
        idle = self.plot.isHidden()
        self.line.setWordWrap(idle)
        align = Qt.AlignmentFlag.AlignCenter if idle else Qt.AlignmentFlag.AlignLeft
        self.line.setAlignment(align)
        text = self.model.summary()
        if not idle:
            width = max(self.width() - 8, 40)
            text = self.line.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, width)
        self.line.setText(text)

    def _follow_plot(self) -> None:
        """Keep the IoU view over the loss view when the plot is resized (pyqtgraph's
        MultiplePlotAxes example)."""
        self.iou_view.setGeometry(self.plot_item.getViewBox().sceneBoundingRect())
        self.iou_view.linkedViewChanged(self.plot_item.getViewBox(), self.iou_view.XAxis)

    def _apply_palette(self) -> None:
        """The plot in the dock's colours (napari's theme), tick labels in their series'."""
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        self.plot.setBackground(pal.color(QPalette.ColorRole.Window))
        frame = QColor(text)
        frame.setAlpha(110)
        for side, colour in (("left", EPOCH_LOSS_COLOUR), ("right", IOU_COLOUR), ("bottom", None)):
            axis = self.plot_item.getAxis(side)
            axis.setPen(pg.mkPen(frame))
            axis.setTextPen(pg.mkPen(colour or text))

    def changeEvent(self, event) -> None:
        theme = event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange)
        if theme and hasattr(self, "plot_item"):  # not while __init__ builds the plot
            self._apply_palette()
        super().changeEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._show_line()

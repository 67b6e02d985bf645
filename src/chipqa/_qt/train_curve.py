"""The Retrain tab's curve: training loss and IoU as a run goes, with the time left.

:class:`CurveData` turns the trainer's progress events (see
:class:`chipqa.training.progress.ProgressWriter`) into plain series of ``(epoch, value)``
points; it has no Qt and can be tested alone. :class:`TrainCurve` paints it with
QPainter: the training loss of every step (faint, and smoothed), the training loss of
every epoch and the validation IoU of every epoch (the training IoU when the run has no
validation chips). Loss is read on the left axis, scaled to its values; IoU on the right
one, from 0 to 1. The line above the plot gives the latest values and the time left.

The x axis is in epochs: step ``s`` of a run with ``n`` steps per epoch lies at ``s / n``,
and the point of epoch ``e`` (counted from 0) at ``e + 1``, where that epoch ends. An
out-of-fold run trains one model per fold: each fold's ``start`` begins the series
afresh and the line above the plot says which fold is training, with the time left for
all the folds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from qtpy.QtCore import QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QStyle, QStyleOption, QWidget

Point = tuple[float, float]

STEP_LOSS_COLOUR = "#ff9f43"  # orange: the loss of every step
EPOCH_LOSS_COLOUR = "#e8590c"  # dark orange: the mean loss of every epoch
IOU_COLOUR = "#22b8cf"  # cyan: IoU of every epoch (right axis)
NO_RUN_HINT = "No run yet: press Train to see the loss and the IoU here."


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


def thin(points: Sequence[Point], most: int) -> list[Point]:
    """At most ``most`` points: consecutive points averaged in equal groups (a line
    with more points than pixels looks the same, and draws faster)."""
    if most < 1 or len(points) <= most:
        return list(points)
    out = []
    for i in range(most):
        group = points[i * len(points) // most : (i + 1) * len(points) // most]
        out.append((sum(p[0] for p in group) / len(group), sum(p[1] for p in group) / len(group)))
    return out


def nice_ticks(lo: float, hi: float, count: int = 4, least_step: float = 0.0) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering
    ``[lo, hi]``, about ``count`` of them; the first is ≤ lo and the last ≥ hi."""
    if hi <= lo:
        hi = lo + 1.0
    raw = max((hi - lo) / max(count, 1), least_step, 1e-12)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    n = round((last - first) / step)
    return [round(first + i * step, 12) + 0.0 for i in range(n + 1)]  # no -0.0


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick ``step`` needs."""
    decimals = 0
    while decimals < 6 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
        decimals += 1
    return f"{value:.{decimals}f}"


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
class TrainCurve(QWidget):
    """Loss and IoU of the training run as it goes (see the module's docstring)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = CurveData()
        self.plot_rect: QRectF | None = None  # where the series were last drawn
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip(NO_RUN_HINT)

    def sizeHint(self) -> QSize:
        return QSize(320, 220)

    def minimumSizeHint(self) -> QSize:
        return QSize(200, 160)

    def add_event(self, ev: dict) -> None:
        """Take one progress event and repaint when it changed the curve."""
        if self.model.add(ev):
            self.setToolTip(self.model.summary())
            self.update()

    def add_events(self, events: Iterable[dict]) -> None:
        for ev in events:
            self.add_event(ev)

    def clear(self) -> None:
        """Empty the curve (a new run starts)."""
        self.model.clear()
        self.setToolTip(NO_RUN_HINT)
        self.update()

    def summary(self) -> str:
        return self.model.summary()

    # ---------------------------------------------------------------- painting
    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            self._paint(p)
        finally:
            p.end()

    def _paint(self, p: QPainter) -> None:
        opt = QStyleOption()
        opt.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_Widget, opt, p, self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.plot_rect = None
        m = self.model
        fm = p.fontMetrics()
        lh = fm.height()
        text = self.palette().color(QPalette.ColorRole.WindowText)
        box = QRectF(self.rect()).adjusted(4, 2, -4, -2)
        p.setPen(text)
        line = fm.elidedText(m.summary(), Qt.TextElideMode.ElideRight, int(box.width()))
        if m.state == "idle" and m.empty:
            p.drawText(box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, NO_RUN_HINT)
            return
        p.drawText(QRectF(box.left(), box.top(), box.width(), lh), Qt.AlignmentFlag.AlignLeft, line)
        left = fm.horizontalAdvance("0.000") + 8
        right = fm.horizontalAdvance("0.5") + 8
        plot = QRectF(
            box.left() + left,
            box.top() + lh + 8,
            box.width() - left - right,
            box.height() - 3 * lh - 14,
        )
        if plot.width() < 40 or plot.height() < 20:
            return
        self.plot_rect = plot
        ticks = self._loss_range()
        x_end = m.x_end()

        def at(pt: Point, lo: float = ticks[0], hi: float = ticks[-1]) -> QPointF:
            x = plot.left() + pt[0] / x_end * plot.width()
            return QPointF(x, plot.bottom() - (pt[1] - lo) / (hi - lo) * plot.height())

        self._axes(p, plot, ticks, x_end, text, lh)
        self._legend(p, QRectF(box.left(), box.bottom() - lh, box.width(), lh), text)
        if m.empty:
            p.setPen(text)
            p.drawText(plot, Qt.AlignmentFlag.AlignCenter, "waiting for the first step…")
            return
        p.save()
        p.setClipRect(plot.adjusted(-4, -4, 4, 4))
        most = max(int(plot.width()) * 2, 2)
        step_colour = QColor(STEP_LOSS_COLOUR)
        faint = QColor(step_colour)
        faint.setAlpha(90)
        self._line(p, [at(pt) for pt in thin(m.steps, most)], faint, 1.0)
        smoothed = [at(pt) for pt in thin(m.smoothed, most)]
        self._line(p, smoothed, step_colour, 1.5, dots=len(smoothed) == 1)
        epoch_pts = [at(pt) for pt in m.epoch_loss]
        self._line(p, epoch_pts, QColor(EPOCH_LOSS_COLOUR), 2.0, dots=True)
        iou_pts = [at(pt, 0.0, 1.0) for pt in m.iou]  # IoU: the right axis, 0 to 1
        self._line(p, iou_pts, QColor(IOU_COLOUR), 2.0, dots=True)
        p.restore()

    def _loss_range(self) -> list[float]:
        """The loss axis's ticks: round values around every loss shown."""
        values = [y for _, y in self.model.steps] + [y for _, y in self.model.epoch_loss]
        if not values:
            return [0.0, 1.0]
        lo, hi = min(values), max(values)
        if hi - lo < 1e-9:  # one value: a band around it
            pad = max(abs(hi) * 0.1, 0.05)
            lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
        return nice_ticks(lo, hi, 4)

    def _axes(
        self, p: QPainter, plot: QRectF, ticks: list[float], x_end: float, text: QColor, lh: int
    ) -> None:
        grid = QColor(text)
        grid.setAlpha(40)
        frame = QColor(text)
        frame.setAlpha(110)
        lo, hi = ticks[0], ticks[-1]
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        w = plot.left() - 4
        for v in ticks:
            y = plot.bottom() - (v - lo) / (hi - lo) * plot.height()
            p.setPen(QPen(grid, 1))
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            p.setPen(QColor(EPOCH_LOSS_COLOUR))
            r = QRectF(0, y - lh / 2, w - 2, lh)
            p.drawText(r, Qt.AlignmentFlag.AlignRight, tick_label(v, step))
        p.setPen(QColor(IOU_COLOUR))
        for v, label in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):
            y = plot.bottom() - v * plot.height()
            p.drawText(QRectF(plot.right() + 4, y - lh / 2, 60, lh), label)
        for v in nice_ticks(0, x_end, max(int(plot.width() // 70), 1), 1.0):
            if v > x_end + 1e-9:
                continue
            x = plot.left() + v / x_end * plot.width()
            p.setPen(QPen(frame, 1))
            p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + 3))
            r = QRectF(x - 30, plot.bottom() + 4, 60, lh)
            p.drawText(r, Qt.AlignmentFlag.AlignHCenter, tick_label(v, 1.0))
        p.setPen(QPen(frame, 1))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(plot)

    def _legend(self, p: QPainter, row: QRectF, text: QColor) -> None:
        fm = p.fontMetrics()
        x = row.left()
        y = row.center().y()
        iou = "val IoU" if self.model.iou_on == "validation" else "train IoU"
        entries = (
            (STEP_LOSS_COLOUR, 1.5, False, "loss/step"),
            (EPOCH_LOSS_COLOUR, 2.0, True, "loss/epoch"),
            (IOU_COLOUR, 2.0, True, iou),
        )
        for colour, width, dot, label in entries:
            self._line(p, [QPointF(x, y), QPointF(x + 16, y)], QColor(colour), width)
            if dot:
                self._line(p, [QPointF(x + 8, y)], QColor(colour), width, dots=True)
            p.setPen(text)
            p.drawText(QRectF(x + 20, row.top(), 400, row.height()), label)
            x += 20 + fm.horizontalAdvance(label) + 12
        if x + fm.horizontalAdvance("epoch") < row.right():  # the x axis's title, if room
            p.setPen(text)
            p.drawText(row, Qt.AlignmentFlag.AlignRight, "epoch")

    @staticmethod
    def _line(
        p: QPainter, pts: list[QPointF], colour: QColor, width: float, dots: bool = False
    ) -> None:
        if len(pts) > 1:
            p.setPen(QPen(colour, width))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPolyline(QPolygonF(pts))
        if dots:
            path = QPainterPath()
            for pt in pts:
                path.addEllipse(pt, width + 1.5, width + 1.5)
            p.setPen(Qt.PenStyle.NoPen)
            p.fillPath(path, colour)

"""The Retrain tab: train a U-Net on the chips not blocked, in a separate process.

Training runs as ``chipqa train`` in a child process (a crash or an out-of-memory
error there never takes the viewer down). The panel follows the run through the
JSON-lines progress file the trainer writes, shows loss and validation IoU in a napari
progress bar and as a curve with the time left (:mod:`chipqa._qt.train_curve`), can
cancel it (SIGTERM: the trainer stops and writes no checkpoint) and, when it succeeds,
announces the new checkpoint (the panel re-scores the dataset with it). The previous
model's IoU on the new run's validation chips is computed too, so that "before" and
"after" stand next to each other. What it trains on — the dataset, the blocklist, the
model in use — it reads from the :class:`~chipqa.review.controller.ReviewController`.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QProcess, QTimer, Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from chipqa._qt.train_curve import TrainCurve
from chipqa.io.paths import side_paths
from chipqa.predictors import RECOMMENDED_ENCODERS, read_checkpoint
from chipqa.predictors.pretrained import ENCODER as PRETRAINED_ENCODER
from chipqa.training import read_progress
from chipqa.training.estimate import describe_seconds, rough_training_seconds

if TYPE_CHECKING:
    from collections.abc import Callable

    from chipqa.review.controller import ReviewController

POLL_MS = 250


def models_dir(dataset_root: Path) -> Path:
    """Where retrained checkpoints go: ``<dataset>_models`` beside the dataset."""
    return side_paths(dataset_root).models


class RetrainPanel(QWidget):
    """Encoder, epochs, folds and device; Train / Cancel; progress; before / after.

    ``confirm(title, text)`` asks the user yes or no.

    Signals:
        new_model(checkpoint): a trained checkpoint to load and score the dataset with.
        oof_reviewed(checkpoint, message): out-of-fold scores of the run are under review.
    """

    new_model = Signal(object)
    oof_reviewed = Signal(object, str)

    def __init__(self, controller: ReviewController, confirm: Callable[[str, str], bool]):
        super().__init__()
        self.controller = controller
        self.confirm = confirm
        self.process: QProcess | None = None
        self.progress_path: Path | None = None
        self.checkpoint: Path | None = None
        self.oof_scores: Path | None = None
        self._offset = 0
        self._pbar = None
        self._stage = ""
        self.last_events: list[dict] = []
        self.before_iou: float | None = None
        self.after_iou: float | None = None

        lay = QVBoxLayout(self)
        form = QFormLayout()
        self.encoder = QComboBox()
        self.encoder.setEditable(True)
        self.encoder.addItems(list(RECOMMENDED_ENCODERS))
        self.encoder.setCurrentText("mobilenet_v2")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 1000)
        self.epochs.setValue(10)
        self.folds = QSpinBox()
        self.folds.setRange(0, 10)
        self.folds.setSpecialValueText("none (score in-sample)")
        self.folds.setToolTip(
            "≥ 2: re-score out-of-fold (K more models, each chip scored by one that never saw it)"
        )
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "gpu"])
        self.init = QComboBox()
        self.init.addItems(["pretrained", "random"])
        self.init.setToolTip(
            "start from the pretrained Sentinel-2 cloud model's weights, or from random ones"
        )
        self.batch = QSpinBox()
        self.batch.setRange(1, 512)
        self.batch.setValue(8)
        form.addRow("Start from", self.init)
        form.addRow("Encoder", self.encoder)
        form.addRow("Epochs", self.epochs)
        form.addRow("Out-of-fold folds", self.folds)
        form.addRow("Device", self.device)
        form.addRow("Batch size", self.batch)
        lay.addLayout(form)
        self._chosen_encoder = self.encoder.currentText()
        self.init.currentTextChanged.connect(self._on_init_changed)
        self._on_init_changed(self.init.currentText())
        self.estimate = QLabel("")
        self.estimate.setWordWrap(True)
        lay.addWidget(self.estimate)
        for changed in (self.epochs.valueChanged, self.device.currentTextChanged):
            changed.connect(lambda *_: self.update_estimate())
        row = QHBoxLayout()
        self.train_btn = QPushButton("Train on chips not blocked")
        self.train_btn.clicked.connect(self.start)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        row.addWidget(self.train_btn)
        row.addWidget(self.cancel_btn)
        lay.addLayout(row)
        self.bar = QProgressBar()
        lay.addWidget(self.bar)
        self.status = QLabel("Blocked chips are left out; you can go on reviewing while it trains.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.curve = TrainCurve()  # loss and IoU of the run, and the time left
        lay.addWidget(self.curve, 1)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        lay.addWidget(self.result)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ settings
    def _on_init_changed(self, init: str) -> None:
        """Fine-tuning the pretrained model trains its own encoder: the box says which
        and cannot be changed; training from random weights takes the one chosen."""
        pretrained = init == "pretrained"
        if pretrained:
            if self.encoder.isEnabled():
                self._chosen_encoder = self.encoder.currentText()
            self.encoder.setCurrentText(PRETRAINED_ENCODER)
        else:
            self.encoder.setCurrentText(self._chosen_encoder)
        self.encoder.setEnabled(not pretrained)
        self.update_estimate()

    @property
    def encoder_name(self) -> str:
        """The encoder the run trains (the pretrained model's own when fine-tuning)."""
        if self.init.currentText() == "pretrained":
            return PRETRAINED_ENCODER
        return self.encoder.currentText().strip()

    def update_estimate(self) -> str:
        """Say about how long a run with these settings takes (before it starts)."""
        c = getattr(self, "controller", None)
        text = ""
        session = getattr(c, "session", None)
        if session is not None and len(session.scores):
            blocked = sum(
                1 for c in session.scores["chip_id"] if (d := session.store.get(c)) and
                d.decision == "block"
            )  # fmt: skip
            n = len(session.scores) - blocked
            size = int(session.scores["height"].median()) if "height" in session.scores else 0
            device = {"gpu": "cuda"}.get(self.device.currentText(), self.device.currentText())
            sec = rough_training_seconds(n, size, self.epochs.value(), device)
            text = f"{n} chips of {size}² × {self.epochs.value()} epochs: " + (
                f"{describe_seconds(sec)} on this CPU (rough; the curve shows the time "
                "left once it runs)."
                if sec is not None
                else "no estimate on a GPU; the curve shows the time left once it runs."
            )
        if hasattr(self, "estimate"):
            self.estimate.setText(text)
        return text

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def _command(self, kind: str) -> list[str]:
        r = self.controller
        args = ["-m", "chipqa.cli", kind, str(r.dataset.root)]
        if kind == "train":
            args += ["--out", str(self.checkpoint)]
        else:
            args += ["--folds", str(self.folds.value()), "--out", str(self.oof_scores)]
        if r.store is not None and r.store.path.exists():  # none yet: no decision made
            args += ["--blocklist", str(r.store.path)]
        args += [
            "--init",
            self.init.currentText(),
            "--encoder",
            self.encoder_name,
            "--epochs",
            str(self.epochs.value()),
            "--train-batch-size",
            str(self.batch.value()),
            "--accelerator",
            self.device.currentText(),
            "--progress",
            str(self.progress_path),
            "-q",
        ]
        return args

    def start(self) -> bool:
        r = self.controller
        if self.running:
            self._say("A training run is already going; cancel it first.", error=True)
            return False
        if r.dataset is None:
            self._say("Open a dataset in the Review tab first.", error=True)
            return False
        out_dir = models_dir(r.dataset.root)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._say(f"Cannot create {out_dir}: {exc}", error=True)
            return False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.checkpoint = out_dir / f"unet-{self.encoder_name}-{stamp}.ckpt"
        self.update_estimate()
        self.oof_scores = out_dir / f"scores-oof{self.folds.value()}-{stamp}.csv"
        self.before_model = r.predictor
        self.before_iou = self.after_iou = None
        self.result.setText("")
        self._launch("train")
        return True

    def _launch(self, kind: str) -> None:
        self._stage = kind
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.progress_path = (
            models_dir(self.controller.dataset.root) / f"progress-{kind}-{stamp}.jsonl"
        )
        self._offset = 0
        self.last_events = []
        self.curve.clear()
        proc = QProcess(self)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        proc.finished.connect(self._on_finished)
        self.process = proc
        proc.start(sys.executable, self._command(kind))
        self.train_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.bar.setRange(0, 0)
        what = (
            "Training" if kind == "train" else f"Out-of-fold scoring ({self.folds.value()} folds)"
        )
        self._say(f"{what} started in a separate process… {self.estimate.text()}".strip())
        self.timer.start()

    def cancel(self) -> None:
        if self.running:
            self._say("Cancelling…")
            self.process.terminate()  # SIGTERM: the trainer stops and writes no checkpoint
            if not self.process.waitForFinished(30_000):
                self.process.kill()

    # ------------------------------------------------------------------ progress
    def _poll(self) -> None:
        if self.progress_path is None:
            return
        events, self._offset = read_progress(self.progress_path, self._offset)
        for ev in events:
            self.last_events.append(ev)
            self._show_event(ev)
        self.curve.add_events(events)  # one redraw for all the lines read

    def _show_event(self, ev: dict) -> None:
        from napari.utils import progress

        kind = ev.get("event")
        fold = f"fold {ev['fold']}/{ev['folds']}: " if "fold" in ev else ""
        if kind == "start":
            total = int(ev["epochs"]) * int(ev["steps_per_epoch"])
            self.bar.setRange(0, max(total, 1))
            self.bar.setValue(0)
            if self._pbar is not None:
                self._pbar.close()
            self._pbar = progress(total=total, desc=f"chipqa: {fold}training {ev['encoder']}")
            self._say(
                f"{fold}training on {ev['train_chips']} chips ({ev['blocked']} blocked left "
                f"out), validating on {ev['val_chips']}"
            )
        elif kind == "step":
            self.bar.setValue(int(ev["step"]))
            eta = ev.get("eta_s")
            if eta is not None and eta == eta:
                self._say(
                    f"{fold}epoch {ev['epoch'] + 1}, step {ev['step']}: loss "
                    f"{ev.get('loss', math.nan):.3f}, about {eta:.0f} s left"
                )
            if self._pbar is not None:
                self._pbar.update(int(ev["step"]) - self._pbar.n)
                self._pbar.set_description(
                    f"chipqa: {fold}epoch {ev['epoch'] + 1}, loss {ev['loss']:.3f}"
                )
        elif kind == "epoch":
            eta = ev.get("eta_s", math.nan)
            eta_txt = f", about {eta:.0f} s left" if eta == eta else ""
            iou = (
                ("validation", ev["val_iou"])
                if "val_iou" in ev
                else ("training", ev.get("train_iou", math.nan))
            )
            self._say(
                f"{fold}epoch {ev['epoch'] + 1}: loss {ev.get('train_loss', math.nan):.3f}, "
                f"{iou[0]} IoU {iou[1]:.3f}{eta_txt}"
            )
        elif kind == "warning":
            self._say(ev.get("message", ""), error=True)
        elif kind == "error":
            self._say(f"Training failed: {ev.get('message')}", error=True)

    def _close_pbar(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None

    def _on_finished(self, code: int, status) -> None:
        self.timer.stop()
        self._poll()
        self._close_pbar()
        output = bytes(self.process.readAll()).decode(errors="replace").strip()
        kinds = [e.get("event") for e in self.last_events]
        self.process = None
        self.train_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.bar.setRange(0, 1)
        if "cancelled" in kinds or code == 130:
            self._say("Cancelled; no checkpoint was written. The current model stays loaded.")
            return
        if code != 0:
            last = output.splitlines()[-1] if output else f"exit code {code}"
            if "error" not in kinds:
                self._say(f"The {self._stage} process failed: {last}", error=True)
            return
        self.bar.setValue(1)
        if self._stage == "train":
            self._trained()
        else:
            self._oof_done()

    def _trained(self) -> None:
        from napari.qt.threading import create_worker

        from chipqa.training import dataset_iou

        _, info = read_checkpoint(self.checkpoint)
        self.after_iou = float(info.extra.get("best_val_iou", math.nan))
        val = list(info.extra.get("val_chips", []))
        before = self.before_model
        r = self.controller

        def before_job():
            return dataset_iou(before, r.dataset, val) if before is not None and val else math.nan

        def show_before(value):
            self.before_iou = float(value)
            self._show_result(before.name if before is not None else "none", len(val))
            self._replace_model()

        worker = create_worker(before_job)
        worker.returned.connect(show_before)
        worker.errored.connect(lambda exc: show_before(math.nan))
        worker.start()
        self._show_result(before.name if before is not None else "none", len(val))

    def _replace_model(self) -> None:
        """Load the new model and re-score, after asking when it is worse than the model
        loaded now on the same validation chips; the previous scores file is kept."""
        import shutil

        r = self.controller
        worse = self.before_iou == self.before_iou and self.after_iou < self.before_iou
        if worse and not self.confirm(
            "The new model is worse",
            f"Validation IoU fell from {self.before_iou:.3f} to {self.after_iou:.3f} on the "
            "same chips. Load the new model and re-score anyway?",
        ):
            self._say(f"Kept the current model; the new one is at {self.checkpoint}.")
            return
        scores = r.project.scores_path if r.project is not None else None
        if scores is not None and scores.is_file():
            kept = self.checkpoint.with_name(f"{scores.stem}-before-{self.checkpoint.stem}.csv")
            shutil.copy2(scores, kept)
            self._say(f"The previous scores are kept as {kept}.")
        if self.folds.value() >= 2:
            self._launch("score")
        else:
            self.new_model.emit(self.checkpoint)

    def _oof_done(self) -> None:
        from chipqa.scoring import read_scores
        from chipqa.scoring.settings import settings_of_scores

        self.controller.review(read_scores(self.oof_scores), settings_of_scores(self.oof_scores))
        self.oof_reviewed.emit(
            self.checkpoint,
            f"Re-scored out-of-fold with {self.folds.value()} folds ({self.oof_scores.name}).",
        )

    def _show_result(self, before_name: str, n_val: int) -> None:
        def fmt(x):
            return "…" if x is None or x != x else f"{x:.3f}"

        self.result.setText(
            f"<b>Validation IoU</b> on {n_val} chips (labels as they are now):<br>"
            f"before ({before_name}): <b>{fmt(self.before_iou)}</b> &nbsp;→&nbsp; "
            f"after ({self.checkpoint.name}): <b>{fmt(self.after_iou)}</b>"
        )

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")

    def shutdown(self) -> None:
        """Stop a running child process (the viewer is closing)."""
        self.timer.stop()
        if self.running:
            self.process.terminate()
            if not self.process.waitForFinished(10_000):
                self.process.kill()
        self._close_pbar()

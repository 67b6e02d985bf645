"""The top of the Review tab: which dataset, model and blocklist; score; progress.

:class:`ScoringBar` opens the dataset through the
:class:`~chipqa.review.controller.ReviewController`, loads the model named in its Model
field with the scoring settings every door of chipqa uses (the threshold calibrated to
the labels, as ``chipqa score`` does), reuses the dataset's saved scores when they were
made with those settings and scores it in a worker thread
(:class:`~chipqa._qt.scoring_job.ScoringJob`) otherwise, then hands the table to the
controller. The GUI thread never waits for a model.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QVBoxLayout,
    QWidget,
)

from chipqa._qt.controls import button
from chipqa._qt.scoring_job import ScoringJob
from chipqa._qt.status_line import StatusLine
from chipqa.errors import ChipqaError
from chipqa.io.paths import side_paths
from chipqa.review import ReviewProject
from chipqa.review.controller import ReviewController
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.settings import ScoringSettings, settings_of_scores

DEFAULT_MODEL = "pretrained"
"""The model the Model field starts with (``baseline`` and checkpoints stay selectable)."""


def _dialog():
    from qtpy.QtWidgets import QFileDialog

    return QFileDialog


class ScoringBar(QWidget):
    """Dataset, model and blocklist fields; Open & score, Cancel; the progress bar.

    Signals:
        preparing(why): the review under way is closed while another is prepared.
        keys_wanted(): a field was left with Return: the review keys should work again.
    """

    preparing = Signal(str)
    keys_wanted = Signal()

    def __init__(self, controller: ReviewController, status: StatusLine):
        super().__init__()
        self.controller, self.status = controller, status
        self.job: ScoringJob | None = None
        self._first_open = False  # a blocklist path was typed before the first dataset
        self._model_chosen = False  # the Model field was set by the user or a caller
        self._closed = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        form = QGridLayout()
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("dataset folder (On Cloud N or flat layout)")
        self.dataset_edit.returnPressed.connect(self.keys_wanted)
        form.addWidget(QLabel("Dataset"), 0, 0)
        form.addWidget(self.dataset_edit, 0, 1)
        form.addWidget(button("Browse…", self._on_browse_dataset), 0, 2)
        self.model_edit = QLineEdit(DEFAULT_MODEL)
        self.model_edit.setToolTip(
            "'pretrained' (a Sentinel-2 cloud U-Net), 'baseline' (weight-free spectral test) "
            "or a chipqa checkpoint"
        )
        self.model_edit.returnPressed.connect(self.keys_wanted)
        self.model_edit.textEdited.connect(self._on_model_typed)
        form.addWidget(QLabel("Model"), 1, 0)
        form.addWidget(self.model_edit, 1, 1)
        form.addWidget(button("Checkpoint…", self._on_browse_model), 1, 2)
        self.blocklist_edit = QLineEdit()
        self.blocklist_edit.setPlaceholderText("blocklist CSV (default: beside the dataset)")
        self.blocklist_edit.editingFinished.connect(self.take_blocklist_path)
        form.addWidget(QLabel("Blocklist"), 2, 0)
        form.addWidget(self.blocklist_edit, 2, 1)
        form.addWidget(button("Change…", self._on_browse_blocklist), 2, 2)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.score_btn = button("Open && score", self.score)
        self.cancel_btn = button("Cancel", self.cancel)
        self.cancel_btn.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m chips")
        row.addWidget(self.score_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.progress_bar, 1)
        lay.addLayout(row)
        controller.dataset_changed.connect(self._on_dataset_changed)
        controller.blocklist_changed.connect(self._on_blocklist_changed)

    @property
    def running(self) -> bool:
        """True while a scoring job runs."""
        return self.job is not None

    def _on_model_typed(self, _text: str) -> None:
        self._model_chosen = True

    def choose_model(self, model: str | Path) -> None:
        """Score with ``model`` (a registered name or a checkpoint) from now on."""
        self.model_edit.setText(str(model))
        self._model_chosen = True

    def show_model(self, model: str | Path) -> None:
        """Name the model the scores under review came from (not a choice for the next
        scoring)."""
        self.model_edit.setText(str(model))

    # ------------------------------------------------------------------ scoring
    def _model_of_saved_scores(self, root: str) -> None:
        """Unless a model was chosen, the Model field takes the model the dataset's saved
        scores were made with (a retrained checkpoint stays in use when the panel is
        opened again, instead of the default model scoring over its scores)."""
        if self._model_chosen:
            return
        saved = settings_of_scores(side_paths(Path(root).expanduser()).scores)
        if saved is not None and (saved.registered or Path(saved.model).is_file()):
            self.model_edit.setText(saved.model)

    def score(self) -> bool:
        """Open the dataset in the Dataset field and review it: its saved scores when
        they were made with these settings, else scored now (in the background)."""
        if self.job is not None:
            self.status.say("Scoring is already running; cancel it first.", error=True)
            return False
        text = self.dataset_edit.text().strip()
        if not text:
            self.status.say("Choose a dataset folder first.", error=True)
            return False
        c = self.controller
        first = c.project is None
        self._model_of_saved_scores(text)
        try:
            name = self.model_edit.text().strip() or DEFAULT_MODEL
            # The threshold is calibrated to the labels, as `chipqa score` does.
            predictor, settings = ScoringSettings.create(name).load_predictor("auto")
            self._first_open = first and bool(self.blocklist_edit.text().strip())
            project = c.open_dataset(text)
        except (ChipqaError, ValueError) as exc:
            self.status.say(str(exc), error=True)
            return False
        self.keys_wanted.emit()
        c.use_predictor(predictor)
        c.switch_blocklist(self.blocklist_edit.text().strip() or None)
        saved = project.saved_scores(settings)
        if saved is not None:
            scores, resolved = saved
            self.status.say(
                f"Loaded scores from {project.scores_path} ({len(scores)} chips; "
                f"{resolved.describe()})."
            )
            c.review(scores, resolved)
            return True
        self._start(project, predictor, settings)
        return True

    def _on_dataset_changed(self, _project: ReviewProject) -> None:
        """Another dataset (or the same one listed again): its own blocklist path unless
        one was typed before the first dataset was opened."""
        if not self._first_open:
            self.blocklist_edit.setText(str(self.controller.blocklist_path))
        self._first_open = False
        self.progress_bar.setValue(0)

    def _on_blocklist_changed(self, store) -> None:
        """The box shows the blocklist decisions go to (an unusable path stays as typed,
        to be corrected)."""
        if store is not None:
            self.blocklist_edit.setText(str(store.path))

    def _start(self, project: ReviewProject, predictor, settings: ScoringSettings) -> None:
        previews = PreviewStore.for_settings(project.root, settings)
        job = ScoringJob(project.dataset, predictor, settings, previews=previews)
        job.progressed.connect(self._on_progress)
        job.done.connect(self._on_done)
        job.aborted.connect(self._on_aborted)
        job.failed.connect(self._on_failed)
        job.finished.connect(self._on_finished)
        self.job = job
        why = f"Scoring {project.root.name}…"
        self.controller.close_review()
        self.preparing.emit(why)
        self.progress_bar.setRange(0, job.total)
        self.progress_bar.setValue(0)
        self.score_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.say(
            f"Scoring {job.total} chips of {project.root} with {predictor.name} "
            f"on {predictor.device}…"
        )
        job.start()

    def _on_progress(self, done: int) -> None:
        if not self._closed:
            self.progress_bar.setValue(done)

    def cancel(self) -> None:
        """Cancel the scoring job (the chips scored so far are reviewed)."""
        if self.job is not None:
            self.job.cancel()

    def _blocklist_as_typed(self) -> None:
        """A blocklist path typed while scoring ran is taken up now (an unusable one is
        tried again when the scores are reviewed)."""
        typed = self.blocklist_edit.text().strip()
        store = self.controller.store
        if typed and store is not None and Path(typed).expanduser() != store.path:
            self.controller.switch_blocklist(typed)

    def _on_done(self, scores: pd.DataFrame) -> None:
        if self._closed:
            return
        self._blocklist_as_typed()
        settings = self.job.settings  # the threshold as calibrated
        bad = int((scores["error"] != "").sum())
        msg = f"Scored {len(scores)} chips with {settings.describe()}."
        if bad:
            msg += f" {bad} could not be read (flag 'unreadable'; hover the row for the reason)."
        self.status.say(msg)
        self.controller.scored(scores, settings)

    def _on_aborted(self, partial: pd.DataFrame) -> None:
        if self._closed:
            return
        self._blocklist_as_typed()
        self.status.say(
            f"Scoring cancelled after {len(partial)} of {len(self.controller.dataset)} chips; "
            "the table holds the chips scored so far (they are not saved as scores)."
        )
        if len(partial):
            self.controller.review(partial, self.job.settings)

    def _on_failed(self, exc: Exception) -> None:
        if self._closed:
            return
        self.status.say(f"Scoring failed: {exc}", error=True)

    def _on_finished(self) -> None:
        self.job = None
        if self._closed:
            return
        self.score_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def shutdown(self) -> None:
        """The panel closes: the job stops, and what it reports later is dropped."""
        self._closed = True
        if self.job is not None:
            self.job.cancel()

    # ------------------------------------------------------------------ blocklist
    def take_blocklist_path(self) -> None:
        """Decisions go to the blocklist path in the field (taken up when the dataset is
        opened, or when scoring ends, if neither is done yet)."""
        if self.controller.project is None or self.job is not None:
            return
        self.controller.switch_blocklist(self.blocklist_edit.text().strip() or None)

    # ------------------------------------------------------------------ files
    def _on_browse_dataset(self) -> None:
        path = _dialog().getExistingDirectory(self, "Dataset folder", self.dataset_edit.text())
        if path:
            self.dataset_edit.setText(path)

    def _on_browse_model(self) -> None:
        path, _ = _dialog().getOpenFileName(
            self, "chipqa checkpoint", "", "Checkpoints (*.ckpt *.pt);;All files (*)"
        )
        if path:
            self.choose_model(path)

    def _on_browse_blocklist(self) -> None:
        path, _ = _dialog().getSaveFileName(
            self, "Blocklist CSV", self.blocklist_edit.text(), "CSV (*.csv)"
        )
        if path:
            self.blocklist_edit.setText(path)
            self.take_blocklist_path()

"""The "Chip QA" dock widget: score a dataset, walk its chips with the keyboard, decide.

The widget only lays out Qt controls and wires them to the core:
:class:`chipqa.review.ReviewProject` knows the dataset's side files and when saved scores
are fresh, :class:`~chipqa._qt.scoring_job.ScoringJob` scores in a worker thread,
:class:`chipqa.review.ReviewSession` holds the ordering and the decisions (and announces
changes through its signals), :class:`chipqa.blocklist.store.BlocklistStore` writes them,
:class:`~chipqa._qt.chip_display.ChipDisplay` draws chips as the background loader
makes them ready and :class:`~chipqa._qt.gallery.GalleryView` draws pages of them. The
GUI thread never waits for a chip or a model. What the keys and buttons do is in
:class:`~chipqa._qt.review_actions.ReviewActions` and
:class:`~chipqa._qt.gallery_actions.GalleryActions`; how the canvas and the panel follow
the session is in :class:`~chipqa._qt.panel_sync.PanelSync`.

The panel is a good napari citizen: its keys are bound only while it is shown and
docked (:mod:`chipqa._qt.keys` says where, and how the user changes them in napari's
preferences), and closing it unbinds them, drops its layer callbacks and stops its
background work. It uses napari's public API only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QWidget

from chipqa._qt import shortcuts
from chipqa._qt.chip_display import ChipDisplay
from chipqa._qt.chip_layers import SIDE_BY_SIDE, CanvasText, ChipLayers
from chipqa._qt.gallery import GalleryView
from chipqa._qt.gallery_actions import GalleryActions
from chipqa._qt.keys import KEY_ACTIONS, KeyBindings, key_table
from chipqa._qt.panel_sync import PanelSync
from chipqa._qt.review_actions import ReviewActions
from chipqa._qt.review_layout import DEFAULT_MODEL, build_review_ui
from chipqa._qt.scoring_job import ScoringJob
from chipqa.blocklist.store import BlocklistStore
from chipqa.data import ChipDataset
from chipqa.errors import ChipqaError
from chipqa.io.paths import side_paths
from chipqa.predictors import Predictor
from chipqa.review import ChipLoader, ReviewProject, ReviewSession
from chipqa.review.controller import ReviewController
from chipqa.scoring import FLAG_DESCRIPTIONS
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.settings import ScoringSettings, settings_of_scores
from chipqa.scoring.table import scored_threshold

if TYPE_CHECKING:
    import napari


def scores_path_for(root: Path) -> Path:
    """Where the widget keeps a dataset's scores (the CLI's default too)."""
    return side_paths(root).scores


class ChipQAWidget(PanelSync, ReviewActions, GalleryActions, QWidget):
    """Review chips side by side or a page at a time and triage them into a blocklist."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.controller = ReviewController()
        """The review's state and its only writer (dataset, blocklist, scores, session)."""
        self.predictor: Predictor | None = None
        self._session_shown: ReviewSession | None = None
        self._first_open = False
        self._model_chosen = False  # the Model field was set by the user or a caller
        self.view = SIDE_BY_SIDE
        self.canvas_text = CanvasText(napari_viewer)
        self.chip_layers = ChipLayers(napari_viewer, self.canvas_text)
        self.display = ChipDisplay(self.chip_layers, parent=self)
        self.display.drawn.connect(lambda _cid: self._schedule_info())
        self.gallery = GalleryView(napari_viewer, self.canvas_text)
        self.gallery.clicked.connect(self.gallery_click)
        self._job: ScoringJob | None = None
        self.alive = True
        self._docked = False
        self._info_pending = False
        self._table_stale = False
        self._decided_rows: set[str] = set()
        self._init_actions()
        shortcuts.register()  # the keys in force: the user's (napari's preferences)
        self._build_ui()
        self._keys = KeyBindings(napari_viewer, key_table(KEY_ACTIONS), self.run)
        shortcuts.attach(self)  # keys_changed() after a change in the preferences
        self.chip_layers.on_created.append(self._keys.add_layer)
        self.gallery.on_created.append(self._keys.add_layer)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.destroyed.connect(self._teardown)
        c = self.controller
        c.message.connect(lambda text, error: self.say(text, error=error))
        c.dataset_changed.connect(self._on_dataset_changed)
        c.session_changed.connect(self._on_session_changed)
        c.labels_changed.connect(self._on_labels_changed)

    # ------------------------------------------------------------------ state others read
    @property
    def project(self) -> ReviewProject | None:
        return self.controller.project

    @property
    def dataset(self) -> ChipDataset | None:
        return self.controller.dataset

    @property
    def session(self) -> ReviewSession | None:
        return self.controller.session

    @property
    def store(self) -> BlocklistStore | None:
        return self.controller.store

    @property
    def settings(self) -> ScoringSettings | None:
        """How the scores under review were made (model, threshold, DN offset)."""
        return self.controller.settings

    @property
    def loader(self) -> ChipLoader | None:
        return self.display.loader

    @property
    def scoring_running(self) -> bool:
        """True while a scoring job runs."""
        return self._job is not None

    @property
    def loading(self) -> str | None:
        """The chip being loaded for the screen, or None when the current chip is drawn."""
        return self.display.chip_id if self.display.loading else None

    @property
    def keys_bound(self) -> bool:
        return self._keys.bound

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        from chipqa._qt.retrain_panel import RetrainPanel

        build_review_ui(self)
        self.retrain = RetrainPanel(self)
        self.tabs.addTab(self.retrain, "Retrain")

    def give_keys_back(self) -> None:
        """Take the keyboard focus from a text field, so that the review keys (which
        reach napari through the dock) work again."""
        self.setFocus()

    # ------------------------------------------------------------------ messages
    def say(self, text: str, error: bool = False) -> None:
        """Show a message in the status line and as a napari notification."""
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")
        from napari.utils.notifications import show_error, show_info

        (show_error if error else show_info)(text)

    # ------------------------------------------------------------------ dataset & scoring
    def open_dataset(
        self, path: str | Path, model: str | None = None, *, score: bool = True
    ) -> bool:
        """Open a dataset (and start scoring it unless its scores are on disk already)."""
        self.dataset_edit.setText(str(path))
        if model is not None:
            self.model_edit.setText(str(model))
            self._model_chosen = True
        if score:
            return self._on_score()
        return True

    def rescore_with(self, model: str | Path) -> bool:
        """Load another model (a name or a checkpoint) and score the open dataset with it."""
        self.model_edit.setText(str(model))
        self._model_chosen = True
        return self._on_score()

    def _model_of_saved_scores(self, root: str) -> None:
        """Unless a model was chosen, the Model field takes the model the dataset's saved
        scores were made with (a retrained checkpoint stays in use when the panel is
        opened again, instead of the default model scoring over its scores)."""
        if self._model_chosen:
            return
        saved = settings_of_scores(side_paths(Path(root).expanduser()).scores)
        if saved is not None and (saved.registered or Path(saved.model).is_file()):
            self.model_edit.setText(saved.model)

    def _on_score(self) -> bool:
        if self._job is not None:
            self.say("Scoring is already running; cancel it first.", error=True)
            return False
        text = self.dataset_edit.text().strip()
        if not text:
            self.say("Choose a dataset folder first.", error=True)
            return False
        first = self.project is None
        self._model_of_saved_scores(text)
        try:
            name = self.model_edit.text().strip() or DEFAULT_MODEL
            # The threshold is calibrated to the labels, as `chipqa score` does.
            predictor, settings = ScoringSettings.create(name).load_predictor("auto")
            self._first_open = first and bool(self.blocklist_edit.text().strip())
            project = self.controller.open_dataset(text)
        except (ChipqaError, ValueError) as exc:
            self.say(str(exc), error=True)
            return False
        self.give_keys_back()
        self.predictor = predictor
        self.controller.switch_blocklist(self.blocklist_edit.text().strip() or None)
        saved = project.saved_scores(settings)
        if saved is not None:
            scores, resolved = saved
            self.say(
                f"Loaded scores from {project.scores_path} ({len(scores)} chips; "
                f"{resolved.describe()})."
            )
            self.controller.review(scores, resolved)
            return True
        self._start_scoring(project, predictor, settings)
        return True

    def _on_dataset_changed(self, project: ReviewProject) -> None:
        """Another dataset (or the same one listed again): its own blocklist path unless
        one was typed before the first dataset was opened; nothing recorded shown."""
        if not self._first_open:
            self.blocklist_edit.setText(str(self.controller.blocklist_path))
        self._first_open = False
        self._recorded = ""
        self.progress_bar.setValue(0)

    def _end_review(self, why: str) -> None:
        """Nothing of the previous review stays live while another one is prepared: no
        session, no chip on the canvas, keys that only say so."""
        self.controller.close_review()
        self.chip_layers.note(why)
        self.chip_label.setText(why)

    def _clear_review(self) -> None:
        self.display.set_loader(None)
        self.gallery.set_source(None, None)
        if self.chip_layers.chip_id is not None:
            self.chip_layers.clear("")
        self.gallery.detach()
        self.canvas_text.badge = ""
        self.canvas_text.refresh()
        self.progress_label.setText("")

    def _start_scoring(
        self, project: ReviewProject, predictor: Predictor, settings: ScoringSettings
    ) -> None:
        previews = PreviewStore.for_settings(project.root, settings)
        job = ScoringJob(project.dataset, predictor, settings, previews=previews)
        job.progressed.connect(self._on_scored)
        job.done.connect(self._on_scoring_done)
        job.aborted.connect(self._on_scoring_aborted)
        job.failed.connect(self._on_scoring_error)
        job.finished.connect(self._on_job_finished)
        self._job = job
        self._end_review(f"Scoring {project.root.name}…")
        self.progress_bar.setRange(0, job.total)
        self.progress_bar.setValue(0)
        self.score_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.say(
            f"Scoring {job.total} chips of {project.root} with {predictor.name} "
            f"on {predictor.device}…"
        )
        job.start()

    def _on_scored(self, done: int) -> None:
        if self.alive:
            self.progress_bar.setValue(done)

    def _blocklist_as_typed(self) -> None:
        """A blocklist path typed while scoring ran is taken up now (an unusable one is
        tried again when the scores are reviewed)."""
        typed = self.blocklist_edit.text().strip()
        store = self.store
        if typed and store is not None and Path(typed).expanduser() != store.path:
            self.controller.switch_blocklist(typed)

    def _on_scoring_done(self, scores: pd.DataFrame) -> None:
        if not self.alive:
            return
        self._blocklist_as_typed()
        settings = self._job.settings  # the threshold as calibrated
        bad = int((scores["error"] != "").sum())
        msg = f"Scored {len(scores)} chips with {settings.describe()}."
        if bad:
            msg += f" {bad} could not be read (flag 'unreadable'; hover the row for the reason)."
        self.say(msg)
        self.controller.scored(scores, settings)

    def _on_scoring_aborted(self, partial: pd.DataFrame) -> None:
        if not self.alive:
            return
        self._blocklist_as_typed()
        self.say(
            f"Scoring cancelled after {len(partial)} of {len(self.dataset)} chips; "
            "the table holds the chips scored so far (they are not saved as scores)."
        )
        if len(partial):
            self.controller.review(partial, self._job.settings)

    def _on_scoring_error(self, exc: Exception) -> None:
        if self.alive:
            self.say(f"Scoring failed: {exc}", error=True)

    def _on_job_finished(self) -> None:
        self._job = None
        if self.alive:
            self.score_btn.setEnabled(True)
            self.cancel_btn.setEnabled(False)

    def _on_cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    # ------------------------------------------------------------------ review
    def review_scores(
        self,
        scores: pd.DataFrame,
        *,
        model: str | Path | None = None,
        settings: ScoringSettings | None = None,
    ) -> None:
        """Review the open dataset in the order of ``scores`` (decisions go to the blocklist
        shown). ``model`` only names the model the scores came from in the Model field;
        ``settings``: how they were made (default: the settings in force)."""
        if model is not None:
            self.model_edit.setText(str(model))
        self.controller.review(scores, settings)

    def _on_session_changed(self, session: ReviewSession | None) -> None:
        """The controller has a new session (or none): draw it."""
        self._set_session(session)
        if session is None:
            self._clear_review()
            return
        predictor, settings = self.predictor, self.settings
        threshold = (
            settings.threshold if settings and settings.threshold is not None
            else scored_threshold(session.scores)
        )  # fmt: skip
        loader = ChipLoader(
            self.dataset,
            predictor.predict_numpy if predictor else None,
            stretch=self.stretch_combo.currentText(),
            threshold=threshold,
            previews=PreviewStore.for_settings(self.dataset.root, settings) if settings else None,
        )
        self.display.set_loader(loader)
        self.gallery.set_source(session, loader)
        self.chip_layers.note("")
        self.flag_combo.blockSignals(True)
        self.flag_combo.clear()
        self.flag_combo.addItem("all flags", None)
        for f in session.flags_present:
            self.flag_combo.addItem(f, f)
            tip = FLAG_DESCRIPTIONS.get(f, "")
            self.flag_combo.setItemData(
                self.flag_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.flag_combo.blockSignals(False)
        self.undecided_check.blockSignals(True)
        self.undecided_check.setChecked(False)
        self.undecided_check.blockSignals(False)
        self._sync_sort_indicator()
        store = session.store
        if store.merged_from_elsewhere or len(store):
            done, total = session.progress()
            self.say(f"Resumed: {done} of {total} chips already decided in {store.path}.")
        self.set_view(self.view, force=True)
        self.retrain.update_estimate()

    def _on_labels_changed(self, chip_ids: list[str]) -> None:
        """A fix, its undo or another blocklist changed these chips' labels: their
        loaded views go, and the chip on screen is drawn again."""
        if self.loader is not None:
            self.loader.forget(chip_ids)
        self._decided_rows.update(chip_ids)  # their label share and IoU in the table
        self._schedule_info()
        if self.session is not None and self.session.current in chip_ids:
            self.display.chip_id = None
            self.show_current()

    def _set_session(self, session: ReviewSession | None) -> None:
        old = self._session_shown
        if old is not None:
            old.current_changed.disconnect(self._on_current_changed)
            old.decided.disconnect(self._on_decided)
            old.undone.disconnect(self._on_table_changed)
            old.order_changed.disconnect(self._on_order_changed)
        self._session_shown = session
        self.table_model.set_session(session)
        if session is not None:
            self.table.resizeColumnsToContents()  # once: not on every change (slow)
            session.current_changed.connect(self._on_current_changed)
            session.decided.connect(self._on_decided)
            session.undone.connect(self._on_table_changed)
            session.order_changed.connect(self._on_order_changed)

    def _on_blocklist_path_edited(self) -> None:
        if self.project is None or self._job is not None:
            return  # taken up when the dataset is opened, or when scoring ends
        self.controller.switch_blocklist(self.blocklist_edit.text().strip() or None)
        self._update_badge()

    # ------------------------------------------------------------------ lifecycle
    def showEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().showEvent(event)
        if self.alive and self.parent() is not None:
            self._docked = True
            self._keys.bind()

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().hideEvent(event)
        if not event.spontaneous():  # hidden or closed, not the window minimised
            self._keys.unbind()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ParentChange and self._docked and self.parent() is None:
            self.shutdown()  # napari took the panel out of its dock: it is closed
        return super().event(event)

    def shutdown(self) -> None:
        """The panel is closed: unbind its keys, drop its layer callbacks, stop its work."""
        if not self.alive:
            return
        self.alive = False
        shortcuts.detach(self)
        self._keys.unbind()
        self._keys.forget_layers()
        self.gallery.close()
        self.display.set_loader(None)
        QTimer.singleShot(0, self.chip_layers.detach)  # the panel's layers leave with it
        from chipqa._qt.fix_wiring import close_fixer

        close_fixer(self)
        self.canvas_text.clear()
        self._set_session(None)
        self._teardown()

    def _teardown(self, *_) -> None:
        self.alive = False
        shortcuts.detach(self)
        if self._job is not None:
            self._job.cancel()
        try:
            self.retrain.shutdown()
        except RuntimeError:  # its Qt object is already gone
            pass
        if self.loader is not None:
            self.loader.close()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)


def open_in_viewer(
    viewer: napari.Viewer, path: str | Path, model: str | None = None
) -> ChipQAWidget:
    """Dock the Chip QA widget in ``viewer`` (once) and open ``path`` in it (with
    ``model``, or the one in the widget's Model field)."""
    _, widget = viewer.window.add_plugin_dock_widget("chipqa", "Chip QA")
    widget.open_dataset(path, model)
    return widget

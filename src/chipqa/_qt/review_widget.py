"""The "Chip QA" dock widget: score a dataset, walk its chips with the keyboard, decide.

The widget only lays out Qt controls and wires them to the core:
:class:`chipqa.review.ReviewProject` knows the dataset's side files and when saved scores
are fresh, :class:`~chipqa._qt.scoring_job.ScoringJob` scores in a worker thread,
:class:`chipqa.review.ReviewSession` holds the ordering and the decisions (and announces
changes through its signals), :class:`chipqa.review.BlocklistStore` writes them, and
:class:`~chipqa._qt.chip_display.ChipDisplay` draws chips as the background loader
makes them ready. The GUI thread never waits for a chip or a model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QWidget,
)

from chipqa._qt.chip_display import ChipDisplay
from chipqa._qt.chip_layers import LAYERS, SIDE_BY_SIDE, ChipLayers
from chipqa._qt.keys import KeyBindings, key_table
from chipqa._qt.review_layout import build_review_ui, chip_info_html
from chipqa._qt.scoring_job import ScoringJob
from chipqa.data import ChipDataset
from chipqa.errors import ChipqaError
from chipqa.io.paths import side_paths
from chipqa.predictors import Predictor, load_predictor
from chipqa.review import BlocklistStore, ChipLoader, ReviewProject, ReviewSession
from chipqa.review.blocklist import BlocklistError
from chipqa.scoring import FLAG_DESCRIPTIONS

if TYPE_CHECKING:
    import napari

PREFETCH = 4


def scores_path_for(root: Path) -> Path:
    """Where the widget keeps a dataset's scores (the CLI's default too)."""
    return side_paths(root).scores


class ChipQAWidget(QWidget):
    """Review chips side by side and triage them with the keyboard into a blocklist."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.project: ReviewProject | None = None
        self.predictor: Predictor | None = None
        self.session: ReviewSession | None = None
        self.store: BlocklistStore | None = None
        self.chip_layers = ChipLayers(napari_viewer)
        self.display = ChipDisplay(self.chip_layers, parent=self)
        self.display.drawn.connect(lambda _cid: self._schedule_info())
        self._job: ScoringJob | None = None
        self._scores: pd.DataFrame | None = None
        self._alive = True
        self._info_pending = False
        self._table_stale = False
        self._build_ui()
        self._keys = KeyBindings(napari_viewer, self.key_table())
        self._keys.bind()
        self.destroyed.connect(self._teardown)

    # ------------------------------------------------------------------ state others read
    @property
    def dataset(self) -> ChipDataset | None:
        return self.project.dataset if self.project is not None else None

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

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        from chipqa._qt.retrain_panel import RetrainPanel

        build_review_ui(self)
        self.retrain = RetrainPanel(self)
        self.tabs.addTab(self.retrain, "Retrain")

    # ------------------------------------------------------------------ keys
    def key_table(self) -> list[tuple[str, str, Callable[[], object]]]:
        """(key, what it does, action): shown in the widget and bound in the viewer."""
        return key_table(self)

    # ------------------------------------------------------------------ messages
    def say(self, text: str, error: bool = False) -> None:
        """Show a message in the status line and as a napari notification."""
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")
        from napari.utils.notifications import show_error, show_info

        (show_error if error else show_info)(text)

    # ------------------------------------------------------------------ dataset & scoring
    def _on_browse_dataset(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder", self.dataset_edit.text())
        if path:
            self.dataset_edit.setText(path)

    def _on_browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "chipqa checkpoint", "", "Checkpoints (*.ckpt *.pt);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)

    def _on_browse_blocklist(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Blocklist CSV", self.blocklist_edit.text(), "CSV (*.csv)"
        )
        if path:
            self.blocklist_edit.setText(path)
            self._on_blocklist_path_edited()

    def open_dataset(
        self, path: str | Path, model: str | None = None, *, score: bool = True
    ) -> bool:
        """Open a dataset (and start scoring it unless its scores are on disk already)."""
        self.dataset_edit.setText(str(path))
        if model is not None:
            self.model_edit.setText(str(model))
        if score:
            return self._on_score()
        return True

    def rescore_with(self, model: str | Path) -> bool:
        """Load another model (a name or a checkpoint) and score the open dataset with it."""
        self.model_edit.setText(str(model))
        return self._on_score()

    def _on_score(self) -> bool:
        if self._job is not None:
            self.say("Scoring is already running; cancel it first.", error=True)
            return False
        text = self.dataset_edit.text().strip()
        if not text:
            self.say("Choose a dataset folder first.", error=True)
            return False
        try:
            project = ReviewProject.open(text)
            predictor = load_predictor(self.model_edit.text().strip() or "baseline", device="auto")
        except (ChipqaError, ValueError) as exc:
            self.say(str(exc), error=True)
            return False
        self.project, self.predictor = project, predictor
        if not self.blocklist_edit.text().strip():
            self.blocklist_edit.setText(str(project.default_blocklist))
        saved = project.saved_scores(predictor.name)
        if saved is not None:
            self.say(f"Loaded scores from {project.scores_path} ({len(saved)} chips).")
            self.review_scores(saved)
            return True
        self._start_scoring(project, predictor)
        return True

    def _start_scoring(self, project: ReviewProject, predictor: Predictor) -> None:
        job = ScoringJob(project.dataset, predictor)
        job.progressed.connect(self._on_scored)
        job.done.connect(self._on_scoring_done)
        job.aborted.connect(self._on_scoring_aborted)
        job.failed.connect(self._on_scoring_error)
        job.finished.connect(self._on_job_finished)
        self._job = job
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
        if self._alive:
            self.progress_bar.setValue(done)

    def _on_scoring_done(self, scores: pd.DataFrame) -> None:
        if not self._alive:
            return
        try:
            self.project.save_scores(scores)
        except ChipqaError as exc:
            self.say(
                f"Scores could not be saved beside the dataset ({exc}); reviewing anyway.",
                error=True,
            )
        bad = int((scores["error"] != "").sum())
        msg = f"Scored {len(scores)} chips with {self.predictor.name}."
        if bad:
            msg += f" {bad} could not be read (flag 'unreadable'; hover the row for the reason)."
        self.say(msg)
        self.review_scores(scores)

    def _on_scoring_aborted(self, partial: pd.DataFrame) -> None:
        if not self._alive:
            return
        self.say(
            f"Scoring cancelled after {len(partial)} of {len(self.dataset)} chips; "
            "the table holds the chips scored so far (they are not saved as scores)."
        )
        if len(partial):
            self.review_scores(partial)

    def _on_scoring_error(self, exc: Exception) -> None:
        if self._alive:
            self.say(f"Scoring failed: {exc}", error=True)

    def _on_job_finished(self) -> None:
        self._job = None
        if self._alive:
            self.score_btn.setEnabled(True)
            self.cancel_btn.setEnabled(False)

    def _on_cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()

    # ------------------------------------------------------------------ review
    def _open_store(self) -> BlocklistStore | None:
        try:
            return self.project.open_store(self.blocklist_edit.text().strip() or None)
        except BlocklistError as exc:
            self.say(
                f"{exc} Decisions are disabled until a usable blocklist path is chosen.", error=True
            )
            return None

    def review_scores(self, scores: pd.DataFrame, *, model: str | Path | None = None) -> None:
        """Review the open dataset in the order of ``scores`` (decisions go to the blocklist
        shown). ``model`` only names the model the scores came from in the Model field."""
        if model is not None:
            self.model_edit.setText(str(model))
        self._scores = scores
        store = self._open_store()
        predictor = self.predictor
        self.display.set_loader(
            ChipLoader(self.dataset, predictor.predict_numpy if predictor else None)
        )
        self.store = store
        self._set_session(None if store is None else ReviewSession(scores, store))
        if self.session is None:
            return
        self.flag_combo.blockSignals(True)
        self.flag_combo.clear()
        self.flag_combo.addItem("all flags", None)
        for f in self.session.flags_present:
            self.flag_combo.addItem(f, f)
            tip = FLAG_DESCRIPTIONS.get(f, "")
            self.flag_combo.setItemData(
                self.flag_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.flag_combo.blockSignals(False)
        if store.merged_from_elsewhere or len(store):
            done, total = self.session.progress()
            self.say(f"Resumed: {done} of {total} chips already decided in {store.path}.")
        self.show_current()

    def _set_session(self, session: ReviewSession | None) -> None:
        old = self.session
        if old is not None:
            old.current_changed.disconnect(self._on_current_changed)
            old.decided.disconnect(self._on_decided)
            old.undone.disconnect(self._on_table_changed)
            old.order_changed.disconnect(self._on_table_changed)
        self.session = session
        self.table_model.set_session(session)
        if session is not None:
            session.current_changed.connect(self._on_current_changed)
            session.decided.connect(self._on_decided)
            session.undone.connect(self._on_table_changed)
            session.order_changed.connect(self._on_table_changed)

    def _on_blocklist_path_edited(self) -> None:
        if self._scores is None:
            return
        if self.session is None:  # the previous path was unusable: start now
            self.review_scores(self._scores)
            return
        store = self._open_store()
        if store is None:
            return
        self.store = self.session.store = store
        self.say(f"Decisions now go to {store.path} ({len(store)} already there).")

    # -- what the session announces ---------------------------------------------
    def _on_current_changed(self, _chip_id: str | None) -> None:
        self.show_current()

    def _on_decided(self, _chip_id: str, _decision: str) -> None:
        if self.session.store.merged_from_elsewhere:
            n = self.session.store.merged_from_elsewhere
            self.status.setText(f"{n} decision(s) made in another window were merged in.")
        self._on_table_changed()

    def _on_table_changed(self, *_) -> None:
        self._table_stale = True
        self._schedule_info()
        if self.session is not None and self.loader is not None:
            self.loader.prefetch(self.session.upcoming(PREFETCH))

    def show_current(self) -> None:
        """Show the session's current chip: at once when it is loaded, else dimmed old
        pixels and "loading…" until it is (the GUI thread never waits for it)."""
        if self.session is None or self.loader is None:
            return
        cid = self.session.current
        if cid is None:
            self.chip_label.setText("No chip matches the filters.")
            return
        self.display.show(cid)
        if self.display.loading:
            self.chip_label.setText(f"<b>{cid}</b> · loading…")
        self.loader.prefetch(self.session.upcoming(PREFETCH))
        # Text and table follow on the next turn of the event loop, so that the canvas
        # (what the reviewer is looking at) is drawn first.
        self._schedule_info()

    def _schedule_info(self) -> None:
        if not self._info_pending:
            self._info_pending = True
            QTimer.singleShot(0, self._update_info)

    def _update_info(self) -> None:
        self._info_pending = False
        if not self._alive:
            return
        if self._table_stale:
            self._table_stale = False
            self.table_model.refresh()
        s = self.session
        if s is None or s.current is None:
            return
        cid = s.current
        row = s.row(cid)
        text = chip_info_html(s, cid)
        shown = self.display.chip_id == cid
        if shown and self.display.loading:
            text += "<br><i>loading…</i>"
        error = row.get("error") or (self.display.error if shown else "")
        if error:
            text += f"<br><span style='color:#ff6b6b'>cannot be shown: {error}</span>"
        self.chip_label.setText(text)
        self.chip_label.setToolTip(text)
        if 0 <= s.position < len(s.order):
            self.table.selectRow(s.position)
            self.table.scrollTo(self.table_model.index(s.position, 0))

    def _on_table_clicked(self, index) -> None:
        cid = self.table_model.chip_at(index.row())
        if cid is not None and self.session is not None:
            self.session.goto(cid)
            self.viewer.window._qt_viewer.canvas.native.setFocus()

    def _on_filter_changed(self, *_) -> None:
        if self.session is None:
            return
        self.session.set_view(
            flag=self.flag_combo.currentData(), undecided_only=self.undecided_check.isChecked()
        )

    def _on_mode_changed(self, mode: str) -> None:
        self.chip_layers.set_mode(mode)

    # ------------------------------------------------------------------ actions (keys & buttons)
    def next_chip(self) -> None:
        if self.session is not None:
            self.session.next()

    def previous_chip(self) -> None:
        if self.session is not None:
            self.session.previous()

    def next_undecided(self) -> None:
        if self.session is not None and self.session.next_undecided() is None:
            self.say("Every listed chip has a decision.")

    def _decide(self, decision: str, reason: str = "") -> None:
        if self.session is None:
            self.say("Open a dataset with a usable blocklist first.", error=True)
            return
        try:
            self.session.decide(decision, reason)
        except BlocklistError as exc:
            self.say(f"Not saved: {exc}", error=True)

    def keep(self) -> None:
        self._decide("keep")

    def block(self, reason: str | None = None) -> None:
        self._decide("block", reason if reason is not None else self.reason_combo.currentText())

    def unsure(self) -> None:
        self._decide("unsure")

    def undo(self) -> None:
        if self.session is None:
            return
        try:
            cid = self.session.undo()
        except BlocklistError as exc:
            self.say(f"Undo not saved: {exc}", error=True)
            return
        self.status.setText("Nothing to undo." if cid is None else f"Undid the decision on {cid}.")

    def toggle_mode(self) -> None:
        mode = LAYERS if self.chip_layers.mode == SIDE_BY_SIDE else SIDE_BY_SIDE
        self.mode_combo.setCurrentText(mode)

    def _on_export(self) -> None:
        if self.store is None:
            self.say("Nothing to export: no blocklist is open.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export blocklist",
            str(self.store.path.with_name("blocklist_export.csv")),
            "CSV (*.csv)",
        )
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        try:
            out = self.store.export(path, blocked_only=not self.export_all.isChecked())
        except BlocklistError as exc:
            self.say(str(exc), error=True)
            return None
        self.say(f"Exported the blocklist to {out}.")
        return out

    # ------------------------------------------------------------------ teardown
    def _teardown(self, *_) -> None:
        self._alive = False
        if self._job is not None:
            self._job.cancel()
        try:
            self.retrain.shutdown()
        except RuntimeError:  # its Qt object is already gone
            pass
        if self.loader is not None:
            self.loader.close()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._alive = False
        self._keys.unbind()
        self._teardown()
        super().closeEvent(event)


def open_in_viewer(
    viewer: napari.Viewer, path: str | Path, model: str = "baseline"
) -> ChipQAWidget:
    """Dock the Chip QA widget in ``viewer`` (once) and open ``path`` in it."""
    _, widget = viewer.window.add_plugin_dock_widget("chipqa", "Chip QA")
    widget.open_dataset(path, model)
    return widget

"""The "Chip QA" dock widget: score a dataset, walk its chips with the keyboard, decide.

The panel is composed of child widgets, each turning its controls into calls of the
:class:`~chipqa.review.controller.ReviewController` (the review's state and its only
writer) and drawing the controller's signals:

- :class:`~chipqa._qt.scoring_bar.ScoringBar`: dataset, model and blocklist; scoring;
- :class:`~chipqa._qt.filter_bar.FilterBar`: flag filter, view and stretch;
- :class:`~chipqa._qt.scores_table.ScoresTable`: the chips listed, in review order;
- :class:`~chipqa._qt.review_info.ChipInfo`: the progress and the current chip's text;
- :class:`~chipqa._qt.decision_bar.DecisionBar`: block reason, decisions, export, keys;
- :class:`~chipqa._qt.retrain_panel.RetrainPanel`: the Retrain tab;

beside :class:`~chipqa._qt.review_canvas.ReviewCanvas` (what is on napari's canvas),
:class:`~chipqa._qt.gallery_actions.GalleryActions` (the gallery's pages and bulk rule)
and :class:`~chipqa._qt.fix_actions.FixActions` (label fixes). This module lays them
out, routes each review key to the child that does it, and connects them.

The panel is a good napari citizen: its keys are bound only while it is shown and
docked (:mod:`chipqa._qt.keys` says where, and how the user changes them in napari's
preferences), and closing it unbinds them, drops its layer callbacks and stops its
background work. It uses napari's public API only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from chipqa._qt import shortcuts
from chipqa._qt.controls import confirm_dialog
from chipqa._qt.decision_bar import DecisionBar
from chipqa._qt.filter_bar import FilterBar
from chipqa._qt.fix_actions import FixActions
from chipqa._qt.gallery_actions import GalleryActions
from chipqa._qt.keys import KEY_ACTIONS, KeyBindings, key_table, paint_keys_text
from chipqa._qt.retrain_panel import RetrainPanel
from chipqa._qt.review_canvas import ReviewCanvas
from chipqa._qt.review_info import ChipInfo
from chipqa._qt.review_keys import review_actions
from chipqa._qt.scores_table import ScoresTable
from chipqa._qt.scoring_bar import ScoringBar
from chipqa._qt.status_line import StatusLine
from chipqa.io.paths import side_paths
from chipqa.review.controller import ReviewController
from chipqa.scoring.settings import ScoringSettings

if TYPE_CHECKING:
    import napari

    from chipqa.review import ChipLoader, ReviewSession

INFO_MS = 80
"""The panel's text and table follow this long after a chip or a page is shown (what
the reviewer looks at is drawn first: under a software renderer painting the panel cost
as much as the chip)."""


def scores_path_for(root: Path) -> Path:
    """Where the widget keeps a dataset's scores (the CLI's default too)."""
    return side_paths(root).scores


class ChipQAWidget(QWidget):
    """Review chips side by side or a page at a time and triage them into a blocklist."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.controller = ReviewController()
        """The review's state and its only writer (dataset, blocklist, scores, session)."""
        self.alive = True
        self._docked = False
        self._info_pending = False
        self._session_shown: ReviewSession | None = None
        self.confirm: Callable[[str, str], bool] = lambda t, x: confirm_dialog(self, t, x)
        """Asks the user yes or no (a script may put its own answer here)."""
        ask = lambda title, text: self.confirm(title, text)  # noqa: E731 (the one in force)
        c = self.controller
        shortcuts.register()  # the keys in force (the user's) before any is shown
        self._keys = KeyBindings(napari_viewer, key_table(KEY_ACTIONS), self.run)
        self.canvas = ReviewCanvas(napari_viewer, c, lambda: self._keys.taken, parent=self)
        self.status = StatusLine("Choose a dataset folder and press “Open & score”.")
        self.scoring = ScoringBar(c, self.status)
        self.filters = FilterBar()
        self.table = ScoresTable(
            sort=lambda key, ascending: c.set_view(sort_by=key, ascending=ascending)
        )
        self.info = ChipInfo()
        self.decisions = DecisionBar(c, self.canvas, self.status, self.run, busy=self._busy)
        self.gallery_actions = GalleryActions(c, self.canvas, self.decisions, self.status, ask)
        self.fixes = FixActions(
            napari_viewer, c, self.canvas, self.status, self._keys, self.run, self._shown,
            self.decisions.need_session,
        )  # fmt: skip
        self.retrain = RetrainPanel(c, ask)
        self._actions = review_actions(
            napari_viewer, c, self.canvas, self.gallery_actions, self.decisions, self.fixes,
            self.filters,
        )  # fmt: skip
        self._lay_out()
        self._connect()
        shortcuts.attach(self)  # keys_changed() after a change in the preferences
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.destroyed.connect(self._teardown)

    def _lay_out(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        self.tabs.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        outer.addWidget(self.tabs)
        review_tab = QWidget()
        lay = QVBoxLayout(review_tab)
        lay.addWidget(self.scoring)
        lay.addWidget(self.filters)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.info)
        lay.addWidget(self.decisions)
        lay.addWidget(self.status)
        self.tabs.addTab(review_tab, "Review")
        self.tabs.addTab(self.retrain, "Retrain")

    def _connect(self) -> None:
        c, canvas = self.controller, self.canvas
        c.message.connect(self.status.say)
        c.blocklist_changed.connect(lambda _store: self._schedule_info())
        c.session_changed.connect(self._on_session_changed)
        c.labels_changed.connect(self._on_labels_changed)
        c.decided.connect(self._on_decided)
        c.undone.connect(self._on_rows_changed)
        canvas.view_changed.connect(self._on_view_changed)
        canvas.text.connect(self.info.set_text)
        canvas.shown.connect(self._schedule_info)
        canvas.gallery.clicked.connect(self.gallery_actions.click)
        canvas.chip_layers.on_created.append(self._keys.add_layer)
        canvas.gallery.on_created.append(self._keys.add_layer)
        self.scoring.preparing.connect(self._on_preparing)
        self.scoring.keys_wanted.connect(self.give_keys_back)
        self.filters.filter_changed.connect(self._on_filter_changed)
        self.filters.view_chosen.connect(canvas.set_view)
        self.filters.stretch_chosen.connect(self._on_stretch_chosen)
        self.table.chip_clicked.connect(c.goto)
        canvas.gallery.cursor_moved.connect(c.move_to)
        self.decisions.bulk_requested.connect(self.gallery_actions.bulk_block)
        self.retrain.new_model.connect(self.rescore_with)
        self.retrain.oof_reviewed.connect(self._on_oof_reviewed)

    # ------------------------------------------------------------------ state others read
    @property
    def project(self):
        return self.controller.project

    @property
    def dataset(self):
        return self.controller.dataset

    @property
    def session(self) -> ReviewSession | None:
        return self.controller.session

    @property
    def store(self):
        return self.controller.store

    @property
    def settings(self) -> ScoringSettings | None:
        """How the scores under review were made (model, threshold, DN offset)."""
        return self.controller.settings

    @property
    def predictor(self):
        """The model the scores under review were made with."""
        return self.controller.predictor

    @property
    def view(self) -> str:
        return self.canvas.view

    @property
    def gallery(self):
        return self.canvas.gallery

    @property
    def chip_layers(self):
        return self.canvas.chip_layers

    @property
    def canvas_text(self):
        return self.canvas.canvas_text

    @property
    def display(self):
        return self.canvas.display

    @property
    def loader(self) -> ChipLoader | None:
        return self.canvas.loader

    @property
    def loading(self) -> str | None:
        """The chip being loaded for the screen, or None when the current chip is drawn."""
        return self.canvas.loading

    @property
    def scoring_running(self) -> bool:
        """True while a scoring job runs."""
        return self.scoring.running

    @property
    def keys_bound(self) -> bool:
        return self._keys.bound

    def _busy(self) -> bool:
        return self.scoring.running

    def _shown(self) -> bool:
        return self.alive and self.isVisible()

    # ------------------------------------------------------------------ what callers do
    def open_dataset(
        self, path: str | Path, model: str | None = None, *, score: bool = True
    ) -> bool:
        """Open a dataset (and start scoring it unless its scores are on disk already)."""
        self.scoring.dataset_edit.setText(str(path))
        if model is not None:
            self.scoring.choose_model(model)
        return self.scoring.score() if score else True

    def rescore_with(self, model: str | Path) -> bool:
        """Load another model (a name or a checkpoint) and score the open dataset with it."""
        self.scoring.choose_model(model)
        return self.scoring.score()

    def set_view(self, view: str, *, force: bool = False) -> None:
        """Show the ``gallery``, the chip ``side by side`` or its ``layers``."""
        self.canvas.set_view(view, force=force)

    def give_keys_back(self) -> None:
        """Take the keyboard focus from a text field, so that the review keys (which
        reach napari through the dock) work again."""
        self.setFocus()

    # ------------------------------------------------------------------ the keys
    def run(self, name: str) -> None:
        """Run the action ``name`` (a key, a button or a napari command)."""
        if not self.alive:
            return
        if self.fixes.painting and name not in ("save_paint", "cancel_paint", "help"):
            self.status.show_text(f"Painting a label: {paint_keys_text()}.")
            return
        self._actions[name]()

    def keys_changed(self, _action: str = "") -> None:
        """A key was changed in napari's keyboard preferences: bind the keys in force
        (the old one no longer does anything) and show them."""
        if not self.alive:
            return
        self._keys.set_table(key_table(KEY_ACTIONS))
        self.fixes.set_keys()
        self.decisions.show_keys(self.canvas.in_gallery)
        self.filters.show_keys()
        if self.canvas.help_on:
            self.canvas.show_help()

    # ------------------------------------------------------------------ following the review
    def _on_preparing(self, why: str) -> None:
        """Nothing of the previous review stays live while another one is prepared."""
        self.canvas.end(why)
        self.info.set_text(why)

    def _follow(self, session: ReviewSession | None) -> None:
        """Follow ``session``'s cursor and ordering (and no longer the previous one's)."""
        old, self._session_shown = self._session_shown, session
        if old is not None:
            old.current_changed.disconnect(self._on_current_changed)
            old.order_changed.disconnect(self._on_order_changed)
        self.table.set_session(session)
        if session is not None:
            session.current_changed.connect(self._on_current_changed)
            session.order_changed.connect(self._on_order_changed)

    def _on_session_changed(self, session: ReviewSession | None) -> None:
        """The controller has a new session (or none): draw it."""
        self._follow(session)
        if session is None:
            self.canvas.clear()
            self.info.clear()
            return
        self.filters.set_session(session)
        store = session.store
        if store.merged_from_elsewhere or len(store):
            done, total = session.progress()
            self.status.say(f"Resumed: {done} of {total} chips already decided in {store.path}.")
        self.canvas.start(self.filters.stretch)
        self.retrain.update_estimate()

    def _on_current_changed(self, _chip_id: str | None) -> None:
        self.status.chip_moved()  # "Undid …" was about the chip left behind
        self.canvas.show_current()

    def _on_decided(self, chip_id: str, _decision: str) -> None:
        self.table.mark(chip_id)  # one row, not the whole table
        self._schedule_info()
        self.canvas.prefetch()

    def _on_rows_changed(self, *_) -> None:
        self.table.mark_all()
        self._schedule_info()
        self.canvas.prefetch()
        self.filters.show_filter(self.controller.session)  # an undo may lift the filter

    def _on_order_changed(self) -> None:
        self._on_rows_changed()
        self.canvas.follow_order()

    def _on_labels_changed(self, chip_ids: list[str]) -> None:
        """A fix, its undo or another blocklist changed these chips' labels: their rows
        (label share, IoU) and their loaded views."""
        self.table.mark(*chip_ids)
        self._schedule_info()
        self.canvas.labels_changed(chip_ids)

    def _on_view_changed(self, view: str) -> None:
        self.filters.show_view(view)
        self.decisions.show_keys(self.canvas.in_gallery)

    def _on_filter_changed(self, flag: str | None, undecided_only: bool) -> None:
        if self.controller.session is not None:
            self.controller.set_view(flag=flag, undecided_only=undecided_only)
            self.canvas.show_current()

    def _on_stretch_chosen(self, stretch: str) -> None:
        self.canvas.set_stretch(stretch)
        self.status.show_text(f"True colour: {stretch} stretch.")

    def _on_oof_reviewed(self, checkpoint: Path, message: str) -> None:
        self.scoring.show_model(checkpoint)
        self.status.say(message)

    def _schedule_info(self, *_) -> None:
        if not self._info_pending:
            self._info_pending = True
            QTimer.singleShot(INFO_MS, self._update_info)

    def _update_info(self) -> None:
        """The table, the panel's text and the canvas's badge, once the canvas is drawn."""
        self._info_pending = False
        if not self.alive:
            return
        self.table.update_rows()
        s = self.controller.session
        if s is None:
            return
        loading, error = self.canvas.chip_state()
        self.info.show_chip(s, loading=loading, error=error)
        self.canvas.update_badge()

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
        self.fixes.close()
        self.canvas.close()  # the panel's layers leave with it
        self._follow(None)
        self._teardown()

    def _teardown(self, *_) -> None:
        self.alive = False
        shortcuts.detach(self)
        self.scoring.shutdown()
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

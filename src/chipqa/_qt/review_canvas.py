"""What the review puts on napari's canvas: the current chip, or a page of chips.

:class:`ReviewCanvas` owns the canvas side of the Chip QA panel: the chip's layers
(:class:`~chipqa._qt.chip_layers.ChipLayers`, drawn as the background loader makes a
chip ready by :class:`~chipqa._qt.chip_display.ChipDisplay`), the gallery
(:class:`~chipqa._qt.gallery.GalleryView`), the text over the canvas (the decision
badge, a note, the keys help) and which of the views is shown. It reads the review
from the :class:`~chipqa.review.controller.ReviewController` and never writes it: it
follows the session's cursor, and the panel's widgets ask it to change view or stretch.
The GUI thread never waits for a chip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qtpy.QtCore import QObject, QTimer, Signal

from chipqa._qt.chip_display import ChipDisplay
from chipqa._qt.chip_layers import (
    DECISION_COLOURS,
    GALLERY,
    LAYERS,
    SIDE_BY_SIDE,
    VIEWS,
    CanvasText,
    ChipLayers,
)
from chipqa._qt.gallery import GalleryView
from chipqa._qt.keys import help_text
from chipqa.review import ChipLoader
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.table import scored_threshold

if TYPE_CHECKING:
    import napari

    from chipqa.review.controller import ReviewController

PREFETCH = 4
"""Chips read ahead of the current one in single-chip review."""


class ReviewCanvas(QObject):
    """The review's views on the canvas: ``side by side``, ``layers`` or ``gallery``.

    Signals:
        view_changed(view): another view is shown.
        text(html): the panel's chip text says this until it is brought up to date
            (a chip still loading, no chip matching the filters).
        shown(): the current chip or page is on the canvas; the panel's text follows.
    """

    view_changed = Signal(str)
    text = Signal(str)
    shown = Signal()

    def __init__(
        self,
        viewer: napari.Viewer,
        controller: ReviewController,
        taken_keys: Callable[[], set[str]] = set,
        parent=None,
    ):
        super().__init__(parent)
        self.viewer = viewer
        self.controller = controller
        self.view = SIDE_BY_SIDE
        self.help_on = False
        self._taken_keys = taken_keys  # keys the user's own bindings keep (for the help)
        self._recorded = ""  # the last action's note under the badge
        controller.dataset_changed.connect(lambda _project: self.record(""))
        self.canvas_text = CanvasText(viewer)
        self.chip_layers = ChipLayers(viewer, self.canvas_text)
        self.display = ChipDisplay(self.chip_layers, parent=self)
        self.display.drawn.connect(lambda _cid: self.shown.emit())
        self.gallery = GalleryView(viewer, self.canvas_text)

    @property
    def loader(self) -> ChipLoader | None:
        return self.display.loader

    @property
    def in_gallery(self) -> bool:
        return self.view == GALLERY

    @property
    def loading(self) -> str | None:
        """The chip being loaded for the screen, or None when the current chip is drawn."""
        return self.display.chip_id if self.display.loading else None

    # ------------------------------------------------------------------ the session
    def start(self, stretch: str) -> None:
        """Draw the controller's new session: a loader for its chips (with the model and
        the threshold the scores were made with), the view as it was."""
        c = self.controller
        session, settings = c.session, c.settings
        threshold = (
            settings.threshold if settings and settings.threshold is not None
            else scored_threshold(session.scores)
        )  # fmt: skip
        loader = ChipLoader(
            c.dataset,
            c.predictor.predict_numpy if c.predictor else None,
            stretch=stretch,
            threshold=threshold,
            previews=PreviewStore.for_settings(c.dataset.root, settings) if settings else None,
        )
        self.display.set_loader(loader)
        self.gallery.set_source(session, loader)
        self.chip_layers.note("")
        self.set_view(self.view, force=True)

    def end(self, why: str) -> None:
        """No chip on the canvas (another review is being prepared): ``why`` instead."""
        self.chip_layers.note(why)

    def clear(self) -> None:
        """The review is closed: nothing of it stays on the canvas."""
        self.display.set_loader(None)
        self.gallery.set_source(None, None)
        if self.chip_layers.chip_id is not None:
            self.chip_layers.clear("")
        self.gallery.detach()
        self.canvas_text.badge = ""
        self.canvas_text.refresh()

    def record(self, text: str) -> None:
        """Say under the badge what the last action recorded (shown with the badge)."""
        self._recorded = text

    def chip_state(self) -> tuple[bool, str]:
        """Of the current chip on the canvas (single-chip views): still loading, and
        why it cannot be shown ("" when it can, or when another view is shown)."""
        s = self.controller.session
        shown = s is not None and self.display.chip_id == s.current and not self.in_gallery
        return (shown and self.display.loading, self.display.error if shown else "")

    def follow_order(self) -> None:
        """The ordering changed: the gallery shows the current chip's page."""
        s = self.controller.session
        if self.in_gallery and s is not None:
            self.gallery.follow(s.position)

    def labels_changed(self, chip_ids: list[str]) -> None:
        """These chips' labels changed: their loaded views go; the chip on screen is
        drawn again."""
        if self.loader is not None:
            self.loader.forget(chip_ids)
        s = self.controller.session
        if s is not None and s.current in chip_ids:
            self.display.chip_id = None
            self.show_current()

    # ------------------------------------------------------------------ views
    def set_view(self, view: str, *, force: bool = False) -> None:
        """Show the ``gallery``, the chip ``side by side`` or its ``layers``."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}")
        if view == self.view and not force:
            return
        self.view = view
        s = self.controller.session
        if view == GALLERY:
            self.chip_layers.detach()
            self.display.chip_id = None  # a chip arriving now is not drawn
            self.gallery.attach()
            if s is not None:
                self.gallery.state = None
                self.gallery.follow(s.position)
        else:
            self.gallery.detach()
            self.chip_layers.set_mode(view)
        self.view_changed.emit(view)
        self.show_current()
        if self.help_on:
            self.show_help()

    def open_cursor_chip(self) -> None:
        """Open the gallery's cursor chip side by side."""
        cid = self.gallery.cursor_chip
        if cid is not None:
            self.controller.goto(cid)
        self.set_view(SIDE_BY_SIDE)

    def toggle_gallery(self) -> None:
        """The gallery, or (from it) the cursor chip side by side."""
        if self.in_gallery:
            self.open_cursor_chip()
        else:
            self.set_view(GALLERY)

    def toggle_layers(self) -> None:
        """Side by side or layers (single-chip review)."""
        if not self.in_gallery:
            self.set_view(LAYERS if self.view == SIDE_BY_SIDE else SIDE_BY_SIDE)

    def set_stretch(self, stretch: str) -> None:
        """Draw the true colour with another stretch (the chip or page again)."""
        if self.loader is None:
            return
        self.loader.set_stretch(stretch)
        if self.in_gallery:
            self.gallery.state = None
        else:
            self.display.chip_id = None
        self.show_current()

    def show_current(self) -> None:
        """Show the session's current chip (or its page in the gallery): at once when it
        is loaded, else dimmed old pixels and "loading…" until it is."""
        s = self.controller.session
        if s is None or self.loader is None:
            return
        cid = s.current
        if cid is None:
            self.text.emit("No chip matches the filters.")
            return
        if self.in_gallery:
            self.gallery.follow(s.position)
        else:
            moving = self.display.chip_id not in (None, cid)  # not just after a view switch
            self.display.show(cid)
            if moving:
                self.canvas_text.hide_badge()  # never the last chip's over this chip
            if self.display.loading:
                self.text.emit(f"<b>{cid}</b> · loading…")
            self.prefetch()
        # The panel's text follows once the canvas (what the reviewer looks at) is drawn.
        self.shown.emit()

    def prefetch(self) -> None:
        """Read the next chips ahead (single-chip review)."""
        s = self.controller.session
        if not self.in_gallery and s is not None and self.loader is not None:
            self.loader.prefetch(s.upcoming(PREFETCH))

    def refresh_page(self) -> None:
        """Draw the gallery's page again from the session (after an undo)."""
        s = self.controller.session
        if self.in_gallery and s is not None:
            self.gallery.state = None
            self.gallery.follow(s.position)

    # ------------------------------------------------------------------ text over the canvas
    def update_badge(self) -> None:
        """The canvas says what is recorded for the chip on it (single-chip views), or
        the page's tally in the gallery."""
        s = self.controller.session
        if self.in_gallery:
            self.gallery.update_text()
            return
        if s is None or s.current is None:
            return
        cid = s.current
        d = s.store.get(cid)
        state = "no decision yet" if d is None else d.decision.upper()
        if d is not None and d.reason:
            state += f" ({d.reason})"
        badge = f"{cid}: {state}"
        if self._recorded:
            badge += f"\n{self._recorded}"
        self.canvas_text.badge = badge
        self.canvas_text.badge_colour = DECISION_COLOURS.get(d.decision if d else None)
        self.canvas_text.refresh()

    def toggle_help(self) -> None:
        """Show or hide the keys over the canvas."""
        self.help_on = not self.help_on
        if self.help_on:
            self.show_help()
        else:
            self.canvas_text.help_text = ""
            self.canvas_text.refresh()

    def show_help(self) -> None:
        self.canvas_text.help_text = help_text(self.in_gallery, self._taken_keys())
        self.canvas_text.refresh()

    def close(self) -> None:
        """The panel closes: its layers leave the viewer, its loader stops."""
        self.gallery.close()
        self.display.set_loader(None)
        QTimer.singleShot(0, self.chip_layers.detach)
        self.canvas_text.clear()

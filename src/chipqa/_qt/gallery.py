"""The gallery: a page of chips on the canvas, in the review's order and filter.

One napari image layer holds the page picture (:mod:`chipqa._qt.gallery_page`); a page
turn paints the thumbnails the loader has ready and a placeholder for the others, which
are painted as they arrive. The GUI thread never waits for a chip. While the reviewer
looks at a page, the next page's thumbnails are read and that page is painted off
screen, so that turning to it is one copy (unless a decision or a thumbnail changed
meanwhile, in which case it is painted again). The reviewer moves a cursor with
the arrow keys, toggles *block* with a key or a click, and saves the page — *keep* for
every chip of it still undecided — in one write to the blocklist.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QObject, Qt, QTimer, Signal

from chipqa._qt.chip_layers import CanvasText
from chipqa._qt.gallery_page import PageGrid, PageState
from chipqa._qt.keys import key_of
from chipqa.review.session import default_reason

if TYPE_CHECKING:
    import napari

    from chipqa.review import ChipLoader, ReviewSession

GALLERY_LAYER = "chipqa gallery"
NEXT_PAGE_DELAY_MS = 150


class GalleryView(QObject):
    """The gallery layer and the page on it.

    Signals:
        clicked(k): cell ``k`` was clicked (not dragged) with the gallery layer selected.
        painted(page): every cell of the page on screen has its thumbnail.
        cursor_moved(position): the arrow keys moved the cursor to this position of the
            ordering.
    """

    clicked = Signal(int)
    painted = Signal(int)
    cursor_moved = Signal(int)
    _arrived = Signal(object, object)  # from loader threads, delivered queued
    _next_arrived = Signal(object)

    def __init__(self, viewer: napari.Viewer, text: CanvasText, grid: PageGrid | None = None):
        super().__init__()
        self.viewer = viewer
        self.text = text
        self.grid = grid or PageGrid()
        self.session: ReviewSession | None = None
        self.loader: ChipLoader | None = None
        self.state: PageState | None = None
        self.layer = None
        self.active = False
        self.on_created: list[Callable[[object], None]] = []
        self._page = None
        self._missing: set[int] = set()
        self._refresh_due = False
        self._arrived.connect(self._on_arrived, Qt.ConnectionType.QueuedConnection)
        # The next page painted off screen: its picture, and what it was painted from.
        self._spare: np.ndarray | None = None
        self._spare_from: tuple | None = None
        self._next: tuple[str, ...] = ()
        self._next_arrived.connect(self._on_next_arrived, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ source & layer
    def set_source(self, session: ReviewSession | None, loader: ChipLoader | None) -> None:
        self.session, self.loader = session, loader
        self.state = None
        self._spare_from, self._next = None, ()

    def _ensure_layer(self) -> None:
        if (
            self.layer is not None
            and self._page is not None
            and self._page.shape == self.grid.shape
        ):
            return
        from napari.layers import Image

        self._page = self.grid.blank()
        if self.layer is None:
            self.layer = Image(self._page, name=GALLERY_LAYER, rgb=True, contrast_limits=(0, 255))
            self.layer.editable = False
            self.layer.mouse_drag_callbacks.append(self._on_mouse)
            for callback in self.on_created:
                callback(self.layer)
        else:
            self.layer.data = self._page

    def attach(self) -> None:
        """Put the gallery on the canvas (the chip layers are taken out by the caller)."""
        self._ensure_layer()
        self.active = True
        if self.layer not in self.viewer.layers:
            self.viewer.layers.append(self.layer)
        self.viewer.layers.selection.active = self.layer
        self.viewer.reset_view()

    def detach(self) -> None:
        self.active = False
        if self.layer is not None and self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)

    def close(self) -> None:
        """Take the layer out and drop its mouse callback (the panel is closing)."""
        self.detach()
        if self.layer is not None and self._on_mouse in self.layer.mouse_drag_callbacks:
            self.layer.mouse_drag_callbacks.remove(self._on_mouse)

    # ------------------------------------------------------------------ what is on a chip
    def stored(self, chip_id: str) -> tuple[str, str] | None:
        d = self.session.store.get(chip_id) if self.session is not None else None
        return None if d is None else (d.decision, d.reason)

    def why(self, chip_id: str | None) -> str:
        """Why the chip ranks where it does (the scores' ``why``) when a detector makes
        it unusual, else "" (a caption has no room for "nothing unusual")."""
        if chip_id is None or self.session is None:
            return ""
        try:
            row = self.session.row(chip_id)
        except KeyError:
            return ""
        return str(row.get("why") or "") if row.get("detector") else ""

    def label_share(self, chip_id: str | None) -> float | None:
        """The cloud share of the chip's label in force (NaN: no label; None: unknown)."""
        if chip_id is None or self.session is None:
            return None
        try:
            value = self.session.row(chip_id).get("label_cloud_fraction")
            return float("nan") if value is None or value == "" else float(value)
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def complete(self) -> bool:
        """A page is shown and every cell of it has its thumbnail."""
        return self.state is not None and not self._missing

    @property
    def refresh_due(self) -> bool:
        """A repaint is waiting to reach the screen."""
        return self._refresh_due

    @property
    def cursor_chip(self) -> str | None:
        s = self.state
        return s.chips[s.cursor] if s is not None and s.chips else None

    # ------------------------------------------------------------------ pages
    def show_page(self, index: int, cursor: int = 0) -> None:
        """Show page ``index`` of the session's ordering with the cursor on cell ``cursor``."""
        s = self.session
        if s is None:
            return
        n = self.grid.per_page
        index = min(max(index, 0), s.page_count(n) - 1)
        chips = s.page(index, n)
        self.state = PageState(chips, index=index, cursor=min(cursor, max(len(chips) - 1, 0)))
        if not self._show_spare():
            self._paint_all()
        if self.loader is not None:  # the next two pages, while the reviewer looks
            for cid in s.page(index + 2, n):
                self.loader.request_thumbnail(cid, self.grid.size)
            self._next = tuple(s.page(index + 1, n))
            # Painted after this page is drawn, not before.
            QTimer.singleShot(NEXT_PAGE_DELAY_MS, lambda c=self._next: self._on_next_arrived(c))

    def show_chips(self, chips: list[str], title: str) -> None:
        """Show chips that are not a page of the ordering (a bulk rule's spot check)."""
        self.state = PageState(chips[: self.grid.per_page], title=title, sample=True)
        self._paint_all()

    def follow(self, position: int) -> None:
        """Show the page and cursor of position ``position`` of the ordering."""
        n = self.grid.per_page
        index, cursor = divmod(max(position, 0), n)
        st = self.state
        if st is not None and not st.sample and st.index == index:
            current = self.session.page(index, n) if self.session is not None else []
            if current == st.chips:
                if st.cursor != cursor:
                    old, st.cursor = st.cursor, min(cursor, len(st.chips) - 1)
                    self.repaint(old, st.cursor)
                return
        self.show_page(index, cursor)

    def _thumb(self, k: int, cid: str):
        if self.loader is None:
            return None
        fut = self.loader.request_thumbnail(cid, self.grid.size)
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            return fut.result()
        token = (id(self.state), k, cid)
        fut.add_done_callback(lambda f, t=token: self._deliver(t, f))
        return None

    def _deliver(self, token, fut: Future) -> None:
        try:
            self._arrived.emit(token, fut)
        except RuntimeError:  # deleted meanwhile (the viewer closed)
            pass

    def _on_arrived(self, token, fut: Future) -> None:
        st = self.state
        state_id, k, cid = token
        if st is None or id(st) != state_id or k >= len(st.chips) or st.chips[k] != cid:
            return
        if fut.cancelled() or fut.exception() is not None:
            return
        self._paint(k, fut.result())
        self._missing.discard(k)
        self._schedule_refresh()
        if not self._missing:
            self.painted.emit(st.index)

    # ------------------------------------------------------------------ the next page
    def _painted_from(self, chips: tuple[str, ...]) -> tuple | None:
        """What a page of ``chips`` with the cursor on the first is painted from: the
        thumbnails' futures and the written decisions (None while a thumbnail is out)."""
        futures = tuple(self.loader.request_thumbnail(c, self.grid.size) for c in chips)
        if not all(f.done() and not f.cancelled() and f.exception() is None for f in futures):
            return None
        return chips, futures, tuple(self.stored(c) for c in chips), self.grid.shape

    def _prepare_next(self, chips: tuple[str, ...]) -> None:
        """Paint the page of ``chips`` off screen once its thumbnails are in."""
        if not chips or self.loader is None:
            return
        for cid in chips:
            fut = self.loader.request_thumbnail(cid, self.grid.size)
            if not fut.done():  # try again when it is in
                fut.add_done_callback(lambda _f, c=chips: self._deliver_next(c))
                return
        source = self._painted_from(chips)
        if source is None or source == self._spare_from:
            return
        spare = self._spare
        if spare is None or spare.shape != self.grid.shape:
            spare = self.grid.blank()
        state = PageState(list(chips))
        for k in range(self.grid.per_page):
            cid = chips[k] if k < len(chips) else None
            self.grid.paint(
                spare,
                k,
                chip_id=cid,
                thumb=source[1][k].result() if cid is not None else None,
                stored=source[2][k] if cid is not None else None,
                pending=None,
                cursor=k == state.cursor,
                label_share=self.label_share(cid),
                why=self.why(cid),
            )
        self._spare, self._spare_from = spare, source

    def _deliver_next(self, chips: tuple[str, ...]) -> None:
        try:
            self._next_arrived.emit(chips)
        except RuntimeError:  # deleted meanwhile (the viewer closed)
            pass

    def _on_next_arrived(self, chips: tuple[str, ...]) -> None:
        if chips == self._next and self.active:
            self._prepare_next(chips)

    def _show_spare(self) -> bool:
        """Show the page painted off screen if it is this page, as it would be painted
        now; False when it must be painted."""
        st = self.state
        if self._spare_from is None or self.loader is None or st.cursor != 0 or st.sample:
            return False
        chips = tuple(st.chips)
        if chips != self._spare_from[0] or self._painted_from(chips) != self._spare_from:
            return False
        self._ensure_layer()
        np.copyto(self._page, self._spare)
        self._missing = set()
        self._after_paint()
        return True

    def _paint(self, k: int, thumb=None) -> None:
        st = self.state
        cid = st.chips[k] if k < len(st.chips) else None
        self.grid.paint(
            self._page,
            k,
            chip_id=cid,
            thumb=thumb,
            stored=self.stored(cid) if cid is not None else None,
            pending=st.pending.get(cid) if cid is not None else None,
            cursor=k == st.cursor and not st.sample,
            label_share=self.label_share(cid),
            why=self.why(cid),
        )

    def _paint_all(self) -> None:
        self._ensure_layer()
        st = self.state
        self._missing = set()
        for k in range(self.grid.per_page):
            thumb = None
            if k < len(st.chips):
                thumb = self._thumb(k, st.chips[k])
                if thumb is None:
                    self._missing.add(k)
            self._paint(k, thumb)
        self._after_paint()

    def _after_paint(self) -> None:
        self._refresh()
        # The line over the canvas follows once the page is drawn (laying out text costs
        # napari as much as the page itself).
        QTimer.singleShot(40, self.update_text)
        if not self._missing:
            self.painted.emit(self.state.index)

    def repaint(self, *cells: int) -> None:
        """Paint cells again (a cursor move, a toggle, a decision written)."""
        st = self.state
        if st is None or self._page is None:
            return
        for k in cells:
            if 0 <= k < len(st.chips):
                cid = st.chips[k]
                fut = self.loader.request_thumbnail(cid, self.grid.size) if self.loader else None
                ok = fut is not None and fut.done() and not fut.cancelled()
                self._paint(k, fut.result() if ok and fut.exception() is None else None)
        self._refresh()
        self.update_text()

    def _schedule_refresh(self) -> None:
        if not self._refresh_due:
            self._refresh_due = True
            QTimer.singleShot(0, self._refresh)

    def _refresh(self) -> None:
        self._refresh_due = False
        if self.layer is not None and self.active:
            self.layer.refresh()

    def update_text(self) -> None:
        st, s = self.state, self.session
        if st is None or s is None or not self.active:
            return
        if st.sample:
            self.text.badge = st.title
        else:
            n = self.grid.per_page
            blocks = sum(1 for d, _ in st.pending.values() if d == "block")
            undecided = sum(1 for c in st.chips if self.stored(c) is None and c not in st.pending)
            self.text.badge = (
                f"page {st.index + 1} of {s.page_count(n)} · {len(st.chips)} chips · "
                f"{blocks} to block, {undecided} undecided "
                f"({key_of('keep') or 'Keep'} keeps them and saves the page)"
            )
        self.text.badge_colour = (1.0, 1.0, 1.0, 1.0)
        self.text.refresh()

    # ------------------------------------------------------------------ cursor & toggles
    def move(self, dx: int, dy: int) -> None:
        st = self.state
        if st is None or st.sample or not st.chips:
            return
        old = st.move(dx, dy, self.grid.cols)
        if old != st.cursor:
            self.repaint(old, st.cursor)
            self.cursor_moved.emit(st.index * self.grid.per_page + st.cursor)

    def click(self, k: int) -> int | None:
        """Cell ``k`` was clicked: the cursor goes there and *block* is toggled. Returns
        its position in the ordering (None: not a cell of a page)."""
        st = self.state
        if st is None or st.sample or not 0 <= k < len(st.chips):
            return None
        old, st.cursor = st.cursor, k
        self.repaint(old)
        self.toggle("block", None, k)
        return st.index * self.grid.per_page + k

    def toggle(self, decision: str, reason: str | None = None, k: int | None = None) -> None:
        """Toggle ``decision`` on cell ``k`` (default: the cursor); a block's reason
        defaults to the chip's own flag (no-cloud vs all-cloud label)."""
        st = self.state
        if st is None or st.sample or not st.chips:
            return
        k = st.cursor if k is None else k
        if not 0 <= k < len(st.chips):
            return
        cid = st.chips[k]
        any_reason = reason is None
        if reason is None:
            row = self.session.row(cid)
            reason = (
                default_reason(row.get("flags"), row.get("detector")) if decision == "block" else ""
            )
        st.toggle(k, decision, reason, self.stored(cid), any_reason=any_reason)
        self.repaint(k)

    def decisions(self, *, keep_rest: bool) -> list[tuple[str, str, str]]:
        """What saving the page writes (``keep_rest``: *keep* for the undecided too)."""
        st = self.state
        if st is None or st.sample:
            return []
        stored = {c: self.stored(c) for c in st.chips}
        return st.items(stored) if keep_rest else st.pending_only(stored)

    def _on_mouse(self, layer, event):
        """A click (no drag) on a cell: ``clicked(k)``; a drag pans as usual."""
        start = event.position
        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = True
            yield
        if dragged or self.state is None:
            return
        y, x = layer.world_to_data(start)[-2:]
        k = self.grid.cell_at(y, x)
        if k is not None and k < len(self.state.chips):
            self.clicked.emit(k)

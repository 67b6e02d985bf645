"""How the canvas and the panel follow the review session.

The session announces a new current chip, a decision, a new ordering or filter; the
canvas follows at once (the chip, or the page in the gallery) and the panel's text and
table and the canvas's decision badge :data:`INFO_MS` later, so that what the reviewer
looks at is drawn first (under a software renderer, painting the panel cost as much as
the chip, and so did laying out the badge's text).

Mixed into :class:`~chipqa._qt.review_widget.ChipQAWidget`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt, QTimer

from chipqa._qt.chip_layers import GALLERY

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget

PREFETCH = 4
"""Chips read ahead of the current one in single-chip review."""
INFO_MS = 80
"""The panel's text and table follow this long after a chip or a page is shown."""


class PanelSync:
    """Mixed into :class:`~chipqa._qt.review_widget.ChipQAWidget`."""

    def _on_current_changed(self: ChipQAWidget, _chip_id: str | None) -> None:
        if self._status_until_moved:  # "Undid …" was about the chip left behind
            self._status_until_moved = False
            self.status.setText("")
        self.show_current()

    def _on_decided(self: ChipQAWidget, chip_id: str, _decision: str) -> None:
        self._decided_rows.add(chip_id)  # one row, not the whole table
        self._schedule_info()
        if self.view != GALLERY and self.session is not None and self.loader is not None:
            self.loader.prefetch(self.session.upcoming(PREFETCH))

    def _on_order_changed(self: ChipQAWidget) -> None:
        self._on_table_changed()
        if self.view == GALLERY and self.session is not None:
            self.gallery.follow(self.session.position)

    def _on_table_changed(self: ChipQAWidget, *_) -> None:
        self._table_stale = True
        self._schedule_info()
        if self.view != GALLERY and self.session is not None and self.loader is not None:
            self.loader.prefetch(self.session.upcoming(PREFETCH))

    def show_current(self: ChipQAWidget) -> None:
        """Show the session's current chip (or its page in the gallery): at once when it
        is loaded, else dimmed old pixels and "loading…" until it is (the GUI thread never
        waits for it)."""
        if self.session is None or self.loader is None:
            return
        cid = self.session.current
        if cid is None:
            self.chip_label.setText("No chip matches the filters.")
            return
        if self.view == GALLERY:
            self.gallery.follow(self.session.position)
        else:
            moving = self.display.chip_id not in (None, cid)  # not just after a view switch
            self.display.show(cid)
            if moving:
                self.canvas_text.hide_badge()  # never the last chip's over this chip
            if self.display.loading:
                self.chip_label.setText(f"<b>{cid}</b> · loading…")
            self.loader.prefetch(self.session.upcoming(PREFETCH))
        # The panel's text and table follow once the canvas (what the reviewer is looking
        # at) is drawn: painting them first cost as much as drawing the chip.
        self._schedule_info()

    def _schedule_info(self: ChipQAWidget) -> None:
        if not self._info_pending:
            self._info_pending = True
            QTimer.singleShot(INFO_MS, self._update_info)

    def _update_info(self: ChipQAWidget) -> None:
        self._info_pending = False
        if not self.alive:
            return
        rows, self._decided_rows = self._decided_rows, set()
        if self._table_stale:
            self._table_stale = False
            self.table_model.refresh()
        for cid in rows:
            self.table_model.chip_changed(cid)
        s = self.session
        if s is None or s.current is None:
            return
        from chipqa._qt.review_layout import chip_info_html, progress_html

        self.progress_label.setText(progress_html(s))
        cid = s.current
        row = s.row(cid)
        text = chip_info_html(s, cid)
        shown = self.display.chip_id == cid and self.view != GALLERY
        if shown and self.display.loading:
            text += "<br><i>loading…</i>"
        error = row.get("error") or (self.display.error if shown else "")
        if error:
            text += (
                f"<br><span style='color:#ff6b6b'>cannot be shown: {error}</span>"
                "<br>Block it (b) if the chip is broken, or fix its files and open the "
                "dataset again."
            )
        self.chip_label.setText(text)
        self.chip_label.setToolTip(text)
        self._update_badge()
        if 0 <= s.position < len(s.order):
            self.table.selectRow(s.position)
            self.table.scrollTo(self.table_model.index(s.position, 0))

    def _sync_sort_indicator(self: ChipQAWidget) -> None:
        """The table's sort arrow shows the ordering the rows really have."""
        from chipqa._qt.scores_table import column_of

        s = self.session
        col = column_of(s.sort_by) if s is not None else -1
        order = Qt.SortOrder.AscendingOrder if s and s.ascending else Qt.SortOrder.DescendingOrder
        header = self.table.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicatorShown(col >= 0)
        if col >= 0:
            header.setSortIndicator(col, order)
        header.blockSignals(False)

    def _on_table_clicked(self: ChipQAWidget, index) -> None:
        cid = self.table_model.chip_at(index.row())
        if cid is not None and self.session is not None:
            self.session.goto(cid)

    def _on_filter_changed(self: ChipQAWidget, *_) -> None:
        if self.session is None:
            return
        self.session.set_view(
            flag=self.flag_combo.currentData(), undecided_only=self.undecided_check.isChecked()
        )
        self.show_current()

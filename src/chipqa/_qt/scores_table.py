"""The scores table: a Qt table model over the review session's current ordering,
and the view that shows it in the panel.

The decision is the second column, so it is on screen at any panel width, and a decided
row is tinted in its decision's colour. A click on a row makes its chip the current
one; a click on a header sorts the session's ordering (what next / previous walk).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QHeaderView, QTableView

from chipqa.review.session import ReviewSession, as_number, fraction_text, score_text

COLUMNS = (
    ("chip_id", "chip"),
    ("decision", "decision"),
    ("suspicion", "suspicion"),
    ("iou", "IoU"),
    ("label_cloud_fraction", "label"),
    ("pred_cloud_fraction", "model"),
    ("why", "why"),
    ("flags", "flags"),
)
ROW_COLOURS = {
    "keep": QColor(60, 140, 60, 110),
    "block": QColor(190, 50, 50, 130),
    "unsure": QColor(200, 150, 40, 120),
    "fix": QColor(50, 130, 200, 120),
}


_ROOT = QModelIndex()


def _number(value: object) -> str:
    f = as_number(value)
    return "" if f is None else f"{f:.3f}"


def column_of(key: str) -> int:
    """The table column showing scores column ``key`` (-1 when it is not shown)."""
    return next((i for i, (k, _) in enumerate(COLUMNS) if k == key), -1)


class ScoresTableModel(QAbstractTableModel):
    """Rows are ``session.order`` (what next/previous walk through), so the table and the
    keyboard always agree. Sorting a column changes the session's ordering (through
    ``sort(key, ascending)``: the review controller's, in the panel)."""

    def __init__(
        self,
        session: ReviewSession | None = None,
        sort: Callable[[str, bool], object] | None = None,
    ):
        super().__init__()
        self.session = session
        self._sort = sort or (lambda key, asc: self.session.set_view(sort_by=key, ascending=asc))
        self._text: dict[str, tuple[str, ...]] = {}

    def set_session(self, session: ReviewSession | None) -> None:
        self.beginResetModel()
        self.session = session
        self._text = {}
        self.endResetModel()

    def _row_text(self, cid: str) -> tuple[str, ...]:
        """Display strings of a chip's fixed columns, made once (Qt asks for them often)."""
        text = self._text.get(cid)
        if text is None:
            row = self.session.row(cid)
            flags = (
                "unreadable" if row.get("error") else str(row.get("flags") or "").replace(";", " ")
            )
            text = (
                cid,
                "",
                score_text(row.get("suspicion")),
                _number(row.get("iou")),
                fraction_text(row.get("label_cloud_fraction")),
                fraction_text(row.get("pred_cloud_fraction")),
                str(row.get("why") or ""),
                flags,
            )
            self._text[cid] = text
        return text

    def refresh(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def chip_changed(self, chip_id: str) -> None:
        """Redraw one chip's row (its decision or label changed; the ordering did not)."""
        self._text.pop(chip_id, None)
        if self.session is None:
            return
        try:
            row = self.session.order.index(chip_id)
        except ValueError:
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def rowCount(self, parent=_ROOT) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() or self.session is None else len(self.session.order)

    def columnCount(self, parent=_ROOT) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def chip_at(self, row: int) -> str | None:
        if self.session is None or not 0 <= row < len(self.session.order):
            return None
        return self.session.order[row]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        cid = self.chip_at(index.row())
        if cid is None:
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            d = self.session.store.get(cid)
            return None if d is None else QBrush(ROW_COLOURS.get(d.decision, QColor(0, 0, 0, 0)))
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        col = index.column()
        key = COLUMNS[col][0]
        if key == "decision":
            d = self.session.store.get(cid)
            if d is None:
                return ""
            return f"{d.decision} ({d.reason})" if d.reason else d.decision
        if key == "flags" and role == Qt.ItemDataRole.ToolTipRole:
            row = self.session.row(cid)
            return str(row.get("error") or row.get("flags") or "")
        return self._row_text(cid)[col]

    def sort(self, column: int, order=Qt.SortOrder.AscendingOrder) -> None:
        if self.session is None:
            return
        key = COLUMNS[column][0]
        if key == "decision":
            return
        self.beginResetModel()
        self._sort(key, order == Qt.SortOrder.AscendingOrder)
        self.endResetModel()


class ScoresTable(QTableView):
    """The table of the chips listed, in the session's order, following its cursor.

    Changes are drawn lazily: :meth:`mark` and :meth:`mark_all` note what changed and
    :meth:`update_rows` (called by the panel once the canvas is drawn) redraws it.

    Signals:
        chip_clicked(chip_id): a row was clicked.
    """

    chip_clicked = Signal(str)

    def __init__(self, sort: Callable[[str, bool], object] | None = None):
        super().__init__()
        self.table_model = ScoresTableModel(sort=sort)
        self.setModel(self.table_model)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the review keys stay the viewer's
        self.clicked.connect(self._on_clicked)
        self._changed: set[str] = set()
        self._stale = False

    def set_session(self, session: ReviewSession | None) -> None:
        self._changed, self._stale = set(), False
        self.table_model.set_session(session)
        if session is not None:
            self.resizeColumnsToContents()  # once: not on every change (slow)
            self.sync_sort_indicator()

    def mark(self, *chip_ids: str) -> None:
        """These chips' rows changed (a decision, a fix)."""
        self._changed.update(chip_ids)

    def mark_all(self, *_) -> None:
        """The rows changed (another ordering or filter, an undo)."""
        self._stale = True

    def update_rows(self) -> None:
        """Redraw what changed since the last call, and select the current chip's row."""
        rows, self._changed = self._changed, set()
        if self._stale:
            self._stale = False
            self.table_model.refresh()
        for cid in rows:
            self.table_model.chip_changed(cid)
        s = self.table_model.session
        if s is not None and 0 <= s.position < len(s.order):
            self.selectRow(s.position)
            self.scrollTo(self.table_model.index(s.position, 0))

    def sync_sort_indicator(self) -> None:
        """The sort arrow shows the ordering the rows really have."""
        s = self.table_model.session
        col = column_of(s.sort_by) if s is not None else -1
        order = Qt.SortOrder.AscendingOrder if s and s.ascending else Qt.SortOrder.DescendingOrder
        header = self.horizontalHeader()
        header.blockSignals(True)
        header.setSortIndicatorShown(col >= 0)
        if col >= 0:
            header.setSortIndicator(col, order)
        header.blockSignals(False)

    def _on_clicked(self, index) -> None:
        cid = self.table_model.chip_at(index.row())
        if cid is not None:
            self.chip_clicked.emit(cid)

"""A Qt table model over the review session's current ordering.

The decision is the second column, so it is on screen at any panel width, and a decided
row is tinted in its decision's colour.
"""

from __future__ import annotations

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtGui import QBrush, QColor

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
    keyboard always agree. Sorting a column changes the session's ordering."""

    def __init__(self, session: ReviewSession | None = None):
        super().__init__()
        self.session = session
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
        """Redraw one chip's row (its decision changed; the ordering did not)."""
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
        self.session.set_view(sort_by=key, ascending=order == Qt.SortOrder.AscendingOrder)
        self.endResetModel()

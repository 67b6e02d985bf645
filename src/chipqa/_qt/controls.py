"""Small controls the panel's widgets share.

No control but a text field takes the keyboard focus: after a click on a button, a box
or the table the review keys still go to the viewer (a focused combo box would take
``n`` as "the item starting with n", a focused button would take Space as a click).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QPushButton

NO_FOCUS = Qt.FocusPolicy.NoFocus


def confirm_dialog(parent, title: str, text: str) -> bool:
    """Ask yes / no (the default is no)."""
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(
        parent,
        title,
        text,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def button(text: str, slot: Callable[[], object], tip: str = "") -> QPushButton:
    """A button that never takes the keyboard focus (Space would click it)."""
    b = QPushButton(text)
    b.setFocusPolicy(NO_FOCUS)
    if tip:
        b.setToolTip(tip)
    b.clicked.connect(lambda _=False: slot())
    return b


class WrappingLabel(QLabel):
    """A word-wrapped label never shorter than its text needs at its width (nor than
    ``least`` pixels)."""

    def __init__(self, text: str, least: int):
        super().__init__(text)
        self.setWordWrap(True)
        self._least = least
        self._fit()

    def _fit(self) -> None:
        need = self.heightForWidth(max(self.width(), 1))
        self.setMinimumHeight(max(self._least, need))

    def setText(self, text: str) -> None:  # noqa: N802 (Qt API)
        super().setText(text)
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit()

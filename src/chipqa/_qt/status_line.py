"""The panel's status line: what the last action did, or why it could not.

Every child of the Chip QA panel reports through one :class:`StatusLine` (a message
that is an error is red and also shown as a napari notification). A message about
the chip on screen (``Undid …``) goes when the reviewer moves to another chip.
"""

from __future__ import annotations

from chipqa._qt.controls import WrappingLabel

ERROR_STYLE = "color: #ff6b6b;"


class StatusLine(WrappingLabel):
    """The status line under the review controls (at least three lines tall, so the
    panel does not jump as messages come and go)."""

    def __init__(self, text: str = ""):
        super().__init__(text, 0)
        line = self.fontMetrics().lineSpacing()
        self._least = 3 * line + 4
        self._fit()
        self._until_moved = False

    def say(self, text: str, error: bool = False) -> None:
        """Show a message here and as a napari notification."""
        self.show_text(text, error=error)
        from napari.utils.notifications import show_error, show_info

        (show_error if error else show_info)(text)

    def show_text(self, text: str, *, error: bool = False, until_moved: bool = False) -> None:
        """Show ``text`` here only (``until_moved``: it is about the chip on screen and
        goes when another chip is shown)."""
        self.setText(text)
        self.setStyleSheet(ERROR_STYLE if error else "")
        self._until_moved = until_moved

    def chip_moved(self) -> None:
        """Another chip is current: a message about the one left behind goes."""
        if self._until_moved:
            self._until_moved = False
            self.setText("")

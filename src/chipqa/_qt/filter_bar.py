"""The row of boxes over the scores table: which chips are listed, and how they look.

:class:`FilterBar` picks the flag and "undecided only" filter, the view (gallery, side
by side, layers) and the true-colour stretch. It turns a change into a signal and shows
what is in force; the panel connects the signals to the session and the canvas.
No box takes the keyboard focus, so the review keys still reach the viewer.
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QWidget

from chipqa._qt.chip_layers import SIDE_BY_SIDE, VIEWS
from chipqa._qt.controls import NO_FOCUS
from chipqa._qt.keys import key_of
from chipqa.render import STRETCHES
from chipqa.review.session import ReviewSession
from chipqa.scoring import FLAG_DESCRIPTIONS


def _key(action: str) -> str:
    return key_of(action) or "none (set one in Preferences → Shortcuts)"


class FilterBar(QWidget):
    """Flag filter, "undecided only", view and stretch.

    Signals:
        filter_changed(flag, undecided_only): another filter was picked (flag None: all).
        view_chosen(view): another view was picked.
        stretch_chosen(stretch): another true-colour stretch was picked.
    """

    filter_changed = Signal(object, bool)
    view_chosen = Signal(str)
    stretch_chosen = Signal(str)

    def __init__(self):
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.flag_combo = QComboBox()
        self.flag_combo.addItem("all flags", None)
        self.flag_combo.setFocusPolicy(NO_FOCUS)
        self.flag_combo.currentIndexChanged.connect(self._on_filter)
        self.undecided_check = QCheckBox("undecided only")
        self.undecided_check.setFocusPolicy(NO_FOCUS)
        self.undecided_check.toggled.connect(self._on_filter)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(VIEWS))
        self.mode_combo.setCurrentText(SIDE_BY_SIDE)
        self.mode_combo.setFocusPolicy(NO_FOCUS)
        self.mode_combo.currentTextChanged.connect(self.view_chosen)
        self.stretch_combo = QComboBox()
        self.stretch_combo.addItems(list(STRETCHES))
        self.stretch_combo.setFocusPolicy(NO_FOCUS)
        self.stretch_combo.currentTextChanged.connect(self.stretch_chosen)
        row.addWidget(self.flag_combo, 1)
        row.addWidget(self.undecided_check)
        row.addWidget(self.mode_combo)
        row.addWidget(self.stretch_combo)
        self.show_keys()

    @property
    def stretch(self) -> str:
        return self.stretch_combo.currentText()

    def _on_filter(self, *_) -> None:
        self.filter_changed.emit(self.flag_combo.currentData(), self.undecided_check.isChecked())

    def set_session(self, session: ReviewSession) -> None:
        """List the flags of a new session's chips; all chips listed."""
        combo = self.flag_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("all flags", None)
        for f in session.flags_present:
            combo.addItem(f, f)
            tip = FLAG_DESCRIPTIONS.get(f, "")
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        combo.blockSignals(False)
        self.undecided_check.blockSignals(True)
        self.undecided_check.setChecked(False)
        self.undecided_check.blockSignals(False)

    def show_filter(self, session: ReviewSession | None) -> None:
        """Show the filter in force (an undo of a chip the filter hides lifts it)."""
        if session is None:
            return
        i = self.flag_combo.findData(session.flag)
        for box, set_it in (
            (self.flag_combo, lambda: self.flag_combo.setCurrentIndex(max(i, 0))),
            (self.undecided_check, lambda: self.undecided_check.setChecked(session.undecided_only)),
        ):
            box.blockSignals(True)
            set_it()
            box.blockSignals(False)

    def show_view(self, view: str) -> None:
        """Show ``view`` as the one in force (without announcing it)."""
        if self.mode_combo.currentText() != view:
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentText(view)
            self.mode_combo.blockSignals(False)

    def next_stretch(self) -> None:
        """Pick the next stretch (the ``c`` key)."""
        i = STRETCHES.index(self.stretch)
        self.stretch_combo.setCurrentText(STRETCHES[(i + 1) % len(STRETCHES)])

    def show_keys(self) -> None:
        """The keys in force, in the tooltips."""
        self.mode_combo.setToolTip(
            f"gallery: a page of chips ({_key('open')} opens the cursor chip); "
            f"side by side / layers ({_key('toggle_layers')})"
        )
        self.stretch_combo.setToolTip(
            "true-colour stretch: fixed (reflectance 0–0.3, chips compare) or per chip "
            f"(shows thin cloud over bright chips) — key: {_key('stretch')}"
        )

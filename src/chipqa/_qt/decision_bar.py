"""The decision controls: the block reason, the decision buttons, bulk block and export,
the keys line; and what a decision does in single-chip review.

:class:`DecisionBar` turns *keep*, *block*, *unsure* and *undo* on the chip on screen
into :class:`~chipqa.review.controller.ReviewController` calls and says what was
recorded (in the status line and on the canvas's badge). Its buttons run the review's
actions by name, as the keys do, so a button and its key never differ. The texts that
name a key are set again whenever a key is changed in napari's keyboard preferences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chipqa._qt.controls import NO_FOCUS, WrappingLabel, button
from chipqa._qt.keys import ACTIONS, key_of, keys_help
from chipqa.blocklist.csvformat import BlocklistError
from chipqa.blocklist.store import REASONS
from chipqa.review.session import default_reason

if TYPE_CHECKING:
    from pathlib import Path

    from chipqa._qt.review_canvas import ReviewCanvas
    from chipqa._qt.status_line import StatusLine
    from chipqa.review.controller import ReviewController

FROM_FLAG = "from the chip's flag"
BUTTONS = (
    (
        ("Keep", "keep"),
        ("Block", "block"),
        ("Unsure", "unsure"),
        ("Undo", "undo"),
        ("Next undecided", "next_undecided"),
    ),
    (
        ("Gallery / chip", "open"),
        ("Fix: model's mask", "accept_model"),
        ("Fix: paint", "paint"),
        ("Keys", "help"),
    ),
)


def _key(action: str) -> str:
    return key_of(action) or "none (set one in Preferences → Shortcuts)"


class KeyButton(QPushButton):
    """A button that runs a review action and shows its key in force."""

    def __init__(self, text: str, action: str, run: Callable[[str], object]):
        super().__init__(text)
        self.key_text, self.key_action = text, action
        self.setFocusPolicy(NO_FOCUS)
        self.clicked.connect(lambda _=False: run(action))
        self.show_key()

    def show_key(self) -> None:
        key = key_of(self.key_action)
        self.setText(f"{self.key_text} ({key})" if key else self.key_text)
        what = ACTIONS[self.key_action].single or ACTIONS[self.key_action].gallery
        self.setToolTip(f"{what} — key: {_key(self.key_action)}")


class DecisionBar(QWidget):
    """Block reason, decision buttons, bulk block, export, the keys line.

    Signals:
        bulk_requested(): "Block every chip in this filter…" was pressed.
    """

    bulk_requested = Signal()

    def __init__(
        self,
        controller: ReviewController,
        canvas: ReviewCanvas,
        status: StatusLine,
        run: Callable[[str], object],
        busy: Callable[[], bool] = lambda: False,
    ):
        super().__init__()
        self.controller, self.canvas, self.status = controller, canvas, status
        self._busy = busy
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.reason_combo = QComboBox()
        self.reason_combo.setEditable(True)
        self.reason_combo.addItems([FROM_FLAG, *REASONS])
        row.addWidget(QLabel("Block reason"))
        row.addWidget(self.reason_combo, 1)
        lay.addLayout(row)
        self.key_buttons: list[KeyButton] = []
        for buttons in BUTTONS:
            row = QHBoxLayout()
            for text, action in buttons:
                self.key_buttons.append(KeyButton(text, action, run))
                row.addWidget(self.key_buttons[-1])
            lay.addLayout(row)
        row = QHBoxLayout()
        self.bulk_btn = button("Block every chip in this filter…", self.bulk_requested.emit)
        row.addWidget(self.bulk_btn)
        self.export_btn = button("Export blocklist…", self._on_export)
        row.addWidget(self.export_btn)
        self.export_all = QCheckBox("all decisions")
        self.export_all.setFocusPolicy(NO_FOCUS)
        row.addWidget(self.export_all)
        row.addStretch(1)
        lay.addLayout(row)
        # At least this tall (so the panel does not jump), taller when the text needs it.
        line = self.fontMetrics().lineSpacing()
        self.keys_label = WrappingLabel("", 5 * line + 4)
        self.keys_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.keys_label)
        self.show_keys(gallery=False)

    def show_keys(self, gallery: bool) -> None:
        """Show the keys in force on the buttons, in their tooltips and the keys line."""
        for b in self.key_buttons:
            b.show_key()
        self.reason_combo.setToolTip(
            f"reason written with {_key('block')} / Block: '{FROM_FLAG}' writes "
            "all_cloud_wrong for an all-cloud label, no_cloud_wrong for a no-cloud label, …; "
            "pick one or type your own. Keys "
            + ", ".join(key_of(f"block_{i}") or "–" for i in range(1, len(REASONS) + 1))
            + " write their own reason."
        )
        self.bulk_btn.setToolTip(
            "Blocks the undecided chips the table lists now (after a spot check of a random "
            f"sample and your confirmation); {_key('undo')} takes it back as one step."
        )
        self.keys_label.setText(keys_help(gallery))

    # ------------------------------------------------------------------ decisions
    def need_session(self) -> bool:
        """True when a review is open, else says why not."""
        if self.controller.session is None:
            what = "Scoring is running; wait for it" if self._busy() else "Open a dataset"
            self.status.say(f"{what} (with a usable blocklist) first.", error=True)
            return False
        return True

    def picked_reason(self) -> str:
        """The reason picked in the box ("" for each chip's own flag's)."""
        picked = self.reason_combo.currentText().strip()
        return "" if picked == FROM_FLAG else picked

    def block_reason(self, chip_id: str) -> str:
        """The reason *block* writes: the one picked, or the chip's own flag's."""
        picked = self.picked_reason()
        if picked:
            return picked
        row = self.controller.session.row(chip_id)
        return default_reason(row.get("flags"), row.get("detector"))

    def decide(self, decision: str, reason: str = "") -> None:
        """Record ``decision`` for the chip on screen (the cursor moves on)."""
        if not self.need_session():
            return
        session = self.controller.session
        cid = session.current
        if decision == "block" and cid is not None and not reason:
            reason = self.block_reason(cid)
        try:
            self.controller.decide(decision, reason)
        except BlocklistError as exc:
            self.status.say(f"Not saved: {exc}", error=True)
            return
        if cid is not None:
            what = decision + (f" ({reason})" if reason else "")
            self.canvas.record(f"✓ {what} recorded for {cid}")
            decided, total = session.progress()
            self.status.show_text(f"Recorded {what} for {cid} · {decided}/{total} decided.")

    def undo(self) -> None:
        """Take back the last decision (a page, a bulk rule or a fix as one step)."""
        store = self.controller.store
        try:
            cid = self.controller.undo()  # a fix's label goes back too
        except BlocklistError as exc:
            self.status.say(f"Undo not saved: {exc}", error=True)
            return
        if cid is None:
            if self.controller.session is not None:
                self.status.show_text("Nothing to undo.")
            return
        n = len(getattr(store, "last_undone", None) or [cid])
        more = f" and {n - 1} more" if n > 1 else ""
        self.canvas.record(f"↶ undid the decision on {cid}{more}")
        # About this chip: gone when another is shown.
        self.status.show_text(f"Undid the decision on {cid}{more}.", until_moved=True)
        self.canvas.refresh_page()
        self.canvas.update_badge()

    def next_undecided(self) -> None:
        if self.controller.session is not None and self.controller.next_undecided() is None:
            self.status.say("Every listed chip has a decision.")

    # ------------------------------------------------------------------ export
    def _on_export(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        store = self.controller.store
        if store is None:
            self.status.say("Nothing to export: no blocklist is open.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export blocklist",
            str(store.path.with_name("blocklist_export.csv")),
            "CSV (*.csv)",
        )
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        """Write the blocked chips (all decisions when "all decisions" is ticked)."""
        store = self.controller.store
        if store is None:
            self.status.say("Nothing to export: no blocklist is open.", error=True)
            return None
        try:
            out = store.export(path, blocked_only=not self.export_all.isChecked())
        except BlocklistError as exc:
            self.status.say(str(exc), error=True)
            return None
        self.status.say(f"Exported the blocklist to {out}.")
        return out

"""What the review keys and buttons do, in single-chip review and in the gallery.

Each key of :data:`chipqa._qt.keys.KEY_ACTIONS` runs :meth:`ReviewActions.run` with its
action's name; the action then does what the view on the canvas asks for (``k`` keeps
the chip in single-chip review, and keeps the undecided chips of the page and saves it
in the gallery). When a key is changed in napari's keyboard preferences,
:meth:`ReviewActions.keys_changed` binds the new one and shows it. Nothing here waits
for a chip or a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import (
    DECISION_COLOURS,
    GALLERY,
    LAYERS,
    SIDE_BY_SIDE,
    VIEWS,
)
from chipqa._qt.keys import (
    KEY_ACTIONS,
    PAINT_KEYS,
    dims_step,
    help_text,
    key_table,
    keys_help,
    paint_keys_text,
)
from chipqa.blocklist.csvformat import BlocklistError
from chipqa.blocklist.store import REASONS
from chipqa.render import STRETCHES
from chipqa.review.session import default_reason

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget


def _dialog():
    from qtpy.QtWidgets import QFileDialog

    return QFileDialog


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


class ReviewActions:
    """Mixed into :class:`~chipqa._qt.review_widget.ChipQAWidget`."""

    def _init_actions(self: ChipQAWidget) -> None:
        self.confirm = lambda title, text: confirm_dialog(self, title, text)
        self._help_on = False
        self._recorded = ""
        self._status_until_moved = False
        self.fixer = None
        self._paint_keys = None

    # ------------------------------------------------------------------ dispatch
    def run(self: ChipQAWidget, name: str) -> None:
        """Run the action ``name`` (a key, a button or a napari command)."""
        if not self.alive:
            return
        painting = self.fixer is not None and getattr(self.fixer, "painting", False)
        if painting and name not in ("save_paint", "cancel_paint", "help"):
            self.status.setText(f"Painting a label: {paint_keys_text()}.")
            return
        getattr(self, f"act_{name}")()

    def keys_changed(self: ChipQAWidget, _action: str = "") -> None:
        """A key was changed in napari's keyboard preferences: bind the keys in force
        (the old one no longer does anything) and show them."""
        if not self.alive:
            return
        from chipqa._qt.review_layout import show_keys

        self._keys.set_table(key_table(KEY_ACTIONS))
        if self._paint_keys is not None:
            self._paint_keys.set_table(key_table(PAINT_KEYS))
        show_keys(self)
        if self._help_on:
            self._show_help()

    @property
    def in_gallery(self: ChipQAWidget) -> bool:
        return self.view == GALLERY

    def _need_session(self: ChipQAWidget) -> bool:
        if self.session is None:
            what = "Scoring is running; wait for it" if self.scoring_running else "Open a dataset"
            self.say(f"{what} (with a usable blocklist) first.", error=True)
            return False
        return True

    # ------------------------------------------------------------------ views
    def set_view(self: ChipQAWidget, view: str, *, force: bool = False) -> None:
        """Show the ``gallery``, the chip ``side by side`` or its ``layers``."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}")
        if view == self.view and not force:
            return
        self.view = view
        if self.mode_combo.currentText() != view:
            self.mode_combo.blockSignals(True)
            self.mode_combo.setCurrentText(view)
            self.mode_combo.blockSignals(False)
        self.keys_label.setText(keys_help(view == GALLERY))
        if view == GALLERY:
            self.chip_layers.detach()
            self.display.chip_id = None  # a chip arriving now is not drawn
            self.gallery.attach()
            if self.session is not None:
                self.gallery.state = None
                self.gallery.follow(self.session.position)
        else:
            self.gallery.detach()
            self.chip_layers.set_mode(view)
        self.show_current()
        if self._help_on:
            self._show_help()

    def act_open(self: ChipQAWidget) -> None:
        if self.in_gallery:
            cid = self.gallery.cursor_chip
            if cid is not None and self.session is not None:
                self.session.goto(cid)
            self.set_view(SIDE_BY_SIDE)
        else:
            self.set_view(GALLERY)

    def act_toggle_layers(self: ChipQAWidget) -> None:
        if not self.in_gallery:
            self.set_view(LAYERS if self.view == SIDE_BY_SIDE else SIDE_BY_SIDE)

    def set_stretch(self: ChipQAWidget, stretch: str) -> None:
        if self.stretch_combo.currentText() != stretch:
            self.stretch_combo.setCurrentText(stretch)  # comes back here
            return
        if self.loader is not None:
            self.loader.set_stretch(stretch)
            if self.in_gallery:
                self.gallery.state = None
            else:
                self.display.chip_id = None
            self.show_current()
        self.status.setText(f"True colour: {stretch} stretch.")

    def act_stretch(self: ChipQAWidget) -> None:
        i = STRETCHES.index(self.stretch_combo.currentText())
        self.set_stretch(STRETCHES[(i + 1) % len(STRETCHES)])

    def act_help(self: ChipQAWidget) -> None:
        self._help_on = not self._help_on
        if self._help_on:
            self._show_help()
        else:
            self.canvas_text.help_text = ""
            self.canvas_text.refresh()

    def _show_help(self: ChipQAWidget) -> None:
        self.canvas_text.help_text = help_text(self.in_gallery, self._keys.taken)
        self.canvas_text.refresh()

    # ------------------------------------------------------------------ moving
    def act_next(self: ChipQAWidget) -> None:
        if self.in_gallery:
            self.turn_page(+1)
        elif self.session is not None:
            self.session.next()

    def act_previous(self: ChipQAWidget) -> None:
        if self.in_gallery:
            self.turn_page(-1)
        elif self.session is not None:
            self.session.previous()

    def act_right(self: ChipQAWidget) -> None:
        if dims_step(self.viewer, +1):
            return
        self.gallery.move(1, 0) if self.in_gallery else self.act_next()

    def act_left(self: ChipQAWidget) -> None:
        if dims_step(self.viewer, -1):
            return
        self.gallery.move(-1, 0) if self.in_gallery else self.act_previous()

    def act_up(self: ChipQAWidget) -> None:
        if self.in_gallery:
            self.gallery.move(0, -1)

    def act_down(self: ChipQAWidget) -> None:
        if self.in_gallery:
            self.gallery.move(0, 1)

    def act_next_undecided(self: ChipQAWidget) -> None:
        if self.session is not None and self.session.next_undecided() is None:
            self.say("Every listed chip has a decision.")

    # ------------------------------------------------------------------ single-chip decisions
    def _decide(self: ChipQAWidget, decision: str, reason: str = "") -> None:
        if not self._need_session():
            return
        cid = self.session.current
        try:
            self.controller.decide(decision, reason)
        except BlocklistError as exc:
            self.say(f"Not saved: {exc}", error=True)
            return
        if cid is not None:
            what = decision + (f" ({reason})" if reason else "")
            self._recorded = f"✓ {what} recorded for {cid}"
            decided, total = self.session.progress()
            self.status.setStyleSheet("")
            self.status.setText(f"Recorded {what} for {cid} · {decided}/{total} decided.")
            self._schedule_info()  # the canvas badge says so once the next chip is drawn

    def block_reason(self: ChipQAWidget, chip_id: str) -> str:
        """The reason ``b`` writes: the one picked in the widget, or the chip's own flag's."""
        from chipqa._qt.review_layout import FROM_FLAG

        picked = self.reason_combo.currentText().strip()
        if picked and picked != FROM_FLAG:
            return picked
        row = self.session.row(chip_id)
        return default_reason(row.get("flags"), row.get("detector"))

    def act_keep(self: ChipQAWidget) -> None:
        if self.in_gallery:
            self.save_page(keep_rest=True, turn=+1)
        else:
            self._decide("keep")

    def act_block(self: ChipQAWidget, reason: str | None = None) -> None:
        if self.in_gallery:
            if self._need_session():
                self.gallery.toggle("block", reason)
            return
        if self._need_session() and self.session.current is not None:
            self._decide("block", reason or self.block_reason(self.session.current))

    def act_unsure(self: ChipQAWidget) -> None:
        if self.in_gallery:
            if self._need_session():
                self.gallery.toggle("unsure", "")
        else:
            self._decide("unsure")

    def act_undo(self: ChipQAWidget) -> None:
        if self.session is None:
            return
        try:
            cid = self.controller.undo()  # a fix's label goes back too
        except BlocklistError as exc:
            self.say(f"Undo not saved: {exc}", error=True)
            return
        if cid is None:
            self.status.setText("Nothing to undo.")
            return
        n = len(getattr(self.store, "last_undone", None) or [cid])
        self._recorded = f"↶ undid the decision on {cid}" + (f" and {n - 1} more" if n > 1 else "")
        self.status.setText(self._recorded[2:].capitalize() + ".")
        self._status_until_moved = True  # about this chip: gone when another is shown
        if self.in_gallery:
            self.gallery.state = None
            self.gallery.follow(self.session.position)
        self._update_badge()

    def _update_badge(self: ChipQAWidget) -> None:
        """The canvas says what is recorded for the chip on it (single-chip views)."""
        s = self.session
        if self.in_gallery or s is None or s.current is None:
            if self.in_gallery:
                self.gallery.update_text()
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

    # ------------------------------------------------------------------ files
    def _on_browse_dataset(self: ChipQAWidget) -> None:
        path = _dialog().getExistingDirectory(self, "Dataset folder", self.dataset_edit.text())
        if path:
            self.dataset_edit.setText(path)

    def _on_browse_model(self: ChipQAWidget) -> None:
        path, _ = _dialog().getOpenFileName(
            self, "chipqa checkpoint", "", "Checkpoints (*.ckpt *.pt);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)

    def _on_browse_blocklist(self: ChipQAWidget) -> None:
        path, _ = _dialog().getSaveFileName(
            self, "Blocklist CSV", self.blocklist_edit.text(), "CSV (*.csv)"
        )
        if path:
            self.blocklist_edit.setText(path)
            self._on_blocklist_path_edited()

    # ------------------------------------------------------------------ export
    def _on_export(self: ChipQAWidget) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self.store is None:
            self.say("Nothing to export: no blocklist is open.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export blocklist",
            str(self.store.path.with_name("blocklist_export.csv")),
            "CSV (*.csv)",
        )
        if path:
            self.export(path)

    def export(self: ChipQAWidget, path):
        try:
            out = self.store.export(path, blocked_only=not self.export_all.isChecked())
        except BlocklistError as exc:
            self.say(str(exc), error=True)
            return None
        self.say(f"Exported the blocklist to {out}.")
        return out

    # ------------------------------------------------------------------ label fixes
    def act_accept_model(self: ChipQAWidget) -> None:
        from chipqa._qt import fix_wiring

        fix_wiring.accept_model(self)

    def act_paint(self: ChipQAWidget) -> None:
        from chipqa._qt import fix_wiring

        fix_wiring.start_painting(self)

    def act_save_paint(self: ChipQAWidget) -> None:
        from chipqa._qt import fix_wiring

        fix_wiring.finish(self, save=True)

    def act_cancel_paint(self: ChipQAWidget) -> None:
        from chipqa._qt import fix_wiring

        fix_wiring.finish(self, save=False)


def _block_with(reason: str):
    def act(self: ChipQAWidget) -> None:
        self.act_block(reason)

    act.__doc__ = f"Block with reason {reason!r} (in the gallery: toggle it)."
    return act


for _i, _reason in enumerate(REASONS, start=1):  # the numbered keys: act_block_1 … 6
    setattr(ReviewActions, f"act_block_{_i}", _block_with(_reason))

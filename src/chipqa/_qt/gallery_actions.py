"""What the gallery's keys and buttons do: toggles by click, saving and turning pages,
and "block every chip in this filter" with its spot check.

Mixed into :class:`~chipqa._qt.review_widget.ChipQAWidget` beside
:class:`~chipqa._qt.review_actions.ReviewActions`. A page is written in one write to the
blocklist; the panel's text and table follow once the next page is drawn.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import GALLERY
from chipqa.blocklist.csvformat import BlocklistError

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget

SAMPLE = 24
"""Chips shown as the spot check of a bulk rule."""

CONTRADICTED = "label_contradicted"
"""The flag of a chip whose label its own Sen2Cor SCL contradicts: ``k`` on a gallery
page does not keep it unseen."""


class GalleryActions:
    """Mixed into :class:`~chipqa._qt.review_widget.ChipQAWidget`."""

    # ------------------------------------------------------------------ the gallery
    def gallery_click(self: ChipQAWidget, k: int) -> None:
        """A click on a cell: the cursor goes there and *block* is toggled."""
        st = self.gallery.state
        if st is None or st.sample or self.session is None:
            return
        old, st.cursor = st.cursor, k
        self.gallery.repaint(old)
        self.gallery.toggle("block", None, k)
        self.session.position = st.index * self.gallery.grid.per_page + k

    def save_page(self: ChipQAWidget, *, keep_rest: bool, turn: int = 0) -> bool:
        """Write the page's decisions in one write (``keep_rest``: *keep* for every chip
        of it without a decision) and turn ``turn`` pages."""
        if not self._need_session():
            return False
        st = self.gallery.state
        items = self.gallery.decisions(keep_rest=keep_rest)
        # A chip whose label its own SCL contradicts is never kept unseen: it stays
        # undecided for a look side by side.
        pending = set(st.pending) if st is not None else set()
        held = [
            cid
            for cid, d, _ in items
            if d == "keep" and cid not in pending and CONTRADICTED in self._flags(cid)
        ]
        items = [it for it in items if it[0] not in held]
        if items:
            try:
                self.controller.decide_chips(items)
            except BlocklistError as exc:
                self.say(f"Page not saved: {exc}", error=True)
                return False
            blocks = sum(1 for _, d, _ in items if d == "block")
            decided, total = self.session.progress()
            self.status.setStyleSheet("")
            self.status.setText(
                f"Saved page {st.index + 1}: {len(items)} decisions ({blocks} blocks) in one "
                f"write · {decided}/{total} decided."
                + (
                    f" {len(held)} chip(s) flagged {CONTRADICTED} left undecided "
                    f"({', '.join(held)}): open them (o) to decide."
                    if held
                    else ""
                )
            )
        if st is not None:
            st.pending.clear()
        self.turn_page(turn, save=False)
        return True

    def turn_page(self: ChipQAWidget, delta: int, *, save: bool = True) -> None:
        """Go ``delta`` pages on (pending toggles of this page are written first)."""
        st, s = self.gallery.state, self.session
        if st is None or s is None:
            return
        if save and not st.sample and self.gallery.decisions(keep_rest=False):
            if not self.save_page(keep_rest=False, turn=0):
                return
        n = self.gallery.grid.per_page
        index = st.index
        if s.undecided_only and delta > 0 and not any(c in s.order for c in st.chips):
            delta = 0  # the whole page was decided and left the list: the next ones moved up
        index = min(max(index + delta, 0), s.page_count(n) - 1)
        self.gallery.state = None
        s.position = min(index * n, max(len(s.order) - 1, 0))
        self.gallery.follow(s.position)

    def _flags(self: ChipQAWidget, chip_id: str) -> set[str]:
        return set(str(self.session.row(chip_id).get("flags") or "").split(";"))

    # ------------------------------------------------------------------ bulk rule
    def bulk_preview(self: ChipQAWidget) -> tuple[list[str], str]:
        """The chips "block every chip in this filter" would block (the undecided ones
        listed now) and the rule it writes."""
        s = self.session
        chips = [c for c in s.order if c not in s.store]
        rule = f"flag={s.flag}" if s.flag else "all chips"
        return chips, rule

    def _on_bulk_block(self: ChipQAWidget) -> bool:
        if not self._need_session():
            return False
        chips, rule = self.bulk_preview()
        if not chips:
            self.say("No undecided chip is listed: nothing to block.")
            return False
        rng = random.Random(len(chips))
        sample = rng.sample(chips, min(SAMPLE, len(chips)))
        before = self.view
        self.set_view(GALLERY)
        self.gallery.show_chips(
            sample, f"spot check: {len(sample)} random chips of the {len(chips)} to block"
        )
        picked = self.reason_combo.currentText().strip()
        from chipqa._qt.review_layout import FROM_FLAG

        reason_text = "each chip's own flag" if picked in ("", FROM_FLAG) else picked
        ok = self.confirm(
            "Block every chip in this filter",
            f"Block {len(chips)} undecided chips ({rule}) with reason {reason_text}?\n"
            f"The canvas shows a random sample of {len(sample)}. Undo (z) takes all of "
            "them back as one step.",
        )
        self.gallery.state = None
        if ok:
            ok = self.apply_bulk(chips, rule)
        self.set_view(before, force=True)
        return ok

    def apply_bulk(self: ChipQAWidget, chips: list[str], rule: str) -> bool:
        s = self.session
        items = [(c, "block", self.block_reason(c)) for c in chips]
        try:
            s.decide_chips(items, rule=rule)
        except BlocklistError as exc:
            self.say(f"Not saved: {exc}", error=True)
            return False
        self.say(f"Blocked {len(items)} chips by rule '{rule}' (z undoes it as one step).")
        return True

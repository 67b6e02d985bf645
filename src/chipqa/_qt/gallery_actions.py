"""What the gallery's keys and clicks do: toggles, saving and turning pages, and
"block every chip in this filter" with its spot check.

:class:`GalleryActions` turns them into :class:`~chipqa.review.controller.ReviewController`
calls: a page is written in one write to the blocklist; the panel's text and table
follow once the next page is drawn.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import GALLERY
from chipqa._qt.keys import key_of
from chipqa.blocklist.csvformat import BlocklistError

if TYPE_CHECKING:
    from chipqa._qt.decision_bar import DecisionBar
    from chipqa._qt.review_canvas import ReviewCanvas
    from chipqa._qt.status_line import StatusLine
    from chipqa.review.controller import ReviewController

SAMPLE = 24
"""Chips shown as the spot check of a bulk rule."""

CONTRADICTED = "label_contradicted"
"""The flag of a chip whose label its own Sen2Cor SCL contradicts: ``k`` on a gallery
page does not keep it unseen."""


class GalleryActions:
    """The gallery's verbs, for the keys, the clicks and the bulk-block button.

    ``confirm(title, text)`` asks the reviewer yes or no (a dialog in the panel).
    """

    def __init__(
        self,
        controller: ReviewController,
        canvas: ReviewCanvas,
        decisions: DecisionBar,
        status: StatusLine,
        confirm: Callable[[str, str], bool],
    ):
        self.controller, self.canvas, self.decisions = controller, canvas, decisions
        self.status, self.confirm = status, confirm
        self.gallery = canvas.gallery

    def click(self, k: int) -> None:
        """A click on a cell: the cursor goes there and *block* is toggled."""
        if self.controller.session is None:
            return
        position = self.gallery.click(k)
        if position is not None:
            self.controller.move_to(position)

    def toggle(self, decision: str, reason: str | None = None) -> None:
        """Toggle ``decision`` on the cursor chip (``reason`` None: the chip's flag's)."""
        if self.decisions.need_session():
            self.gallery.toggle(decision, reason)

    def save_page(self, *, keep_rest: bool, turn: int = 0) -> bool:
        """Write the page's decisions in one write (``keep_rest``: *keep* for every chip
        of it without a decision) and turn ``turn`` pages."""
        if not self.decisions.need_session():
            return False
        s = self.controller.session
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
                self.status.say(f"Page not saved: {exc}", error=True)
                return False
            blocks = sum(1 for _, d, _ in items if d == "block")
            decided, total = s.progress()
            self.status.show_text(
                f"Saved page {st.index + 1}: {len(items)} decisions ({blocks} blocks) in one "
                f"write · {decided}/{total} decided."
                + (
                    f" {len(held)} chip(s) flagged {CONTRADICTED} left undecided "
                    f"({', '.join(held)}): open them ({key_of('open') or 'Gallery / chip'}) "
                    "to decide."
                    if held
                    else ""
                )
            )
        if st is not None:
            st.pending.clear()
        self.turn_page(turn, save=False)
        return True

    def turn_page(self, delta: int, *, save: bool = True) -> None:
        """Go ``delta`` pages on (pending toggles of this page are written first)."""
        st, s = self.gallery.state, self.controller.session
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
        self.controller.move_to(min(index * n, max(len(s.order) - 1, 0)))
        self.gallery.follow(s.position)

    def _flags(self, chip_id: str) -> set[str]:
        return set(str(self.controller.session.row(chip_id).get("flags") or "").split(";"))

    # ------------------------------------------------------------------ bulk rule
    def bulk_preview(self) -> tuple[list[str], str]:
        """The chips "block every chip in this filter" would block (the undecided ones
        listed now) and the rule it writes."""
        s = self.controller.session
        chips = [c for c in s.order if c not in s.store]
        rule = f"flag={s.flag}" if s.flag else "all chips"
        return chips, rule

    def bulk_block(self) -> bool:
        """Block every undecided chip listed, after a spot check of a random sample on
        the canvas and the reviewer's yes."""
        if not self.decisions.need_session():
            return False
        chips, rule = self.bulk_preview()
        if not chips:
            self.status.say("No undecided chip is listed: nothing to block.")
            return False
        rng = random.Random(len(chips))
        sample = rng.sample(chips, min(SAMPLE, len(chips)))
        before = self.canvas.view
        self.canvas.set_view(GALLERY)
        self.gallery.show_chips(
            sample, f"spot check: {len(sample)} random chips of the {len(chips)} to block"
        )
        picked = self.decisions.picked_reason()
        reason_text = picked or "each chip's own flag"
        ok = self.confirm(
            "Block every chip in this filter",
            f"Block {len(chips)} undecided chips ({rule}) with reason {reason_text}?\n"
            f"The canvas shows a random sample of {len(sample)}. Undo "
            f"({key_of('undo') or 'the Undo button'}) takes all of them back as one step.",
        )
        self.gallery.state = None
        if ok:
            ok = self.apply_bulk(chips, rule)
        self.canvas.set_view(before, force=True)
        return ok

    def apply_bulk(self, chips: list[str], rule: str) -> bool:
        items = [(c, "block", self.decisions.block_reason(c)) for c in chips]
        try:
            self.controller.decide_chips(items, rule=rule)
        except BlocklistError as exc:
            self.status.say(f"Not saved: {exc}", error=True)
            return False
        undo = key_of("undo") or "Undo"
        self.status.say(
            f"Blocked {len(items)} chips by rule '{rule}' ({undo} undoes it as one step)."
        )
        return True

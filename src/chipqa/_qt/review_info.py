"""The panel's text about the review: its progress, and the current chip's numbers.

:class:`ChipInfo` shows :func:`progress_html` (decided / total, by decision and
reason, the rate) over :func:`chip_info_html` (the chip's position, scores, why it
ranks there, its decision and flags). Both have fixed heights, so that the dock's
layout stays still from chip to chip.
"""

from __future__ import annotations

import html
import math

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QScrollArea, QVBoxLayout, QWidget

from chipqa._qt.controls import NO_FOCUS
from chipqa._qt.keys import key_of
from chipqa.review.session import ReviewSession, fraction_text, score_text

INFO_LINES = 7


def _num(row: dict, key: str) -> str:
    try:
        f = float(row.get(key))
    except (TypeError, ValueError):
        return "–"
    return "–" if math.isnan(f) else f"{f:.2f}"


def chip_info_html(session: ReviewSession, chip_id: str) -> str:
    """The chip's text under the table: position, numbers, decision, flags (rich text)."""
    row = session.row(chip_id)
    d = session.store.get(chip_id)
    extra = ""
    if row.get("label_source"):
        extra += f" · label {row['label_source']}"
    if _num(row, "pred_shadow_fraction") != "–":
        extra += f" · model shadow {fraction_text(row.get('pred_shadow_fraction'))}"
    if _num(row, "threshold") != "–":
        extra += f" · threshold {_num(row, 'threshold')}"
    decision = "none yet"
    if d is not None:
        decision = d.decision + (f" ({d.reason})" if d.reason else "")
    return (
        f"<b>{chip_id}</b> · {session.position + 1} of {len(session.order)} listed"
        f" · suspicion <b>{score_text(row.get('suspicion')) or '–'}</b> · IoU {_num(row, 'iou')}"
        f"<br>cloud: label {fraction_text(row.get('label_cloud_fraction'))},"
        f" model {fraction_text(row.get('pred_cloud_fraction'))}{extra}"
        f"<br>why: <b>{html.escape(str(row.get('why') or '–'))}</b>"
        f"<br>decision: <b>{decision}</b>"
        f"<br>flags: {str(row.get('flags') or '–').replace(';', ' ')}"
    )


def progress_html(session: ReviewSession) -> str:
    """Review progress: decided / total, by decision and block reason, and the rate."""
    decided, total = session.progress()
    tally = session.tally()
    parts = []
    for decision in ("keep", "block", "unsure", "fix"):
        n = tally["decision"].get(decision, 0)
        text = f"{decision} {n}"
        if decision == "block" and tally["reason"]:
            reasons = ", ".join(f"{r} {k}" for r, k in tally["reason"].most_common())
            text += f" ({reasons})"
        parts.append(text)
    rate = session.rate()
    pct = 100.0 * decided / total if total else 0.0
    line = f"<b>{decided} / {total}</b> decided ({pct:.1f} %) · " + " · ".join(parts)
    if rate is not None:
        left = total - decided
        eta = f", about {left / rate:.0f} min to go" if rate > 0 and left else ""
        line += f" · <b>{rate:.1f} chips/min</b>{eta}"
    return line


class ChipInfo(QWidget):
    """The review's progress line and the current chip's text (which scrolls when an
    unreadable chip's error and advice make it long)."""

    def __init__(self):
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.progress_label.setTextFormat(Qt.TextFormat.RichText)
        line = self.progress_label.fontMetrics().lineSpacing()
        self.progress_label.setFixedHeight(2 * line + 4)
        lay.addWidget(self.progress_label)
        self.chip_label = QLabel("")
        self.chip_label.setWordWrap(True)
        self.chip_label.setTextFormat(Qt.TextFormat.RichText)
        self.chip_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info_scroll = QScrollArea()
        self.info_scroll.setWidget(self.chip_label)
        self.info_scroll.setWidgetResizable(True)
        self.info_scroll.setFocusPolicy(NO_FOCUS)
        self.info_scroll.setFixedHeight(INFO_LINES * line + 8)
        lay.addWidget(self.info_scroll)

    def set_text(self, text: str) -> None:
        """Say ``text`` about the chip until the next :meth:`show_chip`."""
        self.chip_label.setText(text)

    def clear(self) -> None:
        """No review: no progress, no chip."""
        self.progress_label.setText("")
        self.chip_label.setText("")
        self.chip_label.setToolTip("")

    def show_chip(self, session: ReviewSession, *, loading: bool, error: str) -> None:
        """The session's progress and its current chip (``loading``: not drawn yet;
        ``error``: why it cannot be shown)."""
        self.progress_label.setText(progress_html(session))
        cid = session.current
        if cid is None:
            self.chip_label.setText("No chip matches the filters.")
            return
        text = chip_info_html(session, cid)
        if loading:
            text += "<br><i>loading…</i>"
        error = session.row(cid).get("error") or error
        if error:
            text += (
                f"<br><span style='color:#ff6b6b'>cannot be shown: {error}</span>"
                f"<br>Block it ({key_of('block') or 'Block'}) if the chip is broken, or fix "
                "its files and open the dataset again."
            )
        self.chip_label.setText(text)
        self.chip_label.setToolTip(text)

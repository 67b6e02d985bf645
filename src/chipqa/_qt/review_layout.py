"""The controls of the Chip QA widget's Review tab, and the texts it shows.

:func:`build_review_ui` lays out the widgets and connects them to the owner's ``_on_*``
slots and actions; it keeps each control as an attribute of the owner (``dataset_edit``,
``flag_combo``, ``table``, ``chip_label``, ``status``, …), as Qt Designer's ``setupUi``
does, so that tests and scripts reach them directly.

The texts that name a key (the buttons, their tooltips, the keys line) are set by
:func:`show_keys`, again whenever a key is changed in napari's keyboard preferences.

No control but the text fields takes the keyboard focus: after a click on a button, a
box or the table the review keys still go to the viewer (a focused combo box would take
``n`` as "the item starting with n", a focused button would take Space as a click).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from chipqa._qt.chip_layers import VIEWS
from chipqa._qt.keys import ACTIONS, key_of, keys_help
from chipqa._qt.scores_table import ScoresTableModel
from chipqa.blocklist.store import REASONS
from chipqa.render import STRETCHES
from chipqa.review.session import ReviewSession, fraction_text, score_text

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget

NO_FOCUS = Qt.FocusPolicy.NoFocus
DEFAULT_MODEL = "pretrained"
"""The model the Model field starts with (``baseline`` and checkpoints stay selectable)."""
FROM_FLAG = "from the chip's flag"
INFO_LINES = 7


def key_button(text: str, action: str, slot, tip: str = "") -> QPushButton:
    """A button that shows its key and says what it does, and never takes the focus."""
    b = QPushButton(text)
    b.key_text, b.key_action, b.key_tip = text, action, tip
    _label_key_button(b)
    b.setFocusPolicy(NO_FOCUS)
    b.clicked.connect(lambda _=False: slot())
    return b


def _label_key_button(b: QPushButton) -> None:
    key = key_of(b.key_action)
    b.setText(f"{b.key_text} ({key})" if key else b.key_text)
    what = ACTIONS[b.key_action].single or ACTIONS[b.key_action].gallery
    b.setToolTip(f"{b.key_tip or what} — key: {_key(b.key_action)}")


def _key(action: str) -> str:
    return key_of(action) or "none (set one in Preferences → Shortcuts)"


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


def show_keys(w: ChipQAWidget) -> None:
    """Show the keys in force on ``w``'s buttons, in their tooltips and the keys line."""
    for b in w.key_buttons:
        _label_key_button(b)
    w.mode_combo.setToolTip(
        f"gallery: a page of chips ({_key('open')} opens the cursor chip); "
        f"side by side / layers ({_key('toggle_layers')})"
    )
    w.stretch_combo.setToolTip(
        "true-colour stretch: fixed (reflectance 0–0.3, chips compare) or per chip "
        f"(shows thin cloud over bright chips) — key: {_key('stretch')}"
    )
    w.reason_combo.setToolTip(
        f"reason written with {_key('block')} / Block: '{FROM_FLAG}' writes all_cloud_wrong "
        "for an all-cloud label, no_cloud_wrong for a no-cloud label, …; pick one or type "
        "your own. Keys "
        + ", ".join(key_of(f"block_{i}") or "–" for i in range(1, len(REASONS) + 1))
        + " write their own reason."
    )
    w.bulk_btn.setToolTip(
        "Blocks the undecided chips the table lists now (after a spot check of a random "
        f"sample and your confirmation); {_key('undo')} takes it back as one step."
    )
    w.keys_label.setText(keys_help(w.view == "gallery"))


def _button(text: str, slot, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setFocusPolicy(NO_FOCUS)
    if tip:
        b.setToolTip(tip)
    b.clicked.connect(lambda _=False: slot())
    return b


def build_review_ui(w: ChipQAWidget) -> None:
    """Lay out the tabs and the Review tab's controls on ``w``."""
    outer = QVBoxLayout(w)
    outer.setContentsMargins(0, 0, 0, 0)
    w.tabs = QTabWidget()
    w.tabs.setFocusPolicy(NO_FOCUS)
    outer.addWidget(w.tabs)
    review_tab = QWidget()
    w.tabs.addTab(review_tab, "Review")
    lay = QVBoxLayout(review_tab)
    form = QGridLayout()
    w.dataset_edit = QLineEdit()
    w.dataset_edit.setPlaceholderText("dataset folder (On Cloud N or flat layout)")
    w.dataset_edit.returnPressed.connect(w.give_keys_back)
    form.addWidget(QLabel("Dataset"), 0, 0)
    form.addWidget(w.dataset_edit, 0, 1)
    form.addWidget(_button("Browse…", w._on_browse_dataset), 0, 2)
    w.model_edit = QLineEdit(DEFAULT_MODEL)
    w.model_edit.setToolTip(
        "'pretrained' (a Sentinel-2 cloud U-Net), 'baseline' (weight-free spectral test) "
        "or a chipqa checkpoint"
    )
    w.model_edit.returnPressed.connect(w.give_keys_back)
    w.model_edit.textEdited.connect(lambda _text: setattr(w, "_model_chosen", True))
    form.addWidget(QLabel("Model"), 1, 0)
    form.addWidget(w.model_edit, 1, 1)
    form.addWidget(_button("Checkpoint…", w._on_browse_model), 1, 2)
    w.blocklist_edit = QLineEdit()
    w.blocklist_edit.setPlaceholderText("blocklist CSV (default: beside the dataset)")
    w.blocklist_edit.editingFinished.connect(w._on_blocklist_path_edited)
    form.addWidget(QLabel("Blocklist"), 2, 0)
    form.addWidget(w.blocklist_edit, 2, 1)
    form.addWidget(_button("Change…", w._on_browse_blocklist), 2, 2)
    lay.addLayout(form)

    row = QHBoxLayout()
    w.score_btn = _button("Open && score", w._on_score)
    w.cancel_btn = _button("Cancel", w._on_cancel)
    w.cancel_btn.setEnabled(False)
    w.progress_bar = QProgressBar()
    w.progress_bar.setFormat("%v / %m chips")
    row.addWidget(w.score_btn)
    row.addWidget(w.cancel_btn)
    row.addWidget(w.progress_bar, 1)
    lay.addLayout(row)

    row = QHBoxLayout()
    w.flag_combo = QComboBox()
    w.flag_combo.addItem("all flags", None)
    w.flag_combo.setFocusPolicy(NO_FOCUS)
    w.flag_combo.currentIndexChanged.connect(w._on_filter_changed)
    w.undecided_check = QCheckBox("undecided only")
    w.undecided_check.setFocusPolicy(NO_FOCUS)
    w.undecided_check.toggled.connect(w._on_filter_changed)
    w.mode_combo = QComboBox()
    w.mode_combo.addItems(list(VIEWS))
    w.mode_combo.setCurrentText(w.view)
    w.mode_combo.setFocusPolicy(NO_FOCUS)
    w.mode_combo.currentTextChanged.connect(w.set_view)
    w.stretch_combo = QComboBox()
    w.stretch_combo.addItems(list(STRETCHES))
    w.stretch_combo.setFocusPolicy(NO_FOCUS)
    w.stretch_combo.currentTextChanged.connect(w.set_stretch)
    row.addWidget(w.flag_combo, 1)
    row.addWidget(w.undecided_check)
    row.addWidget(w.mode_combo)
    row.addWidget(w.stretch_combo)
    lay.addLayout(row)

    w.table_model = ScoresTableModel()
    w.table = QTableView()
    w.table.setModel(w.table_model)
    w.table.setSortingEnabled(True)
    w.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    w.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    header = w.table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    w.table.verticalHeader().setVisible(False)
    w.table.clicked.connect(w._on_table_clicked)
    w.table.setFocusPolicy(NO_FOCUS)
    lay.addWidget(w.table, 1)

    w.progress_label = QLabel("")
    w.progress_label.setWordWrap(True)
    w.progress_label.setTextFormat(Qt.TextFormat.RichText)
    # Fixed heights: text that changes with every decision never relayouts the window.
    line = w.progress_label.fontMetrics().lineSpacing()
    w.progress_label.setFixedHeight(2 * line + 4)
    lay.addWidget(w.progress_label)

    w.chip_label = QLabel("")
    w.chip_label.setWordWrap(True)
    w.chip_label.setTextFormat(Qt.TextFormat.RichText)
    w.chip_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    # A fixed height keeps the dock's layout still from chip to chip (no relayout); a
    # longer text (many flags, an unreadable chip's error and advice) scrolls.
    w.info_scroll = QScrollArea()
    w.info_scroll.setWidget(w.chip_label)
    w.info_scroll.setWidgetResizable(True)
    w.info_scroll.setFocusPolicy(NO_FOCUS)
    w.info_scroll.setFixedHeight(INFO_LINES * w.chip_label.fontMetrics().lineSpacing() + 8)
    lay.addWidget(w.info_scroll)

    row = QHBoxLayout()
    w.reason_combo = QComboBox()
    w.reason_combo.setEditable(True)
    w.reason_combo.addItems([FROM_FLAG, *REASONS])
    row.addWidget(QLabel("Block reason"))
    row.addWidget(w.reason_combo, 1)
    lay.addLayout(row)

    w.key_buttons = []
    for buttons in (
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
    ):
        row = QHBoxLayout()
        for text, action in buttons:
            w.key_buttons.append(key_button(text, action, lambda a=action: w.run(a)))
            row.addWidget(w.key_buttons[-1])
        lay.addLayout(row)
    row = QHBoxLayout()
    w.bulk_btn = _button("Block every chip in this filter…", w._on_bulk_block)
    row.addWidget(w.bulk_btn)
    row.addWidget(_button("Export blocklist…", w._on_export))
    w.export_all = QCheckBox("all decisions")
    w.export_all.setFocusPolicy(NO_FOCUS)
    row.addWidget(w.export_all)
    row.addStretch(1)
    lay.addLayout(row)

    # At least this tall (so the panel does not jump as messages come and go), taller
    # when the text needs it: a fixed height cut the gallery's keys line off.
    w.keys_label = WrappingLabel("", 5 * line + 4)
    w.keys_label.setTextFormat(Qt.TextFormat.RichText)
    lay.addWidget(w.keys_label)
    w.status = WrappingLabel("Choose a dataset folder and press “Open & score”.", 3 * line + 4)
    lay.addWidget(w.status)
    show_keys(w)


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

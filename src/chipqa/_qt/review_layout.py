"""The controls of the Chip QA widget's Review tab, and the chip's info line.

:func:`build_review_ui` lays out the widgets and connects them to the owner's ``_on_*``
slots and actions; it keeps each control as an attribute of the owner (``dataset_edit``,
``flag_combo``, ``table``, ``chip_label``, ``status``, …), as Qt Designer's ``setupUi``
does, so that tests and scripts reach them directly.
"""

from __future__ import annotations

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
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from chipqa._qt.chip_layers import MODES
from chipqa._qt.keys import keys_help
from chipqa._qt.scores_table import ScoresTableModel
from chipqa.review.blocklist import REASONS
from chipqa.review.session import ReviewSession, fraction_text

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget


def build_review_ui(w: ChipQAWidget) -> None:
    """Lay out the tabs and the Review tab's controls on ``w``."""
    outer = QVBoxLayout(w)
    outer.setContentsMargins(0, 0, 0, 0)
    w.tabs = QTabWidget()
    outer.addWidget(w.tabs)
    review_tab = QWidget()
    w.tabs.addTab(review_tab, "Review")
    lay = QVBoxLayout(review_tab)
    form = QGridLayout()
    w.dataset_edit = QLineEdit()
    w.dataset_edit.setPlaceholderText("dataset folder (On Cloud N or flat layout)")
    browse = QPushButton("Browse…")
    browse.clicked.connect(w._on_browse_dataset)
    form.addWidget(QLabel("Dataset"), 0, 0)
    form.addWidget(w.dataset_edit, 0, 1)
    form.addWidget(browse, 0, 2)
    w.model_edit = QLineEdit("baseline")
    w.model_edit.setToolTip("'baseline' (weight-free spectral test) or a chipqa checkpoint")
    model_btn = QPushButton("Checkpoint…")
    model_btn.clicked.connect(w._on_browse_model)
    form.addWidget(QLabel("Model"), 1, 0)
    form.addWidget(w.model_edit, 1, 1)
    form.addWidget(model_btn, 1, 2)
    w.blocklist_edit = QLineEdit()
    w.blocklist_edit.setPlaceholderText("blocklist CSV (default: beside the dataset)")
    w.blocklist_edit.editingFinished.connect(w._on_blocklist_path_edited)
    bl_btn = QPushButton("Change…")
    bl_btn.clicked.connect(w._on_browse_blocklist)
    form.addWidget(QLabel("Blocklist"), 2, 0)
    form.addWidget(w.blocklist_edit, 2, 1)
    form.addWidget(bl_btn, 2, 2)
    lay.addLayout(form)

    row = QHBoxLayout()
    w.score_btn = QPushButton("Open && score")
    w.score_btn.clicked.connect(w._on_score)
    w.cancel_btn = QPushButton("Cancel")
    w.cancel_btn.setEnabled(False)
    w.cancel_btn.clicked.connect(w._on_cancel)
    w.progress_bar = QProgressBar()
    w.progress_bar.setFormat("%v / %m chips")
    row.addWidget(w.score_btn)
    row.addWidget(w.cancel_btn)
    row.addWidget(w.progress_bar, 1)
    lay.addLayout(row)

    row = QHBoxLayout()
    w.flag_combo = QComboBox()
    w.flag_combo.addItem("all flags", None)
    w.flag_combo.currentIndexChanged.connect(w._on_filter_changed)
    w.undecided_check = QCheckBox("undecided only")
    w.undecided_check.toggled.connect(w._on_filter_changed)
    w.mode_combo = QComboBox()
    w.mode_combo.addItems(list(MODES))
    w.mode_combo.currentTextChanged.connect(w._on_mode_changed)
    row.addWidget(w.flag_combo, 1)
    row.addWidget(w.undecided_check)
    row.addWidget(w.mode_combo)
    lay.addLayout(row)

    w.table_model = ScoresTableModel()
    w.table = QTableView()
    w.table.setModel(w.table_model)
    w.table.setSortingEnabled(True)
    w.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
    w.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
    w.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    w.table.horizontalHeader().setStretchLastSection(True)
    w.table.verticalHeader().setVisible(False)
    w.table.clicked.connect(w._on_table_clicked)
    w.table.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
    lay.addWidget(w.table, 1)

    w.chip_label = QLabel("")
    w.chip_label.setWordWrap(True)
    # A fixed height keeps the dock's layout still from chip to chip (no relayout).
    w.chip_label.setFixedHeight(5 * w.chip_label.fontMetrics().lineSpacing() + 4)
    lay.addWidget(w.chip_label)

    row = QHBoxLayout()
    w.reason_combo = QComboBox()
    w.reason_combo.setEditable(True)
    w.reason_combo.addItems(list(REASONS))
    w.reason_combo.setToolTip("reason written with a block (pick one or type your own)")
    row.addWidget(QLabel("Block reason"))
    row.addWidget(w.reason_combo, 1)
    lay.addLayout(row)

    row = QHBoxLayout()
    for text, slot in (
        ("Keep", w.keep),
        ("Block", w.block),
        ("Unsure", w.unsure),
        ("Undo", w.undo),
        ("Next undecided", w.next_undecided),
    ):
        b = QPushButton(text)
        b.clicked.connect(lambda _=False, s=slot: s())
        row.addWidget(b)
    lay.addLayout(row)
    row = QHBoxLayout()
    exp = QPushButton("Export blocklist…")
    exp.clicked.connect(w._on_export)
    w.export_all = QCheckBox("all decisions")
    row.addWidget(exp)
    row.addWidget(w.export_all)
    row.addStretch(1)
    lay.addLayout(row)

    w.keys_label = QLabel(keys_help(w.key_table()))
    w.keys_label.setWordWrap(True)
    w.keys_label.setTextFormat(Qt.TextFormat.RichText)
    lay.addWidget(w.keys_label)
    w.status = QLabel("Choose a dataset folder and press “Open & score”.")
    w.status.setWordWrap(True)
    lay.addWidget(w.status)


def chip_info_html(session: ReviewSession, chip_id: str) -> str:
    """The chip's line under the table: position, numbers, decision, flags (rich text)."""
    row = session.row(chip_id)
    d = session.store.get(chip_id)
    decided, total = session.progress()

    def num(key: str) -> str:
        try:
            f = float(row.get(key))
        except (TypeError, ValueError):
            return "–"
        return "–" if math.isnan(f) else f"{f:.2f}"

    return (
        f"<b>{chip_id}</b> · {session.position + 1} of {len(session.order)} listed"
        f" · suspicion <b>{num('suspicion')}</b> · IoU {num('iou')}"
        f"<br>cloud: label {fraction_text(row.get('label_cloud_fraction'))},"
        f" model {fraction_text(row.get('pred_cloud_fraction'))}"
        f" · decision: <b>{d.decision if d else 'none yet'}</b>"
        f"{f' ({d.reason})' if d and d.reason else ''} · {decided}/{total} decided"
        f"<br>flags: {str(row.get('flags') or '–').replace(';', ' ')}"
    )

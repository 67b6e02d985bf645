"""The "Chip QA" dock widget: score a dataset, walk its chips with the keyboard, decide.

The widget only wires Qt to the core: scoring runs :func:`chipqa.scoring.iter_scores` in a
napari worker thread, :class:`chipqa.review.ReviewSession` holds the ordering and the
decisions, :class:`chipqa.blocklist.BlocklistStore` writes them, and
:class:`chipqa.review.ChipLoader` prepares upcoming chips in the background.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
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

from chipqa._qt.chip_layers import LAYERS, MODES, SIDE_BY_SIDE, ChipLayers
from chipqa._qt.scores_table import ScoresTableModel
from chipqa.data import ChipDataset, open_dataset
from chipqa.errors import ChipqaError
from chipqa.io.atomic import atomic_write_csv
from chipqa.predictors import Predictor, load_predictor
from chipqa.review.blocklist import REASONS, BlocklistError, BlocklistStore, default_path
from chipqa.review.session import ChipLoader, ReviewSession, fraction_text
from chipqa.scoring import FLAG_DESCRIPTIONS, finalize, iter_scores, read_scores

if TYPE_CHECKING:
    import napari

PREFETCH = 4


def scores_path_for(root: Path) -> Path:
    """Where the widget keeps a dataset's scores (the CLI's default too)."""
    root = Path(root).resolve()
    return root.parent / f"{root.name}_scores.csv"


def _score_job(dataset: ChipDataset, predictor: Predictor):
    """Generator run in a worker thread: yields the rows of each scored batch.

    Two reading threads (the CLI uses every core for the CPU baseline) leave the rest of
    the machine to the viewer and its prefetch; batches are sized for the device.
    """
    yield from iter_scores(dataset, predictor, workers=2)


class ChipQAWidget(QWidget):
    """Review chips side by side and triage them with the keyboard into a blocklist."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.dataset: ChipDataset | None = None
        self.predictor: Predictor | None = None
        self.session: ReviewSession | None = None
        self.loader: ChipLoader | None = None
        self.store: BlocklistStore | None = None
        self.chip_layers = ChipLayers(napari_viewer)
        self._worker = None
        self._pbar = None
        self._rows: list[dict] = []
        self._scores: pd.DataFrame | None = None
        self._alive = True
        self._bound_layers: list = []
        self._build_ui()
        self._bind_keys()
        self.destroyed.connect(self._teardown)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        from chipqa._qt.retrain_panel import RetrainPanel

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.tabs = QTabWidget()
        outer.addWidget(self.tabs)
        review_tab = QWidget()
        self.tabs.addTab(review_tab, "Review")
        self.retrain = RetrainPanel(self)
        self.tabs.addTab(self.retrain, "Retrain")
        lay = QVBoxLayout(review_tab)
        form = QGridLayout()
        self.dataset_edit = QLineEdit()
        self.dataset_edit.setPlaceholderText("dataset folder (On Cloud N or flat layout)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_dataset)
        form.addWidget(QLabel("Dataset"), 0, 0)
        form.addWidget(self.dataset_edit, 0, 1)
        form.addWidget(browse, 0, 2)
        self.model_edit = QLineEdit("baseline")
        self.model_edit.setToolTip("'baseline' (weight-free spectral test) or a chipqa checkpoint")
        model_btn = QPushButton("Checkpoint…")
        model_btn.clicked.connect(self._on_browse_model)
        form.addWidget(QLabel("Model"), 1, 0)
        form.addWidget(self.model_edit, 1, 1)
        form.addWidget(model_btn, 1, 2)
        self.blocklist_edit = QLineEdit()
        self.blocklist_edit.setPlaceholderText("blocklist CSV (default: beside the dataset)")
        self.blocklist_edit.editingFinished.connect(self._on_blocklist_path_edited)
        bl_btn = QPushButton("Change…")
        bl_btn.clicked.connect(self._on_browse_blocklist)
        form.addWidget(QLabel("Blocklist"), 2, 0)
        form.addWidget(self.blocklist_edit, 2, 1)
        form.addWidget(bl_btn, 2, 2)
        lay.addLayout(form)

        row = QHBoxLayout()
        self.score_btn = QPushButton("Open && score")
        self.score_btn.clicked.connect(self._on_score)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self._on_cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("%v / %m chips")
        row.addWidget(self.score_btn)
        row.addWidget(self.cancel_btn)
        row.addWidget(self.progress_bar, 1)
        lay.addLayout(row)

        row = QHBoxLayout()
        self.flag_combo = QComboBox()
        self.flag_combo.addItem("all flags", None)
        self.flag_combo.currentIndexChanged.connect(self._on_filter_changed)
        self.undecided_check = QCheckBox("undecided only")
        self.undecided_check.toggled.connect(self._on_filter_changed)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODES))
        self.mode_combo.currentTextChanged.connect(self._on_mode_changed)
        row.addWidget(self.flag_combo, 1)
        row.addWidget(self.undecided_check)
        row.addWidget(self.mode_combo)
        lay.addLayout(row)

        self.table_model = ScoresTableModel()
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.clicked.connect(self._on_table_clicked)
        self.table.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        lay.addWidget(self.table, 1)

        self.chip_label = QLabel("")
        self.chip_label.setWordWrap(True)
        # A fixed height keeps the dock's layout still from chip to chip (no relayout).
        self.chip_label.setFixedHeight(5 * self.chip_label.fontMetrics().lineSpacing() + 4)
        lay.addWidget(self.chip_label)

        row = QHBoxLayout()
        self.reason_combo = QComboBox()
        self.reason_combo.setEditable(True)
        self.reason_combo.addItems(list(REASONS))
        self.reason_combo.setToolTip("reason written with a block (pick one or type your own)")
        row.addWidget(QLabel("Block reason"))
        row.addWidget(self.reason_combo, 1)
        lay.addLayout(row)

        row = QHBoxLayout()
        for text, slot in (
            ("Keep", self.keep),
            ("Block", self.block),
            ("Unsure", self.unsure),
            ("Undo", self.undo),
            ("Next undecided", self.next_undecided),
        ):
            b = QPushButton(text)
            b.clicked.connect(lambda _=False, s=slot: s())
            row.addWidget(b)
        lay.addLayout(row)
        row = QHBoxLayout()
        exp = QPushButton("Export blocklist…")
        exp.clicked.connect(self._on_export)
        self.export_all = QCheckBox("all decisions")
        row.addWidget(exp)
        row.addWidget(self.export_all)
        row.addStretch(1)
        lay.addLayout(row)

        self.keys_label = QLabel(self._keys_help())
        self.keys_label.setWordWrap(True)
        self.keys_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.keys_label)
        self.status = QLabel("Choose a dataset folder and press “Open & score”.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

    # ------------------------------------------------------------------ keys
    def key_table(self) -> list[tuple[str, str, Callable[[], object]]]:
        """(key, what it does, action): shown in the widget and bound in the viewer."""
        keys = [
            ("Right", "next chip", self.next_chip),
            ("n", "next chip", self.next_chip),
            ("Left", "previous chip", self.previous_chip),
            ("p", "previous chip", self.previous_chip),
            ("k", "keep (label is right)", self.keep),
            ("b", "block with the reason shown", self.block),
            ("u", "unsure", self.unsure),
            ("z", "undo last decision", self.undo),
            ("j", "jump to next undecided", self.next_undecided),
            ("g", "side by side / layers", self.toggle_mode),
        ]
        for i, reason in enumerate(REASONS, start=1):
            keys.append((str(i), f"block: {reason}", lambda r=reason: self.block(r)))
        return keys

    def _keys_help(self) -> str:
        seen: dict[str, list[str]] = {}
        for key, what, _ in self.key_table():
            seen.setdefault(what, []).append(key.replace("Right", "→").replace("Left", "←"))
        items = [f"<b>{'/'.join(k)}</b> {w}" for w, k in seen.items()]
        return "Keys: " + " · ".join(items)

    def _bind_keys(self) -> None:
        for key, _, action in self.key_table():
            self.viewer.bind_key(key, self._key_callback(action), overwrite=True)
        for layer in self.viewer.layers:
            self._bind_layer(layer)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)

    @staticmethod
    def _key_callback(action: Callable[[], object]) -> Callable:
        def callback(_viewer_or_layer=None):
            action()

        return callback

    def _bind_layer(self, layer) -> None:
        # A selected layer's own keymap is searched before the viewer's (napari #2799):
        # bind there too, so the keys work whichever layer is selected.
        for key, _, action in self.key_table():
            layer.bind_key(key, self._key_callback(action), overwrite=True)
        self._bound_layers.append(layer)

    def _on_layer_inserted(self, event) -> None:
        self._bind_layer(event.value)

    def _unbind_keys(self) -> None:
        for key, _, _ in self.key_table():
            self.viewer.keymap.pop(key, None)
            for layer in self._bound_layers:
                layer.keymap.pop(key, None)
        self._bound_layers.clear()
        try:
            self.viewer.layers.events.inserted.disconnect(self._on_layer_inserted)
        except (TypeError, ValueError, RuntimeError):
            pass

    # ------------------------------------------------------------------ messages
    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b;" if error else "")
        from napari.utils.notifications import show_error, show_info

        (show_error if error else show_info)(text)

    # ------------------------------------------------------------------ dataset & scoring
    def _on_browse_dataset(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder", self.dataset_edit.text())
        if path:
            self.dataset_edit.setText(path)

    def _on_browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "chipqa checkpoint", "", "Checkpoints (*.ckpt *.pt);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)

    def _on_browse_blocklist(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Blocklist CSV", self.blocklist_edit.text(), "CSV (*.csv)"
        )
        if path:
            self.blocklist_edit.setText(path)
            self._on_blocklist_path_edited()

    def open_dataset(
        self, path: str | Path, model: str | None = None, *, score: bool = True
    ) -> bool:
        """Open a dataset (and start scoring it unless its scores are on disk already)."""
        self.dataset_edit.setText(str(path))
        if model is not None:
            self.model_edit.setText(str(model))
        if score:
            return self._on_score()
        return True

    def _on_score(self) -> bool:
        if self._worker is not None:
            self._say("Scoring is already running; cancel it first.", error=True)
            return False
        text = self.dataset_edit.text().strip()
        if not text:
            self._say("Choose a dataset folder first.", error=True)
            return False
        try:
            dataset = open_dataset(text)
            dataset.use_cache()  # `chipqa cache DATA` makes the prefetch read one file
            predictor = load_predictor(self.model_edit.text().strip() or "baseline", device="auto")
        except (ChipqaError, ValueError) as exc:
            self._say(str(exc), error=True)
            return False
        self.dataset, self.predictor = dataset, predictor
        if not self.blocklist_edit.text().strip():
            self.blocklist_edit.setText(str(default_path(dataset.root)))
        cached = self._cached_scores(dataset, predictor)
        if cached is not None:
            self._say(f"Loaded scores from {scores_path_for(dataset.root)} ({len(cached)} chips).")
            self._start_review(cached)
            return True
        self._start_scoring(dataset, predictor)
        return True

    def _cached_scores(self, dataset: ChipDataset, predictor: Predictor) -> pd.DataFrame | None:
        path = scores_path_for(dataset.root)
        if not path.is_file():
            return None
        try:
            df = read_scores(path)
        except ChipqaError:
            return None
        models = set(df["model"].dropna().astype(str)) if "model" in df else set()
        if models != {predictor.name} or set(df["chip_id"].astype(str)) != set(dataset.chip_ids):
            return None
        return df

    def _start_scoring(self, dataset: ChipDataset, predictor: Predictor) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._rows = []
        total = len(dataset)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(0)
        self._pbar = progress(total=total, desc=f"chipqa: scoring {dataset.root.name}")
        worker = create_worker(_score_job, dataset, predictor)
        worker.yielded.connect(self._on_scored_batch)
        worker.returned.connect(self._on_scoring_done)
        worker.aborted.connect(self._on_scoring_aborted)
        worker.errored.connect(self._on_scoring_error)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        self.score_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self._say(
            f"Scoring {total} chips of {dataset.root} with {predictor.name} on {predictor.device}…"
        )
        worker.start()

    def _on_scored_batch(self, rows: list[dict]) -> None:
        if not self._alive:
            return
        self._rows.extend(rows)
        self.progress_bar.setValue(len(self._rows))
        if self._pbar is not None:
            self._pbar.update(len(rows))

    def _on_scoring_done(self, _result=None) -> None:
        if not self._alive:
            return
        scores = finalize(self._rows)
        try:
            atomic_write_csv(scores, scores_path_for(self.dataset.root))
        except OSError as exc:
            self._say(
                f"Scores could not be saved beside the dataset ({exc}); reviewing anyway.",
                error=True,
            )
        bad = int((scores["error"] != "").sum())
        msg = f"Scored {len(scores)} chips with {self.predictor.name}."
        if bad:
            msg += f" {bad} could not be read (flag 'unreadable'; hover the row for the reason)."
        self._say(msg)
        self._start_review(scores)

    def _on_scoring_aborted(self) -> None:
        if not self._alive:
            return
        n = len(self._rows)
        self._say(
            f"Scoring cancelled after {n} of {len(self.dataset)} chips; "
            "the table holds the chips scored so far (they are not saved as scores)."
        )
        if n:
            self._start_review(finalize(self._rows))

    def _on_scoring_error(self, exc: Exception) -> None:
        if self._alive:
            self._say(f"Scoring failed: {exc}", error=True)

    def _on_worker_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self._alive:
            self.score_btn.setEnabled(True)
            self.cancel_btn.setEnabled(False)

    def _on_cancel(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    # ------------------------------------------------------------------ review
    def _open_store(self) -> BlocklistStore | None:
        path = Path(self.blocklist_edit.text().strip()).expanduser()
        try:
            return BlocklistStore(path)
        except BlocklistError as exc:
            self._say(
                f"{exc} Decisions are disabled until a usable blocklist path is chosen.", error=True
            )
            return None

    def _start_review(self, scores: pd.DataFrame) -> None:
        self._scores = scores
        store = self._open_store()
        if self.loader is not None:
            self.loader.close()
        predictor = self.predictor
        self.loader = ChipLoader(self.dataset, predictor.predict_numpy if predictor else None)
        self.store = store
        if store is None:
            self.session = None
            self.table_model.set_session(None)
            return
        self.session = ReviewSession(scores, store)
        self.flag_combo.blockSignals(True)
        self.flag_combo.clear()
        self.flag_combo.addItem("all flags", None)
        for f in self.session.flags_present:
            self.flag_combo.addItem(f, f)
            tip = FLAG_DESCRIPTIONS.get(f, "")
            self.flag_combo.setItemData(
                self.flag_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole
            )
        self.flag_combo.blockSignals(False)
        self.table_model.set_session(self.session)
        if store.merged_from_elsewhere or len(store):
            done, total = self.session.progress()
            self._say(f"Resumed: {done} of {total} chips already decided in {store.path}.")
        self.show_current()

    def _on_blocklist_path_edited(self) -> None:
        if self._scores is None:
            return
        if self.session is None:  # the previous path was unusable: start now
            self._start_review(self._scores)
            return
        store = self._open_store()
        if store is None:
            return
        self.store = store
        if self.session is not None:
            self.session.store = store
            self.session.set_view()
            self.table_model.refresh()
            self._update_info()
        self._say(f"Decisions now go to {store.path} ({len(store)} already there).")

    def show_current(self) -> None:
        """Show the session's current chip in the layers and the table."""
        if self.session is None or self.loader is None:
            return
        cid = self.session.current
        if cid is None:
            self.chip_label.setText("No chip matches the filters.")
            return
        view = self.loader.get(cid)
        self.chip_layers.show(view)
        self.loader.prefetch(self.session.upcoming(PREFETCH))
        # Text and table follow on the next turn of the event loop, so that the canvas
        # (what the reviewer is looking at) is drawn first.
        QTimer.singleShot(0, self._update_info)

    def _update_info(self) -> None:
        if not self._alive:
            return
        s = self.session
        if s is None or s.current is None:
            return
        cid = s.current
        row = s.row(cid)
        d = s.store.get(cid)
        decided, total = s.progress()

        def num(key: str) -> str:
            try:
                f = float(row.get(key))
            except (TypeError, ValueError):
                return "–"
            return "–" if math.isnan(f) else f"{f:.2f}"

        text = (
            f"<b>{cid}</b> · {s.position + 1} of {len(s.order)} listed"
            f" · suspicion <b>{num('suspicion')}</b> · IoU {num('iou')}"
            f"<br>cloud: label {fraction_text(row.get('label_cloud_fraction'))},"
            f" model {fraction_text(row.get('pred_cloud_fraction'))}"
            f" · decision: <b>{d.decision if d else 'none yet'}</b>"
            f"{f' ({d.reason})' if d and d.reason else ''} · {decided}/{total} decided"
            f"<br>flags: {str(row.get('flags') or '–').replace(';', ' ')}"
        )
        error = row.get("error") or (self.loader.get(cid).error if self.loader else "")
        if error:
            text += f"<br><span style='color:#ff6b6b'>cannot be shown: {error}</span>"
        self.chip_label.setText(text)
        self.chip_label.setToolTip(text)
        if 0 <= s.position < len(s.order):
            self.table.selectRow(s.position)
            self.table.scrollTo(self.table_model.index(s.position, 0))

    def _on_table_clicked(self, index) -> None:
        cid = self.table_model.chip_at(index.row())
        if cid is not None and self.session is not None:
            self.session.goto(cid)
            self.show_current()
            self.viewer.window._qt_viewer.canvas.native.setFocus()

    def _on_filter_changed(self, *_) -> None:
        if self.session is None:
            return
        self.session.set_view(
            flag=self.flag_combo.currentData(), undecided_only=self.undecided_check.isChecked()
        )
        self.table_model.refresh()
        self.show_current()

    def _on_mode_changed(self, mode: str) -> None:
        self.chip_layers.set_mode(mode)

    # ------------------------------------------------------------------ actions (keys & buttons)
    def next_chip(self) -> None:
        if self.session is not None:
            self.session.next()
            self.show_current()

    def previous_chip(self) -> None:
        if self.session is not None:
            self.session.previous()
            self.show_current()

    def next_undecided(self) -> None:
        if self.session is None:
            return
        if self.session.next_undecided() is None:
            self._say("Every listed chip has a decision.")
        self.show_current()

    def _decide(self, decision: str, reason: str = "") -> None:
        if self.session is None:
            self._say("Open a dataset with a usable blocklist first.", error=True)
            return
        try:
            self.session.decide(decision, reason)
        except BlocklistError as exc:
            self._say(f"Not saved: {exc}", error=True)
            return
        if self.session.store.merged_from_elsewhere:
            n = self.session.store.merged_from_elsewhere
            self.status.setText(f"{n} decision(s) made in another window were merged in.")
        self.table_model.refresh()
        self.show_current()

    def keep(self) -> None:
        self._decide("keep")

    def block(self, reason: str | None = None) -> None:
        self._decide("block", reason if reason is not None else self.reason_combo.currentText())

    def unsure(self) -> None:
        self._decide("unsure")

    def undo(self) -> None:
        if self.session is None:
            return
        try:
            cid = self.session.undo()
        except BlocklistError as exc:
            self._say(f"Undo not saved: {exc}", error=True)
            return
        if cid is None:
            self.status.setText("Nothing to undo.")
            return
        self.table_model.refresh()
        self.show_current()
        self.status.setText(f"Undid the decision on {cid}.")

    def toggle_mode(self) -> None:
        mode = LAYERS if self.chip_layers.mode == SIDE_BY_SIDE else SIDE_BY_SIDE
        self.mode_combo.setCurrentText(mode)

    def _on_export(self) -> None:
        if self.store is None:
            self._say("Nothing to export: no blocklist is open.", error=True)
            return
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Export blocklist",
            str(self.store.path.with_name("blocklist_export.csv")),
            "CSV (*.csv)",
        )
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        try:
            out = self.store.export(path, blocked_only=not self.export_all.isChecked())
        except BlocklistError as exc:
            self._say(str(exc), error=True)
            return None
        self._say(f"Exported the blocklist to {out}.")
        return out

    # ------------------------------------------------------------------ teardown
    def _teardown(self, *_) -> None:
        self._alive = False
        if self._worker is not None:
            self._worker.quit()
        try:
            self.retrain.shutdown()
        except RuntimeError:  # its Qt object is already gone
            pass
        if self.loader is not None:
            self.loader.close()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self._alive = False
        self._unbind_keys()
        self._teardown()
        super().closeEvent(event)


def open_in_viewer(
    viewer: napari.Viewer, path: str | Path, model: str = "baseline"
) -> ChipQAWidget:
    """Dock the Chip QA widget in ``viewer`` (once) and open ``path`` in it."""
    _, widget = viewer.window.add_plugin_dock_widget("chipqa", "Chip QA")
    widget.open_dataset(path, model)
    return widget

"""The review controller: the one writer of a review's state, without a screen.

:class:`ReviewController` owns what a review changes: the dataset (with the label fixes
in force), the blocklist store, the scoring settings, the scores and the
:class:`~chipqa.review.session.ReviewSession` (ordering, cursor, decisions). It offers
the review's verbs — open a dataset, switch the blocklist, score, move, sort and
filter, decide, fix, undo — and announces every change through
`psygnal <https://psygnal.readthedocs.io>`_ signals. The napari panel turns keys and
buttons into these calls and draws the signals; a script or a test drives the same
object without Qt::

    review = ReviewController()
    review.open_dataset("data/")
    review.switch_blocklist()              # the dataset's own blocklist
    review.score(ScoringSettings.create("baseline"))
    review.decide("keep")

Switching the dataset starts over: its own blocklist, its own label fixes, no session
(so no progress and no badge) until it is scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from psygnal import Signal

from chipqa.blocklist.csvformat import BlocklistError, Decision
from chipqa.blocklist.store import BlocklistStore
from chipqa.constants import LABEL_CLOUD, LABEL_NODATA
from chipqa.errors import ChipqaError
from chipqa.review.fixes import record_fix
from chipqa.review.project import ReviewProject
from chipqa.review.session import ReviewSession
from chipqa.scoring.settings import ScoringSettings

if TYPE_CHECKING:
    from chipqa.predictors import Predictor

FIXED_COLUMNS = ("label_cloud_fraction", "iou", "label_source")
"""The numbers of a chip that a label fix changes in the table (until it is scored again)."""


class ReviewController:
    """A review: a dataset, its blocklist, its scores and the session over them.

    Signals:
        dataset_changed(project): another dataset is open; the blocklist path is its
            default one again, no fixes of another blocklist apply, no session.
        blocklist_changed(store): decisions now go to ``store`` (None: no usable
            blocklist; decisions are off until one is chosen).
        session_changed(session): a new ranked session (None: none yet).
        labels_changed(chip_ids): the label in force of these chips changed (a fix,
            an undo of one, another blocklist's fixes).
        decided(chip_id, decision): a decision was recorded (a fix too).
        undone(chip_id): the last decision (or group) was taken back.
        message(text, is_error): something to tell the user.
    """

    dataset_changed = Signal(object)
    blocklist_changed = Signal(object)
    session_changed = Signal(object)
    labels_changed = Signal(list)
    decided = Signal(str, str)
    undone = Signal(str)
    message = Signal(str, bool)

    def __init__(self) -> None:
        self.project: ReviewProject | None = None
        self.blocklist_path: Path | None = None
        self.store: BlocklistStore | None = None
        self.settings: ScoringSettings | None = None
        self.scores: pd.DataFrame | None = None
        self.session: ReviewSession | None = None
        self.predictor: Predictor | None = None
        """The model the scores under review were made with (None: not loaded)."""
        self._scored_rows: dict[str, dict] = {}  # a fixed chip's numbers as scored

    @property
    def dataset(self):
        return self.project.dataset if self.project is not None else None

    # -- dataset and blocklist -----------------------------------------------------
    def open_dataset(self, root: str | Path) -> ReviewProject:
        """Open the dataset at ``root`` (listed again even when it is the open one).

        Another dataset than the open one starts over: its default blocklist, its own
        labels, no scores, no session. Reopening the same one keeps the blocklist path.

        Raises:
            DatasetError: ``root`` holds no chips (nothing changes then).
        """
        project = ReviewProject.open(root)
        same = self.project is not None and self.project.root == project.root
        self._set_session(None)
        self.project, self.scores, self.store = project, None, None
        if not same:
            self.blocklist_path = project.default_blocklist
            self.settings = None
        self.dataset_changed.emit(project)
        return project

    def switch_blocklist(self, path: str | Path | None = None) -> BlocklistStore | None:
        """Send decisions to the blocklist at ``path`` (default: the current path, at
        first the dataset's own) and apply the label fixes it records.

        A blocklist whose decisions are for chips this dataset does not have is used
        all the same (nothing is lost), with a warning naming how many and one of them.
        """
        if self.project is None:
            raise ChipqaError("open a dataset before choosing its blocklist")
        if path:
            self.blocklist_path = Path(path).expanduser()
        path = self.blocklist_path or self.project.default_blocklist
        try:
            store = self.project.open_store(path)
        except BlocklistError as exc:
            self.store = None
            self.message.emit(
                f"{exc} Decisions are disabled until a usable blocklist path is chosen.", True
            )
            self._set_session(None)
            self.blocklist_changed.emit(None)
            return None
        self.store = store
        before = {r.chip_id: r.label_path for r in self.dataset}
        problem = self.project.use_fixes(path)
        if problem:
            self.message.emit(problem, True)
        if self.session is not None:
            self.message.emit(
                f"Decisions now go to {store.path} ({len(store)} already there).", False
            )
        self._warn_foreign_ids(store)
        if self.session is not None:
            self.session.store = store
        elif self.scores is not None:
            self._set_session(ReviewSession(self.scores, store))
        self.blocklist_changed.emit(store)
        changed = [r.chip_id for r in self.dataset if before.get(r.chip_id) != r.label_path]
        if changed:
            self.labels_changed.emit(changed)
        return store

    def _warn_foreign_ids(self, store: BlocklistStore) -> None:
        ids = set(store.decisions)
        foreign = sorted(ids - set(self.dataset.chip_ids))
        if foreign:
            self.message.emit(
                f"{len(foreign)} of the {len(ids)} decisions in {store.path} are for chips "
                f"that {self.project.root.name} does not have (for example {foreign[0]!r}): "
                "is it this dataset's blocklist? Its decisions on this dataset's chips "
                "are shown; choose another blocklist path if it is not.",
                True,
            )

    # -- scores ----------------------------------------------------------------------
    def score(self, settings: ScoringSettings, *, device: str = "auto", **kwargs) -> pd.DataFrame:
        """Score the open dataset with ``settings`` here and now (a script's way; the
        napari panel scores in a worker thread and hands the table to :meth:`scored`).
        ``kwargs`` go to :func:`chipqa.scoring.score_dataset`."""
        from chipqa.scoring import score_dataset
        from chipqa.scoring.previews import PreviewStore
        from chipqa.scoring.table import scored_threshold

        predictor, settings = settings.load_predictor(device)
        self.predictor = predictor
        previews = PreviewStore.for_settings(self.project.root, settings)
        scores = score_dataset(
            self.dataset,
            predictor,
            threshold=settings.score_threshold,
            previews=previews if settings.previews else None,
            **kwargs,
        )
        settings = settings.resolved(threshold=scored_threshold(scores))
        self.scored(scores, settings)
        return scores

    def scored(self, scores: pd.DataFrame, settings: ScoringSettings, *, save: bool = True):
        """A finished scoring run: save the table (and its settings) beside the dataset
        and review it. A table that cannot be saved is reviewed all the same."""
        if save:
            try:
                self.project.save_scores(scores, settings)
            except ChipqaError as exc:
                self.message.emit(
                    f"Scores could not be saved beside the dataset ({exc}); reviewing anyway.",
                    True,
                )
        self.review(scores, settings)

    def review(self, scores: pd.DataFrame, settings: ScoringSettings | None = None):
        """Review ``scores`` in a new session (decisions to the blocklist in force)."""
        self.scores = scores
        if settings is not None:
            self.settings = settings
        if self.store is None:
            self.switch_blocklist()  # makes the session when the blocklist is usable
        else:
            self._set_session(ReviewSession(scores, self.store))
        return self.session

    def use_predictor(self, predictor: Predictor | None) -> None:
        """The model that draws the chips under review and makes their fixes' masks
        (loaded from the settings the scores are made with)."""
        self.predictor = predictor

    def close_review(self) -> None:
        """No session (scoring again, the panel closing)."""
        self._set_session(None)

    def _set_session(self, session: ReviewSession | None) -> None:
        self._scored_rows = {}
        old = self.session
        if old is not None:
            old.decided.disconnect(self._relay_decided)
            old.undone.disconnect(self._relay_undone)
        self.session = session
        if session is not None:
            session.decided.connect(self._relay_decided)
            session.undone.connect(self._relay_undone)
        self.session_changed.emit(session)

    def _relay_decided(self, chip_id: str, decision: str) -> None:
        self.decided.emit(chip_id, decision)

    def _relay_undone(self, chip_id: str) -> None:
        self.undone.emit(chip_id)

    # -- where the reviewer is -----------------------------------------------------
    def goto(self, chip_id: str) -> str | None:
        """Make ``chip_id`` the current chip (a filter that hides it is lifted)."""
        return None if self.session is None else self.session.goto(chip_id)

    def step(self, delta: int) -> str | None:
        """The next (``delta`` > 0) or previous chip listed."""
        s = self.session
        if s is None:
            return None
        return s.next() if delta > 0 else s.previous()

    def move_to(self, position: int) -> None:
        """Make the chip at ``position`` of the ordering current (a gallery cell)."""
        if self.session is not None:
            self.session.position = position

    def next_undecided(self) -> str | None:
        """The next listed chip without a decision (None: every one has one)."""
        return None if self.session is None else self.session.next_undecided()

    def set_view(self, **view) -> None:
        """Sort or filter the listed chips (see :meth:`ReviewSession.set_view`)."""
        if self.session is not None:
            self.session.set_view(**view)

    # -- decisions -------------------------------------------------------------------
    def decide(self, decision: str, reason: str = "") -> Decision | None:
        """Decide on the current chip (see :meth:`ReviewSession.decide`).

        Raises:
            BlocklistError: the blocklist cannot be written (nothing changes then).
        """
        return None if self.session is None else self.session.decide(decision, reason)

    def decide_chips(
        self, items: Sequence[tuple[str, str, str]], *, rule: str = ""
    ) -> list[Decision]:
        """Decide on several chips in one write (see :meth:`ReviewSession.decide_chips`)."""
        return [] if self.session is None else self.session.decide_chips(items, rule=rule)

    def fix(
        self,
        chip_id: str,
        label: np.ndarray,
        *,
        source: str,
        model: str = "",
        info: Mapping[str, object] | None = None,
        reason: str = "",
        advance: bool = True,
        prob: np.ndarray | None = None,
    ) -> Decision:
        """Record ``label`` as the chip's fixed label (see
        :func:`chipqa.review.fixes.record_fix`): counted in the rate, the "undecided
        only" list updated, the label in force changed at once; the cursor moves on
        from the chip (as after a decision) unless ``advance`` is False.

        Raises:
            BlocklistError: no blocklist is open, or the label cannot be recorded.
        """
        if self.session is None or self.store is None:
            raise BlocklistError("open a dataset with a usable blocklist before fixing a label")

        def write() -> Decision:
            return record_fix(
                self.store, self.project.root, chip_id, label, source=source, model=model,
                info=info if info is not None else self.session.info(chip_id), reason=reason,
            )  # fmt: skip

        d = self.session.record(chip_id, "fix", write, advance=advance)
        row = self.session.row(chip_id)
        self._scored_rows.setdefault(chip_id, {k: row.get(k) for k in FIXED_COLUMNS})
        self.session.update_row(chip_id, self._fixed_numbers(label, prob))
        self._refresh_labels()
        return d

    def _fixed_numbers(self, label: np.ndarray, prob: np.ndarray | None) -> dict:
        labelled = label != LABEL_NODATA
        cloud = (label == LABEL_CLOUD) & labelled
        out = {
            "label_cloud_fraction": float(cloud.sum() / max(labelled.sum(), 1)),
            "label_source": "fixed",
        }
        if prob is not None and prob.shape == label.shape:
            threshold = self.settings.threshold_in_force if self.settings else 0.5
            pred = (prob >= threshold) & labelled
            union = (pred | cloud).sum()
            out["iou"] = float((pred & cloud).sum() / union) if union else 1.0
        return out

    def undo(self) -> str | None:
        """Take back the last decision (a fix's label too); returns its chip."""
        if self.session is None:
            return None
        cid = self.session.undo()
        if cid is not None:
            self._refresh_labels()
        return cid

    def _refresh_labels(self) -> list[str]:
        changed = self.dataset.refresh_fixes(self.store.decisions)
        for chip in changed:  # a fix undone: the numbers as scored again
            if chip in self._scored_rows and not self.dataset[chip].fixed:
                self.session.update_row(chip, self._scored_rows.pop(chip))
        if changed:
            self.labels_changed.emit(changed)
        return changed

"""Scoring a dataset in a napari worker thread, reported through Qt signals.

The work is :func:`chipqa.scoring.iter_scores` with the job's
:class:`~chipqa.scoring.settings.ScoringSettings` (``threshold auto`` calibrates to the
labels first, exactly as ``chipqa score`` does); this module only runs it off the GUI
thread, counts the rows and keeps a napari progress bar up to date. Every signal is
delivered in the GUI thread.
"""

from __future__ import annotations

import pandas as pd
from qtpy.QtCore import QObject, Signal

from chipqa.data import ChipDataset
from chipqa.predictors import Predictor
from chipqa.scoring import finalize, iter_scores
from chipqa.scoring.calibrate import Calibration
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.settings import ScoringSettings
from chipqa.scoring.table import scored_threshold


def _score_job(
    dataset: ChipDataset,
    predictor: Predictor,
    settings: ScoringSettings,
    previews: PreviewStore | None,
    calibrated: list[Calibration],
):
    """Generator run in a worker thread: yields the rows of each scored batch.

    Two reading threads (the CLI uses every core for the CPU baseline) leave the rest of
    the machine to the viewer and its prefetch; batches are sized for the device.
    """
    yield from iter_scores(
        dataset,
        predictor,
        workers=2,
        threshold=settings.score_threshold,
        on_calibrated=calibrated.append,
        previews=previews,
    )


class ScoringJob(QObject):
    """Scores ``dataset`` with ``predictor`` in a worker thread.

    Signals:
        progressed(done): rows scored so far.
        done(scores): the finished, ranked scores table (``attrs["calibration"]`` as from
            :func:`chipqa.scoring.score_dataset`); :attr:`settings` then holds the
            threshold it was scored at.
        aborted(scores): cancelled; the table of the chips scored so far (maybe empty).
        failed(exc): scoring raised.
        finished(): the worker has stopped, whatever the outcome (emitted last).
    """

    progressed = Signal(int)
    done = Signal(object)
    aborted = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(
        self,
        dataset: ChipDataset,
        predictor: Predictor,
        settings: ScoringSettings,
        parent: QObject | None = None,
        *,
        previews: PreviewStore | None = None,
    ):
        super().__init__(parent)
        self.dataset = dataset
        self.predictor = predictor
        self.settings = settings
        self.previews = previews
        self.calibrated: list[Calibration] = []
        self.rows: list[dict] = []
        self._worker = None
        self._pbar = None

    @property
    def total(self) -> int:
        return len(self.dataset)

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._pbar = progress(total=self.total, desc=f"chipqa: scoring {self.dataset.root.name}")
        worker = create_worker(
            _score_job, self.dataset, self.predictor, self.settings, self.previews, self.calibrated
        )
        worker.yielded.connect(self._on_batch)
        worker.returned.connect(self._on_returned)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self.failed.emit)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def cancel(self) -> None:
        """Ask the worker to stop after the batch in progress (``aborted`` follows)."""
        if self._worker is not None:
            self._worker.quit()

    def _on_batch(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if self._pbar is not None:
            self._pbar.update(len(rows))
        self.progressed.emit(len(self.rows))

    def table(self):
        """The scores so far as a ranked table, with the calibration and the settings'
        threshold resolved (as :func:`chipqa.scoring.score_dataset` makes it)."""
        table = finalize(self.rows)
        if self.calibrated:
            table.attrs["calibration"] = self.calibrated[0]
        self.settings = self.settings.resolved(
            threshold=scored_threshold(table, self.settings.threshold_in_force)
        )
        return table

    def _on_returned(self, _=None) -> None:
        self.done.emit(self.table())

    def _on_aborted(self) -> None:
        self.aborted.emit(self.table() if self.rows else pd.DataFrame())

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.finished.emit()

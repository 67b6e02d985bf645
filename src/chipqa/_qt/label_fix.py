"""Fixing a chip's label in napari: accept the model's mask, or paint the label.

:class:`LabelFixer` is a thin controller over :func:`chipqa.review.fixes.record_fix`
(which checks the label, writes the fix file and records the ``fix`` decision): the
review widget binds its keys to it. Painting opens the label as a napari ``Labels``
layer (brush, eraser, fill and brush size are napari's own; 1 is cloud, 0 clear); the
label's no-data pixels are shown and are no data again in the saved fix, whatever was
painted over them. Return saves and Escape cancels while the layer is selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from psygnal import Signal

from chipqa._qt.chip_layers import NODATA, YELLOW
from chipqa.blocklist.csvformat import BlocklistError, Decision
from chipqa.blocklist.store import BlocklistStore
from chipqa.constants import LABEL_CLEAR, LABEL_CLOUD, LABEL_NODATA
from chipqa.review.fixes import model_label, record_fix

if TYPE_CHECKING:
    import napari

PAINT_LAYER = "fix label (paint: 1 cloud, 0 clear; Return saves, Escape cancels)"


def _paint_colormap():
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={
            None: (0, 0, 0, 0),
            LABEL_CLEAR: (0, 0, 0, 0),
            LABEL_CLOUD: YELLOW,
            LABEL_NODATA: NODATA,
        }  # fmt: skip
    )


class LabelFixer:
    """Fixes chip labels in a viewer and records them in ``store``.

    Args:
        viewer: the napari viewer the painting layer goes into.
        store: the blocklist the ``fix`` decisions go to (an undo there takes a fix back).
        dataset_root: the dataset; fixes go into ``<dataset>_chipqa_fixes``.
        bind_keys: bind Return (save) and Escape (cancel) on the painting layer.
        record: how a fix is recorded: ``record(chip_id, label, source=, model=, info=,
            reason=)`` (the review controller's :meth:`~chipqa.review.controller.
            ReviewController.fix`, so that a fix is a decision of the review); default:
            :func:`chipqa.review.fixes.record_fix` into ``store``.

    Signals:
        finished(chip_id): painting ended, saved or cancelled.
    """

    finished = Signal(str)

    def __init__(
        self,
        viewer: napari.Viewer,
        store: BlocklistStore,
        dataset_root: str | Path,
        *,
        bind_keys: bool = True,
        record: Callable[..., Decision] | None = None,
    ):
        self.viewer = viewer
        self.store = store
        self._record = record or self._record_in_store
        self.dataset_root = Path(dataset_root)
        self.bind_keys = bind_keys
        self.layer = None
        self.chip_id: str | None = None
        self._nodata: np.ndarray | None = None
        self._model = ""
        self._info: dict | None = None
        viewer.layers.events.removed.connect(self._on_removed)

    def _record_in_store(self, chip_id: str, label: np.ndarray, **kwargs) -> Decision:
        return record_fix(self.store, self.dataset_root, chip_id, label, **kwargs)

    @property
    def painting(self) -> bool:
        """True while a label is open for painting."""
        return self.layer is not None

    def accept_model(
        self,
        chip_id: str,
        probability: np.ndarray,
        threshold: float,
        *,
        model: str,
        info: Mapping[str, object] | None = None,
    ) -> Decision:
        """Make the model's mask at ``threshold`` the chip's label (its no-data pixels
        stay no data).

        Raises:
            BlocklistError: the mask does not fit the chip, or cannot be written.
        """
        return self._record(
            chip_id, model_label(probability, threshold), source="model", model=model,
            info=info, reason=f"model mask at threshold {threshold:g}",
        )  # fmt: skip

    def start_painting(
        self,
        chip_id: str,
        label: np.ndarray,
        translate: tuple[float, float] = (0, 0),
        *,
        model: str = "",
        info: Mapping[str, object] | None = None,
    ):
        """Open ``label`` (0 clear, 1 cloud, 255 no label) for painting, as a Labels
        layer at ``translate`` (world coordinates of its top-left pixel), selected, in
        paint mode with label 1 (cloud). A painting already open is cancelled first.

        Returns:
            The Labels layer.
        """
        if self.painting:
            self.cancel()
        label = np.asarray(label)
        self._nodata = label == LABEL_NODATA
        data = np.where(self._nodata, LABEL_NODATA, label).astype(np.uint8)
        layer = self.viewer.add_labels(
            data, name=PAINT_LAYER, translate=tuple(translate), colormap=_paint_colormap(),
            opacity=0.6,
        )  # fmt: skip
        layer.keymap.clear()  # only this controller's keys while painting
        if self.bind_keys:
            layer.bind_key("Enter", lambda _layer: self._save_reporting(), overwrite=True)
            layer.bind_key("Escape", lambda _layer: self.cancel(), overwrite=True)
        layer.selected_label = LABEL_CLOUD
        layer.events.selected_label.connect(self._only_cloud_or_clear)
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        self.layer, self.chip_id = layer, chip_id
        self._model, self._info = model, dict(info or {})
        return layer

    def _only_cloud_or_clear(self, _event=None) -> None:
        """Keep the brush on 1 (cloud) or 0 (clear, also the eraser's)."""
        if self.layer is not None and self.layer.selected_label not in (LABEL_CLEAR, LABEL_CLOUD):
            self.layer.selected_label = LABEL_CLOUD

    def painted_label(self) -> np.ndarray | None:
        """The label as painted so far, no-data pixels restored (None: not painting)."""
        if self.layer is None or self._nodata is None:
            return None
        out = np.array(self.layer.data, dtype=np.uint8, copy=True)
        out[self._nodata] = LABEL_NODATA
        return out

    def save(self) -> Decision | None:
        """Record the painted label as the chip's fix and close the painting; None when
        nothing is being painted.

        Raises:
            BlocklistError: the label cannot be recorded (the painting stays open, so
                nothing painted is lost).
        """
        label = self.painted_label()
        if label is None:
            return None
        d = self._record(
            self.chip_id, label, source="painted", model=self._model, info=self._info,
        )  # fmt: skip
        self.finished.emit(self._close())
        return d

    def _save_reporting(self) -> None:
        try:
            self.save()
        except BlocklistError as exc:
            from napari.utils.notifications import show_error

            show_error(str(exc))

    def cancel(self) -> None:
        """Close the painting without recording anything."""
        if self.painting:
            self.finished.emit(self._close())

    def _close(self) -> str:
        layer, chip_id = self.layer, self.chip_id
        self.layer, self.chip_id, self._nodata = None, None, None
        if layer is not None and layer in self.viewer.layers:
            self.viewer.layers.remove(layer)
        return chip_id or ""

    def close(self) -> None:
        """Cancel a painting and stop following the viewer's layers (the panel closes)."""
        self.cancel()
        try:
            self.viewer.layers.events.removed.disconnect(self._on_removed)
        except (TypeError, ValueError, RuntimeError):
            pass

    def _on_removed(self, event) -> None:
        if self.layer is not None and event.value is self.layer:
            self.cancel()  # the layer was deleted by hand: nothing is saved

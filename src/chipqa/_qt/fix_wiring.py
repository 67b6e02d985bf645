"""The label-fix keys of the review: ``a`` takes the model's mask as the chip's label,
``e`` paints the label, Return saves the painting and Escape cancels it (the keys in
force: each can be changed in napari's keyboard preferences, see :mod:`chipqa._qt.keys`).

The work is :class:`chipqa._qt.label_fix.LabelFixer`'s; this module only hands it the
chip on screen and keeps the review keys out of the way while a label is painted (only
the paint keys are chipqa's then, bound on the painted layer itself too, which napari
asks before its own Labels keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import SIDE_BY_SIDE
from chipqa._qt.keys import PAINT_KEYS, KeyBindings, key_table, paint_keys_text
from chipqa.blocklist.csvformat import BlocklistError
from chipqa.constants import panel_title_px

if TYPE_CHECKING:
    from chipqa._qt.review_widget import ChipQAWidget


def _fixer(w: ChipQAWidget):
    """The widget's label fixer (made on first use), or None with a message."""
    if w.session is None or w.dataset is None:
        w.say("Open a dataset first.", error=True)
        return None
    try:
        from chipqa._qt.label_fix import LabelFixer
    except ImportError as exc:
        w.say(f"Label fixing is not available in this installation ({exc}).", error=True)
        return None
    if w.fixer is None or getattr(w.fixer, "store", None) is not w.store:

        def record(chip_id, label, **kwargs):
            view = _loaded_view(w, chip_id)
            return w.controller.fix(
                chip_id,
                label,
                advance=kwargs.get("source") != "painted",  # a painted fix stays on screen
                prob=getattr(view, "prob", None),  # the table's IoU: the fixed label's
                **kwargs,
            )

        w.fixer = LabelFixer(w.viewer, w.store, w.dataset.root, bind_keys=False, record=record)
        w.fixer.finished.connect(lambda *_: _painting_over(w))
    return w.fixer


def _loaded_view(w: ChipQAWidget, chip_id: str):
    """The chip's view when it is loaded (never waits), else None."""
    if w.loader is None:
        return None
    fut = w.loader.request(chip_id)
    if not fut.done() or fut.cancelled() or fut.exception() is not None:
        return None
    return fut.result()


def _current_view(w: ChipQAWidget):
    s = w.session
    if s is None or s.current is None or w.loader is None:
        return None
    fut = w.loader.request(s.current)
    if not fut.done() or fut.cancelled() or fut.exception() is not None:
        w.say(f"{s.current} is still loading; try again when it is on screen.", error=True)
        return None
    view = fut.result()
    if view.chip is None:
        w.say(f"{s.current} cannot be read, so its label cannot be fixed.", error=True)
        return None
    return view


def _fixer_and_view(w: ChipQAWidget):
    """The fixer and the chip on screen, or (None, None): in the gallery the key opens
    the cursor chip side by side first; otherwise a message says why not."""
    if w.in_gallery:
        w.act_open()
        return None, None
    fixer = _fixer(w)
    view = _current_view(w) if fixer is not None else None
    return (fixer, view) if view is not None else (None, None)


def accept_model(w: ChipQAWidget) -> None:
    """Record the model's mask (at the scores' threshold) as the current chip's label."""
    fixer, view = _fixer_and_view(w)
    if view is None:
        return
    if view.prob is None:
        w.say("No model prediction to take as the label.", error=True)
        return
    cid = view.chip_id
    row = w.session.row(cid)
    try:
        threshold = float(row.get("threshold") or w.loader.threshold)
    except (TypeError, ValueError):
        threshold = w.loader.threshold
    try:
        fixer.accept_model(
            cid, view.prob, threshold, model=w.predictor.name if w.predictor else "",
            info=w.session.info(cid),
        )  # fmt: skip
    except (BlocklistError, OSError, ValueError) as exc:
        w.say(f"The fixed label of {cid} was not saved: {exc}", error=True)
        return
    w._recorded = f"✓ fix (model's mask) recorded for {cid}"
    w._update_badge()


def start_painting(w: ChipQAWidget) -> None:
    """Paint the current chip's label in a Labels layer (by default Return saves,
    Escape cancels)."""
    fixer, view = _fixer_and_view(w)
    if view is None:
        return
    # An unlabelled chip starts from the model's mask at the threshold it was scored at.
    label = view.label
    if label is None:
        label = (view.prob >= w.loader.threshold).astype("uint8")
    # Side by side, the label is painted over the true-colour panel, below its title
    # strip; in the layers view the chip's layers start at the origin.
    origin = (panel_title_px(label.shape[1]), 0) if w.view == SIDE_BY_SIDE else (0, 0)
    layer = fixer.start_painting(
        view.chip_id,
        label,
        origin,
        model=w.predictor.name if w.predictor else "",
        info=w.session.info(view.chip_id),
    )
    keys = paint_keys_text()
    if layer is not None and "Return saves, Escape cancels" in layer.name:
        layer.name = layer.name.replace("Return saves, Escape cancels", keys)
    w._keys.unbind()  # the review keys are out of the way while painting
    w._paint_keys = KeyBindings(w.viewer, key_table(PAINT_KEYS), w.run)
    w._paint_keys.bind()
    active = w.viewer.layers.selection.active
    if active is not None:
        w._paint_keys.add_layer(active)  # before napari's Labels keys on that layer
    w.status.setText(f"Painting the label of {view.chip_id}: {keys}.")


def finish(w: ChipQAWidget, *, save: bool) -> None:
    fixer = w.fixer
    if fixer is None or not getattr(fixer, "painting", False):
        return
    try:
        fixer.save() if save else fixer.cancel()
    except (BlocklistError, OSError, ValueError) as exc:
        w.say(f"The painted label was not saved: {exc}", error=True)
        return
    _painting_over(w)
    if save and w.session is not None:
        w.show_current()
        cid = w.session.current
        w._recorded = f"✓ fix (painted) recorded for {cid}"
        w.status.setText(f"Saved the painted label of {cid}.")
        w._update_badge()
    elif not save:
        w.status.setText("Painting cancelled; the label is as it was.")


def _painting_over(w: ChipQAWidget) -> None:
    if w.alive and w.status.text().startswith("Painting the label"):
        w.status.setText("Painting closed; nothing was saved.")  # the layer was deleted
    if w._paint_keys is not None:
        w._paint_keys.unbind()
        w._paint_keys.forget_layers()
        w._paint_keys = None
        if w.alive and w.isVisible():
            w._keys.bind()


def close_fixer(w: ChipQAWidget) -> None:
    """The panel closes: cancel a painting and drop the fixer's layer callback."""
    fixer, w.fixer = w.fixer, None
    _painting_over(w)
    if fixer is None:
        return
    if getattr(fixer, "painting", False):
        fixer.cancel()
    close = getattr(fixer, "close", None)
    if close is not None:
        close()
    else:
        try:
            w.viewer.layers.events.removed.disconnect(fixer._on_removed)
        except (TypeError, ValueError, RuntimeError):
            pass

"""The label-fix keys of the review: ``a`` takes the model's mask as the chip's label,
``e`` paints the label, Return saves the painting and Escape cancels it (the keys in
force: each can be changed in napari's keyboard preferences, see :mod:`chipqa._qt.keys`).

The work is :class:`chipqa._qt.label_fix.LabelFixer`'s; :class:`FixActions` hands it the
chip on screen, records the fix through the review controller and keeps the review keys
out of the way while a label is painted (only the paint keys are chipqa's then, bound on
the painted layer itself too, which napari asks before its own Labels keys).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chipqa._qt.chip_layers import SIDE_BY_SIDE
from chipqa._qt.keys import PAINT_KEYS, KeyBindings, key_table, paint_keys_text
from chipqa.blocklist.csvformat import BlocklistError
from chipqa.constants import panel_title_px

if TYPE_CHECKING:
    import napari

    from chipqa._qt.review_canvas import ReviewCanvas
    from chipqa._qt.status_line import StatusLine
    from chipqa.review.controller import ReviewController

PAINTING = "Painting the label"


class FixActions:
    """Fix the label of the chip on screen: take the model's mask, or paint it.

    Args:
        viewer: the viewer the painting layer goes into.
        controller: records the fix (a decision of the review: counted, undoable).
        canvas: the chip on screen and its loader.
        status: where the panel says what happened.
        review_keys: the review's key bindings, out of the way while painting.
        run: runs an action by name (the paint keys' Return and Escape).
        shown: whether the panel is shown (the review keys come back only then).
        need_session: True when a review is open, else says why not.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        controller: ReviewController,
        canvas: ReviewCanvas,
        status: StatusLine,
        review_keys: KeyBindings,
        run: Callable[[str], object],
        shown: Callable[[], bool],
        need_session: Callable[[], bool],
    ):
        self.viewer, self.controller, self.canvas, self.status = viewer, controller, canvas, status
        self.review_keys, self._run, self._shown = review_keys, run, shown
        self._need_session = need_session
        self.fixer = None
        self.paint_keys: KeyBindings | None = None

    @property
    def painting(self) -> bool:
        return self.fixer is not None and self.fixer.painting

    def _model_name(self) -> str:
        p = self.controller.predictor
        return p.name if p is not None else ""

    def _fixer(self):
        """The label fixer (made on first use, again for another blocklist), or None
        with a message."""
        c = self.controller
        if not self._need_session():
            return None
        try:
            from chipqa._qt.label_fix import LabelFixer
        except ImportError as exc:
            self.status.say(f"Label fixing is not available in this installation ({exc}).", True)
            return None
        if self.fixer is None or self.fixer.store is not c.store:
            if self.fixer is not None:
                self.fixer.close()
            self.fixer = LabelFixer(
                self.viewer, c.store, c.dataset.root, bind_keys=False, record=self._record
            )
            self.fixer.finished.connect(lambda *_: self._painting_over())
        return self.fixer

    def _record(self, chip_id, label, **kwargs):
        view = self._loaded_view(chip_id)
        return self.controller.fix(
            chip_id,
            label,
            advance=kwargs.get("source") != "painted",  # a painted fix stays on screen
            prob=getattr(view, "prob", None),  # the table's IoU: the fixed label's
            **kwargs,
        )

    def _loaded_view(self, chip_id: str):
        """The chip's view when it is loaded (never waits), else None."""
        loader = self.canvas.loader
        if loader is None:
            return None
        fut = loader.request(chip_id)
        if not fut.done() or fut.cancelled() or fut.exception() is not None:
            return None
        return fut.result()

    def _current_view(self):
        s = self.controller.session
        if s is None or s.current is None or self.canvas.loader is None:
            return None
        view = self._loaded_view(s.current)
        if view is None:
            self.status.say(
                f"{s.current} is still loading; try again when it is on screen.", error=True
            )
            return None
        if view.chip is None:
            self.status.say(f"{s.current} cannot be read, so its label cannot be fixed.", True)
            return None
        return view

    def _fixer_and_view(self):
        """The fixer and the chip on screen, or (None, None): in the gallery the key opens
        the cursor chip side by side first; otherwise a message says why not."""
        if self.canvas.in_gallery:
            self.canvas.open_cursor_chip()
            return None, None
        fixer = self._fixer()
        view = self._current_view() if fixer is not None else None
        return (fixer, view) if view is not None else (None, None)

    def accept_model(self) -> None:
        """Record the model's mask (at the scores' threshold) as the current chip's label."""
        fixer, view = self._fixer_and_view()
        if view is None:
            return
        if view.prob is None:
            self.status.say("No model prediction to take as the label.", error=True)
            return
        cid, session, loader = view.chip_id, self.controller.session, self.canvas.loader
        try:
            threshold = float(session.row(cid).get("threshold") or loader.threshold)
        except (TypeError, ValueError):
            threshold = loader.threshold
        try:
            fixer.accept_model(
                cid, view.prob, threshold, model=self._model_name(), info=session.info(cid)
            )
        except (BlocklistError, OSError, ValueError) as exc:
            self.status.say(f"The fixed label of {cid} was not saved: {exc}", error=True)
            return
        self.canvas.record(f"✓ fix (model's mask) recorded for {cid}")
        self.canvas.update_badge()

    def start_painting(self) -> None:
        """Paint the current chip's label in a Labels layer (by default Return saves,
        Escape cancels)."""
        fixer, view = self._fixer_and_view()
        if view is None:
            return
        # An unlabelled chip starts from the model's mask at the threshold it was scored at.
        label = view.label
        if label is None:
            label = (view.prob >= self.canvas.loader.threshold).astype("uint8")
        # Side by side, the label is painted over the true-colour panel, below its title
        # strip; in the layers view the chip's layers start at the origin.
        side = self.canvas.view == SIDE_BY_SIDE
        origin = (panel_title_px(label.shape[1]), 0) if side else (0, 0)
        layer = fixer.start_painting(
            view.chip_id,
            label,
            origin,
            model=self._model_name(),
            info=self.controller.session.info(view.chip_id),
        )
        keys = paint_keys_text()
        if layer is not None and "Return saves, Escape cancels" in layer.name:
            layer.name = layer.name.replace("Return saves, Escape cancels", keys)
        self.review_keys.unbind()  # the review keys are out of the way while painting
        self.paint_keys = KeyBindings(self.viewer, key_table(PAINT_KEYS), self._run)
        self.paint_keys.bind()
        active = self.viewer.layers.selection.active
        if active is not None:
            self.paint_keys.add_layer(active)  # before napari's Labels keys on that layer
        self.status.show_text(f"{PAINTING} of {view.chip_id}: {keys}.")

    def finish(self, *, save: bool) -> None:
        """Save (or cancel) the painting."""
        fixer = self.fixer
        if fixer is None or not fixer.painting:
            return
        try:
            fixer.save() if save else fixer.cancel()
        except (BlocklistError, OSError, ValueError) as exc:
            self.status.say(f"The painted label was not saved: {exc}", error=True)
            return
        self._painting_over()
        s = self.controller.session
        if save and s is not None:
            self.canvas.show_current()
            cid = s.current
            self.canvas.record(f"✓ fix (painted) recorded for {cid}")
            self.status.show_text(f"Saved the painted label of {cid}.")
            self.canvas.update_badge()
        elif not save:
            self.status.show_text("Painting cancelled; the label is as it was.")

    def set_keys(self) -> None:
        """The paint keys in force changed (napari's keyboard preferences)."""
        if self.paint_keys is not None:
            self.paint_keys.set_table(key_table(PAINT_KEYS))

    def _painting_over(self) -> None:
        if self._shown() and self.status.text().startswith(PAINTING):
            self.status.show_text("Painting closed; nothing was saved.")  # layer deleted
        if self.paint_keys is not None:
            self.paint_keys.unbind()
            self.paint_keys.forget_layers()
            self.paint_keys = None
            if self._shown():
                self.review_keys.bind()

    def close(self) -> None:
        """The panel closes: cancel a painting and drop the fixer's layer callback."""
        fixer, self.fixer = self.fixer, None
        self._painting_over()
        if fixer is not None:
            fixer.close()

"""Shows chips from a :class:`~chipqa.review.ChipLoader` without the GUI thread waiting.

Asking for a chip that is loaded already (the prefetch is usually ahead of the
reviewer) draws it at once. Otherwise the chip on screen is dimmed, :attr:`loading`
names the chip on its way, and the chip is drawn when its future completes: the
loader's thread only emits a queued Qt signal, and the drawing happens in the GUI
thread. Only the chip asked for last is drawn; a chip that arrives after the reviewer
has moved on is ignored. A line over the canvas says which chip is loading, or why the
chip asked for cannot be shown.
"""

from __future__ import annotations

from concurrent.futures import Future

from qtpy.QtCore import QObject, Qt, Signal

from chipqa._qt.chip_layers import ChipLayers
from chipqa.review.loader import ChipLoader, error_view


class ChipDisplay(QObject):
    """The bridge between a chip loader (threads) and the chip layers (GUI thread).

    Attributes:
        chip_id: the chip asked for last.
        loading: True while that chip is being loaded.
        error: why that chip is not shown (unreadable, or the load failed: then it is
            tried again the next time it is asked for); empty when it is shown.

    Signals:
        drawn(chip_id): the chip asked for is on screen (or its error is known).
    """

    drawn = Signal(str)
    _arrived = Signal(str, object)  # emitted from loader threads, delivered queued

    def __init__(self, layers: ChipLayers, parent: QObject | None = None):
        super().__init__(parent)
        self.layers = layers
        self.loader: ChipLoader | None = None
        self.chip_id: str | None = None
        self.loading = False
        self.error = ""
        self._future: Future | None = None
        self._arrived.connect(self._on_arrived, Qt.ConnectionType.QueuedConnection)

    def set_loader(self, loader: ChipLoader | None) -> None:
        """Show chips from another loader (the previous one is closed)."""
        if self.loader is not None and self.loader is not loader:
            self.loader.close()
        self.loader = loader
        self.chip_id, self.loading, self.error, self._future = None, False, "", None

    def show(self, chip_id: str) -> None:
        """Draw ``chip_id`` now if it is ready, else as soon as it is (returns at once)."""
        if self.loader is None:
            return
        self.chip_id = chip_id
        fut = self._future = self.loader.request(chip_id)
        if fut.done():
            self._draw(chip_id, fut)
            return
        self.loading, self.error = True, ""
        self.layers.dim(True)
        self.layers.note(f"loading {chip_id}…")
        fut.add_done_callback(lambda f, cid=chip_id: self._deliver(cid, f))

    def _deliver(self, chip_id: str, fut: Future) -> None:
        """Runs in the loader's thread: hand over to the GUI thread, touch nothing else."""
        try:
            self._arrived.emit(chip_id, fut)
        except RuntimeError:  # the display was deleted (the viewer closed meanwhile)
            pass

    def _on_arrived(self, chip_id: str, fut: Future) -> None:
        if fut is not self._future or fut.cancelled():
            return  # the reviewer has moved on, or the chip was asked for again
        self._draw(chip_id, fut)

    def _draw(self, chip_id: str, fut: Future) -> None:
        self.loading = False
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            what = "cancelled" if exc is None else f"{type(exc).__name__}: {exc}"
            self.error = f"{what} (tried again when you come back to this chip)"
            self.layers.show(error_view(chip_id, self.error))
        else:
            view = fut.result()
            self.error = view.error
            self.layers.show(view)
        self.layers.note(
            f"{chip_id} cannot be shown: {self.error}" if self.error else "", error=True
        )
        self.drawn.emit(chip_id)

    def close(self) -> None:
        self.set_loader(None)

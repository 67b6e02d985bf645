"""Training progress as JSON lines that another process can follow as they are written."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class ProgressWriter:
    """Progress as JSON lines (one object per line, flushed at once).

    Events: ``start`` (chips, epochs, steps per epoch), ``step`` (epoch, step, loss,
    eta_s), ``epoch`` (epoch, train_loss, train_iou, val_loss, val_iou, eta_s),
    ``warning`` (message), ``done`` (checkpoint, best_val_iou, best_iou_on: ``validation``,
    or ``training`` when the run had no validation chips; log_dir), ``error`` (message)
    and ``cancelled``. Another process (the napari plugin) follows a run by reading the file
    as it grows (:func:`read_progress`).
    """

    def __init__(self, path: str | Path | None, echo: Callable[[dict], None] | None = None):
        self.path = Path(path) if path else None
        self.echo = echo
        self.enabled = True
        self._f = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, event: str, **data: Any) -> None:
        if not self.enabled:
            return
        rec = {"event": event, "time": time.time(), **data}
        if self._f is not None:
            self._f.write(json.dumps(rec, allow_nan=True) + "\n")
            self._f.flush()
        if self.echo is not None:
            self.echo(rec)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_progress(path: str | Path, offset: int = 0) -> tuple[list[dict], int]:
    """New whole events of a progress file from byte ``offset``; returns (events, new offset)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line still being written waits for the next call
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events, offset + end

"""The Lightning callback that writes progress events and keeps the best weights."""

from __future__ import annotations

import math
import time

import torch

from chipqa.training._lightning import pl
from chipqa.training.progress import ProgressWriter


def _gather_ids(ids: set[str]) -> set[str]:
    """The union of every process's ``ids`` (just ``ids`` outside DDP)."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return set(ids)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, sorted(ids))
    return set().union(*parts)


class JsonProgress(pl.Callback):
    """Writes step and epoch events; keeps the weights of the best epoch in memory.

    The best epoch is the one with the highest validation IoU (the training IoU when
    there is no validation set), as synchronised over every process.
    """

    def __init__(self, writer: ProgressWriter, epochs: int, steps_per_epoch: int):
        self.writer = writer
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.t0 = time.monotonic()
        self.best_iou = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[dict] = []
        self.skipped_chips: set[str] = set()

    def _eta(self, trainer) -> float:
        done = trainer.global_step
        total = max(self.epochs * self.steps_per_epoch, 1)
        if trainer.max_steps and trainer.max_steps > 0:
            total = min(total, trainer.max_steps)
        elapsed = time.monotonic() - self.t0
        return elapsed / done * max(total - done, 0) if done else math.nan

    def on_fit_start(self, trainer, module) -> None:
        self.writer.enabled = trainer.global_rank == 0  # one writer under DDP

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if isinstance(outputs, dict):
            outputs = outputs.get("loss")
        if outputs is None:  # a batch whose chips were all unreadable: skipped
            return
        self.writer.emit(
            "step",
            epoch=trainer.current_epoch,
            step=trainer.global_step,
            loss=float(outputs),
            eta_s=self._eta(trainer),
        )

    def on_train_epoch_end(self, trainer, module) -> None:
        # Validation of this epoch has run already; its metrics are on the module.
        rec = {
            "epoch": trainer.current_epoch,
            **module.finish_train_epoch(),
            **module.val_metrics,
            "eta_s": self._eta(trainer),
        }
        self.history.append(rec)
        self.writer.emit("epoch", **rec)
        iou = rec.get("val_iou", rec.get("train_iou", -1.0))
        if iou is not None and iou > self.best_iou:
            self.best_iou = float(iou)
            self.best_state = {
                k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()
            }

    def on_train_end(self, trainer, module) -> None:
        self.skipped_chips = _gather_ids(module.skipped_chips)

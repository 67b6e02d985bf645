"""The LightningModule that trains a segmentation model, its loss and its IoU metric."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

from chipqa.constants import LABEL_CLOUD
from chipqa.predictors import InputAdapter, ModelConfig, build_model
from chipqa.stats.batched import confusion_counts, iou_from_counts
from chipqa.training._lightning import pl, torchmetrics
from chipqa.training.config import TrainingError
from chipqa.training.data import Batch


def dice_bce_loss(logits: Tensor, label: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy + soft Dice of the cloud class, over valid pixels only."""
    target = (label == LABEL_CLOUD).float()
    w = valid.float()
    n = w.sum().clamp(min=1.0)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / n
    p = torch.sigmoid(logits) * w
    inter = (p * target).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + (target * w).sum() + 1.0)
    return bce + dice


class CloudIoU(torchmetrics.Metric):
    """IoU of the cloud class pooled over every valid pixel seen (Σ tp / Σ union).

    The true-positive, false-positive and false-negative counts stay on the device and
    are summed across processes (DDP) before the ratio is formed, so the IoU of a
    validation set split over several GPUs is the IoU of the whole set. An empty union
    gives 1.0 (see :mod:`chipqa.stats.definitions`).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, logits: Tensor, label: Tensor, valid: Tensor) -> None:
        """Count a batch: ``logits`` ``(B, H, W)`` (cloud where ≥ 0, i.e. probability ≥ 0.5)."""
        c = confusion_counts(logits >= 0, label == LABEL_CLOUD, valid.bool())
        self.tp += c["tp"].sum()
        self.fp += c["fp"].sum()
        self.fn += c["fn"].sum()

    def compute(self) -> Tensor:
        return iou_from_counts(self.tp, self.fp, self.fn)


class CloudSegmenter(pl.LightningModule):
    """A segmentation model trained with Adam and :func:`dice_bce_loss`.

    Inputs go through the shared :class:`~chipqa.predictors.InputAdapter`, so the model
    sees in training exactly what it sees when predicting. Chips a batch could not read
    are collected in :attr:`skipped_chips`.

    Args:
        config: the model and its input normalisation.
        lr: Adam's learning rate.
        encoder_weights: pretrained encoder weights (None: random initialisation).
        init_state: weights of the whole model to start from (fine-tuning the pretrained
            model); None: ``encoder_weights`` or random.
    """

    def __init__(
        self,
        config: ModelConfig,
        lr: float,
        encoder_weights: str | None = None,
        init_state: dict | None = None,
    ):
        super().__init__()
        self.config = config
        self.lr = lr
        self.model = build_model(config, None if init_state is not None else encoder_weights)
        if init_state is not None:
            self.model.load_state_dict(init_state, strict=False)
        self.adapter = InputAdapter(config.mean, config.std, config.dn_offset)
        self.train_iou, self.val_iou = CloudIoU(), CloudIoU()
        self.train_loss, self.val_loss = torchmetrics.MeanMetric(), torchmetrics.MeanMetric()
        self.skipped_chips: set[str] = set()
        self.val_metrics: dict[str, float] = {}
        self.train_metrics: dict[str, float] | None = None
        """The last finished epoch's training metrics (None while an epoch runs)."""

    def forward(self, bands: Tensor) -> Tensor:
        """Cloud logits ``(B, H, W)`` for DNs ``(B, C, H, W)``."""
        return InputAdapter.crop(self.model(self.adapter(bands)), bands.shape[-2:])

    def _step(self, batch: Batch, stage: str) -> Tensor | None:
        if batch is None:
            return None
        bands, label, valid, skipped = batch
        self.skipped_chips.update(skipped)
        if bands is None:  # no chip of the batch could be read: skip the step
            return None
        logits = self(bands).float()
        loss = dice_bce_loss(logits, label, valid)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}; lower the learning rate (--lr) or check the chips "
                "for extreme values. No checkpoint was written."
            )
        with torch.no_grad():
            self._metrics(stage)[0].update(logits, label, valid)
            self._metrics(stage)[1].update(loss.detach())
        return loss

    def _metrics(self, stage: str) -> tuple[CloudIoU, torchmetrics.MeanMetric]:
        if stage == "train":
            return self.train_iou, self.train_loss
        return self.val_iou, self.val_loss

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def epoch_metrics(self, stage: str) -> dict[str, float]:
        """The IoU and mean loss of ``stage`` ("train" or "val") since the last call,
        over every process; resets them. Every process must call it (it synchronises)."""
        iou_metric, loss_metric = self._metrics(stage)
        with warnings.catch_warnings():  # a stage without a step: its loss is NaN
            warnings.filterwarnings("ignore", message=".*was called before the ``update``.*")
            iou = float(iou_metric.compute())
            loss = float(loss_metric.compute())
        iou_metric.reset()
        loss_metric.reset()
        return {f"{stage}_iou": iou, f"{stage}_loss": loss}

    def on_train_epoch_start(self) -> None:
        self.train_metrics = None
        self.train_iou.reset()
        self.train_loss.reset()

    def finish_train_epoch(self) -> dict[str, float]:
        """Log, reset and return the epoch's training metrics, once per epoch: the
        module does it at the end of each epoch itself; a callback whose hook runs
        before the module's (the progress callback) gets the same figures."""
        if self.train_metrics is None:
            self.train_metrics = self.epoch_metrics("train")
            self.log_dict(self.train_metrics)  # the same on every process already
        return self.train_metrics

    def on_train_epoch_end(self) -> None:
        self.finish_train_epoch()

    def on_validation_epoch_end(self) -> None:
        self.val_metrics = self.epoch_metrics("val")
        self.log_dict(self.val_metrics)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)

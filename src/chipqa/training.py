"""Train the U-Net on the chips a reviewer did not block (PyTorch Lightning).

:func:`train` is the whole job: it lists the dataset, leaves out blocked chips, splits
the rest into training and validation chips (stratified by ``location`` when the metadata
has it), fits a segmentation-models-pytorch U-Net with Adam and a Dice + BCE loss that
ignores nodata pixels, logs per-epoch metrics to CSV (and TensorBoard when it is
installed), writes progress events as JSON lines, and finally writes one checkpoint
atomically (see :func:`chipqa.predictors.checkpoint.save_checkpoint`): the weights of the epoch with
the best validation IoU, everything needed to rebuild the model and its input
normalisation, the training chips and the blocklist.

Lightning runs the loop, so the same call uses one CPU, one GPU (bf16 autocast,
channels-last) or several GPUs and nodes through DDP (``devices``, ``num_nodes``).
Nothing is written under the checkpoint's name unless training finishes: a run that is
cancelled, fails or produces NaN leaves no checkpoint behind.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from chipqa.data import ChipDataset, ChipRecord, open_dataset, read_chip
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.predictors import ModelConfig, build_model, save_checkpoint
from chipqa.review.blocklist import blocked_ids


class TrainingError(ChipqaError):
    """Training cannot start or cannot go on (the message says what to change)."""


@dataclass
class TrainConfig:
    """Settings of one training run (the ``chipqa train`` options)."""

    encoder: str = "resnet34"
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    val_fraction: float = 0.2
    seed: int = 0
    devices: int | str = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    workers: int = 2
    max_steps: int = -1
    augment: bool = True
    encoder_weights: str | None = None
    stats_chips: int = 64


@dataclass
class TrainResult:
    """What a finished run produced."""

    checkpoint: Path
    best_val_iou: float
    epochs_run: int
    train_chips: list[str]
    val_chips: list[str]
    seconds: float
    history: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------- progress events
class ProgressWriter:
    """Progress as JSON lines (one object per line, flushed at once).

    Events: ``start`` (chips, epochs, steps per epoch), ``step`` (epoch, step, loss,
    eta_s), ``epoch`` (epoch, train_loss, train_iou, val_loss, val_iou, eta_s), ``done``
    (checkpoint, best_val_iou), ``error`` (message) and ``cancelled``. Another process
    (the napari plugin) follows a run by reading the file as it grows.
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


# ---------------------------------------------------------------- data
def split_chips(
    records: Sequence[ChipRecord], val_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Training and validation chip ids, stratified by ``location`` when records have one.

    Within each location the chips are shuffled and about ``val_fraction`` of them go to
    validation (at least one when a location has 3 chips or more), so every place is
    represented on both sides.
    """
    rng = random.Random(seed)
    groups: dict[str, list[str]] = {}
    for r in records:
        groups.setdefault(r.metadata.get("location", ""), []).append(r.chip_id)
    train, val = [], []
    for loc in sorted(groups):
        ids = sorted(groups[loc])
        rng.shuffle(ids)
        n_val = int(round(len(ids) * val_fraction))
        if n_val == 0 and len(ids) >= 3 and val_fraction > 0:
            n_val = 1
        val += ids[:n_val]
        train += ids[n_val:]
    if not val and len(train) >= 2 and val_fraction > 0:
        val.append(train.pop())
    return sorted(train), sorted(val)


def kfold_chips(records: Sequence[ChipRecord], k: int, seed: int) -> list[list[str]]:
    """``k`` disjoint folds of chip ids, stratified by ``location``."""
    rng = random.Random(seed)
    groups: dict[str, list[str]] = {}
    for r in records:
        groups.setdefault(r.metadata.get("location", ""), []).append(r.chip_id)
    folds: list[list[str]] = [[] for _ in range(k)]
    i = 0
    for loc in sorted(groups):
        ids = sorted(groups[loc])
        rng.shuffle(ids)
        for cid in ids:
            folds[i % k].append(cid)
            i += 1
    return [sorted(f) for f in folds]


class ChipTrainingSet(Dataset):
    """Chips as training samples: (bands int32 (4,H,W), label uint8 (H,W), valid bool (H,W)).

    Augmentations that fit 4-band reflectance: random flips, 90° rotations and a
    per-band brightness/contrast jitter (gain 0.9–1.1 about the band's mean, offset
    ±2 % reflectance). A chip that cannot be read yields ``None`` and is dropped by
    :func:`collate`.
    """

    def __init__(self, records: Sequence[ChipRecord], augment: bool, seed: int = 0, cache=None):
        self.records = list(records)
        self.augment = augment
        self.seed = seed
        self.cache = cache  # a ChipCache pickles without its memory maps (worker-safe)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        rec = self.records[i]
        try:
            chip = self.cache.read(rec) if self.cache is not None else None
            chip = chip if chip is not None else read_chip(rec)
        except ChipReadError:
            return None
        bands = chip.bands.astype(np.float32)
        label, valid = chip.label, chip.valid
        if self.augment:
            rng = np.random.default_rng()
            k = int(rng.integers(4))
            flip = bool(rng.integers(2))
            bands = np.rot90(bands, k, axes=(1, 2))
            label, valid = np.rot90(label, k), np.rot90(valid, k)
            if flip:
                bands, label, valid = bands[:, :, ::-1], label[:, ::-1], valid[:, ::-1]
            gain = rng.uniform(0.9, 1.1, size=(4, 1, 1)).astype(np.float32)
            offset = rng.uniform(-200, 200, size=(4, 1, 1)).astype(np.float32)
            mean = bands.reshape(4, -1).mean(1).reshape(4, 1, 1)
            bands = np.clip((bands - mean) * gain + mean + offset, 1, 65535)
        return (
            torch.from_numpy(np.ascontiguousarray(bands)),
            torch.from_numpy(np.ascontiguousarray(label)),
            torch.from_numpy(np.ascontiguousarray(valid)),
        )


def collate(batch):
    """Stack samples, dropping chips that could not be read."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return tuple(torch.stack(x) for x in zip(*batch, strict=True))


def band_statistics(records: Sequence[ChipRecord], n: int = 64, seed: int = 0):
    """Per-band mean and standard deviation of reflectance over valid pixels of ≤ n chips."""
    rng = random.Random(seed)
    pick = list(records)
    rng.shuffle(pick)
    sums = np.zeros(4)
    sq = np.zeros(4)
    count = 0
    for rec in pick[:n]:
        try:
            chip = read_chip(rec)
        except ChipReadError:
            continue
        v = chip.bands[:, chip.valid].astype(np.float64) * 1e-4
        sums += v.sum(1)
        sq += (v**2).sum(1)
        count += v.shape[1]
    if count == 0:
        raise TrainingError("none of the training chips could be read; see `chipqa score` for why")
    mean = sums / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 1e-8))
    return tuple(float(x) for x in mean), tuple(float(x) for x in std)


# ---------------------------------------------------------------- the Lightning module
def dice_bce_loss(logits: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy + soft Dice of the cloud class, over valid pixels only."""
    target = (label == 1).float()
    w = valid.float()
    n = w.sum().clamp(min=1.0)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * w).sum() / n
    p = torch.sigmoid(logits) * w
    inter = (p * target).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + (target * w).sum() + 1.0)
    return bce + dice


def _lightning():
    from chipqa._compat import import_torchvision

    import_torchvision()  # Lightning imports torchmetrics, which imports torchvision
    import lightning.pytorch as pl

    return pl


def make_module(config: ModelConfig, lr: float, encoder_weights: str | None = None):
    """The LightningModule (built lazily so that importing chipqa does not import Lightning)."""
    pl = _lightning()

    class CloudSegmenter(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.config = config
            self.lr = lr
            self.model = build_model(config, encoder_weights)
            shape = (1, len(config.mean), 1, 1)
            self.register_buffer("mean", torch.tensor(config.mean).view(shape), persistent=False)
            self.register_buffer("std", torch.tensor(config.std).view(shape), persistent=False)
            self._counts = {"train": torch.zeros(3), "val": torch.zeros(3)}
            self._losses = {"train": [], "val": []}

        def forward(self, bands):
            x = (bands.float() * 1e-4 - self.mean) / self.std
            h, w = x.shape[-2:]
            ph, pw = (-h) % 32, (-w) % 32
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
            if x.device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model(x)[:, 0, :h, :w]

        def _step(self, batch, stage: str):
            if batch is None:
                return None
            bands, label, valid = batch
            logits = self(bands).float()
            loss = dice_bce_loss(logits, label, valid)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at epoch {self.current_epoch}, step "
                    f"{self.global_step}; lower the learning rate (--lr) or check the chips "
                    "for extreme values. No checkpoint was written."
                )
            with torch.no_grad():
                pred = logits >= 0
                target = label == 1
                tp = (pred & target & valid).sum()
                fp = (pred & ~target & valid).sum()
                fn = (~pred & target & valid).sum()
                self._counts[stage] += torch.stack([tp, fp, fn]).float().cpu()
            self._losses[stage].append(float(loss.detach()))
            return loss

        def training_step(self, batch, batch_idx):
            return self._step(batch, "train")

        def validation_step(self, batch, batch_idx):
            self._step(batch, "val")

        def _epoch_metrics(self, stage: str) -> dict:
            tp, fp, fn = self._counts[stage].tolist()
            union = tp + fp + fn
            iou = tp / union if union else 1.0
            losses = self._losses[stage]
            mean_loss = float(np.mean(losses)) if losses else math.nan
            out = {f"{stage}_iou": iou, f"{stage}_loss": mean_loss}
            self._counts[stage] = torch.zeros(3)
            self._losses[stage] = []
            return out

        def finish_train_epoch(self) -> dict:
            """Log and return the epoch's training metrics (called by the progress callback,
            whose hook runs before the module's own ``on_train_epoch_end``)."""
            m = self._epoch_metrics("train")
            self.log_dict(m, sync_dist=True)
            return m

        def on_validation_epoch_end(self):
            m = self._epoch_metrics("val")
            self.log_dict(m, sync_dist=True)
            self.val_metrics = m

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=self.lr)

    return CloudSegmenter()


def _progress_callback(writer: ProgressWriter, epochs: int, steps_per_epoch: int):
    pl = _lightning()

    class JsonProgress(pl.Callback):
        """Writes step and epoch events; keeps the best weights in memory."""

        def __init__(self):
            self.t0 = time.monotonic()
            self.best_iou = -1.0
            self.best_state = None
            self.history: list[dict] = []

        def _eta(self, trainer) -> float:
            done = trainer.global_step
            total = max(epochs * steps_per_epoch, 1)
            if trainer.max_steps and trainer.max_steps > 0:
                total = min(total, trainer.max_steps)
            elapsed = time.monotonic() - self.t0
            return elapsed / done * max(total - done, 0) if done else math.nan

        def on_fit_start(self, trainer, module):
            writer.enabled = trainer.global_rank == 0  # one writer under DDP

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if isinstance(outputs, dict):
                outputs = outputs.get("loss")
            if outputs is None:  # a batch whose chips were all unreadable: skipped
                return
            loss = float(outputs)
            writer.emit(
                "step",
                epoch=trainer.current_epoch,
                step=trainer.global_step,
                loss=loss,
                eta_s=self._eta(trainer),
            )

        def on_train_epoch_end(self, trainer, module):
            # Validation of this epoch has run already; its metrics are on the module.
            rec = {
                "epoch": trainer.current_epoch,
                **module.finish_train_epoch(),
                **getattr(module, "val_metrics", {}),
                "eta_s": self._eta(trainer),
            }
            self.history.append(rec)
            writer.emit("epoch", **rec)
            iou = rec.get("val_iou", rec.get("train_iou", -1.0))
            if iou is not None and iou > self.best_iou:
                self.best_iou = float(iou)
                self.best_state = {
                    k: v.detach().cpu().clone() for k, v in module.model.state_dict().items()
                }

    return JsonProgress()


def _check_accelerator(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise TrainingError(
            "a GPU was asked for (--accelerator gpu) but this machine has no usable CUDA GPU; "
            "use --device cpu or auto"
        )
    return "gpu" if accelerator == "cuda" else accelerator


def _loggers(log_dir: Path):
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(log_dir), name="", version="")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(log_dir), name="", version="tensorboard"))
    except ImportError:
        pass
    return loggers


def prepare_chips(
    dataset: ChipDataset, blocklist: str | Path | None, chips: Sequence[str] | None = None
) -> tuple[list[ChipRecord], list[str], list[str]]:
    """Labelled, unblocked records to train on; also the blocked ids and the unknown ones.

    Raises:
        TrainingError: nothing is left to train on.
    """
    blocked = set(blocked_ids(blocklist)) if blocklist else set()
    unknown = sorted(blocked - set(dataset.chip_ids))
    pool = [r for r in dataset if r.label_path is not None and not r.problem]
    if chips is not None:
        keep = set(chips)
        pool = [r for r in pool if r.chip_id in keep]
    usable = [r for r in pool if r.chip_id not in blocked]
    if len(usable) < 2:
        raise TrainingError(
            f"only {len(usable)} labelled chip(s) of {dataset.root} are left after leaving out "
            f"{len(blocked & {r.chip_id for r in pool})} blocked one(s); training needs at "
            "least 2. Unblock some chips or check the blocklist."
        )
    return usable, sorted(blocked), unknown


def train(
    data: str | Path | ChipDataset,
    out: str | Path,
    *,
    blocklist: str | Path | None = None,
    config: TrainConfig | None = None,
    chips: Sequence[str] | None = None,
    val_chips: Sequence[str] | None = None,
    progress: str | Path | None = None,
    echo: Callable[[dict], None] | None = None,
    log_dir: str | Path | None = None,
) -> TrainResult:
    """Train a U-Net on the unblocked chips and write its checkpoint to ``out``.

    Args:
        data: dataset folder (or an opened dataset).
        out: checkpoint path (written once, atomically, when training ends).
        blocklist: blocklist CSV; its ``block`` rows are left out.
        config: settings (see :class:`TrainConfig`).
        chips: train only on these chips (for out-of-fold scoring).
        val_chips: use these as validation chips instead of a split.
        progress: JSON-lines progress file (see :class:`ProgressWriter`).
        echo: called with every progress event (the CLI's progress bar).
        log_dir: where the per-epoch CSV (and TensorBoard) logs go
            (default: beside the checkpoint, ``<out>.logs``).

    Raises:
        TrainingError: nothing to train on, unknown encoder, no GPU, NaN loss.
    """
    cfg = config or TrainConfig()
    t0 = time.monotonic()
    dataset = data if isinstance(data, ChipDataset) else open_dataset(data)
    out = Path(out)
    writer = ProgressWriter(progress, echo)
    try:
        accelerator = _check_accelerator(cfg.accelerator)
        records, blocked, unknown = prepare_chips(dataset, blocklist, chips)
        if unknown:
            writer.emit(
                "warning",
                message=f"{len(unknown)} blocked chip id(s) are not in the "
                f"dataset and were ignored: {', '.join(unknown[:5])}",
            )
        by_id = {r.chip_id: r for r in records}
        if val_chips is not None:
            val_ids = sorted(set(val_chips) & set(dataset.chip_ids))
            train_ids = sorted(set(by_id) - set(val_ids))
        else:
            train_ids, val_ids = split_chips(records, cfg.val_fraction, cfg.seed)
        val_records = [dataset[c] for c in val_ids if dataset[c].label_path is not None]
        train_records = [by_id[c] for c in train_ids]
        mean, std = band_statistics(train_records, cfg.stats_chips, cfg.seed)
        model_cfg = ModelConfig(encoder=cfg.encoder, mean=mean, std=std)
        try:
            build_model(model_cfg, cfg.encoder_weights)
        except ValueError as exc:
            raise TrainingError(str(exc)) from exc
        result = _fit(
            dataset,
            out,
            cfg,
            accelerator,
            model_cfg,
            train_records,
            val_records,
            blocked,
            writer,
            Path(log_dir) if log_dir else out.with_suffix(".logs"),
        )
        result.seconds = time.monotonic() - t0
        writer.emit(
            "done",
            checkpoint=str(result.checkpoint),
            best_val_iou=result.best_val_iou,
            seconds=result.seconds,
        )
        return result
    except TrainingError as exc:
        writer.emit("error", message=str(exc))
        raise
    except Exception as exc:  # still tell a follower that the run is over
        writer.emit("error", message=f"{type(exc).__name__}: {exc}")
        raise
    except (KeyboardInterrupt, SystemExit):  # Lightning turns Ctrl-C/SIGTERM into SystemExit
        writer.emit("cancelled")
        raise
    finally:
        writer.close()


def _quiet_lightning() -> None:
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*have no `val_dataloader`.*")


def _fit(
    dataset, out, cfg, accelerator, model_cfg, train_records, val_records, blocked, writer, log_dir
) -> TrainResult:
    pl = _lightning()
    _quiet_lightning()
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    train_dl = DataLoader(
        ChipTrainingSet(train_records, cfg.augment, cfg.seed),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=cfg.workers,
        collate_fn=collate,
        drop_last=False,
        persistent_workers=cfg.workers > 0,
    )
    val_dl = None
    if val_records:
        val_dl = DataLoader(
            ChipTrainingSet(val_records, False),
            batch_size=cfg.batch_size,
            num_workers=cfg.workers,
            collate_fn=collate,
            persistent_workers=cfg.workers > 0,
        )
    steps = len(train_dl)
    writer.emit(
        "start",
        train_chips=len(train_records),
        val_chips=len(val_records),
        epochs=cfg.epochs,
        steps_per_epoch=steps,
        encoder=model_cfg.encoder,
        blocked=len(blocked),
    )
    module = make_module(model_cfg, cfg.lr, cfg.encoder_weights)
    progress_cb = _progress_callback(writer, cfg.epochs, steps)
    cuda = accelerator == "gpu" or (accelerator == "auto" and torch.cuda.is_available())
    log_dir.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        accelerator=accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        precision="bf16-mixed" if cuda else "32-true",
        logger=_loggers(log_dir),
        callbacks=[progress_cb],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        default_root_dir=str(log_dir),
    )
    trainer.fit(module, train_dl, val_dl)
    if trainer.interrupted:
        raise KeyboardInterrupt
    if progress_cb.best_state is not None:
        module.model.load_state_dict(progress_cb.best_state)
    best = progress_cb.best_iou
    if trainer.global_rank == 0:
        save_checkpoint(
            out,
            module.model,
            model_cfg,
            train_chips=[r.chip_id for r in train_records],
            blocklist=blocked,
            extra={
                "val_chips": [r.chip_id for r in val_records],
                "best_val_iou": best,
                "epochs": progress_cb.history[-1]["epoch"] + 1 if progress_cb.history else 0,
                "train_config": {k: str(v) for k, v in asdict(cfg).items()},
                "dataset": str(dataset.root),
            },
        )
    return TrainResult(
        checkpoint=out,
        best_val_iou=best,
        epochs_run=len(progress_cb.history),
        train_chips=[r.chip_id for r in train_records],
        val_chips=[r.chip_id for r in val_records],
        seconds=0.0,
        history=progress_cb.history,
    )


# ---------------------------------------------------------------- evaluation helpers
def dataset_iou(
    predictor,
    dataset: ChipDataset,
    chip_ids: Sequence[str],
    label_dir: str | Path | None = None,
    threshold: float = 0.5,
) -> float:
    """Pooled IoU of the cloud class over ``chip_ids`` (Σ intersection / Σ union).

    Labels come from the dataset, or from ``label_dir/<chip_id>.tif`` (for example the
    true labels a synthetic dataset keeps outside the dataset folder).
    """
    import rasterio

    device = predictor.device
    tp = fp = fn = 0
    for cid in chip_ids:
        try:
            chip = dataset.read(cid)
        except ChipReadError:
            continue
        label = chip.label
        if label_dir is not None:
            with rasterio.open(Path(label_dir) / f"{cid}.tif") as src:
                label = src.read(1)
        if label is None:
            continue
        valid = chip.valid & (label != 255)
        x = torch.from_numpy(chip.bands[None]).to(device)
        with torch.inference_mode():
            prob = predictor.predict_proba(x)[0].cpu().numpy()
        pred = (prob >= threshold) & valid
        target = (label == 1) & valid
        tp += int((pred & target).sum())
        fp += int((pred & ~target).sum())
        fn += int((~pred & target).sum())
    union = tp + fp + fn
    return tp / union if union else 1.0

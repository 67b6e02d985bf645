"""Run a training job: choose the chips, fit with Lightning, write one checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from chipqa.data import ChipDataset, ChipRecord, open_dataset
from chipqa.predictors import ModelConfig, build_model, save_checkpoint
from chipqa.predictors.base import dn_offset_problem
from chipqa.training.config import TrainConfig, TrainingError, TrainResult
from chipqa.training.data import ChipTrainingSet, EpochSampler, band_statistics, collate
from chipqa.training.progress import ProgressWriter
from chipqa.training.splits import prepare_chips, split_chips


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

    Every chip is read through the dataset's reader: an opened dataset keeps its cache
    setting (see :meth:`ChipDataset.use_cache`); a folder is opened with its chip cache
    when one was built.

    Args:
        data: dataset folder (or an opened dataset).
        out: checkpoint path (written once, atomically, when training ends).
        blocklist: blocklist CSV; its ``block`` rows are left out.
        config: settings (see :class:`TrainConfig`).
        chips: train only on these chips (for out-of-fold scoring).
        val_chips: use these as validation chips instead of a split.
        progress: JSON-lines progress file (see :class:`ProgressWriter`).
        echo: called with every progress event (the CLI's progress bar).
        log_dir: the folder of the per-epoch CSV (and TensorBoard) logs (default: beside
            the checkpoint, its name with ``.logs`` for the suffix: ``m.ckpt`` →
            ``m.logs``). Each run writes a new subfolder ``version_N`` in it, so the logs
            of earlier runs, finished or cancelled, are kept.

    Raises:
        TrainingError: nothing to train on, unknown encoder, no GPU, NaN loss, a
            checkpoint path in a folder that does not exist.
    """
    cfg = config or TrainConfig()
    t0 = time.monotonic()
    dataset = data if isinstance(data, ChipDataset) else open_dataset(data, cache="auto")
    out = Path(out)
    writer = ProgressWriter(progress, echo)
    try:
        if not out.parent.is_dir():
            raise TrainingError(
                f"the folder of the checkpoint {out} does not exist ({out.parent}); "
                "create it first or choose another --out"
            )
        problem = dn_offset_problem(cfg.dn_offset)
        if problem is not None:
            raise TrainingError(f"{problem}; nothing was trained")
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
        model_cfg, init_state = _initial_model(cfg, dataset, train_records)
        log_dir = Path(log_dir) if log_dir else out.with_suffix(".logs")
        job = _Job(dataset, cfg, accelerator, model_cfg, train_records, val_records, blocked)
        job.init_state = init_state
        result = job.fit(out, writer, log_dir)
        result.seconds = time.monotonic() - t0
        writer.emit(
            "done",
            checkpoint=str(result.checkpoint),
            best_val_iou=result.best_val_iou,
            best_iou_on=result.best_iou_on,
            seconds=result.seconds,
            log_dir=str(result.log_dir),
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


def _initial_model(
    cfg: TrainConfig, dataset: ChipDataset, train_records: list[ChipRecord]
) -> tuple[ModelConfig, dict | None]:
    """The model to train and its starting weights (None: random initialisation).

    Raises:
        TrainingError: an unknown encoder or ``init``, or pretrained weights that cannot
            be read (the message says how to install them).
    """
    if cfg.init in ("pretrained", "pretrained-l1c"):
        from chipqa.errors import CheckpointError
        from chipqa.predictors.pretrained import build_pretrained_model, weights_file

        try:
            level = "l1c" if cfg.init.endswith("l1c") else "l2a"
            model, model_cfg = build_pretrained_model(weights_file(level))
        except CheckpointError as exc:
            raise TrainingError(f"--init {cfg.init}: {exc}") from exc
        model_cfg = replace(model_cfg, dn_offset=cfg.dn_offset)
        return model_cfg, model.state_dict()
    if cfg.init != "random":
        raise TrainingError(
            f"unknown --init {cfg.init!r}; choose random, pretrained or pretrained-l1c"
        )
    mean, std = band_statistics(
        dataset, train_records, cfg.stats_chips, cfg.seed, dn_offset=cfg.dn_offset
    )
    model_cfg = ModelConfig(encoder=cfg.encoder, mean=mean, std=std, dn_offset=cfg.dn_offset)
    try:
        build_model(model_cfg, cfg.encoder_weights)
    except ValueError as exc:
        raise TrainingError(str(exc)) from exc
    return model_cfg, None


def _check_accelerator(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise TrainingError(
            "a GPU was asked for (--accelerator gpu) but this machine has no usable CUDA GPU; "
            "use --accelerator cpu or auto"
        )
    return "gpu" if accelerator == "cuda" else accelerator


def next_log_version(log_dir: Path) -> Path:
    """The folder of a new run's logs: ``log_dir/version_N`` with the first unused N.

    Every run gets its own folder, so no run overwrites the metrics of an earlier one.
    """
    n = 0
    if log_dir.is_dir():
        taken = [p.name.removeprefix("version_") for p in log_dir.glob("version_*")]
        n = max((int(t) + 1 for t in taken if t.isdigit()), default=0)
    return log_dir / f"version_{n}"


def _loggers(run_dir: Path) -> list:
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(run_dir.parent), name="", version=run_dir.name)]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(run_dir), name="", version="tensorboard"))
    except ImportError:
        pass
    return loggers


def _quiet_lightning() -> None:
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*have no `val_dataloader`.*")
    # Epoch metrics are synchronised by their torchmetrics states before they are logged.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")
    # Each run logs to a folder of its own (next_log_version): nothing is ever deleted.
    warnings.filterwarnings("ignore", message=".*[Pp]revious log files.*will be deleted.*")


class _Job:
    """One fit of a model on chosen chips (the part of :func:`train` Lightning runs)."""

    def __init__(
        self,
        dataset: ChipDataset,
        cfg: TrainConfig,
        accelerator: str,
        model_cfg: ModelConfig,
        train_records: list[ChipRecord],
        val_records: list[ChipRecord],
        blocked: list[str],
    ):
        self.dataset = dataset
        self.cfg = cfg
        self.accelerator = accelerator
        self.model_cfg = model_cfg
        self.train_records = train_records
        self.val_records = val_records
        self.blocked = blocked
        self.init_state: dict | None = None  # starting weights (None: random)

    def _loader(self, records: list[ChipRecord], train: bool) -> DataLoader:
        cfg = self.cfg
        samples = ChipTrainingSet(self.dataset, records, cfg.augment and train, cfg.seed)
        return DataLoader(
            samples,
            batch_size=cfg.batch_size,
            sampler=EpochSampler(len(samples), cfg.seed, shuffle=train, pad=train),
            num_workers=cfg.workers,
            collate_fn=collate,
            persistent_workers=cfg.workers > 0,
        )

    def fit(self, out: Path, writer: ProgressWriter, log_dir: Path) -> TrainResult:
        from chipqa.training._lightning import pl
        from chipqa.training.callbacks import JsonProgress
        from chipqa.training.module import CloudSegmenter

        cfg = self.cfg
        _quiet_lightning()
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        train_dl = self._loader(self.train_records, train=True)
        val_dl = self._loader(self.val_records, train=False) if self.val_records else None
        steps = len(train_dl)
        writer.emit(
            "start",
            train_chips=len(self.train_records),
            val_chips=len(self.val_records),
            epochs=cfg.epochs,
            steps_per_epoch=steps,
            encoder=self.model_cfg.encoder,
            blocked=len(self.blocked),
        )
        module = CloudSegmenter(self.model_cfg, cfg.lr, cfg.encoder_weights, self.init_state)
        progress = JsonProgress(writer, cfg.epochs, steps)
        cuda = self.accelerator == "gpu" or (
            self.accelerator == "auto" and torch.cuda.is_available()
        )
        run_dir = next_log_version(log_dir)
        trainer = pl.Trainer(
            max_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            accelerator=self.accelerator,
            devices=cfg.devices,
            num_nodes=cfg.num_nodes,
            precision="bf16-mixed" if cuda else "32-true",
            logger=_loggers(run_dir),
            callbacks=[progress],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            default_root_dir=str(run_dir),
            use_distributed_sampler=False,  # EpochSampler shards itself (see there)
        )
        trainer.fit(module, train_dl, val_dl)
        if trainer.interrupted:
            raise KeyboardInterrupt
        if progress.best_state is not None:
            module.model.load_state_dict(progress.best_state)
        skipped = progress.skipped_chips
        if skipped:
            writer.emit(
                "warning",
                message=f"{len(skipped)} chip(s) could not be read and were left out: "
                f"{', '.join(sorted(skipped)[:10])}{' …' if len(skipped) > 10 else ''} "
                "(see `chipqa score` for why)",
                chips=sorted(skipped),
            )
        train_ids = [r.chip_id for r in self.train_records if r.chip_id not in skipped]
        val_ids = [r.chip_id for r in self.val_records if r.chip_id not in skipped]
        epochs = progress.history[-1]["epoch"] + 1 if progress.history else 0
        if trainer.global_rank == 0:
            save_checkpoint(
                out,
                module.model,
                self.model_cfg,
                train_chips=train_ids,
                blocklist=self.blocked,
                extra={
                    "val_chips": val_ids,
                    "best_val_iou": progress.best_iou,
                    "best_iou_on": "validation" if self.val_records else "training",
                    "epochs": epochs,
                    "train_config": {k: str(v) for k, v in asdict(cfg).items()},
                    "dataset": str(self.dataset.root),
                },
            )
        return TrainResult(
            checkpoint=out,
            best_val_iou=progress.best_iou,
            epochs_run=len(progress.history),
            train_chips=train_ids,
            val_chips=val_ids,
            seconds=0.0,
            history=progress.history,
            skipped_chips=sorted(skipped),
            best_iou_on="validation" if self.val_records else "training",
            log_dir=run_dir,
        )

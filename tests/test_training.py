"""Training on tiny chips (CPU, small encoder), progress events, cancellation, out-of-fold,
reading through the chip cache, reproducibility and the pooled IoU metric."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from chipqa.blocklist.store import BlocklistStore
from chipqa.data import build_cache, open_dataset
from chipqa.io.paths import side_paths
from chipqa.predictors import ModelConfig, UNetPredictor, load_checkpoint, load_predictor
from chipqa.stats.definitions import iou_from_counts
from chipqa.synth import generate_dataset
from chipqa.training import (
    ProgressWriter,
    TrainConfig,
    TrainingError,
    collate,
    kfold_chips,
    read_progress,
    split_chips,
    train,
)

TINY = TrainConfig(encoder="resnet18", epochs=1, batch_size=4, workers=0, stats_chips=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    return generate_dataset(root, n_chips=16, size=32, error_rate=0.25, seed=8)


def _blocklist(path, ids):
    store = BlocklistStore(path, reviewer="t")
    for cid in ids:
        store.decide(cid, "block", "other")
    return path


@pytest.mark.slow
def test_training_leaves_blocked_chips_out_and_writes_a_complete_checkpoint(tiny, tmp_path):
    ds = open_dataset(tiny.root)
    blocked = ds.chip_ids[:3]
    bl = _blocklist(tmp_path / "bl.csv", blocked)
    events = []
    res = train(
        tiny.root,
        tmp_path / "m.ckpt",
        blocklist=bl,
        config=TINY,
        progress=tmp_path / "p.jsonl",
        echo=events.append,
    )
    model, info = load_checkpoint(res.checkpoint)
    assert not set(blocked) & set(info.train_chips)
    assert sorted(info.blocklist) == sorted(blocked)
    assert len(info.train_chips) + len(info.extra["val_chips"]) == 13
    assert info.config.encoder == "resnet18" and len(info.config.mean) == 4
    assert info.config.mean != (0.25, 0.25, 0.25, 0.33)  # normalisation from the data
    prob = load_predictor(res.checkpoint, device="cpu").predict_numpy(ds.read(0).bands)
    assert prob.shape == (32, 32) and 0 <= prob.min() <= prob.max() <= 1
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "step" in kinds and "epoch" in kinds and kinds[-1] == "done"
    on_disk, _ = read_progress(tmp_path / "p.jsonl")
    assert [e["event"] for e in on_disk] == kinds
    epoch = next(e for e in events if e["event"] == "epoch")
    assert {"train_loss", "train_iou", "val_loss", "val_iou", "eta_s"} <= set(epoch)
    assert res.log_dir == tmp_path / "m.logs" / "version_0"  # m.ckpt: logs in m.logs/
    metrics = pd.read_csv(res.log_dir / "metrics.csv")
    assert {"train_iou", "val_iou"} <= set(metrics.columns)


def test_every_chip_blocked_is_a_clear_error(tiny, tmp_path):
    bl = _blocklist(tmp_path / "bl.csv", open_dataset(tiny.root).chip_ids)
    with pytest.raises(TrainingError, match="only 0 labelled chip"):
        train(tiny.root, tmp_path / "m.ckpt", blocklist=bl, config=TINY)
    assert not (tmp_path / "m.ckpt").exists()


@pytest.mark.slow
def test_unknown_blocked_ids_are_reported_and_ignored(tiny, tmp_path):
    bl = _blocklist(tmp_path / "bl.csv", ["notachip"])
    events = []
    cfg = TrainConfig(**{**TINY.__dict__, "max_steps": 1})
    train(tiny.root, tmp_path / "m.ckpt", blocklist=bl, config=cfg, echo=events.append)
    warning = next(e for e in events if e["event"] == "warning")
    assert "notachip" in warning["message"]


def test_bad_settings_fail_before_training(tiny, tmp_path):
    with pytest.raises(TrainingError, match="unknown encoder 'resnet999'.*mobilenet_v2"):
        train(tiny.root, tmp_path / "m.ckpt", config=TrainConfig(encoder="resnet999"))
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="no usable CUDA GPU"):
            train(tiny.root, tmp_path / "m.ckpt", config=TrainConfig(accelerator="gpu"))
    assert not (tmp_path / "m.ckpt").exists()


@pytest.mark.slow
def test_a_nan_loss_stops_training_without_a_checkpoint(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "chipqa.training.module.dice_bce_loss",
        lambda logits, label, valid: logits.sum() * float("nan"),
    )
    events = []
    with pytest.raises(TrainingError, match="loss became nan"):
        train(tiny.root, tmp_path / "m.ckpt", config=TINY, echo=events.append)
    assert events[-1]["event"] == "error"
    assert not (tmp_path / "m.ckpt").exists()


def test_split_and_folds_are_stratified_by_location(tiny):
    records = list(open_dataset(tiny.root))
    train_ids, val_ids = split_chips(records, 0.25, seed=0)
    assert not set(train_ids) & set(val_ids) and len(train_ids) + len(val_ids) == 16
    by_loc = {}
    for r in records:
        by_loc.setdefault(r.metadata["location"], []).append(r.chip_id)
    for ids in by_loc.values():
        if len(ids) >= 3:
            assert set(ids) & set(val_ids) and set(ids) & set(train_ids)
    folds = kfold_chips(records, 3, seed=0)
    assert sorted(c for f in folds for c in f) == sorted(r.chip_id for r in records)
    assert max(map(len, folds)) - min(map(len, folds)) <= 1


@pytest.mark.slow
def test_cancelling_a_real_training_process_leaves_no_checkpoint(tiny, tmp_path):
    progress = tmp_path / "p.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "chipqa.cli",
        "train",
        str(tiny.root),
        "--out",
        str(tmp_path / "m.ckpt"),
        "--encoder",
        "resnet18",
        "--epochs",
        "500",
        "--train-batch-size",
        "2",
        "--workers",
        "0",
        "--progress",
        str(progress),
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events, _ = read_progress(progress)
        if any(e["event"] == "step" for e in events):
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    events, _ = read_progress(progress)
    assert events[-1]["event"] == "cancelled"
    assert not (tmp_path / "m.ckpt").exists()
    assert not list(tmp_path.glob(".m.ckpt*"))


@pytest.mark.slow
def test_out_of_fold_scores_each_chip_with_a_model_that_never_saw_it(tiny, tmp_path):
    out = tmp_path / "oof.csv"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "chipqa.cli",
            "score",
            str(tiny.root),
            "--folds",
            "2",
            "--out",
            str(out),
            "--encoder",
            "resnet18",
            "--epochs",
            "1",
            "--train-batch-size",
            "4",
            "--workers",
            "0",
            "--threshold",
            "0.3",
            "--no-previews",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 16
    assert (df["threshold"] == 0.3).all()  # --threshold holds for --folds too
    assert not side_paths(tiny.root).previews.exists()  # and so does --no-previews
    assert df["model"].str.startswith("unet-resnet18:oof-k2/fold").all()
    for fold in (1, 2):
        scored = set(df.loc[df["model"].str.endswith(f"fold{fold}"), "chip_id"])
        _, info = load_checkpoint(tmp_path / "oof.folds" / f"fold{fold}.ckpt")
        assert scored and not scored & set(info.train_chips)


def test_a_batch_of_only_unreadable_chips_is_skipped_not_fatal(tmp_path):
    # collate() keeps the ids of chips that could not be read; a batch of only those is
    # skipped by the module, and Lightning reports outputs=None to the callbacks.
    from chipqa.training import CloudSegmenter, JsonProgress

    batch = collate(["a", "b"])
    assert batch.bands is None and batch.skipped == ["a", "b"]
    module = CloudSegmenter(ModelConfig(encoder="resnet18"), lr=1e-3)
    assert module.training_step(batch, 0) is None
    assert module.skipped_chips == {"a", "b"}
    writer = ProgressWriter(tmp_path / "p.jsonl")
    callback = JsonProgress(writer, epochs=1, steps_per_epoch=1)
    callback.on_train_batch_end(None, None, None, None, 0)
    callback.on_train_batch_end(None, None, {"loss": None}, None, 0)
    writer.close()
    assert read_progress(tmp_path / "p.jsonl")[0] == []


def test_the_module_resets_its_training_metrics_each_epoch_on_its_own(tmp_path):
    # No JsonProgress callback: the module alone must log each epoch's own metrics.
    from chipqa.training import CloudSegmenter
    from chipqa.training._lightning import pl
    from chipqa.training.data import Batch

    g = torch.Generator().manual_seed(0)
    bands = torch.rand((2, 4, 32, 32), generator=g) * 3000
    label = (torch.rand((2, 32, 32), generator=g) > 0.5).to(torch.uint8)
    batch = Batch(bands, label, torch.ones((2, 32, 32), dtype=torch.bool), [])
    batches = torch.utils.data.DataLoader(range(2), batch_size=1, collate_fn=lambda _: batch)
    module = CloudSegmenter(ModelConfig(encoder="resnet18"), lr=1e-3)
    seen = []

    class Watch(pl.Callback):
        def on_train_epoch_start(self, trainer, m):
            seen.append(int(m.train_iou.tp + m.train_iou.fp + m.train_iou.fn))

    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Watch()],
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=batches)
    assert seen[0] == 0 and seen[1] == 0  # epoch 2 does not count epoch 1's pixels
    assert "train_iou" in trainer.callback_metrics and "train_loss" in trainer.callback_metrics
    assert int(module.train_iou.tp + module.train_iou.fp + module.train_iou.fn) == 0


def _copy(tiny, tmp_path):
    """A private copy of the tiny dataset (tests that add a cache or break chips)."""
    return shutil.copytree(tiny.root, tmp_path / "data")


def _opened_tiffs(monkeypatch) -> list:
    opened = []
    real_open = rasterio.open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(rasterio, "open", counting_open)
    return opened


@pytest.mark.slow
def test_training_reads_the_chip_cache_when_one_is_built(tiny, tmp_path, monkeypatch):
    root = _copy(tiny, tmp_path)
    build_cache(open_dataset(root))
    opened = _opened_tiffs(monkeypatch)
    cfg = dataclasses.replace(TINY, max_steps=2)
    res = train(root, tmp_path / "m.ckpt", config=cfg)  # a folder: its cache is used
    assert res.checkpoint.exists()
    assert opened == []  # band statistics, training and validation chips: all from the cache
    # An opened dataset keeps its own setting: without its cache, it reads the TIFFs.
    train(open_dataset(root, cache="off"), tmp_path / "off.ckpt", config=cfg)
    assert any(p.endswith(".tif") for p in opened)


def _state(path):
    return load_checkpoint(path)[0].state_dict()


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_whatever_the_loader_workers(tiny, tmp_path):
    cfg = dataclasses.replace(TINY, epochs=2, stats_chips=4)
    chips = open_dataset(tiny.root).chip_ids[:8]  # 6 training chips, 2 validation chips
    runs = {
        name: _state(train(tiny.root, tmp_path / f"{name}.ckpt", config=c, chips=chips).checkpoint)
        for name, c in {
            "w0": cfg,
            "w2": dataclasses.replace(cfg, workers=2),
            "seed1": dataclasses.replace(cfg, seed=1),
        }.items()
    }
    assert runs["w0"].keys() == runs["w2"].keys()
    assert all(torch.equal(runs["w0"][k], runs["w2"][k]) for k in runs["w0"])
    assert not all(torch.equal(runs["w0"][k], runs["seed1"][k]) for k in runs["w0"])


def _masks(n: int, size: int, cloud_rows: int, predicted_rows: int):
    """n chips whose top ``cloud_rows`` rows are cloud, predicted in ``predicted_rows``."""
    label = torch.zeros(n, size, size, dtype=torch.uint8)
    label[:, :cloud_rows] = 1
    logits = torch.full((n, size, size), -5.0)
    logits[:, :predicted_rows] = 5.0
    valid = torch.ones(n, size, size, dtype=torch.bool)
    valid[:, -1] = False  # a nodata row, left out of every count
    label[:, -1] = 255
    return logits, label, valid


def _counts(logits, label, valid):
    pred, target = (logits >= 0).numpy(), (label == 1).numpy()
    valid = valid.numpy()
    return np.array(
        [
            (pred & target & valid).sum(),
            (pred & ~target & valid).sum(),
            (~pred & target & valid).sum(),
        ]
    )


def test_the_iou_of_two_processes_is_the_pooled_iou_not_the_mean_of_theirs():
    from chipqa.training import CloudIoU

    # Two processes' shares of a validation set: 6 chips predicted well, 1 badly.
    share_a = _masks(6, 16, cloud_rows=8, predicted_rows=7)
    share_b = _masks(1, 16, cloud_rows=2, predicted_rows=12)
    rank_a, rank_b = CloudIoU(), CloudIoU()
    rank_a.update(*share_a)
    rank_b.update(*share_b)
    rank_a.merge_state(rank_b)  # what the DDP sync does with the states (sum)
    pooled = iou_from_counts(*(_counts(*share_a) + _counts(*share_b)))
    assert float(rank_a.compute()) == pytest.approx(pooled, abs=1e-6)
    iou_a, iou_b = (iou_from_counts(*_counts(*share)) for share in (share_a, share_b))
    assert abs((iou_a + iou_b) / 2 - pooled) > 0.2  # averaging per-process IoUs is wrong
    assert rank_a.tp.device == share_a[0].device  # counts stay where the batch is
    empty = CloudIoU()
    empty.update(torch.full((1, 4, 4), -1.0), torch.zeros(1, 4, 4), torch.ones(1, 4, 4))
    assert float(empty.compute()) == 1.0  # no cloud predicted, none labelled: agreement


def test_the_module_trains_a_step_on_what_the_predictor_sees():
    from chipqa.training import CloudSegmenter

    config = ModelConfig(encoder="resnet18", mean=(0.1, 0.1, 0.1, 0.3), std=(0.1, 0.1, 0.1, 0.2))
    module = CloudSegmenter(config, lr=1e-3)
    rng = np.random.default_rng(0)
    bands = torch.from_numpy(rng.integers(1, 6000, (2, 4, 40, 40)).astype(np.float32))
    label = torch.from_numpy(rng.integers(0, 2, (2, 40, 40)).astype(np.uint8))
    batch = collate([(bands[i], label[i], torch.ones(40, 40, dtype=torch.bool)) for i in range(2)])
    loss = module.training_step(batch, 0)
    assert loss.requires_grad and torch.isfinite(loss)
    assert int(module.train_iou.tp + module.train_iou.fp + module.train_iou.fn) > 0
    module.eval()
    with torch.no_grad():
        logits = module(bands)  # padded to 64 for the encoder, cropped back
        prob = UNetPredictor(module.model, config).predict_proba(bands)
    assert logits.shape == (2, 40, 40)
    assert torch.allclose(torch.sigmoid(logits), prob, atol=1e-6)


@pytest.mark.slow
def test_unreadable_chips_are_named_and_not_counted(tiny, tmp_path):
    root = _copy(tiny, tmp_path)
    ds = open_dataset(root, cache="off")
    broken = ds.chip_ids[:2]
    for cid in broken:
        with open(ds[cid].band_paths[0], "r+b") as f:
            f.truncate(200)
    events = []
    cfg = dataclasses.replace(TINY, batch_size=8)
    res = train(ds, tmp_path / "m.ckpt", config=cfg, echo=events.append)
    warning = next(e for e in events if e["event"] == "warning")
    assert all(cid in warning["message"] for cid in broken)
    used = res.train_chips + res.val_chips
    assert len(used) == 14 and not set(broken) & set(used)
    _, info = load_checkpoint(res.checkpoint)
    assert not set(broken) & (set(info.train_chips) | set(info.extra["val_chips"]))


@pytest.mark.parametrize("world", [1, 3, 4])
def test_under_ddp_every_validation_chip_is_counted_once(world, monkeypatch):
    """Each process validates its own share: together exactly the validation set, no chip
    twice (the pooled IoU would count it twice); training shards are padded to one
    length so that every process takes the same number of steps."""
    import chipqa.training.data as data

    n = 10
    shards = {}
    for pad in (False, True):
        for rank in range(world):
            monkeypatch.setattr(data, "rank_and_world", lambda rank=rank: (rank, world))
            sampler = data.EpochSampler(n, seed=3, shuffle=pad, pad=pad)
            got = [i for _, i in sampler]
            assert len(got) == len(sampler)
            shards[pad, rank] = got
    val = [i for r in range(world) for i in shards[False, r]]
    assert sorted(val) == list(range(n))
    lengths = {len(shards[True, r]) for r in range(world)}
    assert len(lengths) == 1 and set().union(*(shards[True, r] for r in range(world))) == set(
        range(n)
    )


@pytest.fixture
def keep_signals():
    """Restore SIGINT/SIGTERM handlers that a training run changes (Lightning ignores
    SIGINT after an interrupt; ``chipqa train`` turns SIGTERM into a cancel)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _train_args(root, out, *extra):
    return ["train", str(root), "--out", str(out), "--encoder", "resnet18", "--epochs", "1"] + [
        "--train-batch-size", "8", "--workers", "0", "--cache", "off", *extra
    ]  # fmt: skip


@pytest.mark.slow
def test_chipqa_train_names_unreadable_chips_and_counts_only_those_used(
    tiny, tmp_path, capsys, keep_signals
):
    import re

    from chipqa.cli import main

    root = _copy(tiny, tmp_path)
    ds = open_dataset(root, cache="off")
    broken = ds.chip_ids[:2]
    for cid in broken:
        with open(ds[cid].band_paths[0], "r+b") as f:
            f.truncate(200)
    assert main(_train_args(root, tmp_path / "m.ckpt")) == 0
    out, err = capsys.readouterr()
    assert "warning: 2 chip(s) could not be read" in err
    assert all(cid in err for cid in broken)
    trained, validated = map(int, re.search(r"on (\d+) chips, validated on (\d+)", out).groups())
    assert trained + validated == 14 and validated > 0  # 16 chips, 2 unreadable
    assert "2 unreadable chip(s) left out" in out


@pytest.mark.slow
def test_without_validation_chips_the_iou_is_called_the_training_iou(
    tiny, tmp_path, capsys, keep_signals
):
    from chipqa.cli import main

    ids = open_dataset(tiny.root).chip_ids
    bl = _blocklist(tmp_path / "bl.csv", [*ids[:2], "notachip"])
    progress = tmp_path / "p.jsonl"
    args = _train_args(tiny.root, tmp_path / "m.ckpt", "--val-fraction", "0", "--max-steps", "1")
    assert main([*args, "--blocklist", str(bl), "--progress", str(progress)]) == 0
    out = capsys.readouterr().out
    assert "validated on 0" in out and "best training IoU" in out
    assert "validation IoU" not in out
    events, _ = read_progress(progress)
    start = next(e for e in events if e["event"] == "start")
    assert start["blocked"] == 2  # "notachip" is not a chip of the dataset
    assert events[-1]["event"] == "done" and events[-1]["best_iou_on"] == "training"
    _, info = load_checkpoint(tmp_path / "m.ckpt")
    assert info.extra["best_iou_on"] == "training" and info.extra["val_chips"] == []
    assert sorted(info.blocklist) == sorted(ids[:2])


def test_bad_output_and_accelerator_fail_before_training(tiny, tmp_path, capsys, keep_signals):
    from chipqa.cli import main

    out = tmp_path / "nowhere" / "deeper" / "m.ckpt"
    assert main(_train_args(tiny.root, out)) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(out.parent) in err
    assert not (tmp_path / "nowhere").exists()
    if not torch.cuda.is_available():
        assert main(_train_args(tiny.root, tmp_path / "m.ckpt", "--accelerator", "gpu")) == 2
        err = capsys.readouterr().err
        assert "--accelerator cpu" in err and "--device" not in err


@pytest.mark.slow
def test_a_cancelled_run_keeps_the_logs_of_earlier_runs(tiny, tmp_path, keep_signals):
    import warnings

    cfg = dataclasses.replace(TINY, max_steps=2)
    first = train(tiny.root, tmp_path / "m.ckpt", config=cfg)
    logs = tmp_path / "m.logs"
    kept = {p: p.read_bytes() for p in logs.rglob("metrics.csv")}
    assert kept

    def cancel_at_first_step(ev):
        if ev["event"] == "step":
            raise KeyboardInterrupt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            train(tiny.root, tmp_path / "m.ckpt", config=cfg, echo=cancel_at_first_step)
    assert {p: p.read_bytes() for p in kept} == kept  # the first run's metrics, untouched
    assert not [w for w in caught if "will be deleted" in str(w.message)]
    again = train(tiny.root, tmp_path / "m.ckpt", config=cfg)
    assert first.log_dir.parent == logs and again.log_dir != first.log_dir
    assert len(set(logs.glob("version_*"))) == 3  # one folder per run, the cancelled one too
    assert pd.read_csv(again.log_dir / "metrics.csv").shape[0] > 0

"""Training on tiny chips (CPU, small encoder), progress events, cancellation, out-of-fold."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from chipqa.data import open_dataset
from chipqa.predictors import load_checkpoint, load_predictor
from chipqa.review.blocklist import BlocklistStore
from chipqa.synth import generate_dataset
from chipqa.training import (
    TrainConfig,
    TrainingError,
    kfold_chips,
    read_progress,
    split_chips,
    train,
)

TINY = TrainConfig(encoder="mobilenet_v2", epochs=1, batch_size=4, workers=0, stats_chips=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    return generate_dataset(root, n_chips=16, size=32, error_rate=0.25, seed=8)


def _blocklist(path, ids):
    store = BlocklistStore(path, reviewer="t")
    for cid in ids:
        store.decide(cid, "block", "other")
    return path


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
    assert info.config.encoder == "mobilenet_v2" and len(info.config.mean) == 4
    assert info.config.mean != (0.25, 0.25, 0.25, 0.33)  # normalisation from the data
    prob = load_predictor(res.checkpoint, device="cpu").predict_numpy(ds.read(0).bands)
    assert prob.shape == (32, 32) and 0 <= prob.min() <= prob.max() <= 1
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and "step" in kinds and "epoch" in kinds and kinds[-1] == "done"
    on_disk, _ = read_progress(tmp_path / "p.jsonl")
    assert [e["event"] for e in on_disk] == kinds
    epoch = next(e for e in events if e["event"] == "epoch")
    assert {"train_loss", "train_iou", "val_loss", "val_iou", "eta_s"} <= set(epoch)
    metrics = pd.read_csv(tmp_path / "m.logs" / "metrics.csv")
    assert {"train_iou", "val_iou"} <= set(metrics.columns)


def test_every_chip_blocked_is_a_clear_error(tiny, tmp_path):
    bl = _blocklist(tmp_path / "bl.csv", open_dataset(tiny.root).chip_ids)
    with pytest.raises(TrainingError, match="only 0 labelled chip"):
        train(tiny.root, tmp_path / "m.ckpt", blocklist=bl, config=TINY)
    assert not (tmp_path / "m.ckpt").exists()


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


def test_a_nan_loss_stops_training_without_a_checkpoint(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "chipqa.training.dice_bce_loss", lambda logits, label, valid: logits.sum() * float("nan")
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
        "mobilenet_v2",
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
            "mobilenet_v2",
            "--epochs",
            "1",
            "--train-batch-size",
            "4",
            "--workers",
            "0",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 16
    for fold in (1, 2):
        scored = set(df.loc[df["model"].str.endswith(f"fold{fold}"), "chip_id"])
        _, info = load_checkpoint(tmp_path / "oof.folds" / f"fold{fold}.ckpt")
        assert scored and not scored & set(info.train_chips)


def test_a_batch_of_only_unreadable_chips_is_skipped_not_fatal(tmp_path):
    # collate() returns None for such a batch; Lightning skips the step and reports
    # outputs=None to the callbacks, which must not fail.
    from chipqa.training import ProgressWriter, _progress_callback, collate

    assert collate([None, None]) is None
    writer = ProgressWriter(tmp_path / "p.jsonl")
    callback = _progress_callback(writer, epochs=1, steps_per_epoch=1)
    callback.on_train_batch_end(None, None, None, None, 0)
    callback.on_train_batch_end(None, None, {"loss": None}, None, 0)
    writer.close()
    assert read_progress(tmp_path / "p.jsonl")[0] == []

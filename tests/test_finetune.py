"""Fine-tuning the pretrained model (``--init pretrained``) and the DN offset of
Sentinel-2 L2A products from processing baseline 04.00 on (``--dn-offset``)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from chipqa.cli import main
from chipqa.predictors import SpectralBaseline, load_checkpoint, load_predictor
from chipqa.predictors.model import cloud_logit
from chipqa.synth import generate_dataset
from chipqa.training import TrainConfig, TrainingError, train

OFFSET = 1000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft") / "data"
    return generate_dataset(root, n_chips=8, size=32, error_rate=0.0, seed=21)


@pytest.fixture(scope="module")
def offset_copy(tiny, tmp_path_factory):
    """The same chips as a product of processing baseline 04.00 stores them."""
    root = tmp_path_factory.mktemp("off") / "data"
    shutil.copytree(tiny.root, root)
    for band in root.glob("train_features/*/B0*.tif"):
        with rasterio.open(band, "r+") as dst:
            dn = dst.read(1)
            dst.write(np.where(dn == 0, 0, dn.astype(np.int64) + OFFSET).astype(np.uint16), 1)
    return root


def test_the_three_class_cloud_logit_is_exactly_the_softmax_cloud_probability():
    logits = torch.randn(2, 3, 5, 7) * 4
    torch.testing.assert_close(
        torch.sigmoid(cloud_logit(logits)), torch.softmax(logits, 1)[:, 1], atol=1e-6, rtol=0
    )
    with pytest.raises(ValueError, match="2 outputs"):
        cloud_logit(torch.zeros(1, 2, 4, 4))


@pytest.mark.slow
def test_fine_tuning_starts_from_the_pretrained_weights_and_its_normalisation(tiny, tmp_path):
    cfg = TrainConfig(init="pretrained", epochs=1, batch_size=4, workers=0, lr=1e-4, max_steps=1)
    result = train(tiny.root, tmp_path / "ft.ckpt", config=cfg)
    model, info = load_checkpoint(result.checkpoint)
    pre = load_predictor("pretrained", device="cpu")
    assert info.config.encoder == "efficientnet-b4" and info.config.classes == 3
    assert info.config.mean == pre.config.mean and info.config.std == pre.config.std
    # One small step away from the pretrained weights, not a random start.
    before = pre.model.state_dict()
    after = model.state_dict()
    key = "encoder._conv_stem.weight"
    change = (after[key] - before[key]).abs().max().item()
    assert 0 < change < 1e-2 * before[key].abs().max().item()
    # It predicts like the pretrained model does on a chip (a cloud probability).
    ft = load_predictor(result.checkpoint, device="cpu")
    from chipqa.data import open_dataset

    bands = open_dataset(tiny.root, cache="off").read(0).bands
    p_ft, p_pre = ft.predict_numpy(bands), pre.predict_numpy(bands)
    assert np.abs(p_ft - p_pre).mean() < 0.2


def test_an_unknown_init_is_refused_before_training(tiny, tmp_path):
    with pytest.raises(TrainingError, match="unknown --init 'imagenet'"):
        train(tiny.root, tmp_path / "x.ckpt", config=TrainConfig(init="imagenet", workers=0))
    assert not (tmp_path / "x.ckpt").exists()


def test_with_the_offset_taken_off_offset_chips_score_as_the_originals(tiny, offset_copy, tmp_path):
    plain, shifted, naive = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    common = ["--model", "baseline", "--threshold", "0.5", "-q"]
    assert main(["score", str(tiny.root), *common, "--out", str(plain)]) == 0
    assert (
        main(["score", str(offset_copy), *common, "--dn-offset", "1000", "--out", str(shifted)])
        == 0
    )
    assert main(["score", str(offset_copy), *common, "--out", str(naive)]) == 0
    a, b, c = (pd.read_csv(p).set_index("chip_id").sort_index() for p in (plain, shifted, naive))
    np.testing.assert_allclose(b["pred_cloud_fraction"], a["pred_cloud_fraction"], atol=1e-6)
    np.testing.assert_allclose(b["suspicion"], a["suspicion"], atol=1e-5)
    # Without the offset the same chips look brighter: the model sees other clouds.
    assert not np.allclose(c["soft_mismatch"], a["soft_mismatch"], atol=1e-3)


def test_u_nets_take_the_offset_off_and_checkpoints_keep_it(tiny, offset_copy, tmp_path):
    from chipqa.data import open_dataset

    bands = open_dataset(tiny.root, cache="off").read(1).bands
    shifted = open_dataset(offset_copy, cache="off").read(1).bands
    pre = load_predictor("pretrained", device="cpu")
    expected = pre.predict_numpy(bands)
    np.testing.assert_allclose(
        pre.with_dn_offset(OFFSET).predict_numpy(shifted), expected, atol=1e-5
    )
    base = SpectralBaseline().with_dn_offset(OFFSET)
    np.testing.assert_allclose(
        base.predict_numpy(shifted), SpectralBaseline().predict_numpy(bands), atol=1e-6
    )
    with pytest.raises(ValueError, match="between 0 and 9 999"):
        base.with_dn_offset(-5)


@pytest.mark.slow
def test_a_model_trained_on_offset_chips_remembers_the_offset(tiny, offset_copy, tmp_path):
    out = tmp_path / "m.ckpt"
    args = ["train", str(offset_copy), "--out", str(out), "--encoder", "resnet18"]
    args += ["--epochs", "1", "--max-steps", "1", "--workers", "0", "--dn-offset", "1000", "-q"]
    assert main(args) == 0
    _, info = load_checkpoint(out)
    assert info.config.dn_offset == OFFSET
    # Band statistics were taken on reflectance, not on offset DNs.
    from chipqa.data import open_dataset
    from chipqa.training import band_statistics

    original, shifted = open_dataset(tiny.root, cache="off"), open_dataset(offset_copy, cache="off")
    plain, _ = band_statistics(original, list(original), 8, 0)
    taken_off, _ = band_statistics(shifted, list(shifted), 8, 0, dn_offset=OFFSET)
    naive, _ = band_statistics(shifted, list(shifted), 8, 0)
    np.testing.assert_allclose(taken_off, plain, atol=1e-9)
    stored = np.asarray(info.config.mean)
    assert (np.abs(stored - plain) < np.abs(stored - naive)).all()
    assert load_predictor(out, device="cpu").dn_offset == OFFSET

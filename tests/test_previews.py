"""Scoring keeps a small copy of each chip's probability map; the gallery's thumbnails
draw the model's outline from it instead of calling the model again."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chipqa.cli.main import main as cli
from chipqa.data import open_dataset
from chipqa.io.paths import side_paths
from chipqa.predictors import ModelConfig, UNetPredictor
from chipqa.render import thumbnail, true_colour_stretched
from chipqa.review.loader import ChipLoader
from chipqa.scoring import score_dataset
from chipqa.scoring.previews import PREVIEW, PreviewStore, model_folder
from chipqa.synth import generate_dataset


def _net_predictor(name: str = "tiny-net") -> UNetPredictor:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
    return UNetPredictor(net.eval(), ModelConfig(), name=name)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("previews") / "data"
    generate_dataset(out, n_chips=5, size=200, error_rate=0.4, seed=2)
    return out


def test_scoring_keeps_a_small_copy_of_every_chip_probability_map(root):
    ds = open_dataset(root)
    pred = _net_predictor()
    store = PreviewStore.for_predictor(root, pred)
    scores = score_dataset(ds, pred, threshold=0.5, previews=store, workers=0)
    assert len(scores) == len(ds)
    assert store.folder.parent == side_paths(root).previews  # beside the dataset, not in it
    for rec in ds:
        chip = ds.read(rec.chip_id)
        kept = store.get(rec.chip_id)
        assert kept is not None and kept.shape == (PREVIEW, PREVIEW)
        prob = pred.predict_numpy(chip.bands) * chip.valid
        want = F.adaptive_avg_pool2d(torch.from_numpy(prob)[None, None].float(), PREVIEW)[0, 0]
        np.testing.assert_allclose(kept, want.numpy(), atol=1 / 255 + 1e-6)
    # Another model (or the same one with a DN offset) has its own previews.
    assert PreviewStore.for_dataset(root, "another-model").get(ds.records[0].chip_id) is None
    assert model_folder(pred.name, 1000) != model_folder(pred.name, 0)


def test_a_gallery_thumbnail_draws_the_kept_map_without_calling_the_model(root):
    ds = open_dataset(root)
    pred = _net_predictor("thumbs-net")
    store = PreviewStore.for_predictor(root, pred)
    score_dataset(ds, pred, threshold=0.5, previews=store, workers=0)
    calls = []

    def predict(bands):
        calls.append(1)
        return pred.predict_numpy(bands)

    loader = ChipLoader(ds, predict, threshold=0.5, previews=store)
    try:
        first, second = ds.records[0].chip_id, ds.records[1].chip_id
        thumb = loader.request_thumbnail(first, 96).result(timeout=60)
        assert calls == []
        chip = ds.read(first)
        tc = true_colour_stretched(chip.bands, chip.valid, "fixed")
        want = thumbnail(tc, chip.label, store.get(first), 96, threshold=0.5)
        np.testing.assert_array_equal(thumb, want)

        # A damaged preview is not trusted: the chip is predicted as before.
        store.path(second).write_bytes(b"not a numpy file")
        assert store.get(second) is None
        thumb = loader.request_thumbnail(second, 96).result(timeout=60)
        assert calls == [1] and thumb.shape == (96, 96, 3)
    finally:
        loader.close()


def test_a_preview_older_than_its_chip_bands_is_not_drawn(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=2, size=64, seed=5)
    ds = open_dataset(root)
    pred = _net_predictor("stale-net")
    store = PreviewStore.for_predictor(root, pred)
    score_dataset(ds, pred, threshold=0.5, previews=store, workers=0)
    rec = ds.records[0]
    assert store.get(rec.chip_id, rec) is not None
    band = rec.band_paths[2]
    band.write_bytes(band.read_bytes())  # the chip's band rewritten after scoring
    made = store.path(rec.chip_id).stat().st_mtime_ns
    os.utime(band, ns=(made + 10**9, made + 10**9))
    assert store.get(rec.chip_id, rec) is None
    calls = []

    def predict(bands):
        calls.append(1)
        return pred.predict_numpy(bands)

    loader = ChipLoader(ds, predict, threshold=0.5, previews=store)
    try:
        loader.request_thumbnail(rec.chip_id, 64).result(timeout=60)
        assert calls == [1]  # predicted again, not drawn from the stale map
    finally:
        loader.close()


def test_previews_that_cannot_be_written_do_not_stop_scoring(root, tmp_path):
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    store = PreviewStore(blocked / "model")
    ds = open_dataset(root)
    scores = score_dataset(ds, _net_predictor(), threshold=0.5, previews=store, workers=0)
    assert len(scores) == len(ds) and (scores["error"] == "").all()
    assert store.get(ds.records[0].chip_id) is None


@pytest.mark.slow
def test_chipqa_score_keeps_previews_for_the_plugin_unless_told_not_to(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, n_chips=3, size=64, seed=4)
    folder = side_paths(root).previews
    args = ["score", str(root), "--model", "pretrained", "--threshold", "0.5", "--quiet"]
    assert cli([*args, "--no-previews"]) == 0
    assert not folder.exists()
    assert cli(args) == 0
    kept = sorted(p.stem for p in folder.glob("*/*.npy"))
    assert kept == sorted(r.chip_id for r in open_dataset(root))

"""One set of scoring settings for every door: what is saved with the scores, when saved
scores are stale, and how the commands name and use the model and threshold."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from chipqa.blocklist.csvread import read_blocklist
from chipqa.blocklist.store import BlocklistStore
from chipqa.cli.main import main
from chipqa.data import open_dataset
from chipqa.io.paths import side_paths
from chipqa.predictors import SpectralBaseline
from chipqa.review import ReviewProject
from chipqa.review.fixes import predict_label
from chipqa.scene.mask import mask_cloud
from chipqa.scoring import read_scores, score_dataset
from chipqa.scoring.previews import PreviewStore
from chipqa.scoring.settings import ScoringSettings, settings_path


def test_two_checkpoints_with_one_file_name_are_two_models(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "model.ckpt").write_bytes(b"weights one")
    (tmp_path / "b" / "model.ckpt").write_bytes(b"weights two")
    one = ScoringSettings.create(tmp_path / "a" / "model.ckpt")
    two = ScoringSettings.create(tmp_path / "b" / "model.ckpt")
    assert not one.same_scoring(two)
    assert PreviewStore.for_settings(tmp_path, one).folder != (
        PreviewStore.for_settings(tmp_path, two).folder
    )
    # The same bytes elsewhere are the same model.
    (tmp_path / "c.ckpt").write_bytes(b"weights one")
    assert one.same_scoring(ScoringSettings.create(tmp_path / "c.ckpt"))


def _later(path):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_saved_scores_are_stale_after_a_new_threshold_offset_label_fix_or_band_file(
    tiny_dataset,
):
    project = ReviewProject.open(tiny_dataset)
    auto = ScoringSettings.create("baseline")
    scores = score_dataset(project.dataset, SpectralBaseline(), workers=1, threshold="auto")
    project.save_scores(scores, auto.resolved(threshold=float(scores["threshold"].iloc[0])))
    assert project.saved_scores(auto) is not None
    assert project.saved_scores(ScoringSettings.create("baseline", 0.3)) is None
    assert project.saved_scores(ScoringSettings.create("baseline", dn_offset=1000)) is None
    # A chip's band file rewritten after scoring.
    _later(project.dataset["bbbb"].band_paths[0])
    assert project.saved_scores(auto) is None
    project.save_scores(scores, auto)
    assert project.saved_scores(auto) is not None
    # A label fix in force that was not when the chips were scored.
    store = BlocklistStore(project.default_blocklist, dataset_root=tiny_dataset)
    store.fix("aaaa", np.ones((32, 32), np.uint8), source="file")
    assert project.use_fixes() == ""
    assert project.saved_scores(auto) is None


def test_score_writes_its_settings_and_fix_from_model_follows_them(tiny_dataset, capsys):
    data = str(tiny_dataset)
    assert main(["score", data, "--model", "baseline", "--threshold", "0.3", "-q"]) == 0
    scores_csv = side_paths(tiny_dataset).scores
    doc = json.loads(settings_path(scores_csv).read_text())
    assert doc["settings"]["model"] == "baseline"
    assert doc["settings"]["threshold_policy"] == "fixed" and doc["settings"]["threshold"] == 0.3
    assert set(doc["data"]) == {"chips", "fixes", "files"}
    capsys.readouterr()
    assert main(["fix", data, "bbbb", "--from-model"]) == 0
    out = capsys.readouterr().out
    assert "model baseline at threshold 0.3" in out  # it says which model and threshold
    ds = open_dataset(tiny_dataset, fixes=False)
    want = predict_label(ds["bbbb"], SpectralBaseline(), 0.3)
    fix = read_blocklist(side_paths(tiny_dataset).blocklist)
    assert list(fix) == ["bbbb"] and fix["bbbb"].model == "baseline"
    import rasterio

    store = BlocklistStore(side_paths(tiny_dataset).blocklist, dataset_root=tiny_dataset)
    with rasterio.open(store.fix_path("bbbb")) as src:
        np.testing.assert_array_equal(src.read(1), want)
    assert read_scores(scores_csv)["threshold"].eq(0.3).all()


def test_an_unknown_model_name_lists_the_registered_ones_and_suggests_the_closest(
    tiny_dataset, capsys
):
    assert main(["score", str(tiny_dataset), "--model", "pretrainde", "-q"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'pretrained'?" in err and "baseline" in err and "pretrained-l1c" in err


def test_a_mistyped_option_is_named_with_the_closest_known_one(tiny_dataset, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["score", str(tiny_dataset), "--thresold", "0.3"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "chipqa score: error: unknown option --thresold; did you mean --threshold?" in err


def test_a_percent_mask_at_the_threshold_counts_as_cloud():
    values = np.array([54, 55, 56], np.uint8)
    assert mask_cloud(values, False, 0.55).tolist() == [False, True, True]
    assert mask_cloud(values, False, 0.29).tolist() == [True, True, True]

"""The review loop without a viewer: ordering, filters, decisions, undo, resume, prefetch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chipqa.data import open_dataset
from chipqa.predictors import SpectralBaseline
from chipqa.review.blocklist import BlocklistStore, read_blocklist
from chipqa.review.session import ChipLoader, ReviewSession


@pytest.fixture
def scores():
    return pd.DataFrame(
        {
            "chip_id": ["a", "b", "c", "d", "e"],
            "suspicion": [0.1, 0.9, 0.5, 0.7, np.nan],
            "iou": [0.9, 0.0, 0.5, 0.3, np.nan],
            "label_cloud_fraction": [0.2, 1.0, 0.5, 0.0, np.nan],
            "pred_cloud_fraction": [0.2, 0.0, 0.4, 0.6, 0.3],
            "flags": ["", "all_cloud_label;low_iou", "", "no_cloud_label;low_iou", "no_label"],
            "model": "baseline",
            "error": "",
        }
    )


def test_ordering_is_by_suspicion_and_navigation_follows_it(scores, tmp_path):
    s = ReviewSession(scores, BlocklistStore(tmp_path / "bl.csv"))
    assert s.order == ["b", "d", "c", "a", "e"]
    assert s.current == "b"
    assert [s.next(), s.next(), s.previous()] == ["d", "c", "d"]
    s.position = 4
    assert s.next() == "e"  # stays at the end


def test_filters_by_flag_and_by_undecided(scores, tmp_path):
    s = ReviewSession(scores, BlocklistStore(tmp_path / "bl.csv"))
    s.set_view(flag="low_iou")
    assert s.order == ["b", "d"]
    s.set_view(flag=None, undecided_only=True)
    s.goto("c")
    s.decide("keep")
    assert "c" not in s.order and s.current == "a"


def test_decisions_advance_write_the_numbers_on_screen_and_undo_goes_back(scores, tmp_path):
    s = ReviewSession(scores, BlocklistStore(tmp_path / "bl.csv", reviewer="r"))
    s.decide("block", "all_cloud_wrong")  # b
    s.decide("unsure")  # d
    assert s.current == "c"
    rows = read_blocklist(tmp_path / "bl.csv")
    assert rows["b"].iou == "0" and rows["b"].flags == "all_cloud_label;low_iou"
    assert rows["d"].decision == "unsure"
    assert s.undo() == "d" and s.current == "d"
    assert "d" not in read_blocklist(tmp_path / "bl.csv")


def test_reopening_resumes_at_the_first_undecided_chip(scores, tmp_path):
    path = tmp_path / "bl.csv"
    s = ReviewSession(scores, BlocklistStore(path))
    s.decide("block")
    s.decide("keep")
    again = ReviewSession(scores, BlocklistStore(path))
    assert again.current == "c"
    assert again.progress() == (2, 5)
    assert again.next_undecided() == "a"
    again.decide("keep")
    again.decide("keep")
    assert again.next_undecided() == "c"


def test_loader_prefetches_renders_and_reports_unreadable_chips(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    (tiny_dataset / "train_features" / "cccc" / "B02.tif").write_bytes(b"broken")
    loader = ChipLoader(ds, SpectralBaseline().predict_numpy, workers=2)
    try:
        loader.prefetch(["aaaa", "bbbb", "cccc"])
        v = loader.get("bbbb", timeout=30)
        assert v.true_colour.shape == (32, 32, 3) and v.true_colour.dtype == np.uint8
        assert v.false_colour.shape == (32, 32, 3)
        assert v.prob.shape == (32, 32) and v.prob[:, :10].mean() > 0.8 > v.prob[:, 22:].mean()
        assert loader.is_ready("aaaa") or loader.get("aaaa", timeout=30)
        bad = loader.get("cccc", timeout=30)
        assert bad.chip is None and "B02.tif" in bad.error
    finally:
        loader.close()

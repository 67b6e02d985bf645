"""The review loop without a viewer: ordering, filters, decisions, undo, resume, prefetch."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from chipqa.blocklist.csvread import read_blocklist
from chipqa.blocklist.store import BlocklistStore
from chipqa.data import open_dataset
from chipqa.predictors import SpectralBaseline
from chipqa.review import ChipLoader, ReviewProject, ReviewSession
from chipqa.scoring import score_dataset
from chipqa.scoring.settings import ScoringSettings


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


def test_the_session_announces_navigation_decisions_and_undo(scores, tmp_path):
    s = ReviewSession(scores, BlocklistStore(tmp_path / "bl.csv"))
    events: list[tuple] = []
    s.current_changed.connect(lambda cid: events.append(("current", cid)))
    s.decided.connect(lambda cid, decision: events.append(("decided", cid, decision)))
    s.undone.connect(lambda cid: events.append(("undone", cid)))
    s.order_changed.connect(lambda: events.append(("order",)))

    def take() -> list[tuple]:
        out = list(events)
        events.clear()
        return out

    s.next()
    assert take() == [("current", "d")]
    s.decide("keep")
    assert take() == [("decided", "d", "keep"), ("current", "c")]
    s.undo()
    assert take() == [("undone", "d"), ("current", "d")]
    s.set_view(flag="low_iou")  # b, d: a new filter starts at its first row
    assert take() == [("order",), ("current", "b")]
    s.previous()  # already first: nothing changed, nothing announced
    assert take() == []
    s.set_view(flag=None, undecided_only=True)
    s.decide("block")  # b leaves the list; the cursor moves to d
    assert take() == [("order",), ("decided", "b", "block"), ("order",), ("current", "d")]
    s.position = 2
    assert take() == [("current", s.order[2])]


def _wait_for(condition, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


class CountingPredict:
    """The baseline's prediction, counting calls and how many run at once; fails the
    first ``fail`` calls with the error a GPU out of memory raises."""

    def __init__(self, fail: int = 0, delay: float = 0.0):
        self.predict = SpectralBaseline().predict_numpy
        self.fail, self.delay = fail, delay
        self.calls, self.running, self.most_at_once = 0, 0, 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, bands: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.current_thread().name)
            failing = self.calls <= self.fail
        try:
            time.sleep(self.delay)
            if failing:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return self.predict(bands)
        finally:
            with self._lock:
                self.running -= 1


def test_loader_prefetches_in_the_background_renders_and_reports_unreadable_chips(tiny_dataset):
    ds = open_dataset(tiny_dataset)
    (tiny_dataset / "train_features" / "cccc" / "B02.tif").write_bytes(b"broken")
    predict = CountingPredict()
    loader = ChipLoader(ds, predict, workers=2)
    try:
        loader.prefetch(["aaaa", "bbbb", "cccc"])
        # Nobody asks for the chips: prefetching alone makes them ready, off this thread.
        _wait_for(lambda: all(loader.is_ready(c) for c in ("aaaa", "bbbb", "cccc")))
        assert predict.calls == 2  # the unreadable chip is never predicted
        assert predict.threads and all(t.startswith("chipqa-prefetch") for t in predict.threads)
        assert loader.request("aaaa").done()  # a prefetched chip is there at once
        v = loader.get("bbbb", timeout=0)
        assert predict.calls == 2  # from the cache, not predicted again
        assert v.true_colour.shape == (32, 32, 3) and v.true_colour.dtype == np.uint8
        assert v.false_colour.shape == (32, 32, 3)
        assert v.prob.shape == (32, 32) and v.prob[:, :10].mean() > 0.8 > v.prob[:, 22:].mean()
        bad = loader.get("cccc", timeout=0)
        assert bad.chip is None and "B02.tif" in bad.error
    finally:
        loader.close()


def test_a_failed_load_is_retried_on_the_next_request(tiny_dataset):
    predict = CountingPredict(fail=1)
    loader = ChipLoader(open_dataset(tiny_dataset), predict, workers=2)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            loader.get("aaaa", timeout=30)
        assert not loader.is_ready("aaaa")
        loader.prefetch(["aaaa"])  # the prefetch leaves a failed chip for the next visit
        assert predict.calls == 1
        view = loader.get("aaaa", timeout=30)  # the next visit loads it again
        assert predict.calls == 2 and view.prob is not None and view.error == ""
        assert loader.is_ready("aaaa")
    finally:
        loader.close()


def test_the_loader_calls_the_predictor_one_thread_at_a_time(tiny_dataset):
    predict = CountingPredict(delay=0.05)
    loader = ChipLoader(open_dataset(tiny_dataset), predict, workers=3)
    try:
        loader.prefetch(["aaaa", "bbbb", "cccc"])
        _wait_for(lambda: all(loader.is_ready(c) for c in ("aaaa", "bbbb", "cccc")))
        assert predict.calls == 3 and predict.most_at_once == 1
    finally:
        loader.close()


def test_saved_scores_are_reused_only_for_the_same_model_and_chips(tiny_dataset):
    project = ReviewProject.open(tiny_dataset)
    assert project.scores_path == tiny_dataset.parent / "ds_scores.csv"
    assert project.default_blocklist == tiny_dataset.parent / "ds_chipqa_blocklist.csv"
    assert project.models_dir == tiny_dataset.parent / "ds_models"
    baseline = ScoringSettings.create("baseline", 0.4)
    assert project.saved_scores(baseline) is None  # nothing saved yet
    table = score_dataset(project.dataset, SpectralBaseline(), workers=1, threshold=0.4)
    project.save_scores(table, baseline)
    scores, settings = project.saved_scores(baseline)
    assert sorted(scores["chip_id"]) == ["aaaa", "bbbb", "cccc"] and settings.threshold == 0.4
    assert project.saved_scores(ScoringSettings.create("pretrained", 0.4)) is None
    assert project.saved_scores(ScoringSettings.create("baseline", 0.5)) is None
    project.save_scores(table.iloc[:2], baseline)  # not every chip of the dataset
    assert project.saved_scores(baseline) is None
    project.save_scores(table, baseline)
    project.scores_path.write_text("not,a\nscores table\n")
    assert project.saved_scores(baseline) is None


def test_a_new_filter_starts_at_its_first_row_a_new_sort_keeps_the_chip(scores, tmp_path):
    s = ReviewSession(scores, BlocklistStore(tmp_path / "bl.csv"))
    s.position = 3  # row 4 of 5
    s.set_view(flag="low_iou")
    assert s.order == ["b", "d"] and s.position == 0  # not the old row number
    s.position = 1
    s.set_view(sort_by="chip_id", ascending=True)
    assert s.current == "d"  # a sort keeps the chip


def test_page_decisions_are_one_write_and_one_undo(scores, tmp_path):
    from chipqa.review.session import default_reason

    store = BlocklistStore(tmp_path / "bl.csv")
    s = ReviewSession(scores, store)
    seen = []
    s.decided.connect(lambda cid, d: seen.append((cid, d)))
    items = [("b", "block", default_reason("all_cloud_label;low_iou")), ("d", "keep", "")]
    s.decide_chips(items, rule="page 1")
    rows = read_blocklist(tmp_path / "bl.csv")
    assert {c: (r.decision, r.reason, r.rule) for c, r in rows.items()} == {
        "b": ("block", "all_cloud_wrong", "page 1"),
        "d": ("keep", "", "page 1"),
    }
    assert seen == [("b", "block"), ("d", "keep")]
    assert s.tally()["reason"] == {"all_cloud_wrong": 1}
    assert s.undo() in ("b", "d")
    assert not read_blocklist(tmp_path / "bl.csv")  # both back in one step
    assert default_reason("no_cloud_label") == "no_cloud_wrong"
    assert default_reason("low_iou") == "other"


def test_scores_near_one_never_read_as_one():
    from chipqa.review.session import score_text

    assert score_text(0.4213) == "0.421"
    assert score_text(0.99962) == "0.9996"
    assert score_text(0.9999996) != "1.000"
    assert score_text(1.0) == "1.000" and score_text(float("nan")) == ""


def test_a_gallery_page_toggles_and_what_saving_it_writes():
    from chipqa._qt.gallery_page import PageGrid, PageState

    st = PageState(["a", "b", "c", "d"])
    stored = {"a": None, "b": ("block", "shifted"), "c": None, "d": ("keep", "")}
    st.toggle(0, "block", "all_cloud_wrong", stored["a"])
    st.toggle(1, "block", "other", stored["b"])  # a written block toggled off: keep
    st.toggle(2, "block", "x", stored["c"])
    st.toggle(2, "block", "x", stored["c"])  # and back: nothing pending
    assert st.items(stored) == [
        ("a", "block", "all_cloud_wrong"),
        ("b", "keep", ""),
        ("c", "keep", ""),
    ]
    assert st.pending_only(stored) == [("a", "block", "all_cloud_wrong"), ("b", "keep", "")]
    g = PageGrid(cols=2, rows=2, size=8)
    st.move(1, 1, g.cols)
    assert st.cursor == 3
    assert g.cell_at(*g.origin(3)) == 3
    page = g.blank()
    thumb = np.full((8, 8, 3), 100, np.uint8)
    g.paint(page, 0, chip_id="a", thumb=thumb, stored=None, pending=("block", "x"), cursor=False)
    y, x = g.origin(0)
    assert tuple(page[y, x]) == (235, 70, 70)  # a red frame for a block


def test_a_blocks_default_reason_follows_the_detector_that_ranked_the_chip():
    from chipqa.review.session import default_reason

    assert default_reason("low_iou", "missing_region") == "clouds_missing"
    assert default_reason("all_cloud_label;low_iou", "all_cloud_contradicted") == "all_cloud_wrong"
    assert default_reason("", "edge_tight") == "edge_off"
    # scores written before the detectors: the flags decide, as before
    assert default_reason("no_cloud_label", None) == "no_cloud_wrong"
    assert default_reason("", "") == "other"

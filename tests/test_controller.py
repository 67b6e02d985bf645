"""The review controller without a screen: the one writer of a review's state."""

from __future__ import annotations

import numpy as np

from chipqa.blocklist.store import BlocklistStore
from chipqa.review.controller import ReviewController
from chipqa.scoring.settings import ScoringSettings
from conftest import make_bands, write_chip

BASELINE = ScoringSettings.create("baseline", 0.5)


def _opened(root) -> tuple[ReviewController, dict]:
    review = ReviewController()
    heard: dict[str, list] = {"labels": [], "decided": [], "messages": []}
    review.labels_changed.connect(heard["labels"].append)
    review.decided.connect(lambda c, d: heard["decided"].append((c, d)))
    review.message.connect(lambda text, error: heard["messages"].append(text))
    review.open_dataset(root)
    review.switch_blocklist()
    review.score(BASELINE, workers=1)
    return review, heard


def test_a_fix_is_a_decision_of_the_session_and_changes_the_label_in_force(tiny_dataset):
    review, heard = _opened(tiny_dataset)
    s = review.session
    s.set_view(undecided_only=True)
    first = s.current
    review.decide("keep")
    target = s.current
    review.fix(target, np.zeros((32, 32), np.uint8), source="painted")
    assert heard["decided"] == [(first, "keep"), (target, "fix")]
    assert target not in s.order  # "undecided only" drops the fixed chip at once
    assert s.progress()[0] == 2 and s.rate() is not None  # counted like any decision
    assert review.dataset[target].fixed and heard["labels"] == [[target]]
    assert review.undo() == target
    assert not review.dataset[target].fixed and heard["labels"][-1] == [target]
    assert target in s.order


def test_opening_another_dataset_starts_over(tiny_dataset, tmp_path):
    other = tmp_path / "other"
    for cid in ("aaaa", "bbbb", "cccc"):  # the same chip ids, another dataset
        cloud = np.zeros((32, 32), bool)
        write_chip(other, cid, make_bands(32, cloud), cloud.astype(np.uint8))
    review, _ = _opened(tiny_dataset)
    mine = tmp_path / "mine.csv"
    review.switch_blocklist(mine)
    review.fix("aaaa", np.ones((32, 32), np.uint8), source="painted")
    review.decide("block")
    assert review.session.progress()[0] == 2 and review.dataset["aaaa"].fixed
    sessions = []
    review.session_changed.connect(sessions.append)
    review.open_dataset(other)
    assert sessions == [None] and review.session is None  # no progress, no badge
    assert review.blocklist_path == review.project.default_blocklist != mine
    assert not review.dataset["aaaa"].fixed  # the first dataset's fix is not this one's
    review.score(BASELINE, workers=1)
    assert review.store.path == review.project.default_blocklist
    assert review.session.progress() == (0, 3)


def test_a_blocklist_of_other_chips_is_used_with_a_warning(tiny_dataset, tmp_path):
    foreign = tmp_path / "foreign.csv"
    store = BlocklistStore(foreign)
    store.decide("zzzz", "block", "other")
    store.decide("aaaa", "keep")
    review, heard = _opened(tiny_dataset)
    review.switch_blocklist(foreign)
    assert any("1 of the 2 decisions" in m and "'zzzz'" in m for m in heard["messages"])
    assert review.session.store.path == foreign and review.session.progress()[0] == 1


def test_the_table_shows_a_fixed_chips_label_share_and_iou_until_it_is_undone(tiny_dataset):
    review, _ = _opened(tiny_dataset)
    s = review.session
    scored = dict(s.row("cccc"))  # overcast, labelled all cloud
    assert scored["label_cloud_fraction"] == 1.0
    half = np.zeros((32, 32), np.uint8)
    half[:, :16] = 1
    prob = np.zeros((32, 32), np.float32)
    prob[:, :8] = 0.9
    review.fix("cccc", half, source="painted", prob=prob)
    row = s.row("cccc")
    assert row["label_cloud_fraction"] == 0.5 and row["label_source"] == "fixed"
    assert row["iou"] == 0.5  # 8 of the 16 labelled columns predicted
    assert s.scores.set_index("chip_id").at["cccc", "label_cloud_fraction"] == 0.5
    review.undo()
    row = s.row("cccc")
    assert row["label_cloud_fraction"] == 1.0 and row["iou"] == scored["iou"]
    assert row["label_source"] == scored["label_source"]


def test_moving_sorting_and_filtering_go_through_the_controller(tiny_dataset):
    review = ReviewController()
    assert review.step(1) is None and review.goto("aaaa") is None  # no review: nothing
    review, _ = _opened(tiny_dataset)
    s = review.session
    moves: list = []
    s.current_changed.connect(moves.append)
    order = list(s.order)
    assert review.step(+1) == order[1] and review.step(-1) == order[0]
    review.move_to(2)
    assert s.current == order[2]
    assert review.goto(order[0]) == order[0]
    assert moves == [order[1], order[0], order[2], order[0]]
    review.decide("keep")  # order[0] decided, the cursor moves on
    assert review.next_undecided() not in (None, order[0])
    review.set_view(sort_by="chip_id", ascending=True)
    assert s.order == sorted(order)
    review.set_view(undecided_only=True)
    assert order[0] not in s.order

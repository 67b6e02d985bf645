"""Scoring and ranking a dataset: the scores table contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chipqa.data import open_dataset
from chipqa.io.atomic import atomic_write_csv
from chipqa.predictors import SpectralBaseline
from chipqa.scoring import SCORE_COLUMNS, read_scores, score_dataset
from conftest import make_bands, write_chip


def _square(size, a, b):
    m = np.zeros((size, size), bool)
    m[a:b, a:b] = True
    return m


@pytest.fixture
def mixed_dataset(tmp_path):
    """Right labels, two wrong constant labels, an unlabelled chip and a broken chip."""
    root = tmp_path / "ds"
    s = 32
    clear, half, full = np.zeros((s, s), bool), _square(s, 0, 20), np.ones((s, s), bool)
    write_chip(root, "ok_clear", make_bands(s, clear, 1), clear.astype(np.uint8))
    write_chip(root, "ok_half", make_bands(s, half, 2), half.astype(np.uint8))
    write_chip(root, "ok_full", make_bands(s, full, 3), full.astype(np.uint8))
    write_chip(
        root, "wrong_all", make_bands(s, clear, 4), full.astype(np.uint8)
    )  # all-cloud label, clear sky
    write_chip(
        root, "wrong_none", make_bands(s, full, 5), clear.astype(np.uint8)
    )  # no-cloud label, overcast
    write_chip(root, "nolabel", make_bands(s, half, 6), None)
    broken = write_chip(root, "broken", make_bands(s, half, 7), half.astype(np.uint8))
    (broken / "B04.tif").write_bytes(b"garbage")
    return root


def test_wrong_constant_labels_rank_first_with_words_that_say_why(mixed_dataset):
    df = score_dataset(open_dataset(mixed_dataset), SpectralBaseline(), batch_size=3)
    assert list(df.columns[: len(SCORE_COLUMNS)]) == SCORE_COLUMNS
    assert df["chip_id"].tolist()[:2] == ["wrong_none", "wrong_all"] or df["chip_id"].tolist()[
        :2
    ] == ["wrong_all", "wrong_none"]
    rows = df.set_index("chip_id")
    assert set(rows.loc["wrong_all", "flags"].split(";")) >= {
        "all_cloud_label",
        "label_contradicted",
        "low_iou",
    }
    assert set(rows.loc["wrong_none", "flags"].split(";")) >= {
        "no_cloud_label",
        "label_contradicted",
        "cloud_missing_from_label",
    }
    for good in ("ok_clear", "ok_half", "ok_full"):
        assert rows.loc[good, "iou"] > 0.8
        assert rows.loc[good, "suspicion"] < rows.loc["wrong_all", "suspicion"] / 2
        assert "label_contradicted" not in rows.loc[good, "flags"]
    assert rows.loc["ok_clear", "iou"] == 1.0  # empty union


def test_unreadable_and_unlabelled_chips_keep_their_rows_at_the_end(mixed_dataset):
    df = score_dataset(open_dataset(mixed_dataset), SpectralBaseline(), batch_size=4)
    assert len(df) == 7 and df["rank"].tolist() == list(range(1, 8))
    assert df["chip_id"].iloc[-1] == "broken"
    assert "B04.tif" in df["error"].iloc[-1] and df["flags"].iloc[-1] == "unreadable"
    assert df["chip_id"].iloc[-2] == "nolabel"
    assert df["flags"].iloc[-2] == "no_label" and np.isnan(df["suspicion"].iloc[-2])
    assert df["pred_cloud_fraction"].iloc[-2] == pytest.approx(400 / 1024, abs=0.05)
    assert (df["error"].iloc[:-1] == "").all()


def test_results_do_not_depend_on_batching_or_reading_threads(mixed_dataset):
    ds = open_dataset(mixed_dataset)
    a = score_dataset(ds, SpectralBaseline(), batch_size=1, workers=0)
    b = score_dataset(ds, SpectralBaseline(), batch_size=5, workers=2)
    pd.testing.assert_frame_equal(a, b)


def test_chips_of_different_sizes_are_scored_in_one_run(tmp_path):
    for cid, s in (("small", 32), ("big", 48), ("small2", 32)):
        cloud = _square(s, 0, s // 2)
        write_chip(tmp_path, cid, make_bands(s, cloud), cloud.astype(np.uint8), layout="flat")
    df = score_dataset(open_dataset(tmp_path), SpectralBaseline(), batch_size=8)
    assert sorted(zip(df["chip_id"], df["height"], strict=True)) == [
        ("big", 48),
        ("small", 32),
        ("small2", 32),
    ]
    assert (df["iou"] > 0.8).all()


def test_a_stopped_run_returns_what_was_scored(mixed_dataset):
    calls = []
    df = score_dataset(
        open_dataset(mixed_dataset),
        SpectralBaseline(),
        batch_size=2,
        workers=0,
        progress=lambda p: calls.append((p.done, p.total)),
        should_stop=lambda: len(calls) >= 2,
    )
    assert calls[-1][1] == 7 and len(calls) == 2
    assert 0 < len(df) < 7


def test_scores_survive_a_round_trip_through_csv(mixed_dataset, tmp_path):
    df = score_dataset(open_dataset(mixed_dataset), SpectralBaseline())
    path = atomic_write_csv(df, tmp_path / "out" / "scores.csv")
    back = read_scores(path)
    assert back["chip_id"].tolist() == df["chip_id"].tolist()
    np.testing.assert_allclose(back["suspicion"], df["suspicion"], rtol=1e-5)
    assert back["flags"].tolist() == df["flags"].tolist()
    assert not list(path.parent.glob(".*tmp"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_formula_like_text_is_escaped_in_the_csv_and_read_back_exactly(tmp_path):
    """Cells a spreadsheet would run as formulas get a leading quote; numbers do not."""
    import csv

    from chipqa.scoring import write_scores

    root = tmp_path / "ds"
    cloud = _square(32, 0, 16)
    for cid in ("aaaa", "bbbb"):
        write_chip(root, cid, make_bands(32, cloud), cloud.astype(np.uint8))
    write_chip(root, "=cmd|'calc'!A0", make_bands(32, cloud), cloud.astype(np.uint8))
    (root / "train_metadata.csv").write_text(
        "chip_id,location,lon,note\n"
        'aaaa,=HYPERLINK("http://x"),-12.5,@SUM(1)\n'
        "bbbb,+1+2,3.25,'=already quoted\n"
    )
    df = score_dataset(open_dataset(root), SpectralBaseline(), workers=0)
    df.loc[df["chip_id"] == "aaaa", "model"] = "-evil\tmodel"
    path = write_scores(df, tmp_path / "scores.csv")
    with open(path, newline="", encoding="utf-8") as f:
        raw = {r["chip_id"]: r for r in csv.DictReader(f)}
    assert raw["aaaa"]["location"] == '\'=HYPERLINK("http://x")'
    assert raw["aaaa"]["note"] == "'@SUM(1)" and raw["aaaa"]["model"] == "'-evil\tmodel"
    assert raw["bbbb"]["location"] == "'+1+2" and raw["bbbb"]["note"] == "''=already quoted"
    assert raw["aaaa"]["lon"] == "-12.5"  # a negative number stays a number
    for r in raw.values():  # no cell left that a spreadsheet would run
        assert not any(str(v).startswith(("=", "+", "@", "\t", "\r")) for v in r.values())
        assert not any(str(v).startswith("-") and not _is_number(v) for v in r.values())
    # The refused chip keeps its row, its error saying why; its id is escaped there only.
    assert "'=cmd|'calc'!A0" in raw
    assert "spreadsheets read as a formula" in raw["'=cmd|'calc'!A0"]["error"]
    back = read_scores(path).set_index("chip_id")
    assert set(back.index) == {"aaaa", "bbbb", "=cmd|'calc'!A0"}
    assert back.loc["aaaa", "location"] == '=HYPERLINK("http://x")'
    assert back.loc["aaaa", "note"] == "@SUM(1)" and back.loc["aaaa", "model"] == "-evil\tmodel"
    assert back.loc["bbbb", "location"] == "+1+2" and back.loc["bbbb", "note"] == "'=already quoted"
    assert float(back.loc["aaaa", "lon"]) == -12.5
    np.testing.assert_allclose(
        back.loc[df["chip_id"], "suspicion"], df["suspicion"], rtol=1e-5, equal_nan=True
    )


def test_a_full_disk_keeps_the_scores_somewhere_or_says_where_it_could_not_write(
    mixed_dataset, tmp_path, monkeypatch
):
    import errno
    import os

    from chipqa.scoring import ScoresWriteError, write_scores

    df = score_dataset(open_dataset(mixed_dataset), SpectralBaseline())
    full, spare = tmp_path / "full", tmp_path / "spare"
    full.mkdir()
    old = full / "scores.csv"
    old.write_text("the previous scores\n")
    real_fsync = os.fsync

    def fsync(fd):  # the disk holding `full` has no room left
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(full)):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(ScoresWriteError, match="the disk is full") as info:
        write_scores(df, old)
    assert str(old) in str(info.value) and info.value.disk_full
    assert old.read_text() == "the previous scores\n"  # nothing lost
    assert [p.name for p in full.iterdir()] == ["scores.csv"]  # no temporary file left
    written = write_scores(df, old, fallbacks=[spare / "scores.csv"])
    assert written == spare / "scores.csv"
    assert read_scores(written)["chip_id"].tolist() == df["chip_id"].tolist()

"""The blocklist store: atomic, crash-safe, undo, and safe with two writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from chipqa.review.blocklist import (
    COLUMNS,
    BlocklistError,
    BlocklistStore,
    blocked_ids,
    default_path,
    read_blocklist,
)


def test_each_decision_is_on_disk_before_decide_returns(tmp_path):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path, reviewer="ana")
    store.decide(
        "aaaa",
        "block",
        "all_cloud_wrong",
        info={
            "flags": "all_cloud_label;low_iou",
            "suspicion": 0.91234567,
            "iou": 0.02,
            "model": "baseline",
        },
    )
    rows = read_blocklist(path)
    assert list(rows) == ["aaaa"]
    d = rows["aaaa"]
    assert (d.decision, d.reason, d.flags, d.suspicion, d.model, d.reviewer) == (
        "block",
        "all_cloud_wrong",
        "all_cloud_label;low_iou",
        "0.912346",
        "baseline",
        "ana",
    )
    assert d.decided_at.endswith("Z")
    header = path.read_text().splitlines()[0].split(",")
    assert header == list(COLUMNS)
    store.decide("bbbb", "keep")
    assert blocked_ids(path) == ["aaaa"]


def test_a_later_decision_replaces_and_undo_restores(tmp_path):
    store = BlocklistStore(tmp_path / "bl.csv")
    store.decide("aaaa", "unsure")
    store.decide("aaaa", "block", "shifted")
    store.decide("bbbb", "keep")
    assert store.undo() == "bbbb"
    assert "bbbb" not in read_blocklist(store.path)
    assert store.undo() == "aaaa"
    assert read_blocklist(store.path)["aaaa"].decision == "unsure"
    assert store.undo() == "aaaa" and read_blocklist(store.path) == {}
    assert store.undo() is None


def test_reopening_resumes_the_decisions(tmp_path):
    path = tmp_path / "bl.csv"
    BlocklistStore(path).decide("aaaa", "block")
    again = BlocklistStore(path)
    assert again.get("aaaa").decision == "block" and len(again) == 1


def test_two_sessions_on_one_file_keep_each_others_decisions(tmp_path):
    path = tmp_path / "bl.csv"
    first, second = BlocklistStore(path, reviewer="a"), BlocklistStore(path, reviewer="b")
    first.decide("aaaa", "block")
    second.decide("bbbb", "keep")  # second never saw aaaa: must merge, not overwrite
    first.decide("cccc", "unsure")
    rows = read_blocklist(path)
    assert {k: v.decision for k, v in rows.items()} == {
        "aaaa": "block",
        "bbbb": "keep",
        "cccc": "unsure",
    }
    assert second.merged_from_elsewhere == 1 and first.merged_from_elsewhere == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("id,decision\nx,block\n", "first column is 'id'"),
        ("chip_id,decision\naaaa,maybe\n", "line 2: decision 'maybe'"),
        ("chip_id,decision\n,block\n", "line 2: empty chip_id"),
    ],
)
def test_a_blocklist_edited_into_nonsense_is_refused_and_left_alone(tmp_path, text, message):
    path = tmp_path / "bl.csv"
    path.write_text(text)
    with pytest.raises(BlocklistError, match=message):
        BlocklistStore(path)
    assert path.read_text() == text


def test_a_hand_written_minimal_blocklist_is_read(tmp_path):
    path = tmp_path / "bl.csv"
    path.write_text("chip_id\naaaa\nbbbb\n")  # first column only: all blocked
    assert blocked_ids(path) == ["aaaa", "bbbb"]


def test_a_read_only_folder_is_refused_before_any_decision(tmp_path, monkeypatch):
    # Root may write anywhere, so let the OS's permission check say "read-only".
    real_access = os.access
    monkeypatch.setattr(
        "chipqa.review.blocklist.os.access",
        lambda p, mode: False if mode == os.W_OK else real_access(p, mode),
    )
    with pytest.raises(BlocklistError, match="no write permission"):
        BlocklistStore(tmp_path / "bl.csv")
    assert not (tmp_path / "bl.csv").exists()


def test_a_failed_write_keeps_the_file_and_the_session_consistent(tmp_path, monkeypatch):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path)
    store.decide("aaaa", "block")
    before = path.read_text()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("chipqa.io.atomic.os.replace", disk_full)
    with pytest.raises(BlocklistError, match="No space left"):
        store.decide("bbbb", "keep")
    assert path.read_text() == before
    assert "bbbb" not in store and store.get("aaaa").decision == "block"  # memory = disk
    assert not list(tmp_path.glob(".bl.csv.*.tmp"))


def test_export_writes_blocked_chips_or_all_decisions(tmp_path):
    store = BlocklistStore(tmp_path / "bl.csv")
    store.decide("aaaa", "block", "no_cloud_wrong")
    store.decide("bbbb", "keep")
    blocked = store.export(tmp_path / "export.csv")
    assert list(read_blocklist(blocked)) == ["aaaa"]
    everything = store.export(tmp_path / "all.csv", blocked_only=False)
    assert set(read_blocklist(everything)) == {"aaaa", "bbbb"}


def test_default_path_sits_beside_the_dataset(tmp_path):
    assert default_path(tmp_path / "data") == tmp_path / "data_chipqa_blocklist.csv"


@pytest.mark.slow
def test_killing_a_writer_mid_stream_leaves_a_whole_csv(tmp_path):
    path = tmp_path / "bl.csv"
    code = textwrap.dedent(f"""
        import sys
        from chipqa.review.blocklist import BlocklistStore
        store = BlocklistStore({str(path)!r}, reviewer="bot")
        i = 0
        while True:
            info = {{"flags": "x;y", "suspicion": i / 7}}
            store.decide(f"c{{i:06d}}", "block", "other", info=info)
            i += 1
            if i == 20:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rows = read_blocklist(path)  # parses: no torn row, header intact
    n = len(rows)
    assert n >= 20
    assert list(rows) == [
        f"c{i:06d}" for i in range(n)
    ]  # every decision up to the last whole write
    assert all(r.decision == "block" and r.flags == "x;y" for r in rows.values())


def test_an_undo_reaches_the_other_window_and_never_erases_its_newer_decision(tmp_path):
    path = tmp_path / "bl.csv"
    a, b = BlocklistStore(path, reviewer="a"), BlocklistStore(path, reviewer="b")
    a.decide("x", "block")
    b.decide("y", "keep")  # b has now merged a's block of x
    a.undo()  # x undone
    b.decide("z", "keep")  # b must not write x back
    assert {k: v.decision for k, v in read_blocklist(path).items()} == {"y": "keep", "z": "keep"}
    assert "x" not in b and blocked_ids(path) == []
    a.decide("w", "block")
    b.decide("w", "keep")  # b decides later on the same chip
    with pytest.raises(BlocklistError, match="decided again by b"):
        a.undo()
    assert read_blocklist(path)["w"].decision == "keep"
    assert a.export(tmp_path / "all.csv", blocked_only=False).read_text().count("undone") == 0


def test_written_files_are_readable_like_any_other_and_keep_their_mode(tmp_path):
    # Atomic writes go through a private temporary file; the result must not stay private,
    # or a blocklist written by one curator could not be read by the team's training job.
    import os
    import stat

    from chipqa.io.atomic import atomic_open

    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "new.csv") as f:
            f.write("x\n")
        assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644
        (tmp_path / "shared.csv").write_text("y\n")
        os.chmod(tmp_path / "shared.csv", 0o664)
        with atomic_open(tmp_path / "shared.csv") as f:
            f.write("z\n")
        assert stat.S_IMODE((tmp_path / "shared.csv").stat().st_mode) == 0o664
    finally:
        os.umask(old)


def _decide_in_another_process(path, chip_id: str, decision: str, reviewer: str):
    """Start another process (another napari window) that records one decision."""
    code = textwrap.dedent(f"""
        from chipqa.review.blocklist import BlocklistStore
        BlocklistStore({str(path)!r}, reviewer={reviewer!r}).decide({chip_id!r}, {decision!r})
    """)
    return subprocess.Popen([sys.executable, "-c", code])


def _lock_is_free(path) -> bool:
    import fcntl

    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_decision_made_elsewhere_while_undoing_is_never_erased(tmp_path, monkeypatch):
    """The other window decides at the worst moment: after this window has checked that
    its decision is still the latest, before it writes the undo. It must either see the
    other decision (and refuse the undo) or write first (and the other decision follows)."""
    import chipqa.review.blocklist as bl

    path = tmp_path / "bl.csv"
    a = BlocklistStore(path, reviewer="a")
    a.decide("x", "block")
    other = []
    real_now = bl.now_utc

    def now_with_a_rival():  # called while the undo row is being made
        if not other:
            proc = _decide_in_another_process(path, "x", "keep", "b")
            other.append(proc)
            if _lock_is_free(path):  # nothing keeps the rival out: let it write now
                proc.wait(timeout=60)
        return real_now()

    monkeypatch.setattr(bl, "now_utc", now_with_a_rival)
    try:
        a.undo()
    except BlocklistError:
        pass  # the rival came first: refusing the undo is right
    assert other[0].wait(timeout=60) == 0
    final = read_blocklist(path)["x"]
    assert (final.decision, final.reviewer) == ("keep", "b")


@pytest.mark.slow
def test_a_delayed_window_never_overwrites_a_newer_decision_with_an_older_one(
    tmp_path, monkeypatch
):
    """A window stalls between making its decision and writing it (a slow disk, a busy
    lock); another window decides on the same chip meanwhile. The row that ends up in
    the file must carry the latest time, so that every window merging by time agrees."""
    path = tmp_path / "bl.csv"
    a = BlocklistStore(path, reviewer="a")
    real_locked = BlocklistStore._locked
    rival = []

    def slow_lock(self):
        if not rival:  # b decides while a is still on its way to the lock
            rival.append(_decide_in_another_process(path, "x", "keep", "b"))
            assert rival[0].wait(timeout=60) == 0
            rival.append(read_blocklist(path)["x"].decided_at)
        return real_locked(self)

    monkeypatch.setattr(BlocklistStore, "_locked", slow_lock)
    a.decide("x", "block")
    final = read_blocklist(path)["x"]
    assert final.reviewer == "a"  # a wrote last
    assert final.decided_at > rival[1]  # and its row says so
    b = BlocklistStore(path, reviewer="b2")  # a third window agrees with the file
    assert b.get("x").reviewer == "a"


def test_undo_restores_the_decision_another_window_made_just_before(tmp_path):
    """Window b blocks a chip; window a, which has not looked at the file since, keeps it
    and then undoes: the chip goes back to b's block, not to undecided."""
    path = tmp_path / "bl.csv"
    a, b = BlocklistStore(path, reviewer="a"), BlocklistStore(path, reviewer="b")
    b.decide("x", "block", "all_cloud_wrong")
    a.decide("x", "keep")
    assert a.undo() == "x"
    restored = read_blocklist(path)["x"]
    assert (restored.decision, restored.reviewer, restored.reason) == (
        "block",
        "b",
        "all_cloud_wrong",
    )
    assert blocked_ids(path) == ["x"]

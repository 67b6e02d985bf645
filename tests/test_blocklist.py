"""The blocklist store: atomic, crash-safe, undo, and safe with two writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from chipqa.blocklist.csvformat import COLUMNS, BlocklistError
from chipqa.blocklist.csvread import blocked_ids, read_blocklist
from chipqa.blocklist.store import BlocklistStore, default_path


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
        "chipqa.blocklist.diskfile.os.access",
        lambda p, mode: False if mode == os.W_OK else real_access(p, mode),
    )
    with pytest.raises(BlocklistError, match="no write permission"):
        BlocklistStore(tmp_path / "bl.csv")
    assert not (tmp_path / "bl.csv").exists()


@pytest.mark.parametrize("fails", ["append", "create"])
def test_a_failed_write_keeps_the_file_and_the_session_consistent(tmp_path, monkeypatch, fails):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path)
    if fails == "append":
        store.decide("aaaa", "block")
    before = path.read_bytes() if path.exists() else None
    real_write = os.write

    def half_then_disk_full(fd, data):  # the disk fills in the middle of the row
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    if fails == "append":
        monkeypatch.setattr("chipqa.blocklist.diskfile.os.write", half_then_disk_full)
    else:
        monkeypatch.setattr("chipqa.io.atomic.os.replace", disk_full)
    with pytest.raises(BlocklistError, match="No space left"):
        store.decide("bbbb", "keep")
    monkeypatch.undo()
    assert (path.read_bytes() if path.exists() else None) == before
    assert "bbbb" not in store  # memory = disk
    assert (store.get("aaaa") is not None) == (fails == "append")
    assert not list(tmp_path.glob(".bl.csv.*.tmp"))
    store.decide("cccc", "keep")  # and the next decision goes in whole
    assert {k: d.decision for k, d in read_blocklist(path).items()} == {
        **({"aaaa": "block"} if fails == "append" else {}),
        "cccc": "keep",
    }


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
        from chipqa.blocklist.store import BlocklistStore
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
        from chipqa.blocklist.store import BlocklistStore
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
    import chipqa.blocklist.store as bl

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


# -- a blocklist that training is given must exist -------------------------------------------
def test_a_missing_blocklist_is_an_error_not_an_empty_one(tmp_path):
    missing = tmp_path / "blocklist_typo.csv"
    for read in (blocked_ids, read_blocklist):
        with pytest.raises(BlocklistError, match=r"blocklist_typo\.csv does not exist\. Check"):
            read(missing)
    assert blocked_ids(missing, missing_ok=True) == []
    BlocklistStore(missing).decide("aaaa", "block")  # a store still starts a new file
    assert blocked_ids(missing) == ["aaaa"]


@pytest.mark.slow
def test_train_with_a_mistyped_blocklist_path_stops_before_training(tiny_dataset, tmp_path, capsys):
    from chipqa.cli import main

    out = tmp_path / "model.ckpt"
    missing = tmp_path / "no" / "such.csv"
    argv = ["train", str(tiny_dataset), "--out", str(out), "--blocklist", str(missing)]
    code = main([*argv, "--epochs", "1", "--accelerator", "cpu", "--quiet"])
    assert code != 0
    assert f"{missing} does not exist" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("model*"))  # nothing trained


# -- chip ids are kept exactly ---------------------------------------------------------------
def test_chip_ids_with_spaces_keep_their_decision_on_reopening(tmp_path):
    path = tmp_path / "bl.csv"
    ids = [" lead", "trail ", "  both  ", "in side"]
    store = BlocklistStore(path)
    for cid in ids:
        store.decide(cid, "block")
    store.decide("trail", "keep")  # another chip than "trail "
    again = BlocklistStore(path)
    assert [again.get(c).decision for c in ids] == ["block"] * 4
    assert again.get("trail").decision == "keep" and again.get("lead") is None
    assert blocked_ids(path) == ids


# -- crash litter ----------------------------------------------------------------------------
def test_opening_removes_stale_temp_files_of_this_blocklist_only(tmp_path):
    path = tmp_path / "bl.csv"
    BlocklistStore(path).decide("aaaa", "block")
    stale = tmp_path / ".bl.csv.k2j_9xq1.tmp"  # mkstemp's pattern, left by a killed writer
    fresh = tmp_path / ".bl.csv.a8b7c6d5.tmp"  # a live writer may be about to rename it
    other = tmp_path / ".other.csv.k2j_9xq1.tmp"
    export_tmp = tmp_path / ".bl.csv.export.csv.k2j_9xq1.tmp"  # another file's temp
    old = time.time() - 3600
    for p in (stale, fresh, other, export_tmp):
        p.write_text("chip_id\n")
        if p is not fresh:
            os.utime(p, (old, old))
    again = BlocklistStore(path)
    assert not stale.exists()
    assert fresh.exists() and other.exists() and export_tmp.exists()
    assert again.get("aaaa").decision == "block"


# -- a symbolic link to a shared blocklist ---------------------------------------------------
def test_a_symlinked_blocklist_is_written_through_to_the_shared_file(tmp_path):
    shared = tmp_path / "team" / "shared.csv"
    shared.parent.mkdir()
    BlocklistStore(shared, reviewer="lead").decide("aaaa", "block")
    link = tmp_path / "mine" / "bl.csv"
    link.parent.mkdir()
    link.symlink_to(shared)
    store = BlocklistStore(link, reviewer="me")
    store.decide("bbbb", "block")
    store.decide("cccc", "keep")
    store.undo()
    assert link.is_symlink() and store.path == link
    assert blocked_ids(shared) == ["aaaa", "bbbb"]
    assert (shared.parent / "shared.csv.lock").exists()  # one lock for every writer
    assert not (link.parent / "bl.csv.lock").exists()
    dangling = tmp_path / "mine" / "new.csv"
    dangling.symlink_to(tmp_path / "team" / "new.csv")  # the shared file is not there yet
    BlocklistStore(dangling).decide("dddd", "block")
    assert dangling.is_symlink() and blocked_ids(tmp_path / "team" / "new.csv") == ["dddd"]


# -- several rows for one chip ---------------------------------------------------------------
def test_the_later_decided_at_wins_whatever_the_row_order(tmp_path):
    path = tmp_path / "bl.csv"
    path.write_text(
        "chip_id,decision,decided_at\n"
        "late,block,2026-11-21T14:03:12Z\n"
        "late,keep,2026-11-21T14:03:11.999Z\n"  # earlier, though further down
        "tie,keep,2026-11-21T14:03:12Z\n"
        "tie,block,2026-11-21T14:03:12.000Z\n"  # equal times: the later row
        "blank,keep,2026-11-21T14:03:12Z\n"
        "blank,block,\n"  # no time: the later row
        "tz,keep,2026-11-21T15:00:00+02:00\n"
        "tz,block,2026-11-21T14:00:00Z\n"  # 14:00 UTC is after 13:00 UTC
    )
    expected = {"late": "block", "tie": "block", "blank": "block", "tz": "block"}
    assert {k: d.decision for k, d in read_blocklist(path).items()} == expected
    assert {k: d.decision for k, d in BlocklistStore(path).decisions.items()} == expected


def test_a_clock_that_went_back_still_lets_the_newer_decision_win(tmp_path, monkeypatch):
    import chipqa.blocklist.store as bl

    path = tmp_path / "bl.csv"
    store = BlocklistStore(path)
    store.decide("x", "block")
    monkeypatch.setattr(bl, "now_utc", lambda: "2000-01-01T00:00:00.000000Z")
    store.decide("x", "keep")
    assert read_blocklist(path)["x"].decision == "keep"
    assert store.undo() == "x" and read_blocklist(path)["x"].decision == "block"


# -- appending, not rewriting ----------------------------------------------------------------
def _big_blocklist(path, n, chips=None):
    lines = [",".join(COLUMNS)]
    for i in range(n):
        cid = f"c{i % chips if chips else i:06d}"
        decision = ("block", "keep")[i % 2]
        lines.append(f"{cid},{decision},,,,,,,,bot,2026-01-01T00:00:00.{i:06d}Z")
    path.write_text("\n".join(lines) + "\n")


def test_a_decision_appends_one_row_and_reads_only_what_others_appended(tmp_path, monkeypatch):
    import chipqa.blocklist.diskfile as bl

    path = tmp_path / "bl.csv"
    _big_blocklist(path, 5000)
    a, b = BlocklistStore(path, reviewer="a"), BlocklistStore(path, reviewer="b")
    before, inode = path.read_bytes(), path.stat().st_ino
    parsed = []
    real_parse = bl.parse_chunk

    def spy(data, *args, **kwargs):
        parsed.append(len(data))
        return real_parse(data, *args, **kwargs)

    monkeypatch.setattr(bl, "parse_chunk", spy)
    b.decide("new1", "block")
    a.decide("new2", "keep")  # takes in b's row: reads that row, not the whole file
    after = path.read_bytes()
    assert path.stat().st_ino == inode and after.startswith(before)  # appended in place
    assert after[len(before) :].count(b"\n") == 2  # one row per decision
    assert parsed and sum(parsed) < 200  # read b's row (the spy was called), only that
    assert a.merged_from_elsewhere == 1 and a.get("new1").decision == "block"
    assert len(read_blocklist(path)) == 5002


def test_a_row_torn_by_a_crash_is_ignored_and_cut_off_by_the_next_writer(tmp_path):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path)
    store.decide("aaaa", "block")
    whole = path.read_bytes()
    for torn in ("bbbb,keep,,,,,,,,me,2026-01-01T00:0", "cccc,bl", "dd\u00e9".encode()[:-1]):
        path.write_bytes(whole + (torn if isinstance(torn, bytes) else torn.encode()))
        assert list(read_blocklist(path)) == ["aaaa"]  # readers skip the torn row
        other = BlocklistStore(path)
        other.decide("eeee", "keep")
        assert path.read_bytes().startswith(whole) and path.read_bytes().endswith(b"\n")
        assert {k: d.decision for k, d in read_blocklist(path).items()} == {
            "aaaa": "block",
            "eeee": "keep",
        }
        other.undo()
    path.write_bytes(whole + b"ffff,keep,,,,,,,,me,2026-01-01T00:00:00.000001Z")  # whole
    assert read_blocklist(path)["ffff"].decision == "keep"
    BlocklistStore(path).decide("gggg", "block")  # starts on a fresh line
    assert set(read_blocklist(path)) == {"aaaa", "ffff", "gggg"}


def test_a_file_of_mostly_superseded_rows_is_compacted_on_opening(tmp_path):
    path = tmp_path / "bl.csv"
    _big_blocklist(path, 3000, chips=10)
    expected = {k: d.decision for k, d in read_blocklist(path).items()}
    inode = path.stat().st_ino
    store = BlocklistStore(path)
    assert path.stat().st_ino != inode  # replaced atomically, not rewritten in place
    assert len(path.read_text().splitlines()) == 11
    assert {k: d.decision for k, d in read_blocklist(path).items()} == expected
    assert store.decisions == read_blocklist(path)


def test_a_hand_written_blocklist_gets_the_full_header_on_the_first_decision(tmp_path):
    path = tmp_path / "bl.csv"
    path.write_text("chip_id\naaaa\nbbbb")  # no line end after the last row
    store = BlocklistStore(path)
    store.decide("cccc", "keep")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert {k: d.decision for k, d in read_blocklist(path).items()} == {
        "aaaa": "block",
        "bbbb": "block",
        "cccc": "keep",
    }


# -- spreadsheet safety ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "chip_id, reason, reviewer, message",
    [
        ("c1\nc0001", "", "ana", r"chip id 'c1\\nc0001' contains the control character"),
        ("c1", "shif\rted", "ana", "reason 'shif\\\\rted' contains the control character"),
        ("c1", "a\tb", "ana", "reason"),
        ("c1", "", "x\nc0001,block", "reviewer name 'x\\\\nc0001,block' contains"),
        ("c1\x00", "", "ana", "control character"),
        ("=cmd()", "", "ana", "starts with '=', which spreadsheets run as a formula"),
        ("-c1", "", "ana", "starts with '-'"),
        ("@c1", "", "ana", "starts with '@'"),
    ],
)
def test_values_that_would_break_a_row_or_a_spreadsheet_are_refused(
    tmp_path, chip_id, reason, reviewer, message
):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path, reviewer=reviewer)
    with pytest.raises(BlocklistError, match=message):
        store.decide(chip_id, "block", reason)
    assert not path.exists() and len(store) == 0 and not store.can_undo


def test_formula_like_text_cells_are_escaped_and_read_back_exactly(tmp_path):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path, reviewer="@ana")
    info = {"flags": "-low_iou", "model": "+unet:=x.ckpt", "iou": -0.25, "suspicion": "=1+1"}
    d = store.decide("c1", "block", '=HYPERLINK("http://x")', info=info)
    store.decide("c2", "block", "'=already quoted")
    store.decide("c3", "block", "it's fine")
    row = next(r for r in path.read_text().splitlines() if r.startswith("c1,"))
    assert row.startswith('c1,block,"\'=HYPERLINK(""http://x"")",\'-low_iou,\'=1+1,-0.25,')
    assert ",'+unet:=x.ckpt,'@ana," in row
    for where in (path, store.export(tmp_path / "out.csv")):
        back = read_blocklist(where)
        assert back["c1"] == d  # every value exactly as decided
        assert back["c2"].reason == "'=already quoted" and back["c3"].reason == "it's fine"
    assert BlocklistStore(path).get("c1") == d


def test_control_characters_in_on_screen_text_do_not_break_the_row(tmp_path):
    path = tmp_path / "bl.csv"
    info = {"model": "unet:evil\nc0001,block.ckpt", "flags": "a\tb"}
    BlocklistStore(path).decide("c1", "keep", info=info)
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and not any(line.startswith("c0001") for line in lines)
    assert read_blocklist(path)["c1"].model == "unet:evil\ufffdc0001,block.ckpt"


def test_a_file_with_a_control_character_in_a_chip_id_is_refused_with_its_line(tmp_path):
    path = tmp_path / "bl.csv"
    path.write_text('chip_id,decision\naaaa,block\n"c1\nc0001",block\n')
    with pytest.raises(BlocklistError, match=r"line 3: chip id 'c1\\nc0001' contains"):
        blocked_ids(path)


def test_a_row_typed_by_hand_without_a_final_newline_counts_and_survives(tmp_path):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path, reviewer="a")
    store.decide("c1", "keep")
    with open(path, "a", encoding="utf-8") as f:
        f.write("c9,block")  # an editor that adds no final newline
    assert blocked_ids(path) == ["c9"]
    BlocklistStore(path, reviewer="b").decide("c2", "keep")  # the next writer keeps it
    assert blocked_ids(path) == ["c9"]
    assert set(read_blocklist(path)) == {"c1", "c2", "c9"}


def test_a_number_like_chip_id_that_the_dataset_lists_can_be_decided(tmp_path):
    path = tmp_path / "bl.csv"
    BlocklistStore(path, reviewer="a").decide("-0001", "block")
    assert blocked_ids(path) == ["-0001"]

"""Blocklists edited by hand: a header chipqa would misread is refused, a last row
without a line end is a row, a user's own columns are kept (labels/README.md)."""

from __future__ import annotations

import numpy as np
import pytest

from chipqa.blocklist.csvformat import COLUMNS, BlocklistError
from chipqa.blocklist.csvread import read_blocklist, read_rows
from chipqa.blocklist.store import BlocklistStore
from chipqa.cli import main
from chipqa.io.paths import side_paths
from conftest import make_bands, write_chip

ROWS = "aaaa,block\nbbbb,keep\ncccc,unsure\n"


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "ds"
    for i, cid in enumerate(["aaaa", "bbbb", "cccc", "bfua"]):
        write_chip(root, cid, make_bands(32, seed=i), np.zeros((32, 32), np.uint8))
    return root


@pytest.mark.parametrize("column", ["Decision", "decison", "DECISION", "Reviewer"])
def test_a_misspelt_header_is_refused_and_the_file_left_as_it_is(root, tmp_path, capsys, column):
    bl = side_paths(root).blocklist
    text = f"chip_id,{column}\n{ROWS}"
    bl.write_text(text)
    out = tmp_path / "clean"
    assert main(["export", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(bl) in err and f"column {column!r}" in err and "Rename it to" in err
    assert not out.exists()
    with pytest.raises(BlocklistError, match="not a chipqa column"):
        BlocklistStore(bl, dataset_root=root)  # the next write would have rewritten it
    assert bl.read_text() == text


def test_a_header_naming_a_column_twice_or_not_at_all_is_refused(tmp_path):
    for header, message in [
        ("chip_id,decision,decision", "twice"),
        ("chip_id,,decision", "no name"),
    ]:
        path = tmp_path / "bl.csv"
        path.write_text(f"{header}\naaaa,block,x\n")
        with pytest.raises(BlocklistError, match=message):
            read_blocklist(path)


def test_a_last_row_without_a_line_end_that_parses_is_a_row(tmp_path):
    path = tmp_path / "bl.csv"
    path.write_text("chip_id,decision\naaaa,keep\nbfua,block")  # typed in an editor
    assert read_blocklist(path)["bfua"].decision == "block"
    store = BlocklistStore(path)
    store.decide("aaaa", "unsure")  # the next write keeps it
    assert read_blocklist(path)["bfua"].decision == "block"
    assert "bfua,block" in path.read_text()


def test_a_bad_last_row_without_a_line_end_is_refused_like_with_one(root, tmp_path, capsys):
    bl = side_paths(root).blocklist
    text = "chip_id,decision\naaaa,keep\nbfua,Block"
    bl.write_text(text)
    with pytest.raises(BlocklistError, match="line 3: decision 'Block'"):
        read_blocklist(bl)
    assert main(["export", str(root), "--out", str(tmp_path / "clean")]) == 2
    assert "decision 'Block'" in capsys.readouterr().err
    with pytest.raises(BlocklistError, match="decision 'Block'"):
        BlocklistStore(bl, dataset_root=root)
    assert bl.read_text() == text  # not cut off


@pytest.mark.parametrize(
    "tail",
    [
        "bfua,blo",
        "bfua,",
        "bfua,block,,,,,,,,ana,2026-12-0",
        "bfua,block,r,f,0.5,0.1,1,0,m,ana,2026-12-05T10:00:00.000000Z,ru",
    ],
)
def test_a_row_a_crash_cut_short_is_still_left_out(tmp_path, tail):
    path = tmp_path / "bl.csv"
    store = BlocklistStore(path)
    store.decide("aaaa", "keep")
    with open(path, "a") as f:
        f.write(tail)
    assert list(read_rows(path)) == ["aaaa"]
    BlocklistStore(path).decide("cccc", "block")  # the next writer cuts it off
    assert tail not in path.read_text() and set(read_rows(path)) == {"aaaa", "cccc"}


def test_a_users_own_columns_are_kept_through_writes_undo_and_compaction(tmp_path, monkeypatch):
    import chipqa.blocklist.diskfile as diskfile

    path = tmp_path / "bl.csv"
    path.write_text("chip_id,decision,notes,ticket\naaaa,block,shadow not cloud,T-1\nbbbb,keep,,\n")
    store = BlocklistStore(path, reviewer="ana")
    store.decide("cccc", "block")  # the file is rewritten in chipqa's columns
    rows = read_rows(path)
    assert rows["aaaa"].extra == {"notes": "shadow not cloud", "ticket": "T-1"}
    header = path.read_text().splitlines()[0].split(",")
    assert header == [*COLUMNS, "notes", "ticket"]
    store.decide("aaaa", "keep")  # a later row of the chip carries the notes on
    assert read_rows(path)["aaaa"].extra["notes"] == "shadow not cloud"
    store.undo()
    assert read_rows(path)["aaaa"].decision == "block"
    assert read_rows(path)["aaaa"].extra["notes"] == "shadow not cloud"
    monkeypatch.setattr(diskfile, "COMPACT_AFTER", 1)
    for _ in range(4):
        store.decide("bbbb", "unsure")
    BlocklistStore(path)  # compacts: one row per chip
    assert len(path.read_text().splitlines()) == 4
    assert read_rows(path)["aaaa"].extra == {"notes": "shadow not cloud", "ticket": "T-1"}
    assert "shadow not cloud" in path.read_text()


def test_a_reader_of_a_datasets_chips_reads_them_as_a_full_read_does(tmp_path):
    """score and export read only their dataset's chips of a large blocklist; what they
    read, and the problems they find, are those of a full read."""
    path = tmp_path / "bl.csv"
    rows = [
        f"x{i:05d},{('block', 'keep')[i % 2]},,,,,,,,bot,2026-01-01T00:00:00.{i:06d}Z"
        for i in range(500)
    ]
    rows.insert(100, 'aaaa,keep,"two\nlines, quoted",,,,,,,ana,2026-02-01T00:00:00.000000Z')
    rows.insert(200, 'x00003,unsure,"a\nx00004,unsure\nb",,,,,,,ana,2026-03-01T00:00:00.000000Z')
    path.write_text(",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n")
    full = read_rows(path)
    some = read_rows(path, only={"aaaa", "x00003", "x00004"})
    assert some == {k: full[k] for k in ("aaaa", "x00003", "x00004")}
    assert some["aaaa"].reason == "two\nlines, quoted"
    assert some["x00004"].decision == "block"  # the line inside a quoted cell is no row
    bad = path.read_text().replace("x00400,block", "x00400,Block")
    path.write_text(bad)
    with pytest.raises(BlocklistError) as full_error:
        read_rows(path)
    with pytest.raises(BlocklistError) as some_error:
        read_rows(path, only={"aaaa"})
    assert str(some_error.value) == str(full_error.value)
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "x00400,Block" in x)) + 1
    assert f"line {line}: decision 'Block' for chip 'x00400'" in str(some_error.value)

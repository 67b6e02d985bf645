"""Label fixes and the cleaned export, round 2: nothing recorded that is not on disk and
readable; nothing exported from a fix file that is not this chip's label; links and the
copy never tie the clean copy to the original."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from chipqa.blocklist.csvformat import read_blocklist
from chipqa.cli import main
from chipqa.io.paths import side_paths
from conftest import make_bands, write_chip
from test_cli import _run_limited

SIZE = 64


@pytest.fixture
def root(tmp_path):
    """Three 64 px chips with labels; 'over' is labelled all cloud over a clear image."""
    root = tmp_path / "ds"
    write_chip(root, "over", make_bands(SIZE), np.ones((SIZE, SIZE), np.uint8))
    write_chip(root, "bfua", make_bands(SIZE, seed=1), np.zeros((SIZE, SIZE), np.uint8))
    write_chip(root, "clear", make_bands(SIZE, seed=2), np.zeros((SIZE, SIZE), np.uint8))
    return root


def _fixes(root) -> list[str]:
    folder = side_paths(root).fixes
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_a_fix_on_a_full_disk_fails_and_records_nothing(root):
    """GDAL only logs the failed write: the fix must be read back before it is recorded."""
    res = _run_limited(["fix", str(root), "over", "--from-model", "-q"], limit=2048)
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert "cannot write the fixed label of chip 'over'" in res.stderr
    assert "fix the chip again" in res.stderr
    bl = side_paths(root).blocklist
    assert not bl.exists() or "over" not in read_blocklist(bl)  # nothing recorded
    assert _fixes(root) == []  # and no file left under a fix's name
    # the same command with room to write succeeds and its fix reads back whole
    assert main(["fix", str(root), "over", "--from-model", "-q"]) == 0
    (name,) = _fixes(root)
    with rasterio.open(side_paths(root).fixes / name) as src:
        assert src.read(1).shape == (SIZE, SIZE)

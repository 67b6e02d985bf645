"""Messages that say what happened: label values as they are, labels that label nothing,
datasets without labels, calibration with nothing to learn from."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from chipqa.cli import main
from chipqa.io.paths import side_paths
from conftest import make_bands, write_chip

SIZE = 32


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "ds"
    cloud = np.zeros((SIZE, SIZE), bool)
    cloud[:, : SIZE // 2] = True
    write_chip(root, "half", make_bands(SIZE, cloud), cloud.astype(np.uint8))
    write_chip(root, "clear", make_bands(SIZE, seed=1), np.zeros((SIZE, SIZE), np.uint8))
    return root


def _label_file(root, tmp_path, data, dtype):
    with rasterio.open(root / "train_labels" / "half.tif") as src:
        profile = dict(src.profile)
    profile.update(dtype=dtype, nodata=None)
    path = tmp_path / f"mine_{dtype}.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.asarray(data, dtype), 1)
    return path


def test_a_label_value_just_off_1_is_shown_as_it_is(root, tmp_path, capsys):
    data = np.zeros((SIZE, SIZE), np.float32)
    data[0, 0] = np.float32(1.0000001)
    path = _label_file(root, tmp_path, data, "float32")
    assert main(["fix", str(root), "half", "--label", str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds values 1.00000012" in err and "values 1;" not in err
    assert not side_paths(root).blocklist.exists()


def test_a_label_file_that_labels_no_pixel_is_refused(root, tmp_path, capsys):
    path = _label_file(root, tmp_path, np.full((SIZE, SIZE), 255), "uint8")
    assert main(["fix", str(root), "half", "--label", str(path)]) == 2
    err = capsys.readouterr().err
    assert "labels no pixel" in err and str(path) in err and "block it instead" in err
    assert not side_paths(root).blocklist.exists() and not side_paths(root).fixes.exists()


def test_a_dataset_without_labels_prints_no_nan(root, tmp_path, capsys):
    for label in (root / "train_labels").glob("*.tif"):
        label.unlink()
    out = tmp_path / "s.csv"
    assert main(["score", str(root), "--model", "baseline", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower()
    assert "no chip has a label, so no label can be suspicious" in text


def test_calibration_says_when_every_label_is_all_cloud(root, tmp_path, capsys):
    for label in (root / "train_labels").glob("*.tif"):
        with rasterio.open(label, "r+") as dst:
            dst.write(np.ones((SIZE, SIZE), np.uint8), 1)
    out = tmp_path / "s.csv"
    assert main(["score", str(root), "--model", "baseline", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "labelled all cloud or all clear" in text and "using 0.5" in text
    assert "Give --threshold" in text

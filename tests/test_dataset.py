"""Finding and reading chips in both layouts, and every kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chipqa.data import open_dataset, read_chip
from chipqa.errors import ChipReadError, DatasetError
from conftest import make_bands, write_chip, write_tif


def _cloud(size=32):
    c = np.zeros((size, size), bool)
    c[4:20, 4:20] = True
    return c


@pytest.mark.parametrize("layout", ["oncloudn", "flat"])
def test_both_layouts_list_and_read_the_same_chip(tmp_path, layout):
    bands = make_bands(32, _cloud())
    label = _cloud().astype(np.uint8)
    write_chip(tmp_path, "adwp", bands, label, layout=layout)
    write_chip(tmp_path, "zzzz", bands, None, layout=layout)  # unlabelled: still a chip
    ds = open_dataset(tmp_path)
    assert ds.layout == layout
    assert ds.chip_ids == ["adwp", "zzzz"]
    assert ds.n_labelled == 1
    chip = ds.read("adwp")
    np.testing.assert_array_equal(chip.bands, bands)
    np.testing.assert_array_equal(chip.label, label)
    assert chip.valid.all()
    assert chip.crs == "EPSG:32736"
    assert ds.read("zzzz").label is None


def test_nodata_of_bands_and_label_merge_into_valid(tmp_path):
    bands = make_bands(32)
    bands[:, :, :4] = 0  # band nodata on the left
    label = np.zeros((32, 32), np.uint8)
    label[-3:] = 255  # no label at the bottom
    write_chip(tmp_path, "abcd", bands, label)
    chip = open_dataset(tmp_path).read("abcd")
    assert chip.valid.sum() == (32 - 4) * (32 - 3)
    assert (chip.label[~chip.valid] == 255).all()


def test_metadata_columns_reach_the_record(tmp_path):
    write_chip(tmp_path, "abcd", make_bands(32), np.zeros((32, 32), np.uint8))
    (tmp_path / "train_metadata.csv").write_text(
        "chip_id,location,datetime,cloudpath\nabcd,Lusaka,2020-04-29T08:20:47Z,az://./train_features/abcd\n"
    )
    rec = open_dataset(tmp_path)["abcd"]
    assert rec.metadata == {"location": "Lusaka", "datetime": "2020-04-29T08:20:47Z"}


def test_listing_opens_no_file(tmp_path, monkeypatch):
    for i in range(5):
        write_chip(tmp_path, f"c{i:03d}", make_bands(32), np.zeros((32, 32), np.uint8))
    import rasterio

    def no_open(*a, **k):
        raise AssertionError("listing must not open chip files")

    monkeypatch.setattr(rasterio, "open", no_open)
    assert len(open_dataset(tmp_path)) == 5


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "is empty"),
        (lambda p: (p / "notes.txt").write_text("hi") and p, "holds no chips in a layout"),
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "file.tif").write_text("x") and p / "file.tif", "is a file, not a dataset"),
    ],
)
def test_a_folder_that_is_not_a_dataset_says_what_is_expected(tmp_path, make, message):
    root = make(tmp_path)
    with pytest.raises(DatasetError, match=message) as info:
        open_dataset(root)
    assert "train_features" in str(info.value) and "label.tif" in str(info.value)


def _broken(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """Write one good chip and one chip broken in the given way; return (root, file named)."""
    size = 32
    write_chip(tmp_path, "good", make_bands(size, _cloud()), _cloud().astype(np.uint8))
    folder = write_chip(tmp_path, "bad1", make_bands(size), np.zeros((size, size), np.uint8))
    label = tmp_path / "train_labels" / "bad1.tif"
    if kind == "missing band":
        (folder / "B08.tif").unlink()
        return tmp_path, "B08.tif"
    if kind == "truncated":
        data = (folder / "B03.tif").read_bytes()
        (folder / "B03.tif").write_bytes(data[: len(data) // 3])
        return tmp_path, "B03.tif"
    if kind == "not a tiff":
        (folder / "B04.tif").write_text("<html>404 not found</html>")
        return tmp_path, "B04.tif"
    if kind == "label size":
        write_tif(label, np.zeros((16, 16), np.uint8), nodata=255)
        return tmp_path, "bad1.tif"
    if kind == "label crs":
        write_tif(label, np.zeros((size, size), np.uint8), nodata=255, crs="EPSG:32635")
        return tmp_path, "bad1.tif"
    if kind == "label values":
        write_tif(label, np.full((size, size), 2, np.uint8), nodata=255)
        return tmp_path, "bad1.tif"
    if kind == "band grid":
        write_tif(folder / "B02.tif", make_bands(24)[0], nodata=0)
        return tmp_path, "B03.tif"
    if kind == "all nodata":
        for b in ("B02", "B03", "B04", "B08"):
            write_tif(folder / f"{b}.tif", np.zeros((size, size), np.uint16), nodata=0)
        return tmp_path, "bad1"
    raise ValueError(kind)


BROKEN = [
    "missing band",
    "truncated",
    "not a tiff",
    "label size",
    "label crs",
    "label values",
    "band grid",
    "all nodata",
]


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_chip_names_the_chip_and_file_and_the_rest_still_reads(tmp_path, kind):
    root, file_name = _broken(tmp_path, kind)
    ds = open_dataset(root)
    with pytest.raises(ChipReadError) as info:
        read_chip(ds["bad1"])
    msg = str(info.value)
    assert "'bad1'" in msg and file_name in msg
    assert info.value.chip_id == "bad1"
    assert ds.read("good").label.sum() == _cloud().sum()


def test_metadata_naming_missing_and_escaping_chips(tmp_path):
    write_chip(tmp_path, "good", make_bands(32), np.zeros((32, 32), np.uint8))
    (tmp_path / "train_metadata.csv").write_text(
        "chip_id,location,datetime,cloudpath\n"
        "good,Lusaka,2020-01-01,x\nghost,Lusaka,2020-01-01,x\n../x,Lusaka,2020-01-01,x\n"
    )
    ds = open_dataset(tmp_path)
    assert set(ds.chip_ids) == {"good", "ghost", "../x"}
    with pytest.raises(ChipReadError, match="lists this chip but there is no folder"):
        ds.read("ghost")
    with pytest.raises(ChipReadError, match="would point outside") as info:
        ds.read("../x")
    assert info.value.chip_id == "../x"
    assert ds.read("good").valid.all()


def test_a_metadata_csv_without_chip_id_is_explained(tmp_path):
    write_chip(tmp_path, "good", make_bands(32), np.zeros((32, 32), np.uint8))
    (tmp_path / "train_metadata.csv").write_text("id,location\ngood,Lusaka\n")
    with pytest.raises(DatasetError, match="no 'chip_id' column"):
        open_dataset(tmp_path)


def _label_36_percent(size=50):
    label = np.zeros((size, size), np.uint8)
    label[:30, :30] = 1  # 900 of 2 500 pixels: 36 % cloud
    return label


def test_a_label_tagged_nodata_0_is_read_as_clear_and_warned_about_once(tmp_path):
    """A label that inherited nodata=0 from a band profile: 0 still means clear."""
    from chipqa.data import DataWarning
    from chipqa.predictors import SpectralBaseline
    from chipqa.scoring import score_dataset

    label = _label_36_percent()
    for cid in ("tag1", "tag2"):
        write_chip(tmp_path, cid, make_bands(50, label.astype(bool)), None)
        write_tif(tmp_path / "train_labels" / f"{cid}.tif", label, nodata=0)
    ds = open_dataset(tmp_path)
    with pytest.warns(DataWarning) as record:
        chips = [ds.read(c) for c in ds.chip_ids]
        scores = score_dataset(ds, SpectralBaseline(), workers=0).set_index("chip_id")
    assert len(record) == 1  # once for the dataset, not once per chip
    msg = str(record[0].message)
    assert "tag1.tif" in msg and "nodata=0" in msg and "edit-info --nodata 255" in msg
    for chip in chips:
        assert chip.valid.all()
        assert chip.label.mean() == pytest.approx(0.36)
    assert scores["label_cloud_fraction"].tolist() == pytest.approx([0.36, 0.36])
    assert (scores["iou"] > 0.9).all()


def _huge_header_tif(path: Path, like: Path, side: int = 20_000) -> None:
    """A tiny file whose header declares side × side pixels (tiled, compressed, sparse)."""
    import rasterio

    with rasterio.open(like) as src:
        profile = src.profile
    profile.update(
        width=side, height=side, tiled=True, blockxsize=512, blockysize=512,
        compress="deflate", SPARSE_OK=True,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile):
        pass  # no pixel written: every tile is sparse


@pytest.mark.parametrize("culprit", ["B08.tif", "B02.tif", "label", "SCL.tif"])
def test_a_header_declaring_a_huge_size_is_refused_before_any_pixel_is_read(tmp_path, culprit):
    import subprocess
    import sys

    folder = write_chip(tmp_path, "huge", make_bands(32), np.zeros((32, 32), np.uint8))
    path = tmp_path / "train_labels" / "huge.tif" if culprit == "label" else folder / culprit
    _huge_header_tif(path, folder / "B02.tif" if culprit == "SCL.tif" else path)
    assert path.stat().st_size < 400_000  # declares 800 MB of pixels
    code = f"""
import resource
from chipqa.data import open_dataset
from chipqa.errors import ChipReadError
ds = open_dataset({str(tmp_path)!r})
rec = ds["huge"]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    ds.read("huge")
except ChipReadError as exc:
    print(exc)
print("grew_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    msg, grew = res.stdout.rsplit("grew_kb", 1)
    assert path.name in msg and "20000×20000" in msg and "32×32" in msg
    assert int(grew) < 100_000  # kB: far below the 800 MB a read of the pixels takes


@pytest.mark.parametrize("layout", ["oncloudn", "flat"])
def test_folder_names_with_spaces_and_unicode_are_chips(tmp_path, layout):
    label = _cloud().astype(np.uint8)
    for cid in ("chip one", "Zürich ☁ 2020", "a..b"):
        write_chip(tmp_path, cid, make_bands(32, _cloud()), label, layout=layout)
    ds = open_dataset(tmp_path)
    assert ds.chip_ids == sorted(["chip one", "Zürich ☁ 2020", "a..b"])
    for cid in ds.chip_ids:
        assert ds[cid].problem is None
        assert ds.read(cid).label.sum() == label.sum()


@pytest.mark.parametrize("layout", ["oncloudn", "flat"])
@pytest.mark.parametrize(
    "name, message",
    [
        ("=HYPERLINK(1)", "spreadsheets read as a formula"),
        ("@SUM(A1)", "spreadsheets read as a formula"),
        ("-x", "spreadsheets read as a formula"),
        ("evil\nc0001", r"control characters \('\\n'\)"),
        ("tab\there", "control characters"),
    ],
)
def test_a_chip_folder_name_that_cannot_stay_exact_is_refused(tmp_path, layout, name, message):
    write_chip(tmp_path, "good", make_bands(32), np.zeros((32, 32), np.uint8), layout=layout)
    write_chip(tmp_path, name, make_bands(32), np.zeros((32, 32), np.uint8), layout=layout)
    ds = open_dataset(tmp_path)
    assert set(ds.chip_ids) == {"good", name}
    assert ds[name].problem is not None
    with pytest.raises(ChipReadError, match=message) as info:
        ds.read(name)
    assert info.value.chip_id == name and "rename the chip" in str(info.value)
    assert ds.read("good").valid.all()


@pytest.mark.parametrize("layout", ["oncloudn", "flat"])
def test_a_symlink_loop_is_called_a_loop_not_a_missing_file(tmp_path, layout):
    import os

    folder = write_chip(tmp_path, "loop", make_bands(32), np.zeros((32, 32), np.uint8), layout)
    (folder / "B03.tif").unlink()
    os.symlink("B03.tif", folder / "B03.tif")  # points at itself
    with pytest.raises(ChipReadError, match="symbolic link loop") as info:
        open_dataset(tmp_path).read("loop")
    assert "B03.tif" in str(info.value) and "missing" not in str(info.value)
    # A looping label is reported too, not taken for "no label".
    os.unlink(folder / "B03.tif")
    write_tif(folder / "B03.tif", make_bands(32)[1], nodata=0)
    from chipqa.io.layout import label_path

    lpath = label_path(tmp_path, layout, "loop")
    lpath.unlink()
    os.symlink(lpath.name, lpath)
    ds = open_dataset(tmp_path)
    assert ds["loop"].label_path == lpath
    with pytest.raises(ChipReadError, match="symbolic link loop"):
        ds.read("loop")


def test_a_chip_folder_that_is_a_symlink_loop_is_listed_and_called_a_loop(tmp_path):
    import os

    write_chip(tmp_path, "good", make_bands(32), np.zeros((32, 32), np.uint8))
    os.symlink("loopy", tmp_path / "train_features" / "loopy")
    ds = open_dataset(tmp_path)
    assert ds.chip_ids == ["good", "loopy"]
    with pytest.raises(ChipReadError, match="symbolic link loop"):
        ds.read("loopy")

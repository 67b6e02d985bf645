"""Writing synthetic data to disk: chip datasets with their truth, and whole scenes.

:func:`generate_dataset` writes chips in either layout of :mod:`chipqa.io.layout`, one
single-band GeoTIFF per band, label and SCL, and keeps the truth (every true label and
the table of planted errors) in a folder outside the dataset. :func:`write_scene`
writes one large four-band scene GeoTIFF block by block.
"""

from __future__ import annotations

import contextlib
import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from chipqa.constants import BAND_NODATA, BANDS, LABEL_NODATA, SCL_NODATA
from chipqa.io.atomic import atomic_open
from chipqa.io.layout import (
    FEATURES_DIR,
    FLAT,
    LABELS_DIR,
    ONCLOUDN,
    band_paths,
    chip_folder,
    label_path,
    metadata_path,
)
from chipqa.io.layout import scl_path as chip_scl_path
from chipqa.synth.chip import (
    _MIN_SIZE,
    LAND_COVER_SHARES,
    SKY_SHARES,
    _cloud_fraction,
    _make_chip,
)
from chipqa.synth.corruption import _changed_fraction, _plant
from chipqa.synth.plan import _CF_RANGE, _allocate, _chip_ids, _plan_donors, _plan_errors
from chipqa.synth.scl import make_scl


@dataclass
class SynthResult:
    """Where :func:`generate_dataset` put things.

    Attributes:
        root: the dataset folder.
        truth_dir: the folder with the truth, outside the dataset.
        truth_csv: ``truth_dir / "planted_errors.csv"``.
        chip_ids: the chip ids in the order they were generated.
    """

    root: Path
    truth_dir: Path
    truth_csv: Path
    chip_ids: list[str]


def _write_tif(path: Path, data: np.ndarray, crs: object, transform: Affine, nodata: int) -> None:
    import rasterio

    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[0],
        width=data.shape[1],
        count=1,
        dtype=data.dtype.name,
        nodata=nodata,
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(data, 1)


@functools.lru_cache(maxsize=64)
def _crs(text: str) -> object:
    from rasterio.crs import CRS

    return CRS.from_string(text)


def _empty_or_new(path: Path, what: str) -> None:
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(
                f"{what} {path} exists and is not a folder; choose an empty folder"
            )
        if any(path.iterdir()):
            raise FileExistsError(
                f"{what} {path} is not empty; "
                "choose an empty (or new) folder for the synthetic dataset"
            )


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


#: Where :func:`write_scene` puts a generated scene: UTM 33N, 10 m pixels.
SCENE_CRS = "EPSG:32633"
SCENE_ORIGIN = (300_000.0, 5_000_000.0)


def write_scene(
    path: str | Path,
    size: int | tuple[int, int],
    *,
    seed: int = 0,
    block: int = 512,
    scl_path: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a synthetic four-band scene GeoTIFF and, optionally, its 20 m SCL.

    The scene is partly cloudy synthetic chips of ``block`` pixels side by side, written
    one block at a time (memory holds one block whatever the scene's size): a tiled,
    uint16 GeoTIFF with nodata 0 and band descriptions B02, B03, B04, B08, on UTM 33N
    with 10 m pixels. ``scl_path`` gets the matching Sen2Cor-like SCL at 20 m
    (:func:`~chipqa.synth.scl.make_scl` of each block, from its own random stream).

    Args:
        path: the scene file to write.
        size: side in pixels, or ``(height, width)``.
        seed: random seed; the scene is reproducible from it.
        block: side of the chips it is made of (even, at least 16).
        scl_path: where to write the SCL, or None.
        progress: called as ``progress(done, total)`` after each block.

    Returns:
        ``path``.
    """
    import rasterio
    from rasterio.windows import Window

    h, w = (size, size) if isinstance(size, int) else size
    if block % 2 or block < _MIN_SIZE:
        raise ValueError(f"block must be even and at least {_MIN_SIZE}, got {block}")
    transform = Affine(10.0, 0.0, SCENE_ORIGIN[0], 0.0, -10.0, SCENE_ORIGIN[1])
    common = {"driver": "GTiff", "crs": _crs(SCENE_CRS), "tiled": True, "nodata": BAND_NODATA}
    blocks = [(y, x) for y in range(0, h, block) for x in range(0, w, block)]
    rng = np.random.default_rng(seed)
    with contextlib.ExitStack() as stack:
        dst = stack.enter_context(
            rasterio.open(
                path,
                "w",
                height=h,
                width=w,
                count=4,
                dtype="uint16",
                transform=transform,
                blockxsize=256,
                blockysize=256,
                **common,
            )
        )
        for i, name in enumerate(BANDS):
            dst.set_band_description(i + 1, name)
        scl_dst = None
        if scl_path is not None:
            scl_dst = stack.enter_context(
                rasterio.open(
                    scl_path,
                    "w",
                    height=(h + 1) // 2,
                    width=(w + 1) // 2,
                    count=1,
                    dtype="uint8",
                    transform=transform * Affine.scale(2.0),
                    blockxsize=256,
                    blockysize=256,
                    **common,
                )
            )
        for k, (y, x) in enumerate(blocks):
            chip = _make_chip(rng, "s", block, sky="partial")
            bh, bw = min(block, h - y), min(block, w - x)
            dst.write(chip.bands[:, :bh, :bw], window=Window(x, y, bw, bh))
            if scl_dst is not None:
                scl = make_scl(np.random.default_rng([seed, k, 20]), chip)
                sh, sw = (bh + 1) // 2, (bw + 1) // 2
                scl_dst.write(scl[:sh, :sw], 1, window=Window(x // 2, y // 2, sw, sh))
            if progress is not None:
                progress(k + 1, len(blocks))
    return Path(path)


def generate_dataset(
    out: str | Path,
    n_chips: int = 200,
    size: int = 256,
    *,
    error_rate: float = 0.15,
    seed: int = 0,
    layout: str = ONCLOUDN,
    truth_dir: str | Path | None = None,
    nodata_rate: float = 0.05,
    progress: Callable[[int, int], None] | None = None,
    with_scl: bool = True,
) -> SynthResult:
    """Write a synthetic chip dataset with planted label errors, and its truth.

    Skies and dominant land covers are split in fixed shares (overcast 40 %, clear
    10 %, partial 50 %); ``round(error_rate * n_chips)`` chips get a wrong label,
    35 % ``all_cloud``, 35 % ``no_cloud`` and 10 % each ``shift``, ``swap`` and
    ``half_missing``, each on a chip where it changes at least 5 % of the valid
    pixels. The result is byte-for-byte reproducible from ``seed``. Chips are made
    and written one at a time.

    Layouts:
        ``oncloudn``: ``out/train_features/<id>/B0?.tif``, ``out/train_labels/<id>.tif``
        and ``out/train_metadata.csv`` (chip_id, location, datetime, cloudpath).
        ``flat``: ``out/<id>/B0?.tif`` and ``out/<id>/label.tif``.

    Every file is a single-band, uncompressed, untiled GeoTIFF on the chip's UTM grid:
    bands uint16 with nodata 0, labels uint8 with nodata 255.

    The truth folder (default ``<out>-truth`` next to ``out``) gets
    ``planted_errors.csv`` (chip_id, corrupted, error_kind, sky, land_cover,
    true_cloud_fraction, label_cloud_fraction, changed_fraction, has_nodata; the
    fractions over valid pixels) and ``true_labels/<id>.tif`` for every chip.

    Args:
        out: dataset folder; created, and must be empty if it exists.
        n_chips: number of chips.
        size: chip side in pixels (at least 16).
        error_rate: share of chips with a planted wrong label, 0..1.
        seed: random seed.
        layout: ``"oncloudn"`` or ``"flat"``.
        truth_dir: where to put the truth; must be outside ``out``.
        nodata_rate: probability that a chip has a nodata swath edge (10-40 % of it).
        progress: called as ``progress(done, total)`` after each chip.
        with_scl: also write a Sen2Cor-like ``SCL.tif`` (20 m) beside each chip's bands
            (see :func:`~chipqa.synth.scl.make_scl`).

    Returns:
        Where everything went and the chip ids.

    Raises:
        FileExistsError: ``out`` or ``truth_dir`` exists and is not empty.
        ValueError: on a bad layout, rate, size or count, or a truth folder inside ``out``.
    """
    import rasterio

    if layout not in (ONCLOUDN, FLAT):
        raise ValueError(f"unknown layout {layout!r}; choose {ONCLOUDN!r} or {FLAT!r}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate}")
    if not 0.0 <= nodata_rate <= 1.0:
        raise ValueError(f"nodata_rate must be between 0 and 1, got {nodata_rate}")
    n_chips = int(n_chips)
    if n_chips < 1:
        raise ValueError(f"n_chips must be at least 1, got {n_chips}")
    size = int(size)
    if size < _MIN_SIZE:
        raise ValueError(f"size must be at least {_MIN_SIZE} pixels, got {size}")

    root = Path(out).expanduser().absolute()
    truth = (
        Path(truth_dir).expanduser().absolute()
        if truth_dir is not None
        else root.with_name(root.name + "-truth")
    )
    if truth == root or root in truth.parents:
        raise ValueError(f"the truth folder {truth} must be outside the dataset folder {root}")
    if truth in root.parents:
        raise ValueError(f"the dataset folder {root} must not be inside the truth folder {truth}")
    _empty_or_new(root, "output folder")
    _empty_or_new(truth, "truth folder")

    # the plan: ids, skies, covers, nodata, error kinds, swap donors
    plan_seq, chip_seq = np.random.SeedSequence(seed).spawn(2)
    plan = np.random.default_rng(plan_seq)
    chip_seeds = chip_seq.spawn(n_chips)
    ids = _chip_ids(plan, n_chips)
    skies = _allocate(plan, n_chips, SKY_SHARES)
    covers = _allocate(plan, n_chips, LAND_COVER_SHARES)
    nodata = [
        float(plan.uniform(0.1, 0.4)) if plan.random() < nodata_rate else 0.0
        for _ in range(n_chips)
    ]
    kinds = _plan_errors(plan, skies, int(round(error_rate * n_chips)))
    donors = _plan_donors(plan, skies, kinds)
    # true labels of donor chips are kept in memory until their last swap chip is made
    last_use = {j: i for i in sorted(donors) for j in donors[i]}
    kept: dict[int, np.ndarray] = {}

    root.mkdir(parents=True, exist_ok=True)
    (truth / "true_labels").mkdir(parents=True, exist_ok=True)
    if layout == ONCLOUDN:
        (root / FEATURES_DIR).mkdir(exist_ok=True)
        (root / LABELS_DIR).mkdir(exist_ok=True)

    meta_rows: list[dict[str, str]] = []
    truth_rows: list[dict[str, str]] = []
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        for i, cid in enumerate(ids):
            rng = np.random.default_rng(chip_seeds[i])
            kind = kinds[i]
            chip = wrong = None
            for _attempt in range(8):
                chip = _make_chip(
                    rng,
                    cid,
                    size,
                    sky=skies[i],
                    land_cover=covers[i],
                    nodata_fraction=nodata[i],
                    cloud_fraction=_CF_RANGE[kind],
                )
                if kind is None:
                    break
                wrong = _plant(
                    rng, chip, kind, [kept[j] for j in donors.get(i, []) if j in kept], size
                )
                if wrong is not None:
                    break
            assert chip is not None
            if kind is not None and wrong is None:
                kind = None  # could not make a real error of this kind (very small chips)
            written = wrong if wrong is not None else chip.label
            if i in last_use:
                kept[i] = chip.label.copy()
            for j in [j for j, last in last_use.items() if last == i]:
                kept.pop(j, None)

            crs = _crs(chip.crs)
            fdir = chip_folder(root, layout, cid)
            fdir.mkdir(parents=True, exist_ok=True)
            for b, path in enumerate(band_paths(fdir)):
                _write_tif(path, chip.bands[b], crs, chip.transform, BAND_NODATA)
            _write_tif(label_path(root, layout, cid), written, crs, chip.transform, LABEL_NODATA)
            if with_scl:  # own random stream: the chips are the same with or without SCL
                scl = make_scl(np.random.default_rng([seed, i, 20]), chip)
                scl_transform = chip.transform * Affine.scale(2.0)
                _write_tif(chip_scl_path(fdir), scl, crs, scl_transform, SCL_NODATA)
            _write_tif(
                truth / "true_labels" / f"{cid}.tif", chip.label, crs, chip.transform, LABEL_NODATA
            )

            meta_rows.append(
                {
                    "chip_id": cid,
                    "location": chip.location,
                    "datetime": chip.datetime,
                    "cloudpath": f"az://./{FEATURES_DIR}/{cid}",
                }
            )
            truth_rows.append(
                {
                    "chip_id": cid,
                    "corrupted": str(kind is not None),
                    "error_kind": kind or "",
                    "sky": chip.sky,
                    "land_cover": chip.land_cover,
                    "true_cloud_fraction": f"{chip.cloud_fraction:.6f}",
                    "label_cloud_fraction": f"{_cloud_fraction(written):.6f}",
                    "changed_fraction": f"{_changed_fraction(written, chip.label):.6f}",
                    "has_nodata": str(bool((chip.label == LABEL_NODATA).any())),
                }
            )
            del chip, wrong, written
            if progress is not None:
                progress(i + 1, n_chips)

    if layout == ONCLOUDN:
        _write_csv(metadata_path(root), meta_rows)
    truth_csv = truth / "planted_errors.csv"
    _write_csv(truth_csv, truth_rows)
    return SynthResult(root=root, truth_dir=truth, truth_csv=truth_csv, chip_ids=ids)

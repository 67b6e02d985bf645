"""Label fixes: a corrected label written beside the dataset, never over it.

A chip whose image is good but whose label is wrong need not be blocked: a model's mask
or a few strokes of paint give a correct label. :func:`record_fix` checks the new label
against the chip, writes it as a GeoTIFF with the original label's profile (CRS,
transform, size, uint8, nodata 255) into the dataset's fixes folder, atomically, and
records a ``fix`` decision naming it in the blocklist::

    <dataset>_chipqa_fixes/<chip_id>.<UTC time>-<random>.tif

Every fix gets a file of its own and no file is ever overwritten or deleted, so two
windows fixing the same chip keep both files (the later decision wins, as for any
decision), and an undo only has to write the earlier decision again. The original label
is never touched; :func:`chipqa.data.open_dataset` makes every reader use the fix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from chipqa.blocklist.csvformat import FIX_SOURCES, BlocklistError, Decision, fix_belongs_to
from chipqa.constants import LABEL_CLEAR, LABEL_CLOUD, LABEL_NODATA, LABEL_VALUES
from chipqa.data.listing import find_chip
from chipqa.data.records import ChipRecord
from chipqa.data.tiff import check_written, read_chip, read_label
from chipqa.errors import ChipqaError, ChipReadError
from chipqa.io.atomic import atomic_replace
from chipqa.io.paths import side_paths

if TYPE_CHECKING:
    from chipqa.blocklist.store import BlocklistStore
    from chipqa.predictors import Predictor


class FixError(BlocklistError):
    """A label fix cannot be made; the message names the chip and the file. Nothing was
    recorded and no file was left under a fix's name."""


def fix_file_name(chip_id: str) -> str:
    """A new, unique fix file name: ``<chip_id>.<UTC time>-<random>.tif``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{chip_id}.{stamp}-{secrets.token_hex(3)}.tif"


def label_profile(record: ChipRecord) -> tuple[dict, Path]:
    """The profile a fixed label is written with, and the file it comes from: the
    chip's own label (its CRS, transform, size and layout; uint8, nodata 255), or the
    first band for a chip without a label.

    Raises:
        FixError: that file cannot be opened.
    """
    ref = record.label_path or record.band_paths[0]
    try:
        with rasterio.open(ref) as src:
            profile = dict(src.profile)
    except (RasterioError, OSError) as exc:
        raise FixError(
            f"chip {record.chip_id!r}: cannot read the grid of {ref} ({exc}); restore the "
            "chip's files before fixing its label"
        ) from exc
    profile.update(driver="GTiff", count=1, dtype="uint8", nodata=LABEL_NODATA)
    return profile, ref


def checked_label(chip_id: str, label: np.ndarray, profile: Mapping, what: str) -> np.ndarray:
    """``label`` as uint8 when it fits the chip (its size; only 0, 1 and 255).

    Raises:
        FixError: naming the chip and ``what`` (the file, or "the fixed label").
    """
    label = np.asarray(label)
    shape = (int(profile["height"]), int(profile["width"]))
    if label.shape != shape:
        got = "×".join(str(n) for n in label.shape)
        raise FixError(
            f"chip {chip_id!r}: {what} is {got} pixels but the chip's label is "
            f"{shape[0]}×{shape[1]}; a fix must cover the chip's grid exactly. Nothing "
            "was recorded"
        )
    if label.dtype == bool:
        label = label.astype(np.uint8)
    bad = _bad_values(label)
    if bad:
        raise FixError(
            f"chip {chip_id!r}: {what} holds values {bad}; a label holds only 0 (clear), "
            "1 (cloud) and 255 (no label). Convert it first; nothing was recorded"
        )
    return label.astype(np.uint8)


def _bad_values(label: np.ndarray) -> str:
    """The values of ``label`` that are not label values, as text ("" when none); shown
    to 9 digits, so that 1.0000001 does not read as 1."""
    bad = [v for v in np.unique(label).tolist() if v not in LABEL_VALUES]
    return ", ".join(f"{v:.9g}" for v in bad[:6]) + (" …" if len(bad) > 6 else "")


def _label_file(path: Path, profile: Mapping, ref: Path) -> tuple[np.ndarray | None, str]:
    """A label GeoTIFF's one band when it is on the chip's grid, else why not."""
    try:
        with rasterio.open(path) as src:
            count, shape, crs, transform = (
                src.count,
                (src.height, src.width),
                src.crs,
                src.transform,
            )
            data = src.read(1) if count == 1 else None
    except (RasterioError, OSError) as exc:
        return None, f"cannot be read as a GeoTIFF ({exc})"
    if count != 1:
        return None, f"has {count} bands; a label has one"
    want = (int(profile["height"]), int(profile["width"]))
    if shape != want:
        return None, (
            f"is {shape[0]}×{shape[1]} pixels but {ref.name} is {want[0]}×{want[1]}; "
            "a fix must be on the chip's grid"
        )
    if crs != profile.get("crs"):
        return None, f"is in {crs} but {ref.name} is in {profile.get('crs')}; reproject it"
    ref_transform = profile.get("transform")
    if ref_transform is not None and not transform.almost_equals(ref_transform, precision=1e-6):
        return None, (
            f"has a different georeference (transform) than {ref.name}; a fix must be on "
            "the chip's grid"
        )
    return data, ""


def read_label_file(chip_id: str, path: str | Path, profile: Mapping, ref: Path) -> np.ndarray:
    """A label given as a file (``chipqa fix --label``), checked against the chip: one
    band, the chip's size, CRS and transform, values 0, 1 and 255 with at least one
    labelled pixel (read as they are stored; the file's nodata tag is not applied).

    Raises:
        FixError: naming the chip and the file, and what differs.
    """
    path = Path(path)
    data, problem = _label_file(path, profile, ref)
    if data is None:
        raise FixError(f"{path} (for chip {chip_id!r}) {problem}. Nothing was recorded")
    label = checked_label(chip_id, data, profile, str(path))
    if (label == LABEL_NODATA).all():
        raise FixError(
            f"{path} (for chip {chip_id!r}) labels no pixel (every pixel is 255, no label), "
            "so the chip could not be scored or trained on; to leave the chip out, block it "
            "instead. Nothing was recorded"
        )
    return label


def fix_problem(record: ChipRecord) -> str | None:
    """Why a fixed chip's fix file cannot stand for its label (None: it can): it must be
    this chip's fix, a file in the fixes folder (a link there must stay inside it), one
    band on the chip's grid, only 0, 1 and 255, at least one pixel labelled. Checked
    before a fix file is copied anywhere (``chipqa export``)."""
    path = record.label_path
    if not record.fixed or path is None:
        return None
    name = path.name
    if not fix_belongs_to(record.chip_id, name):
        return f"the blocklist names {name}, which is not a fix file of chip {record.chip_id!r}"
    folder = os.path.realpath(path.parent)
    real = os.path.realpath(path)
    if os.path.dirname(real) != folder:
        return f"{path} is a link to {real}, outside the fixes folder {path.parent}"
    if not os.path.isfile(real):
        return f"{path} is missing"
    profile, ref = label_profile(record.original())
    data, problem = _label_file(path, profile, ref)
    if data is None:
        return f"{path} {problem}"
    bad = _bad_values(data)
    if bad:
        return f"{path} holds values {bad}; a label holds only 0, 1 and 255"
    if (data == LABEL_NODATA).all():
        return f"{path} labels no pixel (every pixel is 255, no label)"
    return None


def model_label(probability: np.ndarray, threshold: float) -> np.ndarray:
    """A model's mask at ``threshold``: 1 where the probability is at or above it."""
    prob = np.asarray(probability, dtype=np.float32)
    return np.where(prob >= threshold, LABEL_CLOUD, LABEL_CLEAR).astype(np.uint8)


def predict_label(record: ChipRecord, predictor: Predictor, threshold: float) -> np.ndarray:
    """The chip's label as ``predictor`` sees it, at ``threshold`` (no-data pixels are
    kept by :func:`record_fix`).

    Raises:
        FixError: the chip's bands cannot be read.
    """
    try:
        chip = read_chip(record.original(), with_label=False)
    except ChipReadError as exc:
        raise FixError(f"{exc}. Nothing was recorded") from exc
    return model_label(predictor.predict_numpy(chip.bands), threshold)


def _no_data(record: ChipRecord, shape: tuple[int, int]) -> np.ndarray:
    """Pixels a fix must keep as no data: band nodata, and the original label's 255s
    (when that label can be read)."""
    try:
        missing = ~read_chip(record, with_label=False).valid
    except ChipReadError as exc:
        raise FixError(f"{exc}. Nothing was recorded") from exc
    if record.label_path is not None:
        with contextlib.suppress(ChipReadError):
            missing |= read_label(record.chip_id, record.label_path, shape) == LABEL_NODATA
    return missing


def _check_read_back(path: Path, label: np.ndarray) -> None:
    """Raise OSError unless ``path`` holds ``label`` whole: GDAL only logs a write that
    fails when it flushes (a full disk, a file size limit), so what it wrote is read back."""
    check_written(path)
    try:
        with rasterio.open(path) as src:
            back = src.read(1)
    except (RasterioError, OSError) as exc:
        raise OSError(f"{path.name} cannot be read back ({exc}); is the disk full?") from exc
    if back.shape != label.shape or not np.array_equal(back, label):
        raise OSError(f"{path.name} does not read back as written; is the disk full?")


def write_label(path: Path, label: np.ndarray, profile: Mapping) -> Path:
    """Write a label GeoTIFF atomically: a temporary file beside ``path``, read back,
    fsynced, then renamed. On any failure nothing is left under ``path`` or beside it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(label, 1)
        _check_read_back(tmp, label)
        atomic_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def record_fix(
    store: BlocklistStore,
    dataset_root: str | Path,
    chip_id: str,
    label: np.ndarray,
    *,
    source: str,
    model: str = "",
    info: Mapping[str, object] | None = None,
    reason: str = "",
) -> Decision:
    """Write a corrected label for a chip and record the ``fix`` decision in ``store``.

    Args:
        store: the blocklist the decision goes to.
        dataset_root: the dataset; the fix goes into ``<dataset>_chipqa_fixes``.
        chip_id: the chip, exactly as the dataset names it.
        label: ``(H, W)`` 0 clear, 1 cloud, 255 no label, on the chip's grid. For
            ``model`` and ``painted`` fixes the chip's no-data pixels (band nodata and
            the original label's 255s) are set to 255 whatever ``label`` holds there; a
            ``file`` fix is written as given.
        source: ``model``, ``painted`` or ``file``.
        model: the model whose mask it is (or whose scores were on screen).
        info: what was on screen (as for :meth:`BlocklistStore.decide`).
        reason: why, in words (a model fix without one says the threshold, if the
            caller put it there).

    Raises:
        FixError: the chip is unknown, the label does not fit it, or the fix cannot be
            written (a full disk); nothing is recorded and no fix file is left.
        BlocklistError: the decision cannot be written (the fix file is removed again).
    """
    if source not in FIX_SOURCES:
        raise ValueError(f"source must be one of {', '.join(FIX_SOURCES)}, not {source!r}")
    try:
        record = find_chip(dataset_root, chip_id)
    except ChipqaError as exc:
        raise FixError(f"cannot fix chip {chip_id!r}: {exc}. Nothing was recorded") from exc
    profile, _ = label_profile(record)
    label = checked_label(chip_id, label, profile, "the fixed label")
    if source != "file":
        label = np.where(_no_data(record, label.shape), LABEL_NODATA, label).astype(np.uint8)
    folder = side_paths(dataset_root).fixes
    path = folder / fix_file_name(chip_id)
    try:
        folder.mkdir(exist_ok=True)
        write_label(path, label, profile)
    except (OSError, RasterioError, CPLE_BaseError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise FixError(
            f"cannot write the fixed label of chip {chip_id!r} to {path} ({why}); free some "
            "space (or raise the file size limit) or check the folder's permissions, then "
            "fix the chip again. Nothing was recorded and no earlier fix was touched"
        ) from exc
    try:
        return store.decide_fix(
            chip_id, path.name, source=source, model=model, info=info, reason=reason
        )
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # never named by any decision
        raise

"""Small copies of the model's probability maps, kept from scoring for the gallery.

A network model costs about a second per 512×512 chip on a CPU, and a gallery page shows
24 chips: predicting them again for the page's thumbnails would keep the reviewer
waiting. Scoring has just made every chip's map, so it keeps a ``PREVIEW``-pixel copy of
each (area-averaged, 8 bits), one ``.npy`` file per chip under
``<dataset>_chipqa_previews/<model>/``. The gallery draws the model's outline from it;
the full-size side-by-side view still predicts the chip itself.

A preview is a cache: written atomically without fsync, read back only when it is
whole, of the model asked for (the folder is named after the model's identity, a
checkpoint's content hash included, and its DN offset: see
:meth:`chipqa.scoring.settings.ScoringSettings.preview_key`) and newer than the chip's
band files; anything else is ignored and the chip is predicted as before.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from chipqa.io.paths import side_paths

PREVIEW = 128
"""Side of a preview in pixels (a chip smaller than that keeps its own size)."""


def preview_maps(prob: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    """``(B, H, W)`` probabilities (0 where not valid) → ``(B, h, w)`` uint8 previews,
    area-averaged on the probabilities' device (only the small maps leave it)."""
    p = prob.float() * valid.to(prob.device).float()
    h, w = p.shape[-2:]
    if max(h, w) > PREVIEW:
        size = (max(1, round(h * PREVIEW / max(h, w))), max(1, round(w * PREVIEW / max(h, w))))
        p = F.adaptive_avg_pool2d(p[:, None], size)[:, 0]
    return (p.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def model_folder(model: str, dn_offset: int = 0, key: str | None = None) -> str:
    """A folder name for one model's previews: readable, and unique through a hash of
    ``key`` (default: the model's name and DN offset)."""
    key = key or f"{model}|dn{int(dn_offset)}"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name)[:48].strip("._") or "model"
    return f"{readable}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


class PreviewStore:
    """The previews of one model for one dataset.

    Args:
        folder: the model's folder (see :meth:`for_dataset`).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._made = False

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, model: str, dn_offset: int = 0) -> PreviewStore:
        return cls(side_paths(dataset_root).previews / model_folder(model, dn_offset))

    @classmethod
    def for_predictor(cls, dataset_root: str | Path, predictor) -> PreviewStore:
        """The previews of an in-memory predictor, by its name and DN offset (the
        commands and the plugin use :meth:`for_settings`, which knows a checkpoint's
        content)."""
        return cls.for_dataset(
            dataset_root, predictor.name, int(getattr(predictor, "dn_offset", 0) or 0)
        )

    @classmethod
    def for_settings(cls, dataset_root: str | Path, settings) -> PreviewStore:
        """The previews of the model of ``settings`` (a
        :class:`~chipqa.scoring.settings.ScoringSettings`): two checkpoints with one
        file name get two folders."""
        folder = model_folder(settings.model, key=settings.preview_key())
        return cls(side_paths(dataset_root).previews / folder)

    def path(self, chip_id: str) -> Path:
        return self.folder / f"{chip_id}.npy"

    def put(self, chip_id: str, preview: np.ndarray) -> None:
        """Keep one chip's preview (a failure to write is not an error: the gallery then
        predicts the chip)."""
        try:
            if not self._made:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._made = True
            final = self.path(chip_id)
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(preview, dtype=np.uint8))
            os.replace(tmp, final)
        except OSError:
            pass

    def put_many(self, chip_ids: list[str], previews: np.ndarray) -> None:
        for cid, p in zip(chip_ids, previews, strict=True):
            self.put(cid, p)

    def get(self, chip_id: str, record=None) -> np.ndarray | None:
        """The chip's preview as float32 probabilities, or None (none kept, unreadable,
        or, given the chip's ``record``, older than one of its band files)."""
        path = self.path(chip_id)
        try:
            if record is not None and _older_than_bands(path, record):
                return None
            p = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if p.dtype != np.uint8 or p.ndim != 2:
            return None
        return p.astype(np.float32) / 255.0


def _older_than_bands(path: Path, record) -> bool:
    """Whether a band file of ``record`` changed after the preview at ``path`` was made
    (ctime too: a copy that keeps the old mtime still counts as a change)."""
    made = os.stat(path).st_mtime_ns
    for band in record.band_paths:
        st = os.stat(band)
        if max(st.st_mtime_ns, st.st_ctime_ns) > made:
            return True
    return False

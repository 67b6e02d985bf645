"""How a dataset was (or is to be) scored: one :class:`ScoringSettings` for every door.

``chipqa score``, ``score --folds``, ``chipqa fix --from-model``, ``chipqa mask``, the
napari plugin's scoring, painting a chip and the Retrain re-score all build their
predictor and threshold from one of these, so the same data gets the same answer
whichever way it is opened.

The settings are written beside the scores table (``<scores>.settings.json``, written
atomically after the table) together with a fingerprint of the data they were computed
on: the chip set, the label fixes in force and the chips' files. Saved scores stand for
scoring again only when all of these match (:func:`saved_settings_match`). Previews of
the probability maps are kept per model identity and DN offset
(:meth:`ScoringSettings.preview_key`).

Only the standard library is imported at module level (the CLI imports this early).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from chipqa.constants import DEFAULT_THRESHOLD

AUTO = "auto"
FIXED = "fixed"


def file_hash(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered predictor (see :mod:`chipqa.predictors.registry`)."""
    from chipqa.predictors.registry import available

    return str(name) in available()


@dataclass(frozen=True)
class ScoringSettings:
    """The model, threshold, DN offset and preview policy of a scoring run.

    Attributes:
        model: a registered predictor name (``"pretrained"``, ``"baseline"``, …) or the
            absolute path of a chipqa checkpoint.
        model_hash: the SHA-256 of the checkpoint's bytes ("" for a registered name):
            two checkpoints with one file name are two models.
        threshold_policy: ``"auto"`` (calibrated to the dataset's labels) or ``"fixed"``.
        threshold: the threshold in force: the fixed value, or the calibrated one once
            scored (None before an ``auto`` run has calibrated).
        dn_offset: DN offset taken off the chips (None: the model's own: 0, or what a
            checkpoint was trained with).
        previews: keep small probability maps for the gallery.
    """

    model: str
    model_hash: str = ""
    threshold_policy: str = AUTO
    threshold: float | None = None
    dn_offset: int | None = None
    previews: bool = True

    @classmethod
    def create(
        cls,
        model: str | Path,
        threshold: float | str | None = AUTO,
        dn_offset: int | None = None,
        previews: bool = True,
    ) -> ScoringSettings:
        """Settings for ``model`` (a registered name or a checkpoint path, hashed here).

        ``threshold``: ``"auto"`` (or None) to calibrate, else a probability.

        Raises:
            ChipqaError: ``model`` is neither a registered name nor a file (the message
                lists the registered names and suggests the closest).
        """
        name = str(model)
        digest = ""
        if not is_registered(name):
            from chipqa.predictors.registry import check_model_spec

            check_model_spec(name)
            path = Path(name).expanduser()
            name, digest = str(path.resolve()), file_hash(path)
        if threshold is None or threshold == AUTO:
            policy, value = AUTO, None
        else:
            policy, value = FIXED, float(threshold)
        return cls(name, digest, policy, value, None if dn_offset is None else int(dn_offset),
                   bool(previews))  # fmt: skip

    # -- what a run needs ---------------------------------------------------------
    @property
    def registered(self) -> bool:
        return not self.model_hash

    @property
    def model_label(self) -> str:
        """The model in words: its name, or the checkpoint's file name and hash."""
        if self.registered:
            return self.model
        return f"{Path(self.model).name} (sha256 {self.model_hash[:12]})"

    @property
    def score_threshold(self) -> float | str:
        """What :func:`chipqa.scoring.iter_scores` takes: ``"auto"`` or the fixed value."""
        if self.threshold_policy == AUTO:
            return AUTO
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def threshold_in_force(self) -> float:
        """The resolved threshold (the default one before an ``auto`` run calibrated)."""
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    def describe(self) -> str:
        """One line: ``model pretrained at threshold 0.35 (auto)``."""
        how = "auto" if self.threshold_policy == AUTO else "fixed"
        dn = f", DN offset {self.dn_offset}" if self.dn_offset else ""
        value = "not yet calibrated" if self.threshold is None else f"{self.threshold:g}"
        return f"model {self.model_label} at threshold {value} ({how}){dn}"

    def load_predictor(self, device: str = "auto", *, compile: bool = False):
        """The predictor on ``device``, with the DN offset taken off; returns it with
        these settings' DN offset resolved (``(predictor, settings)``)."""
        from chipqa.predictors import load_predictor

        predictor = load_predictor(self.model, device=device, compile=compile)
        if self.dn_offset is not None:
            predictor.with_dn_offset(self.dn_offset)
        return predictor, self.resolved(dn_offset=int(getattr(predictor, "dn_offset", 0) or 0))

    def resolved(self, **changes) -> ScoringSettings:
        """A copy with ``threshold`` / ``dn_offset`` … set (after a run)."""
        return replace(self, **changes)

    def preview_key(self) -> str:
        """What names this model's preview folder: its identity and DN offset (the
        threshold does not change a probability map)."""
        who = self.model if self.registered else f"sha256:{self.model_hash}"
        return f"{who}|dn{int(self.dn_offset or 0)}"

    def same_scoring(self, other: ScoringSettings) -> bool:
        """Whether scores made with ``other`` are what these settings would make:
        the same model (by name, or by checkpoint content), DN offset and threshold
        policy (and value, when fixed)."""
        same_model = (
            self.model == other.model
            if self.registered and other.registered
            else self.model_hash == other.model_hash
        )
        if not same_model or int(self.dn_offset or 0) != int(other.dn_offset or 0):
            return False
        if self.threshold_policy != other.threshold_policy:
            return False
        return self.threshold_policy == AUTO or self.threshold == other.threshold

    # -- on disk ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ScoringSettings:
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**fields)


def settings_path(scores_csv: str | Path) -> Path:
    """Where the settings of a scores table go: ``X.csv`` → ``X.settings.json``."""
    p = Path(scores_csv)
    return p.with_name(p.stem + ".settings.json")


def data_fingerprint(dataset) -> dict[str, str]:
    """What the scores depend on besides the settings, as three short hashes:
    ``chips`` (the chip ids), ``fixes`` (the label fixes in force: which chip, which
    fix file, its size and time) and ``files`` (size and modification time of every
    band, label and SCL file)."""
    chips, fixes, files = hashlib.sha1(), hashlib.sha1(), hashlib.sha1()
    for rec in sorted(dataset, key=lambda r: r.chip_id):
        chips.update(rec.chip_id.encode() + b"\0")
        if getattr(rec, "fixed", False):
            fixes.update(f"{rec.chip_id}|{rec.label_path.name}|{_stat(rec.label_path)}".encode())
        base = rec.original() if hasattr(rec, "original") else rec
        paths = [*base.band_paths, *([base.label_path] if base.label_path else [])]
        for p in paths:
            files.update(f"{p.name}|{_stat(p)}\0".encode())
    return {"chips": chips.hexdigest(), "fixes": fixes.hexdigest(), "files": files.hexdigest()}


def _stat(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def write_settings(scores_csv: str | Path, settings: ScoringSettings, dataset=None) -> Path:
    """Write ``settings`` (and the data's fingerprint, when ``dataset`` is given) beside
    the scores table, atomically."""
    from chipqa.io.atomic import atomic_write_text

    doc = {"settings": settings.to_dict()}
    if dataset is not None:
        doc["data"] = data_fingerprint(dataset)
    return atomic_write_text(settings_path(scores_csv), json.dumps(doc, indent=2) + "\n")


def read_settings(scores_csv: str | Path) -> tuple[ScoringSettings, dict] | None:
    """The settings written beside a scores table and the data fingerprint, or None when
    there are none or they cannot be read."""
    try:
        doc = json.loads(settings_path(scores_csv).read_text(encoding="utf-8"))
        return ScoringSettings.from_dict(doc["settings"]), dict(doc.get("data") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def saved_settings_match(scores_csv: str | Path, wanted: ScoringSettings, dataset):
    """The saved settings (resolved: the calibrated threshold) when the scores beside
    ``scores_csv`` stand for scoring ``dataset`` with ``wanted`` now, else None: the
    settings, the chip set, the label fixes in force and the chips' files must match."""
    saved = read_settings(scores_csv)
    if saved is None:
        return None
    settings, data = saved
    if not wanted.same_scoring(settings) or data != data_fingerprint(dataset):
        return None
    return settings


def settings_of_scores(scores_csv: str | Path) -> ScoringSettings | None:
    """The settings a saved scores table was made with: from its settings file, or, for
    a table written before there were settings files, from its ``model`` and
    ``threshold`` columns when the model is a registered name. None when neither says."""
    saved = read_settings(scores_csv)
    if saved is not None:
        return saved[0]
    try:
        from chipqa.scoring.table import read_scores, scored_threshold

        scores = read_scores(scores_csv)
    except Exception:  # noqa: BLE001 (no table, or not one: nothing to say)
        return None
    models = set(scores.get("model", []))
    if len(models) != 1 or not is_registered(next(iter(models))):
        return None
    return ScoringSettings.create(next(iter(models)), scored_threshold(scores))


def settings_for_fix(
    scores_csv: str | Path, model: str | None, threshold: float | None, dn_offset=None
) -> tuple[ScoringSettings, str]:
    """The settings ``chipqa fix --from-model`` uses, and where they came from in words.

    Each of ``model``, ``threshold``, ``dn_offset`` given wins; what is not given is the
    scores' (when ``model`` is not given or is the scores' own model), else the
    pretrained model at :data:`DEFAULT_THRESHOLD`."""
    scored = settings_of_scores(scores_csv)
    if scored is not None and model is not None:
        wanted = ScoringSettings.create(model)
        if not wanted.same_scoring(replace(scored, threshold_policy=AUTO)):
            scored = None  # another model: the scores' threshold is not its own
    if scored is None:
        base = ScoringSettings.create(model or "pretrained", DEFAULT_THRESHOLD, dn_offset)
        where = "no scores of this model to follow; default threshold"
    else:
        base = replace(scored, threshold_policy=FIXED, threshold=scored.threshold_in_force)
        where = f"as scored in {Path(scores_csv).name}"
    if threshold is not None:
        base = replace(base, threshold_policy=FIXED, threshold=float(threshold))
        scored_in = f"model as scored in {Path(scores_csv).name}"
        where = "threshold given" if scored is None else scored_in
    if dn_offset is not None:
        base = replace(base, dn_offset=int(dn_offset))
    return base, where

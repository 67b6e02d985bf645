"""The blocklist: a reviewer's decisions on chips, on disk after every decision.

The file format is documented in ``labels/README.md``: a CSV with ``chip_id`` first, then
the decision (``keep``, ``block``, ``unsure``), the reason, the flags and numbers that
were on screen, the model that produced them, who decided and when.

Every change is written atomically (temporary file in the same folder, flush, fsync,
rename), so the file on disk is always whole. Several processes may hold the same
blocklist open (two napari windows, a script): each write takes an exclusive lock on a
``.lock`` file beside the CSV, re-reads the file if another process changed it since
this one last saw it, merges the other's decisions in (per chip, the later decision
wins) and only then writes. Nothing another process decided is silently dropped;
:attr:`BlocklistStore.merged_from_elsewhere` counts what was merged in.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import io
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from chipqa.errors import ChipqaError
from chipqa.io.atomic import atomic_write_text
from chipqa.io.paths import side_paths

try:  # POSIX advisory locks; on Windows the lock is skipped (single writer assumed)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

DECISIONS = ("keep", "block", "unsure")
UNDONE = "undone"
"""Decision value of a row that records an undo; readers treat the chip as undecided."""
REASONS = ("all_cloud_wrong", "no_cloud_wrong", "shifted", "wrong_chip", "clouds_missing", "other")
"""Reasons offered for a block; free text is accepted too."""

COLUMNS = (
    "chip_id",
    "decision",
    "reason",
    "flags",
    "suspicion",
    "iou",
    "label_cloud_fraction",
    "pred_cloud_fraction",
    "model",
    "reviewer",
    "decided_at",
)
NUMBER_COLUMNS = ("suspicion", "iou", "label_cloud_fraction", "pred_cloud_fraction")


class BlocklistError(ChipqaError):
    """A blocklist file cannot be read or written."""


@dataclass
class Decision:
    """One row of the blocklist."""

    chip_id: str
    decision: str
    reason: str = ""
    flags: str = ""
    suspicion: str = ""
    iou: str = ""
    label_cloud_fraction: str = ""
    pred_cloud_fraction: str = ""
    model: str = ""
    reviewer: str = ""
    decided_at: str = ""

    def as_row(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def default_reviewer() -> str:
    """The operating-system user (``CHIPQA_REVIEWER`` overrides it)."""
    env = os.environ.get("CHIPQA_REVIEWER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "unknown"


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_path(dataset_root: str | Path) -> Path:
    """Where a dataset's blocklist goes by default: beside the dataset folder."""
    return side_paths(dataset_root).blocklist


def _fmt_number(value: object) -> str:
    if value is None or value == "":
        return ""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "" if f != f else f"{f:.6g}"


def parse_blocklist(text: str, path: Path) -> dict[str, Decision]:
    """Parse blocklist CSV text; raises :class:`BlocklistError` naming the line at fault."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not header:
        return {}
    if header[0].lstrip("\ufeff") != "chip_id":
        raise BlocklistError(
            f"{path} is not a chipqa blocklist: its first column is {header[0]!r}, not 'chip_id'. "
            "Fix the header or choose another blocklist file."
        )
    has_decision = "decision" in header
    out: dict[str, Decision] = {}
    for lineno, row in enumerate(reader, start=2):
        chip_id = (row.get("chip_id") or row.get("\ufeffchip_id") or "").strip()
        if not chip_id:
            raise BlocklistError(f"{path}, line {lineno}: empty chip_id. Fix or delete that line.")
        decision = (row.get("decision") or "").strip() if has_decision else "block"
        if decision not in (*DECISIONS, UNDONE):
            raise BlocklistError(
                f"{path}, line {lineno}: decision {decision!r} for chip {chip_id!r} is not one of "
                f"{', '.join(DECISIONS)}. Fix or delete that line."
            )
        values = {
            c: (row.get(c) or "").strip() for c in COLUMNS if c not in ("chip_id", "decision")
        }
        out[chip_id] = Decision(chip_id=chip_id, decision=decision, **values)
    return out


def read_blocklist(path: str | Path) -> dict[str, Decision]:
    """Read a blocklist CSV (a missing file is an empty blocklist; undone rows are left out)."""
    return {k: d for k, d in _read_rows(path).items() if d.decision != UNDONE}


def _read_rows(path: str | Path) -> dict[str, Decision]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise BlocklistError(f"blocklist {path} cannot be read ({exc})") from exc
    try:
        return parse_blocklist(text, path)
    except csv.Error as exc:
        raise BlocklistError(
            f"{path} is not valid CSV ({exc}). Fix it or choose another file."
        ) from exc


def blocked_ids(path: str | Path) -> list[str]:
    """Chip ids whose decision is ``block`` (what training leaves out)."""
    return [d.chip_id for d in read_blocklist(path).values() if d.decision == "block"]


def _render(decisions: Mapping[str, Decision], only: str | None = None) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for d in decisions.values():
        if only is None or d.decision == only:
            w.writerow(d.as_row())
    return buf.getvalue()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)  # every atomic write is a new inode


@dataclass
class _Undo:
    chip_id: str
    before: Decision | None


@dataclass
class BlocklistStore:
    """Decisions of one review session, kept in step with a CSV on disk.

    Args:
        path: the CSV. Its folder must exist and be writable; the file is created on
            the first decision.
        reviewer: written into each decision (default: :func:`default_reviewer`).

    Raises:
        BlocklistError: the existing file is not a blocklist (the message names the
            line), or the folder cannot be written.
    """

    path: Path
    reviewer: str = field(default_factory=default_reviewer)
    _rows: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    _mine: dict[str, Decision] = field(default_factory=dict, init=False, repr=False)
    merged_from_elsewhere: int = field(default=0, init=False)
    _undo: list[_Undo] = field(default_factory=list, init=False, repr=False)
    _seen: tuple[int, int, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        if not self.path.parent.is_dir():
            raise BlocklistError(
                f"cannot keep a blocklist at {self.path}: folder {self.path.parent} does not exist"
            )
        if not os.access(self.path.parent, os.W_OK):
            raise BlocklistError(
                f"cannot write a blocklist in {self.path.parent} (no write permission). "
                "Choose another blocklist path; no decision has been made yet."
            )
        self._rows = _read_rows(self.path)
        self._seen = _stamp(self.path)

    @property
    def decisions(self) -> dict[str, Decision]:
        """Current decisions by chip id (undone ones left out)."""
        return {k: d for k, d in self._rows.items() if d.decision != UNDONE}

    # -- reading -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.decisions)

    def __contains__(self, chip_id: object) -> bool:
        return self.get(chip_id) is not None  # type: ignore[arg-type]

    def get(self, chip_id: str) -> Decision | None:
        d = self._rows.get(chip_id)
        return None if d is None or d.decision == UNDONE else d

    def counts(self) -> dict[str, int]:
        c = dict.fromkeys(DECISIONS, 0)
        for d in self.decisions.values():
            c[d.decision] += 1
        return c

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    # -- writing -------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BlocklistError(
                f"cannot write the blocklist {self.path} ({exc.strerror}). Choose another "
                "blocklist path; decisions already on disk are kept."
            ) from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _merge_from_disk(self) -> None:
        """Take in rows another process wrote since we last looked (per chip, the later
        row wins; undos travel as ``undone`` rows, so they win over older decisions too)."""
        if _stamp(self.path) == self._seen:
            return
        for cid, d in _read_rows(self.path).items():
            mine = self._rows.get(cid)
            if mine is None or (d.decided_at > mine.decided_at and d != mine):
                self._rows[cid] = d
                self.merged_from_elsewhere += 1

    def _commit(
        self,
        chip_id: str,
        build: Callable[[str], Decision],
        check: Callable[[], None] | None = None,
    ) -> tuple[Decision, Decision | None]:
        """Under one lock: take in other processes' rows, check ``check``'s precondition
        on what is now known, stamp the new row with the time (``build(decided_at)``) and
        write the file. Stamping inside the lock keeps ``decided_at`` in the order the
        rows reach the file, which is what merging by time relies on.

        Returns the new row and the chip's decision it replaced (None: undecided), as
        the file held it at that moment: what an undo restores."""
        with self._locked():
            self._merge_from_disk()
            self._seen = _stamp(self.path)
            if check is not None:
                check()
            before = self.get(chip_id)
            new = build(now_utc())
            rows = dict(self._rows)
            rows[chip_id] = new
            try:
                atomic_write_text(self.path, _render(rows))
            except OSError as exc:
                raise BlocklistError(
                    f"cannot write the blocklist {self.path} ({exc.strerror or exc}). "
                    "Choose another blocklist path; the decisions on disk are unchanged."
                ) from exc
            self._rows = rows  # only once the file holds it
            self._mine[chip_id] = new
            self._seen = _stamp(self.path)
        return new, before

    def decide(
        self,
        chip_id: str,
        decision: str,
        reason: str = "",
        *,
        info: Mapping[str, object] | None = None,
    ) -> Decision:
        """Record a decision and write the file before returning.

        Args:
            chip_id: the chip.
            decision: ``keep``, ``block`` or ``unsure``.
            reason: why (see :data:`REASONS`; free text allowed).
            info: what was on screen: ``flags``, ``suspicion``, ``iou``,
                ``label_cloud_fraction``, ``pred_cloud_fraction``, ``model``.
        """
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        info = dict(info or {})
        fields_ = {
            "chip_id": chip_id,
            "decision": decision,
            "reason": str(reason or "").replace("\n", " ").strip(),
            "flags": str(info.get("flags", "") or ""),
            "model": str(info.get("model", "") or ""),
            "reviewer": self.reviewer,
            **{c: _fmt_number(info.get(c)) for c in NUMBER_COLUMNS},
        }
        d, before = self._commit(chip_id, lambda at: Decision(**fields_, decided_at=at))
        self._undo.append(_Undo(chip_id, before))
        return d

    def undo(self) -> str | None:
        """Take back the last decision of this session; returns its chip id (or None).

        The earlier state is written again as a new row (the previous decision, or an
        ``undone`` row), so other windows on the same file take the undo in too.

        Raises:
            BlocklistError: the file cannot be written, or another window decided on the
                chip after this one did (its decision is kept; nothing is undone).
        """
        if not self._undo:
            return None
        u = self._undo[-1]

        def no_newer_decision() -> None:
            current = self._rows.get(u.chip_id)
            if current != self._mine.get(u.chip_id):
                self._undo.pop()
                who = current.reviewer if current is not None else "someone"
                raise BlocklistError(
                    f"chip {u.chip_id!r} was decided again by {who} in another window after "
                    "your decision; their decision is kept and nothing was undone"
                )

        def restored(at: str) -> Decision:
            if u.before is None:
                return Decision(u.chip_id, UNDONE, reviewer=self.reviewer, decided_at=at)
            return Decision(**{**u.before.as_row(), "decided_at": at})

        self._commit(u.chip_id, restored, check=no_newer_decision)
        self._undo.pop()
        return u.chip_id

    def export(self, path: str | Path, *, blocked_only: bool = True) -> Path:
        """Write the final blocklist for training (blocked chips only by default)."""
        path = Path(path)
        with self._locked():
            self._merge_from_disk()
            self._seen = _stamp(self.path)
        try:
            atomic_write_text(path, _render(self.decisions, "block" if blocked_only else None))
        except OSError as exc:
            raise BlocklistError(f"cannot write {path} ({exc.strerror or exc})") from exc
        return path

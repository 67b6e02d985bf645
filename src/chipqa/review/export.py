"""Export a cleaned copy of a dataset: blocked chips left out, fixed labels in place.

The copy has the dataset's own layout, so any pipeline that reads the original reads
it too (torchgeo's ``CloudCoverDetection`` and the On Cloud N notebooks for that
layout)::

    On Cloud N: CLEAN/train_features/<chip_id>/…, CLEAN/train_labels/<chip_id>.tif,
                CLEAN/train_metadata.csv (the rows of the chips exported, columns as they were)
    flat:       CLEAN/<chip_id>/… with label.tif

Every file of an exported chip's folder is taken over (bands, ``SCL.tif``, …), a link
by what it points to (a relative link would dangle in the copy). How (``files``):

- ``reflink`` (the default): a copy-on-write clone where the file system has them
  (Btrfs, XFS, APFS-like; no space used until a file changes) and a plain copy
  elsewhere. Either way, editing the copy never changes the original.
- ``copy``: always a plain copy.
- ``hardlink``: a hard link where the file system allows (no space used), else a copy.
  The copy and the original are then the same files: writing into ``clean/<id>/…``
  changes the original dataset too. Only when asked for.

A fixed label is copied from its fix file under the label's usual name, after checking
that the fix file is this chip's, a file inside the fixes folder (a link leaving it is
refused) and a readable label on the chip's grid; one that is not stops the export,
naming the chip and the file. Other files at the dataset's top level are not taken over.

The copy is built in a hidden temporary folder beside ``out`` and renamed to ``out``
only when it is complete: an error (a full disk) or an interrupt leaves nothing under
``out``, and the original dataset is only read. A temporary folder left by an export
that was killed is removed by the next export beside it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chipqa.blocklist.csvread import read_chunk
from chipqa.data import ChipRecord, open_dataset
from chipqa.data.dataset import fix_files
from chipqa.errors import ChipqaError
from chipqa.io import layout as L
from chipqa.io.paths import side_paths
from chipqa.review.fixes import fix_problem

FILE_MODES = ("reflink", "copy", "hardlink")
"""How unchanged files go into the export (see the module docstring)."""
_FICLONE = 0x40049409
"""Linux ioctl: make a file a copy-on-write clone of another (a reflink)."""
_NO_CLONE = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY)
"""Why a reflink fails where a copy works (no reflinks on this file system)."""
_TEMP = re.compile(r"\.(?P<name>.+)\.chipqa-export-(?:(?P<pid>\d+)-)?[0-9a-f]{8}")
_OLD_TEMP_SECONDS = 600.0
"""A temporary export folder without a process id (chipqa before 0.x named them so),
untouched this long, is left over from an export that was killed."""

_NO_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES)
"""Why a hard link may fail where a copy works (another file system, no links there)."""


@dataclass
class ExportSummary:
    """What :func:`export_dataset` wrote and what it left out."""

    root: Path
    out: Path
    layout: str
    blocklist: Path | None
    exported: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    """Left out: blocked in the blocklist."""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Left out: the listing found them unreadable (chip id → why)."""
    fixed: list[str] = field(default_factory=list)
    """Exported with their fixed label in place of the original."""
    unknown_blocked: int = 0
    """Blocked chip ids the dataset does not have."""
    linked: int = 0
    reflinked: int = 0
    copied: int = 0
    metadata_rows: tuple[int, int] | None = None
    """(rows written, rows in the original metadata CSV), or None without one."""

    def text(self) -> str:
        """A few lines for a terminal."""

        def ids(chips: list[str]) -> str:
            return ", ".join(chips[:8]) + (", …" if len(chips) > 8 else "")

        total = len(self.exported) + len(self.blocked) + len(self.unreadable)
        lines = [
            f"exported {len(self.exported)} of {total} chips of {self.root} "
            f"({self.layout} layout) to {self.out}",
            f"  decisions from: {self.blocklist or 'no blocklist (nothing blocked or fixed)'}",
        ]
        if self.blocked:
            lines.append(f"  left out, blocked: {len(self.blocked)} ({ids(self.blocked)})")
        if self.unknown_blocked:
            lines.append(f"  blocked ids not in the dataset (ignored): {self.unknown_blocked}")
        for cid, why in list(self.unreadable.items())[:8]:
            lines.append(f"  left out, cannot be read: {cid}: {why}")
        if len(self.unreadable) > 8:
            lines.append(f"  … and {len(self.unreadable) - 8} more that cannot be read")
        if self.fixed:
            lines.append(f"  labels replaced by fixes: {len(self.fixed)} ({ids(self.fixed)})")
        how = [f"{self.reflinked} reflinked (copy-on-write)", f"{self.copied} copied"]
        if self.linked:
            how.append(f"{self.linked} hard-linked (shared with the original: do not edit them)")
        lines.append(f"  files: {', '.join(how)}")
        if self.metadata_rows is not None:
            kept, of = self.metadata_rows
            lines.append(f"  {L.METADATA_NAME}: {kept} of {of} rows kept")
        return "\n".join(lines)


def _check_out(root: Path, out: Path) -> None:
    if out.exists() or out.is_symlink():
        if not out.is_dir() or any(out.iterdir()):
            raise ChipqaError(
                f"{out} exists and is not an empty folder; export into a new (or empty) "
                "folder, nothing was written"
            )
    real_root, real_out = root.resolve(), out.resolve()
    if real_out == real_root or real_root in real_out.parents:
        raise ChipqaError(
            f"{out} is inside the dataset {root}; export beside it, nothing was written"
        )


def _reflink(src: Path, dst: Path) -> bool:
    """Make ``dst`` a copy-on-write clone of ``src``; False where the file system cannot."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        return False
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
            ok = False
        else:
            ok = True
    if not ok:
        os.unlink(dst)
    return ok


class _Writer:
    """Puts files into the export (see :data:`FILE_MODES`), counted."""

    def __init__(self, files: str, summary: ExportSummary):
        if files not in FILE_MODES:
            raise ValueError(f"files must be one of {', '.join(FILE_MODES)}, not {files!r}")
        self.hardlink = files == "hardlink"
        self.reflink = files == "reflink"
        self.summary = summary

    def place(self, src: Path, dst: Path) -> None:
        src = Path(os.path.realpath(src))  # a link's target: a relative link would dangle
        if self.hardlink:
            try:
                os.link(src, dst)
                self.summary.linked += 1
                return
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                self.hardlink = False  # this file system links nothing: stop trying
        self.copy_file(src, dst)

    def copy_file(self, src: Path, dst: Path) -> None:
        """A file of the export's own: a reflink where possible, else a copy."""
        if self.reflink:
            if _reflink(src, dst):
                shutil.copystat(src, dst)
                self.summary.reflinked += 1
                return
            self.reflink = False  # no reflinks here: stop trying
        shutil.copyfile(src, dst)
        shutil.copystat(src, dst)
        self.summary.copied += 1


def _remove_leftovers(folder: Path) -> None:
    """Remove the temporary folders of exports that were killed (``kill -9``, a power
    cut): their process is gone, or (without a process id in the name) they have not
    changed for :data:`_OLD_TEMP_SECONDS`."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    now = time.time()
    for e in entries:
        m = _TEMP.fullmatch(e.name)
        if not m or not e.is_dir(follow_symlinks=False):
            continue
        if m["pid"] is not None:
            if _alive(int(m["pid"])):
                continue
        elif now - e.stat(follow_symlinks=False).st_mtime < _OLD_TEMP_SECONDS:
            continue
        shutil.rmtree(e.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def _check_fixes(records: list[ChipRecord], out: Path) -> None:
    """Refuse the export when a fix file that would be exported is not a label of its chip."""
    problems = [(r.chip_id, p) for r in records if (p := fix_problem(r))]
    if not problems:
        return
    lines = "\n".join(f"  chip {cid!r}: {why}" for cid, why in problems[:10])
    more = f"\n  … and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise ChipqaError(
        f"{len(problems)} label fix(es) cannot be exported:\n{lines}{more}\n"
        "Fix each chip again (chipqa fix, or in napari), undo its fix or block it, then "
        f"export again. Nothing was written under {out}"
    )


def _hint(exc: OSError) -> str:
    """What to do about an error while writing the export."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free some space or choose a folder on a disk with more room"
    if exc.errno == errno.ENOENT:
        return "a file of the dataset went missing while exporting; check it and export again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            "check the permissions (read the dataset, write beside --out) or choose another folder"
        )
    if exc.errno == errno.EBUSY:
        return "--out is in use (a mount point?); export into a new folder inside it"
    return "choose another folder"


def _chip_files(folder: Path) -> list[Path]:
    """The files of a chip's folder (links followed), sorted."""
    with os.scandir(folder) as it:
        return sorted(Path(e.path) for e in it if e.is_file())


def _export_chip(rec: ChipRecord, layout: str, tmp: Path, w: _Writer) -> None:
    dst = L.chip_folder(tmp, layout, rec.chip_id)
    dst.mkdir(parents=True)
    label_dst = L.label_path(tmp, layout, rec.chip_id)
    for src in _chip_files(rec.folder):
        if layout == L.FLAT and src.name == L.FLAT_LABEL_NAME:
            continue  # the label goes in below (the original or its fix)
        w.place(src, dst / src.name)
    if rec.label_path is None:
        return
    label_dst.parent.mkdir(parents=True, exist_ok=True)
    if rec.fixed:
        w.copy_file(rec.label_path, label_dst)  # the fix file itself stays untouched
    else:
        w.place(rec.label_path, label_dst)


def _filter_metadata(src: Path, dst: Path, keep: set[str]) -> tuple[int, int]:
    """Copy the metadata CSV's header and the rows of ``keep``; returns (kept, rows)."""
    with open(src, newline="", encoding="utf-8") as f:
        first = f.readline()
        f.seek(0)
        rows = list(csv.reader(f))
    if not rows:
        shutil.copyfile(src, dst)
        return 0, 0
    header, body = rows[0], rows[1:]
    col = [h.strip().lstrip("\ufeff") for h in header].index("chip_id")
    kept = [r for r in body if len(r) > col and r[col] in keep]
    ending = "\r\n" if first.endswith("\r\n") else "\n"
    with open(dst, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator=ending).writerows([header, *kept])
    return len(kept), len(body)


def _sync(folder: Path) -> None:
    """Put everything written into the export on disk before it is renamed into place."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for dirpath, _, files in os.walk(folder):  # pragma: no cover (no os.sync)
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def export_dataset(
    root: str | Path,
    out: str | Path,
    *,
    blocklist: str | Path | None = None,
    files: str = "reflink",
    progress: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write a cleaned copy of the dataset at ``root`` to ``out`` (see the module docstring).

    Args:
        root: the dataset (either layout).
        out: the new dataset folder: must not exist, or be an empty folder.
        blocklist: the decisions (default: the dataset's own blocklist; none there:
            nothing is left out or fixed). Its ``block`` rows are left out, its label
            fixes replace the original labels.
        files: how unchanged files go in: ``reflink`` (copy-on-write clones where the
            file system has them, else copies), ``copy`` or ``hardlink`` (shared with
            the original: writing into the copy changes the original).
        progress: called with (chips done, chips) as the export goes.

    Raises:
        ChipqaError: ``out`` exists and is not empty, is inside the dataset, or cannot be
            written (a full disk; nothing is left under ``out`` then); the blocklist
            cannot be read, or was given and does not exist; a fix file that would be
            exported is not a readable label of its chip.
        DatasetError: ``root`` is not a dataset.
    """
    root, out = Path(root).expanduser(), Path(out).expanduser()
    path = Path(blocklist).expanduser() if blocklist else side_paths(root).blocklist
    dataset = open_dataset(root, cache="off", fixes=False)
    chunk = read_chunk(path, missing_ok=blocklist is None, only=set(dataset.chip_ids), outside=True)
    dataset.apply_fixes(fix_files(chunk.latest))
    _check_out(root, out)
    blocked = {cid for cid, d in chunk.latest.items() if d.decision == "block"}
    summary = ExportSummary(root, out, dataset.layout, path if path.exists() else None)
    summary.unknown_blocked = len(chunk.blocked_outside)
    _check_fixes([r for r in dataset if r.chip_id not in blocked and not r.problem], out)
    writer = _Writer(files, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out.parent)
    tmp = out.parent / f".{out.name}.chipqa-export-{os.getpid()}-{secrets.token_hex(4)}"
    emptied = False
    try:
        tmp.mkdir()
        for i, rec in enumerate(dataset, start=1):
            if rec.chip_id in blocked:
                summary.blocked.append(rec.chip_id)
            elif rec.problem:
                summary.unreadable[rec.chip_id] = rec.problem
            else:
                _export_chip(rec, dataset.layout, tmp, writer)
                summary.exported.append(rec.chip_id)
                if rec.fixed:
                    summary.fixed.append(rec.chip_id)
            if progress:
                progress(i, len(dataset))
        if dataset.layout == L.ONCLOUDN:
            (tmp / L.FEATURES_DIR).mkdir(exist_ok=True)
            meta = L.metadata_path(root)
            if meta.is_file():
                summary.metadata_rows = _filter_metadata(
                    meta, L.metadata_path(tmp), set(summary.exported)
                )
        _sync(tmp)
        if out.is_dir():
            out.rmdir()  # the empty folder the export was asked to fill
            emptied = True
        os.rename(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if emptied and not out.exists():
            with contextlib.suppress(OSError):
                out.mkdir()  # leave the empty folder as it was
        if isinstance(exc, OSError):
            what = exc.strerror or str(exc)
            where = f" ({exc.filename})" if exc.filename else ""
            raise ChipqaError(
                f"cannot export {root} to {out}: {what}{where}. Nothing was written under "
                f"{out}; {_hint(exc)}"
            ) from exc
        raise
    with contextlib.suppress(OSError):
        fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return summary

"""The ``chipqa`` parser and entry point: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import errno
import sys

from chipqa import __version__
from chipqa.cli import cache, demo, export, fix, mask, score, synth, train, view
from chipqa.errors import ChipqaError

COMMANDS = {
    "synth": synth,
    "score": score,
    "mask": mask,
    "view": view,
    "cache": cache,
    "train": train,
    "fix": fix,
    "export": export,
    "demo": demo,
}
"""The subcommands, in the order ``chipqa --help`` lists them. Each module has ``HELP``
(its line in ``chipqa --help``), ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> exit status``."""


def build_parser() -> argparse.ArgumentParser:
    parser, _ = _build_parsers()
    return parser


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    subparsers = {}
    parser = argparse.ArgumentParser(
        prog="chipqa",
        description="Find wrong cloud masks in Sentinel-2 chip datasets.",
    )
    parser.add_argument("--version", action="version", version=f"chipqa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
        subparsers[name] = p
    return parser, subparsers


def reject_unknown(p: argparse.ArgumentParser, extra: list[str]) -> None:
    """Stop with a message naming the first option ``p`` does not know, and the
    closest one it does (``--thresold`` → ``--threshold``)."""
    import difflib

    unknown = [a.split("=", 1)[0] for a in extra if a.startswith("-")]
    if not unknown:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    known = [o for a in p._actions for o in a.option_strings if o.startswith("--")]
    close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else f" (see `{p.prog} --help`)"
    p.error(f"unknown option {unknown[0]}{hint}")


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = _build_parsers()
    args, extra = parser.parse_known_args(argv)
    if extra:
        reject_unknown(subparsers[args.command], extra)
    try:
        return args.func(args)
    except (ChipqaError, ValueError, FileExistsError) as exc:
        print(f"chipqa {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder that cannot be written: no traceback
        print(f"chipqa {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"chipqa {args.command}: interrupted; files already written are complete",
            file=sys.stderr,
        )
        return 130


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: what failed, on which file, what to do."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = "; free some space (or choose a folder on another disk) and run it again"
    return f"{what}{where}{hint}"

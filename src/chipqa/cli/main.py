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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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

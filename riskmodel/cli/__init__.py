"""The ``riskmodel`` command: a thin shell over the public API, one module per subcommand.

Each subcommand's module (:mod:`riskmodel.cli.predict`, ``synth``, ``scan``, ``train``, ``embed``,
``fit_hybrid``, ``recommend``, ``benchmark``, ``evaluate``, ``import_mirai``, ``explain``, ``listen``, ``serve``)
adds its parser (``add_parser``) and runs it (``run``) by calling the library functions a Python user calls; the
options several commands share are written once in :mod:`riskmodel.cli.options`.

Exit codes: 0 when the input was read and every row has a status (rows that break rules
are reported in the ``status``/``message`` columns), 2 with a one-line message for input
that cannot be used at all (missing file, unknown format, missing column).
"""

from __future__ import annotations

import argparse
import sys

from riskmodel.cli import (
    benchmark,
    embed,
    evaluate,
    explain,
    fit_hybrid,
    import_mirai,
    listen,
    predict,
    recommend,
    scan,
    serve,
    synth,
    train,
)
from riskmodel.cli.options import UsageError, flag_message
from riskmodel.cli.predict import CHUNK_ROWS, PROGRESS_MIN_ROWS, TOP_REASONS
from riskmodel.tables import ParameterError, read_table, write_table
from riskmodel.version import __version__

__all__ = ["CHUNK_ROWS", "PROGRESS_MIN_ROWS", "TOP_REASONS", "UsageError", "build_parser", "main", "read_table",
           "write_table"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``docs/cli.md``)."""
    parser = argparse.ArgumentParser(
        prog="riskmodel",
        description=(
            "Personalized breast-cancer risk prediction. Run 'riskmodel COMMAND --help' for a command's options."
        ),
    )
    parser.add_argument("--version", action="version", version=f"riskmodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    predict.add_parser(sub, chunk_rows=CHUNK_ROWS, progress_min_rows=PROGRESS_MIN_ROWS)
    for command in (synth, scan, train, embed, fit_hybrid, recommend, benchmark, evaluate, import_mirai, explain,
                    listen, serve):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``riskmodel`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # e.g. `riskmodel predict x.csv | head`
        sys.stderr.close()
        return 0
    except (UsageError, ValueError, OSError) as exc:
        text = flag_message(exc) if isinstance(exc, ParameterError) else str(exc)
        message = " ".join(text.split()) or type(exc).__name__
        print(f"riskmodel: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM while predict/embed write (their files are removed)
        print(f"riskmodel: interrupted{f' ({exc})' if str(exc) else ''}", file=sys.stderr)
        return 130

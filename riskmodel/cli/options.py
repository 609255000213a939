"""What the subcommands share: the one-line usage error, option blocks added to a parser, their parsing.

Each ``add_*`` function adds one option, written once; ``help`` is the command's own wording (None:
no help text), so ``riskmodel COMMAND --help`` reads as each command needs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pandas as pd

from riskmodel.schema import ColumnMatch, ColumnWarning, match_columns
from riskmodel.tables import ParameterError, table_format

#: How the CLI spells the library's parameters in its one-line errors (others: ``--NAME``).
FLAGS = {"output": "-o", "chunk_rows": "--chunk-rows", "model_config": "--model-config"}


class UsageError(Exception):
    """Input the command cannot use at all: reported on one line, exit code 2."""


def flag_message(exc: ParameterError) -> str:
    """A library's :class:`~riskmodel.tables.ParameterError` in the CLI's words: ``-o out.csv: is a folder; …``."""
    flag = FLAGS.get(exc.parameter, "--" + exc.parameter.replace("_", "-"))
    return f"{flag}: {exc.reason}" if exc.value is None else f"{flag} {exc.value}: {exc.reason}"


def add_quiet(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``-q/--quiet``."""
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def add_device(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--device`` (default ``auto``)."""
    p.add_argument("--device", default="auto", help=help)


def add_output(p: argparse.ArgumentParser, help: str) -> None:
    """``-o/--output`` (default: stdout)."""
    p.add_argument("-o", "--output", help=help)


def add_cache_dir(p: argparse.ArgumentParser, help: str) -> None:
    """``--cache-dir``: a cache of preprocessed views."""
    p.add_argument("--cache-dir", help=help)


def add_seed(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--seed`` (default 0)."""
    p.add_argument("--seed", type=int, default=0, help=help)


def add_columns(p: argparse.ArgumentParser, help: str) -> None:
    """``--columns THEIR=CANONICAL,...`` (parsed by :func:`columns_option`)."""
    p.add_argument("--columns", metavar="THEIR=CANONICAL,...", help=help)


def columns_option(text: str | None) -> dict[str, str] | None:
    """``--columns their=canonical,...`` as a dict for ``predict_risk(columns=...)``."""
    if text is None:
        return None
    renames: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        their, sep, canonical = item.partition("=")
        if not sep or not their.strip() or not canonical.strip():
            raise UsageError(f"--columns {text}: give THEIR=CANONICAL pairs separated by commas, e.g. "
                             "--columns Alter=age,Biopsien=n_biopsies")
        renames[their.strip()] = canonical.strip()
    return renames


@contextlib.contextmanager
def column_warnings_on_stderr() -> Iterator[None]:
    """Inside the block, each :class:`~riskmodel.schema.ColumnWarning` is printed at once as one line
    ``riskmodel: warning: …`` on stderr; other warnings are shown as Python shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", ColumnWarning)
        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            if issubclass(category, ColumnWarning):
                print(f"riskmodel: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def match(header: pd.DataFrame, columns: str | None) -> ColumnMatch:
    """The input columns read as canonical ones (``--columns`` and case-insensitive names); warns once."""
    with column_warnings_on_stderr():
        return match_columns(header, columns_option(columns))


def image_size(text: str) -> tuple[int, int]:
    """``--image-size ROWSxCOLUMNS`` as ``(rows, columns)``."""
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--image-size {text}: expected ROWSxCOLUMNS, e.g. 512x416") from None
    return rows, cols


def output_format(output: str | None) -> str:
    """The format ``-o`` is written in (CSV on stdout)."""
    return "csv" if output in (None, "-") else table_format(output)

"""Regenerate the ``--help`` blocks of ``docs/cli.md`` from ``riskmodel.cli.build_parser()``.

Usage (from the repository root, offline; the output depends only on the parser and Python's argparse)::

    python docs/make_cli_md.py           # rewrite docs/cli.md in place
    python docs/make_cli_md.py --check   # exit 1 with a diff when docs/cli.md is out of date

Every fenced block of ``docs/cli.md`` whose first line starts with ``usage: riskmodel`` is replaced by the
current help of that command, formatted at 80 columns (``COLUMNS=80``) without colour; the prose around
the blocks is kept. Every subcommand must have such a block and a row in the table at the top (linked as
``[`NAME`](...)``); one that has not is reported, and nothing is written. Argparse words its help slightly
differently from Python 3.13 on, so the file is generated with Python 3.10–3.12.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

CLI_MD = Path(__file__).resolve().parent / "cli.md"
# A fenced block whose first line is a usage line: group 1 = the command's name (empty for the top level).
_BLOCK = re.compile(r"^```\n(usage: riskmodel(?: ([a-z][a-z0-9-]*))?\b.*?)^```$", re.M | re.S)


@contextlib.contextmanager
def _stable_terminal() -> Iterator[None]:
    """80 columns and no colour while argparse formats, whatever the terminal (restored afterwards)."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "LINES", "NO_COLOR", "PYTHON_COLORS")}
    os.environ.update({"COLUMNS": "80", "LINES": "25", "NO_COLOR": "1", "PYTHON_COLORS": "0"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def help_texts() -> dict[str, str]:
    """``{"": riskmodel --help, "predict": riskmodel predict --help, ...}`` as the command prints them."""
    from riskmodel.cli import build_parser

    out: dict[str, str] = {}
    with _stable_terminal():
        names = ["", *_subcommands(build_parser())]
        for name in names:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
                build_parser().parse_args([name, "--help"] if name else ["--help"])
            out[name] = buffer.getvalue().rstrip() + "\n"
    return out


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps the subparsers in its (stable) action list
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render(text: str, helps: dict[str, str] | None = None) -> str:
    """``text`` (the contents of ``docs/cli.md``) with every usage block replaced by the current help.

    Raises:
        ValueError: a block names an unknown command, or a command has no usage block or no table row.
    """
    helps = help_texts() if helps is None else helps
    seen: set[str] = set()

    def replace(match: re.Match) -> str:
        name = match.group(2) or ""
        if name not in helps:
            raise ValueError(f"docs/cli.md: a usage block names {name!r}, which is not a riskmodel command")
        seen.add(name)
        return "```\n" + helps[name] + "```"

    new = _BLOCK.sub(replace, text)
    problems = [f"no usage block for {('riskmodel ' + n).strip()!r}" for n in helps if n not in seen]
    problems += [f"no row for {n!r} in the table of commands" for n in helps if n and f"[`{n}`]" not in text]
    if problems:
        raise ValueError("docs/cli.md: " + "; ".join(problems))
    return new


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(CLI_MD.parent.parent))  # this checkout's riskmodel, not another installed copy
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report drift (exit 1) instead of rewriting")
    args = parser.parse_args(argv)
    old = CLI_MD.read_text(encoding="utf-8")
    try:
        new = render(old)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                       "docs/cli.md", "generated"))
            print("docs/cli.md is out of date: run python docs/make_cli_md.py", file=sys.stderr)
            return 1
        return 0
    if new != old:
        CLI_MD.write_text(new, encoding="utf-8")
    print(f"{CLI_MD}: {'rewritten' if new != old else 'up to date'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

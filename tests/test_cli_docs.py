"""``docs/cli.md`` shows what the parser prints: regenerate it with ``python docs/make_cli_md.py``."""

import importlib.util
import sys
from pathlib import Path

import pytest

from riskmodel.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
# Python 3.13 changed how argparse words options ("-o, --output OUTPUT"); the file is generated with 3.10-3.12.
pytestmark = pytest.mark.skipif(sys.version_info >= (3, 13), reason="docs/cli.md is generated with Python < 3.13")


@pytest.fixture(scope="module")
def make_cli_md():
    spec = importlib.util.spec_from_file_location("make_cli_md", ROOT / "docs" / "make_cli_md.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_matches_the_parser(make_cli_md):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert make_cli_md.render(text) == text, "docs/cli.md drifted from the parser: run python docs/make_cli_md.py"


def test_every_subcommand_and_option_is_documented(make_cli_md):
    helps = make_cli_md.help_texts()
    commands = set(make_cli_md._subcommands(build_parser()))
    assert set(helps) == commands | {""} and len(commands) == 13
    assert "--recommend POLICY" in helps["predict"] and "--preset {resnet18,small,tiny}" in helps["train"]
    assert all(line == line.rstrip() and len(line) <= 80 for h in helps.values() for line in h.splitlines())


def test_the_generator_repairs_drift_and_reports_missing_sections(make_cli_md):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    stale = text.replace("  --recommend POLICY", "  --recommend-old POLICY", 1)
    assert stale != text and make_cli_md.render(stale) == text
    start = text.index("## `riskmodel evaluate`")
    without = text[:start] + text[text.index("## `riskmodel benchmark`"):]
    with pytest.raises(ValueError, match=r"no usage block for 'riskmodel evaluate'"):
        make_cli_md.render(without)
    with pytest.raises(ValueError, match=r"no row for 'scan' in the table of commands"):
        make_cli_md.render(text.replace("[`scan`]", "`scan`"))

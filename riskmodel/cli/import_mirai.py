"""``riskmodel import-mirai``: Mirai's released snapshots → a verified bundle, without running any pickle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from riskmodel.cli.options import UsageError, add_quiet


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "import-mirai",
        help="convert Mirai's released snapshots into a verified bundle (no pickle is run)",
        description=(
            "Read Mirai's release (snapshots.zip, or a folder with its files under their release names) with a "
            "restricted unpickler that builds inert records and refuses every global outside an allowlist, and "
            "write a bundle: weights.safetensors, config.json (the hyperparameters found in the snapshots, the "
            "per-year calibration, the SHA-256 of each source file) and a SHA-256 manifest. Work in progress: the "
            "imported model is not yet scored by predict (see docs/mirai.md)."
        ),
    )
    p.add_argument("snapshots", help="snapshots.zip or a folder holding the release files")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    add_quiet(p, "no summary line")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Import the snapshots and say where the bundle went."""
    if not Path(args.snapshots).exists():
        raise UsageError(f"{args.snapshots}: no such file or folder")
    from riskmodel.mirai import import_mirai

    out = import_mirai(args.snapshots, args.out, overwrite=args.overwrite)
    if not args.quiet:
        print(f"riskmodel: imported Mirai snapshots from {args.snapshots} -> {out}", file=sys.stderr)
    return 0

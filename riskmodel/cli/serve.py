"""``riskmodel serve``: the local web calculator and clinic list (riskmodel.serve; FastAPI imported only here)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys

from riskmodel.cli.options import UsageError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add this command to the subparsers ``sub``."""
    p = sub.add_parser(
        "serve",
        help="local web calculator for one woman and a clinic's list (docs/clinic.md)",
        description=(
            "Serve the clinic web application: GET / is the one-woman form, POST /assess her result (JSON with "
            "'Accept: application/json'), /clinic a day's list, GET /health. Listens on 127.0.0.1 unless --host "
            "says otherwise; another address needs an access token (--token or RISKMODEL_SERVE_TOKEN). Nothing "
            "entered is written to disk or logged. Needs the 'serve' extra (pip install 'riskmodel-breast[serve]')."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--policy", default="uspstf2024",
                   help="policy selected by default in the form: a shipped policy or a policy file (default: "
                        "uspstf2024)")
    p.add_argument("--bundle", help="an image, hybrid or Mirai bundle folder: the form also takes her four DICOM views")
    p.add_argument("--token", nargs="?", const="", default=None,
                   help="access token every request must present (Authorization: Bearer TOKEN, or open "
                        "/?token=TOKEN once); --token alone makes a random one and prints it. Default: "
                        "$RISKMODEL_SERVE_TOKEN")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``riskmodel serve``: check the options, then run the server until Ctrl-C."""
    try:
        from riskmodel.serve import TOKEN_ENV, check_binding, serve
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise UsageError(f"riskmodel serve needs the 'serve' extra ({exc.name} is missing)") from None
    token = args.token
    if token == "":
        token = secrets.token_urlsafe(24)
        print(f"riskmodel: access token: {token}  (open http://{args.host}:{args.port}/?token={token})",
              file=sys.stderr)
    token = token or os.environ.get(TOKEN_ENV) or None
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: not a port number (1-65535)")
    try:
        check_binding(args.host, token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"riskmodel: serving on http://{args.host}:{args.port}/ (Ctrl-C to stop)", file=sys.stderr)
    serve(args.host, args.port, policy=args.policy, bundle=args.bundle, token=token)
    return 0

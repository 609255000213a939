"""``riskmodel serve``: a local web calculator and clinic list (FastAPI, server-rendered Jinja2 templates).

:func:`create_app` builds the application (:mod:`riskmodel.serve.app`); :func:`serve` runs it with
uvicorn, refusing a non-loopback address without an access token. The pages call the same public
functions a Python user calls (:mod:`riskmodel.serve.assess`). See ``docs/clinic.md``.
"""

from __future__ import annotations

import ipaddress
import os

__all__ = ["LOOPBACK", "TOKEN_ENV", "check_binding", "create_app", "serve"]

TOKEN_ENV = "RISKMODEL_SERVE_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_binding(host: str, token: str | None) -> None:
    """Raise ``ValueError`` when ``host`` is not a loopback address and no access token is set."""
    try:
        loopback = host in LOOPBACK or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not token:
        raise ValueError(f"--host {host}: listening beyond this computer needs an access token (--token TOKEN, or "
                         f"the environment variable {TOKEN_ENV}); see docs/clinic.md")


def create_app(*args, **kwargs):
    """:func:`riskmodel.serve.app.create_app` (FastAPI is imported on the first call)."""
    from riskmodel.serve.app import create_app as build

    return build(*args, **kwargs)


def serve(host: str = "127.0.0.1", port: int = 8000, *, policy: str = "uspstf2024", bundle: str | None = None,
          token: str | None = None) -> None:
    """Run the server until interrupted. ``token`` defaults to ``$RISKMODEL_SERVE_TOKEN``.

    The access log is off (a URL could carry an id); errors are logged without request bodies.
    """
    import uvicorn

    token = token or os.environ.get(TOKEN_ENV) or None
    check_binding(host, token)
    app = create_app(policy, bundle, token)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", server_header=False)

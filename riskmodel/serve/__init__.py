"""``riskmodel serve``: a local web calculator and clinic list (FastAPI, server-rendered Jinja2 templates).

:func:`create_app` builds the application (:mod:`riskmodel.serve.app`); :func:`serve` runs it with
uvicorn, refusing a non-loopback address without an access token. The pages call the same public
functions a Python user calls (:mod:`riskmodel.serve.assess`). See ``docs/clinic.md``.
"""

from __future__ import annotations

import os

from riskmodel.serve.binding import LOOPBACK, TOKEN_ENV, check_binding

__all__ = ["LOOPBACK", "TOKEN_ENV", "check_binding", "create_app", "serve"]


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

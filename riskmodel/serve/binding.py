"""Where the server may listen: loopback freely, any other address only with an access token."""

from __future__ import annotations

import ipaddress

__all__ = ["LOOPBACK", "TOKEN_ENV", "check_binding"]

#: Environment variable holding the access token.
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

"""Where the server may listen: loopback freely, any other address only with an access token."""

from __future__ import annotations

import ipaddress

__all__ = ["LOOPBACK", "TOKEN_ENV", "check_binding", "is_loopback"]

#: Environment variable holding the access token.
TOKEN_ENV = "RISKMODEL_SERVE_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IPv4/IPv6 address) is this computer only (127.0.0.0/8, ::1, localhost)."""
    try:
        return host in LOOPBACK or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Raise ``ValueError`` when ``host`` is not a loopback address and no access token is set."""
    if not is_loopback(host) and not token:
        raise ValueError(f"--host {host}: listening beyond this computer needs an access token (--token TOKEN, or "
                         f"the environment variable {TOKEN_ENV}); see docs/clinic.md")

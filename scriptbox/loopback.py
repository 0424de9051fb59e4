"""Whether a host name or address is this machine's loopback."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str | None) -> bool:
    """True for loopback names and addresses: `localhost`, 127.0.0.0/8, ::1
    (also written `[::1]` or with a zone, `::1%lo`)."""
    if not host:
        return False
    host = host.strip().lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False

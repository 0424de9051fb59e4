"""Request guards that do not depend on who is asking: Host (DNS rebinding) and same-origin.

* Host check against DNS rebinding: a page on evil.example that resolves its
  name to 127.0.0.1 would otherwise talk to Scriptbox as a same-origin page.
* Same-origin check for state-changing requests: browsers attach Basic
  credentials to cross-site requests by themselves, so a POST from another
  site must be refused (CSRF).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import psutil

from .errors import Forbidden
from .loopback import is_loopback

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def split_host(host_header: str) -> str:
    """The host name of a Host header, lower-cased, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def own_addresses(bind_host: str) -> frozenset[str]:
    """Names and addresses this server answers to, given the address it binds."""
    names = {bind_host.lower().strip("[]")}
    if bind_host in ("0.0.0.0", "::", ""):
        for addrs in psutil.net_if_addrs().values():
            for addr in addrs:
                if addr.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(addr.address.split("%", 1)[0].lower())
        hostname = socket.gethostname().lower()
        names.update({hostname, hostname.split(".", 1)[0]})
    return frozenset(names)


class HostGuard:
    """Accepts Host headers naming this server, a loopback name or an allowed host."""

    def __init__(self, bind_host: str, allowed_hosts: Iterable[str] = ()) -> None:
        self._accepted = own_addresses(bind_host) | {h.lower() for h in allowed_hosts}

    def check(self, environ: Mapping[str, Any]) -> None:
        """Raises Forbidden when the Host header names another site."""
        raw = environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or ""
        host = split_host(str(raw))
        if host in self._accepted or is_loopback(host):
            return
        raise Forbidden(
            f"host {host!r} is not served here; add it to SCRIPTBOX_ALLOWED_HOSTS if it is this server",
            code="host_not_allowed",
        )


def check_same_origin(environ: Mapping[str, Any]) -> None:
    """Refuse state-changing requests that a foreign site could have made.

    Raises Forbidden for: a cross-site Sec-Fetch-Site, an Origin that is not
    this server, or a body that is not application/json (forms and text/plain
    are what a cross-site page can send without a preflight).
    """
    if environ.get("REQUEST_METHOD", "GET").upper() not in STATE_CHANGING_METHODS:
        return
    if environ.get("HTTP_SEC_FETCH_SITE", "").lower() == "cross-site":
        raise Forbidden("cross-site requests are refused", code="cross_site_refused")
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        parts = urlsplit(origin)
        host = str(environ.get("HTTP_HOST", "")).lower()
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
            raise Forbidden(f"requests from origin {origin!r} are refused", code="cross_site_refused")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 1  # a malformed length still announces a body
    has_body = length > 0 or "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
    if has_body:
        content_type = str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise Forbidden("request bodies must be application/json", code="unsupported_content_type")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443" as some proxies write it
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, trusted: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def client_address(environ: Mapping[str, Any], trusted_proxies: tuple[Network, ...] = ()) -> str:
    """The address of the client a request comes from, for throttling and logs.

    The socket peer, unless it is a trusted proxy (SCRIPTBOX_TRUSTED_PROXIES):
    then X-Forwarded-For is read from the right, skipping trusted proxies, and
    the first address that is not one is the client. Entries left of it were
    written by the client itself and are never believed; an unparsable entry
    stops the walk at the last trusted hop.
    """
    peer = str(environ.get("REMOTE_ADDR") or "")
    current = _parse_ip(peer)
    if current is None or not trusted_proxies or not _trusted(current, trusted_proxies):
        return str(current) if current is not None else peer
    forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
    for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
        address = _parse_ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, trusted_proxies):
            break
    return str(current)

"""Apprise, behind three functions: is this a URL it can use, how to show it, send one message.

Apprise (https://github.com/caronc/apprise) is the maintained library that
speaks e-mail, Slack, Teams, Discord, Telegram, ntfy, generic JSON/form
webhooks and about 190 other services, each as a URL. It is imported on first
use, not at start: loading its plugins costs about a second of CPU and ~25 MiB,
which a Scriptbox without notification channels never pays. These functions
block (plugin loading, network I/O); the notifier calls them in its thread pool.

Masking: Apprise's privacy form of a URL (``url(privacy=True)``) hides what
each service's own plugin knows to be secret (passwords, tokens, keys: ``****``
or ``T...Q``). It shows custom HTTP headers (``+Authorization=...``) and
unknown query arguments in clear, so those are masked here as well: every
header value, and arguments whose name sounds secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .message import Message

MASK = "****"
_SECRET_ARG = re.compile(r"token|key|secret|pass|pwd|auth|sig|cred|session|webhook", re.IGNORECASE)


@dataclass(frozen=True)
class ChannelUrl:
    """A URL Apprise can use: its masked form and the service's name."""

    masked: str
    service: str


def _mask_arguments(url: str) -> str:
    """`url` with header values (+Name) and secret-sounding query arguments replaced by ****."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(name, MASK if value and (name.startswith("+") or _SECRET_ARG.search(name)) else value)
             for name, value in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


def _instantiate(url: str) -> Any:
    import apprise  # noqa: PLC0415 - heavy; loaded on first use (see the module docstring)

    # The plugin sends in the calling thread (sequential, and no service
    # timeout: the socket timeouts bound a send, see `send`). Otherwise Apprise
    # hands each send to its own process-wide thread pool, whose workers, in
    # this gevent-patched process, are greenlets of whichever notifier thread
    # first used it: once that thread ended, the interpreter's exit waited for
    # them for ever (a stop that never finished). Each send already has a
    # notifier thread of its own.
    asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)
    return apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)


def parse_channel_url(url: str) -> ChannelUrl | None:
    """The masked form and service of an Apprise URL, or None when Apprise cannot use it."""
    plugin = _instantiate(url)
    if plugin is None:
        return None
    return ChannelUrl(masked=_mask_arguments(str(plugin.url(privacy=True))), service=str(plugin.service_name))


def redact(text: str, url: str) -> str:
    """`text` (a failure reason: a plugin's log line, an exception) without the
    parts of `url` that may be credentials: the URL itself, user and password,
    path segments and query values (a Slack or webhook URL carries its token in
    the path). The reason is stored on the channel and in the audit log, which
    read-scope tokens can see; the URL is sealed, so its parts must not leak here.
    """
    parts = urlsplit(url)
    pieces = {url, parts.username or "", parts.password or "", parts.path, parts.query}
    pieces.update(segment for segment in parts.path.split("/"))
    pieces.update(value for _, value in parse_qsl(parts.query, keep_blank_values=True))
    # Short pieces ("api", "v1") are not secrets and would mangle the text.
    secrets = {p for piece in pieces if len(piece) >= 6 for p in (piece, quote(piece, safe=""))}
    for piece in sorted(secrets, key=len, reverse=True):
        text = text.replace(piece, MASK)
    return text


def _failure_reason(result: Any) -> str:
    reasons = [str(entry.message) for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    return "; ".join(dict.fromkeys(reasons)) or f"not delivered ({getattr(result, 'status', 'failure')})"


def send(url: str, message: Message, timeout_s: float) -> str | None:
    """Send `message` to `url` once; None when it was delivered, else why not.

    Each socket operation gives up after `timeout_s` (Apprise's connect and
    read timeouts), so a thread running this is never held much longer.
    """
    import apprise  # noqa: PLC0415 - see _instantiate

    plugin = _instantiate(url)
    if plugin is None:
        return "Apprise cannot use this URL"
    plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout), timeout_s)
    plugin.socket_read_timeout = timeout_s
    sender = apprise.Apprise()
    sender.add(plugin)
    result = sender.notify(body=message.body, title=message.title, notify_type=message.notify_type,
                           body_format=apprise.NotifyFormat.TEXT)
    return None if result else redact(_failure_reason(result), url)

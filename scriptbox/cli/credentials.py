"""Where the client finds the server and its credentials: the environment only.

Credentials are never taken from the command line, where `ps` and shell
history would show them. Precedence: an API token (SCRIPTBOX_TOKEN, sent as
`Authorization: Bearer`) over the admin password (HTTP Basic auth); a variable
over its `_FILE` form, as the server reads its own secrets.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import EXIT_USAGE, CliError

DEFAULT_URL = "http://127.0.0.1:8765"
MISSING_CREDENTIALS = (
    "no credentials: set SCRIPTBOX_ADMIN_PASSWORD (or SCRIPTBOX_ADMIN_PASSWORD_FILE, a file holding it; "
    "user from SCRIPTBOX_ADMIN_USER, default admin) or SCRIPTBOX_TOKEN (or SCRIPTBOX_TOKEN_FILE). "
    "Credentials are read from the environment only, never from the command line."
)


@dataclass(frozen=True)
class Connection:
    """A server's base URL and the Authorization header to send it."""

    base_url: str  # no trailing slash; may carry a path prefix (behind a reverse proxy)
    authorization: str
    scheme: str  # "basic" or "bearer", for messages

    def __repr__(self) -> str:
        # Never print the secret, even in a traceback or a debugger.
        return f"Connection(base_url={self.base_url!r}, scheme={self.scheme!r})"


def _secret(environ: Mapping[str, str], name: str) -> str | None:
    """NAME, else the contents of the file NAME_FILE (stripped); raises CliError for an unreadable file."""
    value = environ.get(name)
    if value is None:
        path = environ.get(name + "_FILE")
        if path is None:
            return None
        try:
            value = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise CliError(f"{name}_FILE: cannot read {path}: {reason}", EXIT_USAGE) from None
        name += "_FILE"
    if not value:
        raise CliError(f"{name} is set but empty", EXIT_USAGE)
    return value


def parse_base_url(raw: str, source: str) -> str:
    """The base URL without a trailing slash; raises CliError unless it is http(s)://host[:port][/prefix]."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"{source}: {raw!r} is not an http:// or https:// URL of a Scriptbox server", EXIT_USAGE)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise CliError(f"{source}: give only scheme, host, port and path (credentials come from the "
                       "environment, see --help)", EXIT_USAGE)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def load_connection(environ: Mapping[str, str], url_flag: str | None = None) -> Connection:
    """The server and credentials to use; raises CliError (exit 2) when they are missing or unusable."""
    if url_flag is not None:
        base_url = parse_base_url(url_flag, "--url")
    elif environ.get("SCRIPTBOX_URL"):
        base_url = parse_base_url(environ["SCRIPTBOX_URL"], "SCRIPTBOX_URL")
    else:
        base_url = DEFAULT_URL
    token = _secret(environ, "SCRIPTBOX_TOKEN")
    if token is not None:
        return Connection(base_url, f"Bearer {token}", "bearer")
    password = _secret(environ, "SCRIPTBOX_ADMIN_PASSWORD")
    if password is None:
        raise CliError(MISSING_CREDENTIALS, EXIT_USAGE)
    user = environ.get("SCRIPTBOX_ADMIN_USER") or "admin"
    pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return Connection(base_url, f"Basic {pair}", "basic")

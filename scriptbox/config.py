"""Settings: one table of every setting, read from flags and environment.

Flags win over environment variables, which win over defaults. Every value is
parsed and checked here, at start, so a bad value stops Scriptbox with a
message that names the setting instead of failing later in a request.
A secret may also be given as ``NAME_FILE`` (path to a file holding it), the
usual way to pass secrets to containers and systemd credentials.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .secretbox import parse_key


class ConfigError(Exception):
    """A setting has a value Scriptbox refuses; the message names the setting."""


def default_data_dir() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/scriptbox or ~/.local/share/scriptbox."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(base) / "scriptbox"


def _parse_port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError("must be between 0 and 65535")
    return port


def _positive_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _non_empty(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw


def _host_list(raw: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in raw.split(",") if h.strip())


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"must be comma-separated addresses or CIDRs ({exc})") from None


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw).expanduser().absolute()


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise ValueError("must be text or json")
    return value


def _change_streams(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "on", "off"):
        raise ValueError("must be auto, on or off")
    return value


def _public_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an http:// or https:// URL with a host and no query, e.g. https://scripts.example.com")
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def _mongodb_uri(raw: str) -> str:
    if not raw.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("must start with mongodb:// or mongodb+srv://")
    return raw


def _db_name(raw: str) -> str:
    if not raw or any(c in raw for c in '/\\. "$') or len(raw) > 63:
        raise ValueError("must be a MongoDB database name (no / \\ . space \" $, at most 63 chars)")
    return raw


def _secret_key(raw: str) -> str:
    parse_key(raw)  # refuses anything that is not a 32-byte base64 key, with the reason
    return raw.strip()


@dataclass(frozen=True)
class SettingSpec:
    """One row of the settings table (also rendered into the README)."""

    name: str  # attribute of Settings
    env: str
    flag: str | None
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


SETTINGS_TABLE: tuple[SettingSpec, ...] = (
    SettingSpec("host", "SCRIPTBOX_HOST", "--host", _non_empty, "Address to listen on. Default 127.0.0.1."),
    SettingSpec("port", "SCRIPTBOX_PORT", "--port", _parse_port, "TCP port. Default 8765; 0 picks a free port."),
    SettingSpec("data_dir", "SCRIPTBOX_DATA_DIR", "--data-dir", _path,
                "Folder for the embedded database, the password hash and run working dirs. "
                "Default: $XDG_DATA_HOME/scriptbox or ~/.local/share/scriptbox."),
    SettingSpec("mongodb_uri", "SCRIPTBOX_MONGODB_URI", "--mongodb-uri", _mongodb_uri,
                "Use this MongoDB instead of starting the embedded SecantusDB.", secret=True),
    SettingSpec("db_name", "SCRIPTBOX_DB_NAME", None, _db_name, "Database name. Default scriptbox."),
    SettingSpec("admin_user", "SCRIPTBOX_ADMIN_USER", None, _non_empty, "Admin user name. Default admin."),
    SettingSpec("admin_password", "SCRIPTBOX_ADMIN_PASSWORD", None, _non_empty,
                "Admin password. When unset, the first start generates one, prints it once "
                "and stores only its salted hash in the data dir.", secret=True),
    SettingSpec("max_concurrent_runs", "SCRIPTBOX_MAX_CONCURRENT_RUNS", None, _positive_int(1, 1000),
                "Runs executing at once per process; the rest wait queued. Default 4."),
    SettingSpec("cluster_max_runs", "SCRIPTBOX_CLUSTER_MAX_RUNS", None, _positive_int(0, 100_000),
                "Runs executing at once across every process sharing the database (slot documents taken "
                "at each claim); the rest wait queued. All processes should use the same value. "
                "Default 0: no cluster-wide limit (docs/engine.md)."),
    SettingSpec("lease_seconds", "SCRIPTBOX_LEASE_SECONDS", None, _seconds(2, 3600),
                "Seconds a running run's lease (and its executor's heartbeat) lasts without renewal "
                "(renewed every third of it). After that, and only when its executor's heartbeat is stale too, "
                "another process ends the run as executor lost. Default 30 (docs/engine.md)."),
    SettingSpec("max_log_bytes", "SCRIPTBOX_MAX_LOG_BYTES", None, _positive_int(1024, 1 << 34),
                "Stored log per run, in bytes. Default 10485760 (10 MiB)."),
    SettingSpec("tail_bytes", "SCRIPTBOX_TAIL_BYTES", None, _positive_int(256, 1 << 24),
                "Size of a run's outputTail, in bytes. Default 16384 (16 KiB)."),
    SettingSpec("allowed_hosts", "SCRIPTBOX_ALLOWED_HOSTS", None, _host_list,
                "Comma-separated extra Host names accepted (DNS-rebinding guard), e.g. "
                "scripts.example.com when behind a reverse proxy."),
    SettingSpec("trusted_proxies", "SCRIPTBOX_TRUSTED_PROXIES", None, _networks,
                "Comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For names the client "
                "(for the login throttle and logs), e.g. 127.0.0.1/32. Default: none; the socket peer is the client."),
    SettingSpec("max_connections", "SCRIPTBOX_MAX_CONNECTIONS", None, _positive_int(16, 1_000_000),
                "Open HTTP connections at once; past it new ones get a JSON 503 (idle keep-alive and "
                "half-sent connections are closed first to make room). Default 4096; lowered to fit the "
                "open-file limit."),
    SettingSpec("header_timeout", "SCRIPTBOX_HEADER_TIMEOUT", None, _seconds(1, 3600),
                "Seconds a client has to send a request's line and headers once it started. Default 10."),
    SettingSpec("idle_timeout", "SCRIPTBOX_IDLE_TIMEOUT", None, _seconds(1, 3600),
                "Seconds a connection may wait for its next request, or stall a body read or a write, "
                "before it is closed. Default 60."),
    SettingSpec("tls_cert", "SCRIPTBOX_TLS_CERT", None, _path,
                "PEM certificate file; serve HTTPS when set with the key."),
    SettingSpec("tls_key", "SCRIPTBOX_TLS_KEY", None, _path,
                "PEM private key file for SCRIPTBOX_TLS_CERT.", secret=True),
    SettingSpec("vm2_user", "SCRIPTBOX_VM2_USER", None, _non_empty,
                "When Scriptbox runs as root: the user (name or uid) the vm2 sandbox process runs as. "
                "Default nobody; a uid-0 user keeps root. Ignored when not root (docs/vm2.md)."),
    SettingSpec("vm2_pool", "SCRIPTBOX_VM2_POOL", None, _positive_int(0, 64),
                "vm2 sandbox processes kept started ahead of their runs (each serves one run, then a new one "
                "is started), so a vm2 run pays no node start-up. Default 2; 0 starts a process per run "
                "(docs/vm2.md)."),
    SettingSpec("metrics_port", "SCRIPTBOX_METRICS_PORT", None, _parse_port,
                "worker only: serve GET /metrics (admin auth; needs SCRIPTBOX_ADMIN_PASSWORD) on this port "
                "of SCRIPTBOX_HOST. Unset: a worker has no HTTP at all."),
    SettingSpec("retention_days", "SCRIPTBOX_RETENTION_DAYS", None, _positive_int(0, 36500),
                "Days a finished run and its output are kept; older ones are deleted (hourly and at start). "
                "A script's own retention overrides it. Default 90; 0 keeps runs for ever (docs/retention.md)."),
    SettingSpec("secret_key", "SCRIPTBOX_SECRET_KEY", None, _secret_key,
                "Key that encrypts secret env values and secret parameters at rest: 32 bytes in base64 "
                "(`openssl rand -base64 32`). Unset: generated once into <data-dir>/secret.key (0600). "
                "Processes sharing a database must all have the same key (docs/params-secrets.md).", secret=True),
    SettingSpec("public_url", "SCRIPTBOX_PUBLIC_URL", None, _public_url,
                "The address people open Scriptbox at (e.g. https://scripts.example.com, behind a proxy); "
                "notifications link to runs under it. Unset: serve links to its own listening address, "
                "a worker sends the path alone."),
    SettingSpec("log_format", "SCRIPTBOX_LOG_FORMAT", None, _log_format,
                "Log records on stderr: text (default) or json (one object per line: time, level, logger, "
                "message, runId when the record belongs to a run)."),
    SettingSpec("keep_versions", "SCRIPTBOX_KEEP_VERSIONS", None, _positive_int(0, 1_000_000),
                "Versions of a script kept on each save: the newest N, plus every version a stored run "
                "ran; older ones are removed. Default 50; 0 keeps every version (docs/versions.md)."),
    SettingSpec("change_streams", "SCRIPTBOX_CHANGE_STREAMS", None, _change_streams,
                "How processes sharing a database learn of each other's queued runs, cancels and output: "
                "auto (default) uses MongoDB change streams with a configured MongoDB and falls back to "
                "polling where the database cannot offer them (a standalone mongod without a replica set); "
                "with the embedded database, which only this process uses, it uses none (and starts that "
                "database without the oplog they read). on: change streams with the embedded database too. "
                "off: always polls (docs/engine.md)."),
)


@dataclass(frozen=True)
class Settings:
    """Validated settings of one Scriptbox process."""

    host: str = "127.0.0.1"
    port: int = 8765
    data_dir: Path = field(default_factory=default_data_dir)
    mongodb_uri: str | None = None
    db_name: str = "scriptbox"
    admin_user: str = "admin"
    admin_password: str | None = None
    max_concurrent_runs: int = 4
    cluster_max_runs: int = 0
    lease_seconds: float = 30.0
    max_log_bytes: int = 10 * 1024 * 1024
    tail_bytes: int = 16 * 1024
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_connections: int = 4096
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    vm2_user: str = "nobody"
    vm2_pool: int = 2
    log_format: str = "text"
    metrics_port: int | None = None
    retention_days: int = 90
    secret_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    keep_versions: int = 50
    change_streams: str = "auto"
    # Not user settings: set by the CLI for special modes.
    run_worker: bool = True
    desktop_login_stdin: bool = False

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


def secret_env_names() -> frozenset[str]:
    """Environment variables that must never reach a script's process."""
    names = {spec.env for spec in SETTINGS_TABLE if spec.secret}
    return frozenset(names | {n + "_FILE" for n in names})


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Add the flags of the settings table; defaults stay None so env can apply."""
    for spec in SETTINGS_TABLE:
        if spec.flag:
            parser.add_argument(spec.flag, dest=spec.name, default=None, metavar=spec.env.removeprefix("SCRIPTBOX_"),
                                help=f"{spec.help} (env {spec.env})")


def _raw_from_env(spec: SettingSpec, environ: Mapping[str, str]) -> str | None:
    value = environ.get(spec.env)
    if value is not None:
        return value
    file_path = environ.get(spec.env + "_FILE")
    if file_path is None:
        return None
    try:
        return Path(file_path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{spec.env}_FILE: cannot read {file_path}: {exc.strerror}") from exc


def load_settings(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Build Settings from flags (winning) and environment.

    Raises ConfigError naming the setting when a value is invalid.
    """
    flags = flags or {}
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for spec in SETTINGS_TABLE:
        flag_value = flags.get(spec.name)
        raw = flag_value if flag_value is not None else _raw_from_env(spec, environ)
        if raw is None:
            continue
        source = spec.flag if flag_value is not None else spec.env
        try:
            values[spec.name] = spec.parse(str(raw))
        except ValueError as exc:
            reason = str(exc) if "invalid literal" not in str(exc) else "must be a whole number"
            raise ConfigError(f"{source}: invalid value {str(raw)!r}: {reason}") from exc
    known = {f.name for f in fields(Settings)}
    for key, value in overrides.items():
        if key not in known:
            raise TypeError(f"unknown setting {key}")
        values[key] = value
    settings = Settings(**values)
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("SCRIPTBOX_TLS_CERT and SCRIPTBOX_TLS_KEY must be set together")
    for path_setting in ("tls_cert", "tls_key"):
        path = getattr(settings, path_setting)
        if path is not None and not path.is_file():
            raise ConfigError(f"SCRIPTBOX_{path_setting.upper()}: {path} is not a readable file")
    return settings

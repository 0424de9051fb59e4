"""Persistence: the only package that talks to pymongo.

``Database`` owns the client and turns a lost database into
``DatabaseUnavailable`` (HTTP 503) instead of letting pymongo's connection
errors escape as crashes. The per-collection stores live beside it.

Conventions for every collection: ids are stored as ObjectId (including
references such as ``script_runs.scriptId``) and shown to clients as hex in
``id``; times are stored as BSON dates (UTC) and shown with ``iso()``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import MongoClient
from pymongo.database import Database as MongoDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from ..errors import DatabaseUnavailable

# Short enough that a request fails fast with 503 when the database is gone,
# long enough to ride out an embedded server restart or a replica-set election.
SERVER_SELECTION_TIMEOUT_MS = 3000

_CONNECTION_ERRORS = (ConnectionFailure, AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError)


@contextlib.contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn pymongo connection failures into DatabaseUnavailable."""
    try:
        yield
    except _CONNECTION_ERRORS as exc:
        raise DatabaseUnavailable() from exc


def utcnow() -> datetime:
    """Now, in UTC, at millisecond precision (what BSON dates keep)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, as the API shows times (pymongo returns naive UTC)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def parse_object_id(value: str) -> ObjectId | None:
    """The ObjectId of a 24-hex-digit string, or None when it is not one."""
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except InvalidId:
        return None


class DatabaseAuthFailed(Exception):
    """The database refused the credential (waiting will not help)."""


_AUTHENTICATION_FAILED = 18


def wait_until_answers(uri: str, timeout_s: float, still_starting: Callable[[], bool],
                       credentials: Mapping[str, str] | None = None) -> bool:
    """Ping a database that is starting until it answers (True), or until
    `still_starting()` turns False or `timeout_s` passes (False).

    With `credentials` (pymongo auth options) it also proves they work, and
    raises DatabaseAuthFailed when the database refuses them.
    """
    deadline = time.monotonic() + timeout_s
    client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250,
                                                      **dict[str, Any](credentials or {}))
    try:
        while time.monotonic() < deadline and still_starting():
            try:
                client.admin.command("ping")
                if credentials:
                    # ping is allowed before authentication; listing collections is not.
                    client.admin.list_collection_names()
                return True
            except OperationFailure as exc:
                if exc.code == _AUTHENTICATION_FAILED:
                    raise DatabaseAuthFailed(str(exc)) from exc
                time.sleep(0.1)
            except PyMongoError:
                time.sleep(0.1)  # startup only: nothing to wait on but the port
        return False
    finally:
        client.close()


class Database:
    """A connection to the Scriptbox database (embedded SecantusDB or MongoDB)."""

    def __init__(self, uri: str, name: str, *, app_name: str = "scriptbox",
                 credentials: Mapping[str, str] | None = None) -> None:
        """`credentials`: pymongo auth options (the embedded database's), kept out of the URI."""
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            uri,
            appname=app_name,
            tz_aware=False,
            serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            connectTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
            **dict[str, Any](credentials or {}),
        )
        self.db: MongoDatabase[dict[str, Any]] = self.client[name]

    def ping(self) -> None:
        """Raises DatabaseUnavailable when the server does not answer."""
        with translate_db_errors():
            self.client.admin.command("ping")

    def ensure_indexes(self) -> None:
        """Create the indexes every process relies on (idempotent)."""
        with translate_db_errors():
            self.db.script_definitions.create_index("codeIdentifier", unique=True, name="codeIdentifier_unique")
            self.db.script_runs.create_index([("scriptId", 1), ("createdAt", -1)], name="runs_by_script")
            # API tokens are found by the SHA-256 of their secret; names are unique so
            # that the actor "token:<name>" in runs and the audit log is unambiguous.
            self.db.api_tokens.create_index("hash", unique=True, name="token_hash_unique")
            self.db.api_tokens.create_index("name", unique=True, name="token_name_unique")
            # Channel names are unique: the audit log and the admin page name channels by them.
            self.db.notification_channels.create_index("name", unique=True, name="channel_name_unique")
            # One index per filter of GET /api/admin/audit; the unfiltered page walks _id.
            self.db.audit_log.create_index([("action", 1), ("_id", -1)], name="audit_by_action")
            self.db.audit_log.create_index([("targetId", 1), ("_id", -1)], name="audit_by_target")
            self.db.audit_log.create_index([("scriptId", 1), ("_id", -1)], name="audit_by_script")

    def close(self) -> None:
        self.client.close()

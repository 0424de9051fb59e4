"""notification_channels: where Scriptbox reports the end of runs.

A channel document is ``{name, urlSealed, urlMasked, service, events,
scriptIds, enabled, createdAt, updatedAt, lastSentAt, lastError, lastErrorAt}``.
``urlSealed`` is the Apprise URL as the admin gave it (it may hold passwords
and tokens), sealed with the installation's key (scriptbox/secretbox.py) by the
API before it reaches the store, and opened only by the notifier to send.
Answers and audit entries show ``urlMasked``, computed once when the URL is
saved and kept in clear, so listing channels needs neither the key nor URL
parsing. Names are unique (the audit log and the page name channels by them).

A ``url`` field in clear exists only in channels saved by pre-release builds;
a new URL removes it (see `update`), and such a channel's sends fail asking
for the URL again (no release stored one, so there is no migration).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..errors import NotFound, ValidationFailed
from . import Database, iso, parse_object_id, translate_db_errors, utcnow

# lastError is shown in the list; a receiver's whole error page is not.
MAX_ERROR_CHARS = 500


def channel_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a stored channel: the masked URL only, ISO times, ids as hex."""
    return {
        "id": str(doc["_id"]),
        "name": doc["name"],
        "url": doc.get("urlMasked", ""),
        "service": doc.get("service", ""),
        "events": list(doc.get("events", [])),
        "scriptIds": [str(s) for s in doc.get("scriptIds", [])],
        "enabled": bool(doc.get("enabled", True)),
        "createdAt": iso(doc.get("createdAt")),
        "updatedAt": iso(doc.get("updatedAt")),
        "lastSentAt": iso(doc.get("lastSentAt")),
        "lastError": doc.get("lastError"),
        "lastErrorAt": iso(doc.get("lastErrorAt")),
    }


def _duplicate_name() -> ValidationFailed:
    return ValidationFailed("the notification channel is invalid",
                            fields={"name": "another notification channel has this name"},
                            code="duplicate_channel_name", status=409)


class NotificationStore:
    """Reads and writes notification channels."""

    def __init__(self, database: Database) -> None:
        self._channels = database.db.notification_channels

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a channel; raises ValidationFailed (409) when its name is taken."""
        now = utcnow()
        doc = {**fields, "createdAt": now, "updatedAt": now, "lastSentAt": None, "lastError": None,
               "lastErrorAt": None}
        try:
            with translate_db_errors():
                result = self._channels.insert_one(doc)
        except DuplicateKeyError:
            raise _duplicate_name() from None
        doc["_id"] = result.inserted_id
        return doc

    def all(self) -> list[dict[str, Any]]:
        with translate_db_errors():
            return list(self._channels.find({}).sort([("name", 1), ("_id", 1)]))

    def _one(self, channel_id: str, action: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        """`action({"_id": oid})`'s document; raises NotFound for unknown or malformed ids."""
        oid = parse_object_id(channel_id)
        doc = None
        if oid is not None:
            with translate_db_errors():
                doc = action({"_id": oid})
        if doc is None:
            raise NotFound(f"no notification channel with id {channel_id!r}")
        return doc

    def get(self, channel_id: str) -> dict[str, Any]:
        """The stored channel; raises NotFound for unknown or malformed ids."""
        return self._one(channel_id, self._channels.find_one)

    def update(self, channel_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Set `fields` (and updatedAt); returns the new document. Raises NotFound, ValidationFailed (409)."""
        change: dict[str, Any] = {"$set": {**fields, "updatedAt": utcnow()}}
        if "urlSealed" in fields:
            change["$unset"] = {"url": ""}  # a pre-release URL in clear goes with its replacement
        try:
            with translate_db_errors():
                doc = self._channels.find_one_and_update(
                    {"_id": parse_object_id(channel_id)}, change, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            raise _duplicate_name() from None
        if doc is None:
            raise NotFound(f"no notification channel with id {channel_id!r}")
        return doc

    def delete(self, channel_id: str) -> dict[str, Any]:
        """Remove a channel; returns what was removed, raises NotFound."""
        return self._one(channel_id, self._channels.find_one_and_delete)

    def matching(self, status: str, script_id: str | None) -> list[dict[str, Any]]:
        """Enabled channels that want `status` for runs of `script_id` (none listed: every script)."""
        oid = parse_object_id(script_id) if script_id else None
        every_script: dict[str, Any] = {"scriptIds": {"$size": 0}}
        query = {"enabled": True, "events": status,
                 "$or": [every_script, {"scriptIds": oid}] if oid is not None else [every_script]}
        with translate_db_errors():
            return list(self._channels.find(query))

    def record_sent(self, channel_id: ObjectId, at: datetime) -> None:
        with translate_db_errors():
            self._channels.update_one({"_id": channel_id}, {"$set": {"lastSentAt": at}})

    def record_failure(self, channel_id: ObjectId, at: datetime, error: str) -> None:
        with translate_db_errors():
            self._channels.update_one({"_id": channel_id}, {"$set": {
                "lastError": error[:MAX_ERROR_CHARS], "lastErrorAt": at}})

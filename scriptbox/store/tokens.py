"""api_tokens: API tokens, stored only as the SHA-256 of the secret.

A token document is ``{name, scope, scriptIds, expiresAt, createdAt,
lastUsedAt, hash, prefix}``. The secret itself is never stored: ``hash`` is
looked up through a unique index, and ``prefix`` (the first characters of the
token) lets an operator tell tokens apart in the list. Revoking deletes the
document, so every process refuses the token on its next request; the audit
log keeps the record of its life.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from ..errors import NotFound, ValidationFailed
from . import Database, iso, parse_object_id, translate_db_errors, utcnow

# lastUsedAt is written at most this often per token: exact to the minute is
# what an operator needs, and a busy CI job should not cost a write per request.
TOUCH_EVERY = timedelta(seconds=60)


def token_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a stored token: never the hash, ISO times, ids as hex."""
    return {
        "id": str(doc["_id"]),
        "name": doc["name"],
        "scope": doc["scope"],
        "scriptIds": [str(s) for s in doc.get("scriptIds", [])],
        "prefix": doc.get("prefix", ""),
        "createdAt": iso(doc.get("createdAt")),
        "expiresAt": iso(doc.get("expiresAt")),
        "lastUsedAt": iso(doc.get("lastUsedAt")),
    }


class TokenStore:
    """Reads and writes API tokens."""

    def __init__(self, database: Database) -> None:
        self._tokens = database.db.api_tokens

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a token; raises ValidationFailed (409) when its name is taken."""
        doc = {**fields, "createdAt": utcnow(), "lastUsedAt": None}
        try:
            with translate_db_errors():
                result = self._tokens.insert_one(doc)
        except DuplicateKeyError:
            raise ValidationFailed("the token is invalid", fields={"name": "another token has this name"},
                                   code="duplicate_token_name", status=409) from None
        doc["_id"] = result.inserted_id
        return doc

    def list(self) -> list[dict[str, Any]]:
        with translate_db_errors():
            return list(self._tokens.find({}).sort([("createdAt", -1), ("_id", -1)]))

    def get(self, token_id: str) -> dict[str, Any]:
        """The stored token; raises NotFound for unknown or malformed ids."""
        oid = parse_object_id(token_id)
        doc = None
        if oid is not None:
            with translate_db_errors():
                doc = self._tokens.find_one({"_id": oid})
        if doc is None:
            raise NotFound(f"no token with id {token_id!r}")
        return doc

    def by_hash(self, digest: str) -> dict[str, Any] | None:
        with translate_db_errors():
            return self._tokens.find_one({"hash": digest})

    def exists(self, token_id: str) -> bool:
        with translate_db_errors():
            return self._tokens.count_documents({"_id": parse_object_id(token_id)}, limit=1) > 0

    def delete(self, token_id: str) -> dict[str, Any]:
        """Remove a token (revocation); returns what was removed, raises NotFound."""
        oid = parse_object_id(token_id)
        doc = None
        if oid is not None:
            with translate_db_errors():
                doc = self._tokens.find_one_and_delete({"_id": oid})
        if doc is None:
            raise NotFound(f"no token with id {token_id!r}")
        return doc

    def touch(self, token_id: str, now: datetime) -> None:
        """Set lastUsedAt to `now` unless it was set less than TOUCH_EVERY ago."""
        with translate_db_errors():
            self._tokens.update_one(
                {"_id": parse_object_id(token_id),
                 "$or": [{"lastUsedAt": None}, {"lastUsedAt": {"$lt": now - TOUCH_EVERY}}]},
                {"$set": {"lastUsedAt": now}})

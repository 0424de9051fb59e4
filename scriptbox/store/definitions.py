"""script_definitions: CRUD with timestamps set here, never by clients.

Questions about a script's runs (its last run, whether one is active) are
answered by the runs store.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..errors import Conflict, NotFound, ValidationFailed
from ..models import CODE_IDENTIFIER_RE
from . import Database, parse_object_id, translate_db_errors, utcnow

EDIT_CONFLICT_MESSAGE = ("the script was changed by someone else since you loaded it; "
                         "reload it to see their changes, then apply yours again")


def _duplicate_identifier(value: str) -> ValidationFailed:
    return ValidationFailed(
        f"the code identifier {value!r} is already used by another script; choose another",
        fields={"codeIdentifier": f"{value!r} is already used by another script"},
        code="duplicate_code_identifier",
        status=409,
    )


class DefinitionStore:
    """Reads and writes script definitions."""

    def __init__(self, database: Database) -> None:
        self._definitions = database.db.script_definitions

    def search(self, query: str = "", tag: str = "") -> list[dict[str, Any]]:
        """Definitions sorted by name; `query` filters name/codeIdentifier (case-insensitive
        substring), `tag` keeps those carrying that tag (any case)."""
        mongo_filter: dict[str, Any] = {}
        if query:
            pattern = {"$regex": re.escape(query), "$options": "i"}
            mongo_filter = {"$or": [{"name": pattern}, {"codeIdentifier": pattern}]}
        if tag:
            mongo_filter["tags"] = {"$regex": f"^{re.escape(tag)}$", "$options": "i"}
        with translate_db_errors():
            return list(self._definitions.find(mongo_filter).sort([("name", 1), ("_id", 1)]))

    def get(self, definition_id: str) -> dict[str, Any]:
        """The stored document; raises NotFound for unknown or malformed ids."""
        oid = parse_object_id(definition_id)
        doc = None
        if oid is not None:
            with translate_db_errors():
                doc = self._definitions.find_one({"_id": oid})
        if doc is None:
            raise NotFound(f"no script with id {definition_id!r}")
        return doc

    def get_by_code(self, code_identifier: str) -> dict[str, Any]:
        """The stored document with this codeIdentifier; raises NotFound (also for malformed ones)."""
        doc = None
        if CODE_IDENTIFIER_RE.fullmatch(code_identifier):
            with translate_db_errors():
                doc = self._definitions.find_one({"codeIdentifier": code_identifier})
        if doc is None:
            raise NotFound(f"no script with codeIdentifier {code_identifier!r}")
        return doc

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert validated fields; raises 409 when codeIdentifier is taken."""
        now = utcnow()
        doc = {**fields, "createdAt": now, "updatedAt": now}
        try:
            with translate_db_errors():
                result = self._definitions.insert_one(doc)
        except DuplicateKeyError:
            raise _duplicate_identifier(fields["codeIdentifier"]) from None
        doc["_id"] = result.inserted_id
        return doc

    def replace_fields(self, definition_id: ObjectId, fields: dict[str, Any],
                       expected_updated_at: datetime | None = None) -> dict[str, Any]:
        """Store the complete validated fields of an existing definition.

        With `expected_updated_at`, the write happens only if nobody changed the
        definition since then; otherwise raises Conflict (two admins editing).
        """
        condition: dict[str, Any] = {"_id": definition_id}
        if expected_updated_at is not None:
            condition["updatedAt"] = expected_updated_at
        try:
            with translate_db_errors():
                doc = self._definitions.find_one_and_update(
                    condition,
                    {"$set": {**fields, "updatedAt": utcnow()}},
                    return_document=ReturnDocument.AFTER,
                )
        except DuplicateKeyError:
            raise _duplicate_identifier(fields["codeIdentifier"]) from None
        if doc is None:
            if expected_updated_at is not None and self._exists(definition_id):
                raise Conflict(EDIT_CONFLICT_MESSAGE, code="edit_conflict")
            raise NotFound(f"no script with id {str(definition_id)!r}")
        return doc

    def _exists(self, definition_id: ObjectId) -> bool:
        with translate_db_errors():
            return self._definitions.find_one({"_id": definition_id}, projection={"_id": 1}) is not None

    def delete(self, definition_id: str) -> None:
        """Delete a definition (its run history stays); raises NotFound."""
        oid = parse_object_id(definition_id)
        with translate_db_errors():
            deleted = oid is not None and self._definitions.delete_one({"_id": oid}).deleted_count == 1
        if not deleted:
            raise NotFound(f"no script with id {definition_id!r}")

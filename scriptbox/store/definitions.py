"""script_definitions: CRUD with timestamps and versions set here, never by clients.

Every save that changes a definition makes it the next version (`version`,
from 1 at create) and stores that version in script_versions (versions.py).

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
from .versions import VersionStore

# Saves prune old versions every PRUNE_EVERY versions, not each time: a delete is a
# synced write (~40 ms on a busy embedded database), and a script then holds at most
# SCRIPTBOX_KEEP_VERSIONS + PRUNE_EVERY - 1 versions besides those its runs ran.
PRUNE_EVERY = 10
EDIT_CONFLICT_MESSAGE = ("the script was changed by someone else since you loaded it; "
                         "reload it to see their changes, then apply yours again")


def _duplicate_identifier(value: str) -> ValidationFailed:
    return ValidationFailed(
        f"the code identifier {value!r} is already used by another script; choose another",
        fields={"codeIdentifier": f"{value!r} is already used by another script"},
        code="duplicate_code_identifier",
        status=409,
    )


class SavedMeanwhile(Conflict):
    """Someone else saved the definition between reading and writing it: read it again and retry."""

    code = "saved_meanwhile"


class DefinitionStore:
    """Reads and writes script definitions, and writes a version on each save that changes one.

    Write order, and why no version is ever lost: see store/versions.py.
    """

    def __init__(self, database: Database, versions: VersionStore | None = None, keep_versions: int = 0) -> None:
        """`keep_versions`: saves prune to the newest N (plus those runs ran), every
        PRUNE_EVERY versions; 0 keeps all."""
        self._definitions = database.db.script_definitions
        self.versions = versions if versions is not None else VersionStore(database)
        self._keep_versions = keep_versions

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

    def ids(self) -> set[str]:
        """The id of every definition."""
        with translate_db_errors():
            return {str(d["_id"]) for d in self._definitions.find({}, {"_id": 1})}

    def retention_settings(self) -> dict[str, Any]:
        """The stored `retention` of every definition that has one (id hex -> {days, keepRuns})."""
        with translate_db_errors():
            return {str(d["_id"]): d["retention"]
                    for d in self._definitions.find({"retention": {"$ne": None}}, {"retention": 1})}

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

    def create(self, fields: dict[str, Any], actor: str | None = None) -> dict[str, Any]:
        """Insert validated fields as version 1; raises 409 when codeIdentifier is taken."""
        now = utcnow()
        doc = {**fields, "version": 1, "createdAt": now, "updatedAt": now, "updatedBy": actor}
        try:
            with translate_db_errors():
                result = self._definitions.insert_one(doc)
        except DuplicateKeyError:
            raise _duplicate_identifier(fields["codeIdentifier"]) from None
        doc["_id"] = result.inserted_id
        self.versions.record(doc)
        return doc

    def save(self, existing: dict[str, Any], fields: dict[str, Any], expected_updated_at: datetime | None = None,
             actor: str | None = None) -> tuple[dict[str, Any], bool]:
        """Store the complete validated fields of the definition `existing` (as read
        just before) as its next version; returns (the stored definition, whether
        anything changed). Fields equal to the stored ones write nothing.

        The write is conditional on the version read: with `expected_updated_at`
        a definition saved since raises Conflict `edit_conflict` (two admins
        editing), without it SavedMeanwhile (read again and retry). Raises
        NotFound, and 409 when the codeIdentifier is taken.
        """
        existing = self._versioned(existing)
        if all(k in existing and existing[k] == v for k, v in fields.items()):
            return existing, False
        condition: dict[str, Any] = {"_id": existing["_id"], "version": existing["version"]}
        if expected_updated_at is not None:
            condition["updatedAt"] = expected_updated_at
        update = {**fields, "version": existing["version"] + 1, "updatedAt": utcnow(), "updatedBy": actor}
        try:
            with translate_db_errors():
                doc = self._definitions.find_one_and_update(condition, {"$set": update},
                                                            return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:
            raise _duplicate_identifier(fields["codeIdentifier"]) from None
        if doc is None:
            if not self._exists(existing["_id"]):
                raise NotFound(f"no script with id {str(existing['_id'])!r}")
            if expected_updated_at is not None:
                raise Conflict(EDIT_CONFLICT_MESSAGE, code="edit_conflict")
            raise SavedMeanwhile("the script was saved by someone else at the same time; try again")
        self.versions.record(doc)
        if self._keep_versions > 0 and doc["version"] % PRUNE_EVERY == 0:
            self.versions.prune_after_save(str(doc["_id"]), int(doc["version"]), self._keep_versions)
        return doc, True

    def _versioned(self, existing: dict[str, Any]) -> dict[str, Any]:
        """`existing` with its current version stored (written now if a crash or an
        outage lost it, or if it was saved before versions existed: version 1)."""
        if existing.get("version") is None:
            with translate_db_errors():
                self._definitions.update_one({"_id": existing["_id"], "version": {"$exists": False}},
                                             {"$set": {"version": 1}})
                adopted = self._definitions.find_one({"_id": existing["_id"]})
            if adopted is None:
                raise NotFound(f"no script with id {str(existing['_id'])!r}")
            existing = adopted
        # A read, not an insert that fails as a duplicate: a failed write costs as much as a write.
        if not self.versions.has(existing["_id"], int(existing["version"])):
            self.versions.record(existing)
        return existing

    def ensure_versions(self) -> int:
        """At start: store the current version of every definition that lacks it
        (see _versioned); returns how many were written."""
        with translate_db_errors():
            unversioned = list(self._definitions.find({"version": {"$exists": False}}))
        for doc in unversioned:
            self._versioned(doc)
        with translate_db_errors():
            current = {doc["_id"]: int(doc["version"]) for doc in self._definitions.find({}, {"version": 1})}
            missing = self.versions.missing(current)
            docs = list(self._definitions.find({"_id": {"$in": missing}})) if missing else []
        return len(unversioned) + sum(self.versions.record(doc) for doc in docs)

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

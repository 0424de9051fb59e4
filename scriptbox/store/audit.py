"""audit_log: an append-only record of who did what.

Entries are ``{at, actor, action, targetType, targetId, summary, details,
remoteAddr}``. This store only inserts and reads: nothing in Scriptbox updates
or deletes an entry. Pages are ordered by ``_id`` (newest first); ObjectIds
grow with time, so the id of the last entry of a page is the cursor of the next.
"""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from . import Database, iso, translate_db_errors, utcnow


def audit_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "at": iso(doc.get("at")),
        "actor": doc.get("actor"),
        "action": doc.get("action"),
        "targetType": doc.get("targetType"),
        "targetId": doc.get("targetId"),
        "summary": doc.get("summary", ""),
        "details": doc.get("details", {}),
        "remoteAddr": doc.get("remoteAddr"),
        "scriptId": doc.get("scriptId", doc.get("targetId") if doc.get("targetType") == "script" else None),
    }


class AuditStore:
    """Appends to and pages through the audit log."""

    def __init__(self, database: Database) -> None:
        self._entries = database.db.audit_log

    @staticmethod
    def stamped(entry: dict[str, Any]) -> dict[str, Any]:
        """The entry with its id and time fixed now (its place in the log), for an append later."""
        return {"_id": ObjectId(), "at": utcnow(), **entry}

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Insert the entry; one with its own `_id` (written again after a failure) is inserted once."""
        doc = {"at": utcnow(), **entry}
        with translate_db_errors():
            try:
                result = self._entries.insert_one(doc)
            except DuplicateKeyError:
                if "_id" not in entry:
                    raise
                return doc  # an earlier attempt landed after all
        doc["_id"] = result.inserted_id
        return doc

    def page(self, *, action: str | None, target_id: str | None, script_id: str | None,
             before: ObjectId | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Entries newest first and the cursor of the next page (None on the last page)."""
        query: dict[str, Any] = {}
        if action:
            # "run" means every run.* action (an anchored prefix still uses the index).
            query["action"] = action if "." in action else {"$regex": "^" + re.escape(action) + r"\."}
        if target_id:
            query["targetId"] = target_id
        if script_id:
            # A script's own entries name it as their target; run entries carry it as scriptId.
            query["$or"] = [{"targetId": script_id}, {"scriptId": script_id}]
        if before is not None:
            query["_id"] = {"$lt": before}
        with translate_db_errors():
            docs = list(self._entries.find(query).sort("_id", -1).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (str(docs[-1]["_id"]) if more and docs else None)

"""script_versions: every saved state of a definition, immutable.

A version is ``{scriptId, n, at, actor, definition}``: the definition's fields
exactly as they were stored at version ``n`` (ids, timestamps and bookkeeping
left out; secret values, once there are any, stay as stored, i.e. encrypted),
when and by whom it was saved. ``(scriptId, n)`` is unique.

Write order (store/definitions.py): the definition is written first, with its
new ``version``, ``updatedAt`` and ``updatedBy`` in one conditional update;
the version document is written after it, built from nothing but that
definition. A crash between the two leaves a definition whose newest version
document is missing, never a version that was not applied; and since every
change of a definition bumps its ``version``, the definition still *is* that
version until the next save, which (like the start of ``serve``) writes the
missing document first. Writing a version is idempotent: the unique key turns
a second write of the same ``(scriptId, n)`` into a no-op.

Nothing else ever changes a version; ``prune_versions`` removes old ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import DuplicateKeyError

from ..errors import NotFound
from . import Database, parse_object_id, translate_db_errors

# Fields of a stored definition that are not part of what it defines.
BOOKKEEPING_FIELDS = frozenset({"_id", "createdAt", "updatedAt", "updatedBy", "version", "scheduleState"})


def definition_body(definition: Mapping[str, Any]) -> dict[str, Any]:
    """What a version keeps of a stored definition: every field but the bookkeeping ones."""
    return {k: v for k, v in definition.items() if k not in BOOKKEEPING_FIELDS}


class VersionStore:
    """Writes, reads and prunes the versions of script definitions."""

    def __init__(self, database: Database) -> None:
        self._versions = database.db.script_versions
        # Read only, for the versions runs still point to (meta.version).
        self._runs = database.db.script_runs

    def record(self, definition: Mapping[str, Any]) -> bool:
        """Store the version a saved definition is at; False when it was stored already."""
        doc = {"scriptId": definition["_id"], "n": int(definition["version"]), "at": definition["updatedAt"],
               "actor": definition.get("updatedBy"), "definition": definition_body(definition)}
        try:
            with translate_db_errors():
                self._versions.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    def has(self, script_id: Any, n: int) -> bool:
        """Whether version n of the script (its ObjectId) is stored."""
        with translate_db_errors():
            return self._versions.find_one({"scriptId": script_id, "n": n}, {"_id": 1}) is not None

    def missing(self, current: Mapping[Any, int]) -> list[Any]:
        """Of {script ObjectId: its current version}, the scripts whose version is not stored."""
        if not current:
            return []
        with translate_db_errors():
            stored = {(v["scriptId"], v["n"]) for v in self._versions.find(
                {"scriptId": {"$in": list(current)}}, {"scriptId": 1, "n": 1})}
        return [sid for sid, n in current.items() if (sid, n) not in stored]

    def page(self, script_id: str, limit: int, before: int | None) -> tuple[list[dict[str, Any]], int | None]:
        """Versions newest first without their definitions, and the `before` of the next page (or None)."""
        oid = parse_object_id(script_id)
        if oid is None:
            return [], None
        query: dict[str, Any] = {"scriptId": oid}
        if before is not None:
            query["n"] = {"$lt": before}
        with translate_db_errors():
            docs = list(self._versions.find(query, {"definition": 0}).sort("n", DESCENDING).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (int(docs[-1]["n"]) if more and docs else None)

    def get(self, script_id: str, n: int) -> dict[str, Any]:
        """One whole version; raises NotFound."""
        oid = parse_object_id(script_id)
        doc = None
        if oid is not None:
            with translate_db_errors():
                doc = self._versions.find_one({"scriptId": oid, "n": n})
        if doc is None:
            raise NotFound(f"script {script_id!r} has no version {n}")
        return doc

    def script_ids(self) -> list[str]:
        """Every script that has stored versions, deleted scripts included."""
        with translate_db_errors():
            return [str(oid) for oid in self._versions.distinct("scriptId")]

    def has_any(self, script_id: str) -> bool:
        oid = parse_object_id(script_id)
        if oid is None:
            return False
        with translate_db_errors():
            return self._versions.find_one({"scriptId": oid}, {"_id": 1}) is not None

    def referenced_versions(self, script_id: str, among: Collection[int] | None = None) -> set[int]:
        """The versions that stored runs of this script ran (their meta.version), or those of `among`."""
        oid = parse_object_id(script_id)
        if oid is None:
            return set()
        query: dict[str, Any] = {"scriptId": oid}
        if among is not None:
            query["meta.version"] = {"$in": sorted(among)}
        with translate_db_errors():
            values = self._runs.distinct("meta.version", query)
        return {int(v) for v in values if isinstance(v, int)}

    def prune_after_save(self, script_id: str, current: int, keep_newest: int) -> int:
        """What a save prunes: versions older than the newest `keep_newest` that no run
        ran. Only those candidates are looked up among the runs, so a save does not
        read every run of a busy script."""
        oid = parse_object_id(script_id)
        if oid is None or current <= keep_newest:
            return 0
        with translate_db_errors():
            candidates = [int(v["n"]) for v in self._versions.find(
                {"scriptId": oid, "n": {"$lte": current - keep_newest}}, {"n": 1})]
        if not candidates:
            return 0
        return self.prune_versions(script_id, keep_newest, self.referenced_versions(script_id, among=candidates))

    def prune_versions(self, script_id: str, keep_newest: int, referenced_versions: Collection[int],
                       older_than: datetime | None = None) -> int:
        """Delete versions of a script except the newest `keep_newest` and those in
        `referenced_versions` (and, with `older_than`, those saved since then);
        returns how many were deleted.

        On save: the setting SCRIPTBOX_KEEP_VERSIONS and the versions of the
        script's runs. For a deleted script whose runs are all gone: 0 and an
        empty set, which deletes them all.
        """
        oid = parse_object_id(script_id)
        if oid is None:
            return 0
        query: dict[str, Any] = {"scriptId": oid, "n": {"$nin": sorted(referenced_versions)}}
        if keep_newest > 0:
            with translate_db_errors():
                kept = list(self._versions.find({"scriptId": oid}, {"n": 1}).sort("n", DESCENDING)
                            .skip(keep_newest - 1).limit(1))
            if not kept:
                return 0  # no more than keep_newest versions
            query["n"]["$lt"] = int(kept[0]["n"])
        if older_than is not None:
            query["at"] = {"$lt": older_than}
        with translate_db_errors():
            return int(self._versions.delete_many(query).deleted_count)


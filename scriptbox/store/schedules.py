"""Schedule persistence: who owns a due time, and what happened to it.

`schedule_firings` holds one document per (scriptId, scheduledFor) under a
unique index. Inserting it is how a process claims a due time: however many
`serve` processes share the database, exactly one insert succeeds, and only
that process starts (or skips, or records as missed) that due time. The
document then says what became of it: `fired` (the run carries meta.scheduledFor), `skipped`
(overlap) or `missed` (no server was running; `count` due times at once).

What the script's page shows (last fired/skipped/missed, counts) is kept on
the definition in `scheduleState`, updated with $inc/$max by the claiming
process only, so the counts are exact too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from ..vocabulary import ACTIVE_STATUSES
from . import Database, translate_db_errors, utcnow

FIRED, SKIPPED, MISSED = "fired", "skipped", "missed"
# How the scheduler holds a script's id without importing bson itself.
ScriptKey = ObjectId
_STATE_TIME = {FIRED: "lastFiredAt", SKIPPED: "lastSkippedAt", MISSED: "lastMissedAt"}
_STATE_COUNT = {FIRED: "firedCount", SKIPPED: "skippedCount", MISSED: "missedCount"}
# Only what the scheduler needs of a definition.
_PROJECTION = {"schedule": 1, "enabled": 1, "updatedAt": 1, "createdAt": 1, "scheduleState": 1}


def _naive_utc(value: datetime) -> datetime:
    """BSON dates are naive UTC here (tz_aware=False); compare like with like."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


class ScheduleStore:
    """Claims due times and records their outcome."""

    def __init__(self, database: Database) -> None:
        self._firings = database.db.schedule_firings
        self._definitions = database.db.script_definitions
        self._runs = database.db.script_runs

    def ensure_indexes(self) -> None:
        with translate_db_errors():
            self._firings.create_index([("scriptId", ASCENDING), ("scheduledFor", ASCENDING)], unique=True,
                                       name="one_firing_per_due_time")
            self._firings.create_index([("at", DESCENDING)], name="firings_newest_first")

    def scheduled_definitions(self) -> list[dict[str, Any]]:
        """Enabled definitions with an enabled schedule (only the fields a scheduler needs)."""
        with translate_db_errors():
            return list(self._definitions.find(
                {"enabled": {"$ne": False}, "schedule.enabled": True, "schedule.cron": {"$type": "string"}},
                projection=_PROJECTION))

    def changed_since(self, since: datetime) -> list[dict[str, Any]]:
        """Definitions saved at or after `since`, scheduled or not (a schedule may have been removed)."""
        with translate_db_errors():
            return list(self._definitions.find({"updatedAt": {"$gte": _naive_utc(since)}}, projection=_PROJECTION))

    def definition(self, script_id: ObjectId) -> dict[str, Any] | None:
        with translate_db_errors():
            return self._definitions.find_one({"_id": script_id}, projection=_PROJECTION)

    def claim(self, script_id: ObjectId, scheduled_for: datetime, result: str, executor_id: str,
              count: int = 1) -> ObjectId | None:
        """Claim a due time with its outcome; the firing's id, or None when another process has it."""
        doc = {"scriptId": script_id, "scheduledFor": _naive_utc(scheduled_for), "result": result,
               "count": count, "at": utcnow(), "by": executor_id, "runId": None}
        try:
            with translate_db_errors():
                return self._firings.insert_one(doc).inserted_id
        except DuplicateKeyError:
            return None

    def set_outcome(self, firing_id: ObjectId, result: str, run_id: ObjectId | None = None,
                    reason: str | None = None) -> None:
        """Correct a claimed firing's outcome (e.g. fired -> skipped) and link its run."""
        with translate_db_errors():
            self._firings.update_one({"_id": firing_id},
                                     {"$set": {"result": result, "runId": run_id, "reason": reason}})

    def note(self, script_id: ObjectId, result: str, scheduled_for: datetime, count: int = 1) -> None:
        """Add an outcome to the definition's `scheduleState` (counts and last times)."""
        due = _naive_utc(scheduled_for)
        with translate_db_errors():
            self._definitions.update_one({"_id": script_id}, {
                "$inc": {f"scheduleState.{_STATE_COUNT[result]}": count},
                "$max": {f"scheduleState.{_STATE_TIME[result]}": due, "scheduleState.lastScheduledFor": due},
            })

    def newest_active_run(self, script_id: ObjectId) -> ObjectId | None:
        """The newest queued or running run of a script, if any."""
        with translate_db_errors():
            doc = self._runs.find_one({"scriptId": script_id, "status": {"$in": list(ACTIVE_STATUSES)}},
                                      projection={"_id": 1}, sort=[("createdAt", DESCENDING)])
        return None if doc is None else doc["_id"]

    def is_active(self, run_id: ObjectId) -> bool:
        with translate_db_errors():
            return self._runs.find_one({"_id": run_id, "status": {"$in": list(ACTIVE_STATUSES)}},
                                       projection={"_id": 1}) is not None

    def release(self, run_id: ObjectId, waits_for: ObjectId) -> None:
        """Let a run queued behind `waits_for` be claimed (that run has already ended)."""
        with translate_db_errors():
            self._runs.update_one({"_id": run_id, "waitsFor": waits_for}, {"$set": {"waitsFor": None}})

    def recent_firings(self, script_id: ObjectId, limit: int = 20) -> list[dict[str, Any]]:
        with translate_db_errors():
            return list(self._firings.find({"scriptId": script_id}).sort("scheduledFor", DESCENDING).limit(limit))

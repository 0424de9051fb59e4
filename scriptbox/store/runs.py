"""script_runs and script_run_output: the run engine's persistence.

Every status change is a conditional update whose result is checked: a queued
run is claimed by exactly one executor, a running run is finished only by the
executor that holds it (or by recovery when that executor is gone), and a
finished run never changes again.

Internal fields (never shown by the API):
- `executor`: {id, host, pid} of the process executing the run;
- `leaseUntil`: the executor renews it while it runs; a lapsed lease means the
  executor is gone (for browser runs: the deadline for the page's result);
- `cancelRequested`: set by POST /cancel, read by the executor;
- `procStart`: start time (clock ticks) of the main process, so recovery never
  signals a reused pid.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from ..models import ACTIVE_STATUSES, FINISHED_STATUSES, RUN_STATUSES
from . import Database, iso, parse_object_id, translate_db_errors, utcnow

FINISHED = FINISHED_STATUSES
ACTIVE = ACTIVE_STATUSES
STATUSES = RUN_STATUSES
_DUPLICATE_KEY = 11000

META_DEFAULTS: dict[str, Any] = {
    "node": None,
    "pid": None,
    "signal": None,
    "error": None,
    "outputBytes": 0,
    "logTruncated": False,
    "requestedBy": None,
}


def run_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a run (SPEC §2/§3): `id` hex, ISO times, no internals."""
    meta = {**META_DEFAULTS, **(doc.get("meta") or {})}
    return {
        "id": str(doc["_id"]),
        "scriptId": str(doc["scriptId"]) if doc.get("scriptId") is not None else None,
        "status": doc["status"],
        "trigger": doc.get("trigger"),
        "createdAt": iso(doc.get("createdAt")),
        "startedAt": iso(doc.get("startedAt")),
        "finishedAt": iso(doc.get("finishedAt")),
        "exitCode": doc.get("exitCode"),
        "outputTail": doc.get("outputTail", ""),
        "meta": meta,
    }


def encode_cursor(doc: dict[str, Any]) -> str:
    """Opaque `before` cursor: the position of `doc` in newest-first order."""
    created: datetime = doc["createdAt"]
    millis = int((created - datetime(1970, 1, 1, tzinfo=created.tzinfo)).total_seconds() * 1000)
    raw = f"{millis}:{doc['_id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, ObjectId] | None:
    """The (createdAt, _id) of a cursor, or None when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis_text, oid_text = raw.split(":", 1)
        millis = int(millis_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    oid = parse_object_id(oid_text)
    if oid is None or not 0 <= millis < 2**42:
        return None
    return datetime(1970, 1, 1) + timedelta(milliseconds=millis), oid


RunListener = Callable[[dict[str, Any]], None]


class RunStore:
    """Reads and writes runs and their output chunks.

    `on_claimed` / `on_finished` are told of each successful claim and finish
    (the metrics): every transition passes through here exactly once.
    """

    def __init__(self, database: Database, *, on_claimed: RunListener | None = None,
                 on_finished: RunListener | None = None) -> None:
        self.runs = database.db.script_runs
        self.chunks = database.db.script_run_output
        self._on_claimed = on_claimed
        self._on_finished = on_finished

    def ensure_indexes(self) -> None:
        with translate_db_errors():
            self.runs.create_index([("status", ASCENDING), ("createdAt", ASCENDING)], name="runs_by_status")
            self.runs.create_index([("createdAt", DESCENDING), ("_id", DESCENDING)], name="runs_newest_first")
            self.chunks.create_index([("runId", ASCENDING), ("seq", ASCENDING)], unique=True, name="chunk_seq")

    # -- runs ---------------------------------------------------------------

    def insert(self, doc: dict[str, Any]) -> dict[str, Any]:
        with translate_db_errors():
            result = self.runs.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    def get(self, run_id: str | ObjectId) -> dict[str, Any] | None:
        oid = run_id if isinstance(run_id, ObjectId) else parse_object_id(run_id)
        if oid is None:
            return None
        with translate_db_errors():
            return self.runs.find_one({"_id": oid})

    def claim_next(self, executor: dict[str, Any], lease_s: float) -> dict[str, Any] | None:
        """Atomically take the oldest queued run (FIFO); None when none is left."""
        now = utcnow()
        with translate_db_errors():
            doc = self.runs.find_one_and_update(
                {"status": "queued"},
                {"$set": {
                    "status": "running",
                    "startedAt": now,
                    "executor": executor,
                    "leaseUntil": now + timedelta(seconds=lease_s),
                    "meta.node": executor["host"],
                }},
                sort=[("createdAt", ASCENDING), ("_id", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
        if doc is not None and self._on_claimed is not None:
            self._on_claimed(doc)
        return doc

    def update_running(self, run_id: ObjectId, executor_id: str, fields: dict[str, Any]) -> bool:
        """Set fields on a run this executor still holds; False if it does not."""
        with translate_db_errors():
            result = self.runs.update_one(
                {"_id": run_id, "status": "running", "executor.id": executor_id}, {"$set": fields}
            )
        return result.matched_count == 1

    def finish(
        self,
        run_id: ObjectId,
        status: str,
        fields: dict[str, Any],
        expect: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Move an active run to a final status; None if `expect` no longer holds.

        `expect` narrows the condition (e.g. {"status": "running",
        "executor.id": me}); a finished run never matches because every
        caller's condition names an active status.
        """
        assert status in FINISHED
        assert expect.get("status") in ACTIVE, "a finish must be conditional on an active status"
        cond = {"_id": run_id, **expect}
        update = {"$set": {"status": status, "finishedAt": utcnow(), **fields},
                  "$unset": {"leaseUntil": "", "cancelRequested": ""}}
        with translate_db_errors():
            doc = self.runs.find_one_and_update(cond, update, return_document=ReturnDocument.AFTER)
        if doc is not None and self._on_finished is not None:
            self._on_finished(doc)
        return doc

    def request_cancel(self, run_id: ObjectId) -> dict[str, Any] | None:
        """Flag a running run for cancel; None if it is not running."""
        with translate_db_errors():
            return self.runs.find_one_and_update(
                {"_id": run_id, "status": "running"},
                {"$set": {"cancelRequested": True}},
                return_document=ReturnDocument.AFTER,
            )

    def claim_browser_result(self, run_id: ObjectId) -> bool:
        """Reserve the right to record a browser run's result (once only)."""
        with translate_db_errors():
            doc = self.runs.find_one_and_update(
                {"_id": run_id, "status": "running", "meta.node": "browser", "browserResult": {"$exists": False}},
                {"$set": {"browserResult": True}},
            )
        return doc is not None

    def cancel_requested(self, run_ids: Iterable[ObjectId]) -> list[ObjectId]:
        ids = list(run_ids)
        if not ids:
            return []
        with translate_db_errors():
            return [d["_id"] for d in self.runs.find(
                {"_id": {"$in": ids}, "status": "running", "cancelRequested": True}, {"_id": 1})]

    def renew_leases(self, run_ids: Iterable[ObjectId], executor_id: str, lease_s: float) -> None:
        ids = list(run_ids)
        if not ids:
            return
        with translate_db_errors():
            self.runs.update_many(
                {"_id": {"$in": ids}, "status": "running", "executor.id": executor_id},
                {"$set": {"leaseUntil": utcnow() + timedelta(seconds=lease_s)}},
            )

    def count_active(self) -> dict[str, int]:
        """How many runs are queued and running (all processes)."""
        with translate_db_errors():
            rows = self.runs.aggregate([{"$match": {"status": {"$in": list(ACTIVE)}}},
                                        {"$group": {"_id": "$status", "n": {"$sum": 1}}}])
            counts = {str(row["_id"]): int(row["n"]) for row in rows}
        return {status: counts.get(status, 0) for status in ACTIVE}

    def lapsed(self, now: datetime) -> list[dict[str, Any]]:
        """Running runs whose lease (or browser deadline) has passed."""
        with translate_db_errors():
            return list(self.runs.find({"status": "running", "leaseUntil": {"$lt": now}}))

    def running_on_host(self, host: str) -> list[dict[str, Any]]:
        with translate_db_errors():
            return list(self.runs.find({"status": "running", "executor.host": host}))

    def update_progress(self, updates: dict[ObjectId, dict[str, Any]]) -> None:
        """One bulk write with the tail/byte counters of many running runs."""
        if not updates:
            return
        ops = [UpdateOne({"_id": rid, "status": "running"}, {"$set": fields}) for rid, fields in updates.items()]
        with translate_db_errors():
            self.runs.bulk_write(ops, ordered=False)

    def page(
        self,
        script_id: ObjectId | None,
        statuses: list[str] | None,
        limit: int,
        before: tuple[datetime, ObjectId] | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, and the cursor for the next page (or None)."""
        query: dict[str, Any] = {}
        if script_id is not None:
            query["scriptId"] = script_id
        if statuses:
            query["status"] = statuses[0] if len(statuses) == 1 else {"$in": statuses}
        if before is not None:
            created, oid = before
            query["$or"] = [{"createdAt": {"$lt": created}}, {"createdAt": created, "_id": {"$lt": oid}}]
        with translate_db_errors():
            docs = list(self.runs.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)]).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, (encode_cursor(docs[-1]) if more and docs else None)

    # -- output chunks ------------------------------------------------------

    def insert_chunks(self, docs: list[dict[str, Any]]) -> None:
        """Insert chunks of any runs in one bulk write; re-inserts are ignored.

        A retry after a lost reply may find some chunks already stored; the
        unique (runId, seq) index makes that harmless.
        """
        if not docs:
            return
        try:
            with translate_db_errors():
                self.chunks.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise

    def chunks_after(self, run_id: ObjectId, after_seq: int, batch: int = 500) -> Iterator[dict[str, Any]]:
        """Stored chunks with seq > after_seq, in order, fetched page by page."""
        last = after_seq
        while True:
            with translate_db_errors():
                page = list(self.chunks.find(
                    {"runId": run_id, "seq": {"$gt": last}},
                    {"_id": 0, "seq": 1, "stream": 1, "data": 1, "system": 1},
                ).sort("seq", ASCENDING).limit(batch))
            yield from page
            if len(page) < batch:
                return
            last = page[-1]["seq"]

"""script_runs and script_run_output: the run engine's persistence.

Every status change is a conditional update whose result is checked: a queued
run is claimed by exactly one executor, a running run is finished only by the
executor that holds it (or by the watchdog when that executor is gone), and a
finished run never changes again. Callers pass typed records
(scriptbox/store/records.py) and run ids as hex strings; the conditions, field
paths and ObjectIds stay in here.

Internal fields (never shown by the API):
- `executor`: {id, host, pid, start} of the process executing the run;
- `leaseUntil`: the executor renews it while it runs; a lapsed lease means the
  executor is gone (for browser runs: the deadline for the page's result);
- `cancelRequested`: set by POST /cancel, read by the executor;
- `browserResult`: set once the page's result for a browser run is being recorded;
- `procStart`: start time (clock ticks) of the main process, so recovery never
  signals a reused pid;
- `secretParams`: the run's secret parameter values, sealed (secretbox.py),
  until the run ends: every finish removes them.
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

from ..vocabulary import ACTIVE_STATUSES, BROWSER_NODE, FINISHED_STATUSES
from . import Database, parse_object_id, translate_db_errors, utcnow
from .last_runs import LastRuns
from .records import Chunk, Executor, NewRun, OutputTotals, RunEnd, Snapshot

_DUPLICATE_KEY = 11000

META_DEFAULTS: dict[str, Any] = {
    "node": None,
    "pid": None,
    "signal": None,
    "error": None,
    "outputBytes": 0,
    "logTruncated": False,
    "requestedBy": None,
    "version": None,
    "executor": None,
}

# A browser run whose result may still be recorded (or canceled).
_OPEN_BROWSER_RUN = {"status": "running", "meta.node": BROWSER_NODE, "browserResult": {"$exists": False}}


def _oid(run_id: str | ObjectId) -> ObjectId | None:
    return run_id if isinstance(run_id, ObjectId) else parse_object_id(run_id)


def _output_fields(totals: OutputTotals) -> dict[str, Any]:
    return {"outputTail": totals.tail, "meta.outputBytes": totals.output_bytes,
            "meta.logTruncated": totals.truncated}


def _end_fields(end: RunEnd) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": end.status, "finishedAt": utcnow(), "exitCode": end.exit_code,
                              "meta.error": end.error, "meta.signal": end.signal}
    if end.output is not None:
        fields.update(_output_fields(end.output))
    return fields


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


def _chunk(run_id: str, doc: dict[str, Any], after_seq: int, at: datetime | None = None) -> Chunk:
    """A stored chunk without the pieces it holds up to `after_seq` (a reader resuming inside it)."""
    data, seq, parts = doc["data"], doc["seq"], doc.get("parts")
    if parts:
        # Its pieces are seq - len(parts) + 1 ... seq; skip those up to after_seq.
        seen = after_seq - (seq - len(parts))
        if seen > 0:
            data = data[sum(parts[:seen]):]
    return Chunk(run_id, seq, doc["stream"], data, bool(doc.get("system")), at)


class _ChunkStore:
    """A run's output chunks (part of RunStore): stored in bulk, read back in order."""

    chunks: Any  # the script_run_output collection, set by RunStore

    def add_chunks(self, chunks: list[Chunk]) -> None:
        """Store chunks of any runs in one bulk write; re-inserts are ignored.

        A retry after a lost reply may find some chunks already stored; the
        unique (runId, seq) index makes that harmless.
        """
        if not chunks:
            return
        now = utcnow()
        docs: list[dict[str, Any]] = []
        for c in chunks:
            doc: dict[str, Any] = {"runId": ObjectId(c.run_id), "seq": c.seq, "stream": c.stream, "data": c.data,
                                   "createdAt": c.at or now}
            if c.system:
                doc["system"] = True
            if len(c.parts) > 1:
                doc["parts"] = list(c.parts)
            docs.append(doc)
        try:
            with translate_db_errors():
                self.chunks.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != _DUPLICATE_KEY for e in errors):
                raise

    def chunk_page(self, run_id: str, after_seq: int, limit: int) -> list[Chunk]:
        """Up to `limit` stored chunks with seq > after_seq, in order, with the time each was stored."""
        oid = _oid(run_id)
        if oid is None:
            return []
        with translate_db_errors():
            page = list(self.chunks.find(
                {"runId": oid, "seq": {"$gt": after_seq}},
                {"_id": 0, "seq": 1, "stream": 1, "data": 1, "system": 1, "createdAt": 1, "parts": 1},
            ).sort("seq", ASCENDING).limit(limit))
        return [_chunk(run_id, d, after_seq, d.get("createdAt")) for d in page]

    def chunks_after(self, run_id: str, after_seq: int, batch: int = 500) -> Iterator[Chunk]:
        """Stored chunks with seq > after_seq, in order, fetched page by page."""
        oid = _oid(run_id)
        if oid is None:
            return
        last = after_seq
        while True:
            with translate_db_errors():
                page = list(self.chunks.find(
                    {"runId": oid, "seq": {"$gt": last}},
                    {"_id": 0, "seq": 1, "stream": 1, "data": 1, "system": 1, "parts": 1},
                ).sort("seq", ASCENDING).limit(batch))
            for d in page:
                yield _chunk(run_id, d, last)
            if len(page) < batch:
                return
            last = page[-1]["seq"]


def _new_run_doc(new: NewRun, now: datetime) -> dict[str, Any]:
    """The document RunStore.create inserts for `new`."""
    doc: dict[str, Any] = {
        "scriptId": ObjectId(new.script_id),
        "status": "queued",
        "trigger": new.trigger,
        "createdAt": now,
        "startedAt": None,
        "finishedAt": None,
        "exitCode": None,
        "outputTail": "",
        "params": dict(new.params),
        "meta": {**META_DEFAULTS, "snapshot": new.snapshot.to_doc(), "version": new.snapshot.version,
                 "requestedBy": new.requested_by, **new.meta},
    }
    if new.sealed_params:
        doc["secretParams"] = dict(new.sealed_params)
    if new.waits_for is not None:
        doc["waitsFor"] = ObjectId(new.waits_for)  # schedule overlap `queue`: see claim_next
    if new.browser_time is not None:
        doc.update(status="running", startedAt=now, leaseUntil=now + new.browser_time)
        doc["meta"]["node"] = BROWSER_NODE
    elif new.claim is not None:
        doc.update(status="running", startedAt=now, executor=new.claim.executor.to_doc(),
                   leaseUntil=now + new.claim.lease)
        doc["meta"].update(node=new.claim.executor.host, executor=new.claim.executor.id)  # as claim_next sets them
    return doc


class RunStore(_ChunkStore):
    """Reads and writes runs and their output chunks.

    `on_claimed` / `on_finished` are told of each successful claim and finish
    (the metrics): every transition passes through here exactly once.
    """

    def __init__(self, database: Database, *, on_claimed: RunListener | None = None,
                 on_finished: RunListener | None = None) -> None:
        self.runs = database.db.script_runs
        self.chunks = database.db.script_run_output
        self.last = LastRuns(database)
        self._on_claimed = on_claimed
        self._on_finished = on_finished

    def ensure_indexes(self) -> None:
        with translate_db_errors():
            self.runs.create_index([("status", ASCENDING), ("createdAt", ASCENDING)], name="runs_by_status")
            self.runs.create_index([("createdAt", DESCENDING), ("_id", DESCENDING)], name="runs_newest_first")
            self.chunks.create_index([("runId", ASCENDING), ("seq", ASCENDING)], unique=True, name="chunk_seq")
            # FinishedRuns (retention) and the run-events feed (runs finished since
            # its last look): finished runs by age, overall and per script.
            self.runs.create_index([("finishedAt", ASCENDING)], name="runs_by_finished")
            self.runs.create_index([("scriptId", ASCENDING), ("finishedAt", ASCENDING)], name="runs_finished_by_script")

    # -- creating and reading runs ------------------------------------------

    def create(self, new: NewRun, on_inserted: RunListener | None = None) -> dict[str, Any]:
        """Insert a run (queued; running for a browser run or a claimed one); returns the document.

        A claimed run (`new.claim`) is inserted running, held by its executor
        with a lease, exactly as claim_next would leave it: no other executor
        can ever take it, since claims match only queued runs. `on_inserted`
        is told of the stored document before the script's last-run summary
        is updated, so the executor can start it without waiting for that.
        """
        doc = _new_run_doc(new, utcnow())
        with translate_db_errors():
            result = self.runs.insert_one(doc)
        doc["_id"] = result.inserted_id
        if on_inserted is not None:
            on_inserted(doc)
        if new.claim is not None:
            if self._on_claimed is not None:
                self._on_claimed(doc)
            # Its start need not wait for the summary; this process still reads it (last_runs.py).
            self.last.created_soon(doc)
        else:
            # Another process may claim a queued run at once, and its summary must come first.
            self.last.created(doc)
        return doc

    def get(self, run_id: str | ObjectId) -> dict[str, Any] | None:
        oid = _oid(run_id)
        if oid is None:
            return None
        with translate_db_errors():
            return self.runs.find_one({"_id": oid})

    def has_active_run(self, script_id: str) -> bool:
        """Whether a run of this script is queued or running."""
        oid = _oid(script_id)
        if oid is None:
            return False
        with translate_db_errors():
            return self.runs.find_one({"scriptId": oid, "status": {"$in": list(ACTIVE_STATUSES)}},
                                      projection={"_id": 1}) is not None

    def last_runs(self, script_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The newest run of each script (id hex -> {id, status, createdAt, finishedAt})."""
        oids = [oid for oid in map(_oid, script_ids) if oid is not None]
        return self.last.of(oids) if oids else {}

    def running_on_host(self, host: str) -> list[dict[str, Any]]:
        with translate_db_errors():
            return list(self.runs.find({"status": "running", "executor.host": host}))

    def lapsed(self, now: datetime) -> list[dict[str, Any]]:
        """Running runs whose lease (or browser deadline) has passed."""
        with translate_db_errors():
            return list(self.runs.find({"status": "running", "leaseUntil": {"$lt": now}}))

    # -- executing ----------------------------------------------------------

    def claim_next(self, executor: Executor, lease_s: float) -> dict[str, Any] | None:
        """Atomically take the oldest queued run (FIFO); None when none is left."""
        now = utcnow()
        with translate_db_errors():
            doc = self.runs.find_one_and_update(
                # A run queued behind another of its script (schedule overlap
                # `queue`) waits until finish() releases it.
                {"status": "queued", "waitsFor": None},
                {"$set": {
                    "status": "running",
                    "startedAt": now,
                    "executor": executor.to_doc(),
                    "leaseUntil": now + timedelta(seconds=lease_s),
                    "meta.node": executor.host,
                    "meta.executor": executor.id,
                }},
                sort=[("createdAt", ASCENDING), ("_id", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
        if doc is not None:
            if self._on_claimed is not None:  # before another round trip, as in _finish
                self._on_claimed(doc)
            self.last.changed(doc)
        return doc

    def note_started(self, run_id: str, executor_id: str, snapshot: Snapshot,
                     pid: int | None = None, proc_start: int | None = None) -> bool:
        """Record what a run executes (and its main process, once started);
        False if this executor no longer holds the run."""
        # The definition was read again at the claim: this is the version that runs.
        fields: dict[str, Any] = {"meta.snapshot": snapshot.to_doc(), "meta.version": snapshot.version}
        if pid is not None:
            fields.update({"meta.pid": pid, "procStart": proc_start})
        with translate_db_errors():
            result = self.runs.update_one(
                {"_id": ObjectId(run_id), "status": "running", "executor.id": executor_id}, {"$set": fields})
        return result.matched_count == 1

    def renew_leases(self, run_ids: Iterable[str], executor_id: str, lease_s: float) -> None:
        ids = [ObjectId(r) for r in run_ids]
        if not ids:
            return
        with translate_db_errors():
            self.runs.update_many(
                {"_id": {"$in": ids}, "status": "running", "executor.id": executor_id},
                {"$set": {"leaseUntil": utcnow() + timedelta(seconds=lease_s)}},
            )

    def taken_away(self, run_ids: Iterable[str], executor_id: str) -> list[str]:
        """Which of these runs this executor no longer holds (ended elsewhere, e.g. reaped)."""
        ids = [ObjectId(r) for r in run_ids]
        if not ids:
            return []
        with translate_db_errors():
            return [str(d["_id"]) for d in self.runs.find(
                {"_id": {"$in": ids}, "$or": [{"status": {"$ne": "running"}}, {"executor.id": {"$ne": executor_id}}]},
                {"_id": 1})]

    def active_or_finished_since(self, since: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Queued and running runs, and runs finished after `since` (newest first, at most `limit`)."""
        query = {"$or": [{"status": {"$in": list(ACTIVE_STATUSES)}}, {"finishedAt": {"$gt": since}}]}
        with translate_db_errors():
            return list(self.runs.find(query).sort([("createdAt", DESCENDING), ("_id", DESCENDING)]).limit(limit))

    def count_active(self) -> dict[str, int]:
        """How many runs are queued and running (all processes)."""
        with translate_db_errors():
            rows = self.runs.aggregate([{"$match": {"status": {"$in": list(ACTIVE_STATUSES)}}},
                                        {"$group": {"_id": "$status", "n": {"$sum": 1}}}])
            counts = {str(row["_id"]): int(row["n"]) for row in rows}
        return {status: counts.get(status, 0) for status in ACTIVE_STATUSES}

    def update_progress(self, updates: dict[str, OutputTotals]) -> None:
        """One bulk write with the tail/byte counters of many running runs."""
        if not updates:
            return
        ops = [UpdateOne({"_id": ObjectId(rid), "status": "running"}, {"$set": _output_fields(totals)})
               for rid, totals in updates.items()]
        with translate_db_errors():
            self.runs.bulk_write(ops, ordered=False)

    # -- cancel -------------------------------------------------------------

    def request_cancel(self, run_id: str) -> dict[str, Any] | None:
        """Flag a running run for cancel (its executor acts on it); None if it is not running."""
        with translate_db_errors():
            return self.runs.find_one_and_update(
                {"_id": ObjectId(run_id), "status": "running"},
                {"$set": {"cancelRequested": True}},
                return_document=ReturnDocument.AFTER,
            )

    def cancel_requested(self, run_ids: Iterable[str]) -> list[str]:
        """Which of these running runs have a cancel request."""
        ids = [ObjectId(r) for r in run_ids]
        if not ids:
            return []
        with translate_db_errors():
            return [str(d["_id"]) for d in self.runs.find(
                {"_id": {"$in": ids}, "status": "running", "cancelRequested": True}, {"_id": 1})]

    # -- finishing: each names the state it finishes from ------------------

    def _finish(self, condition: dict[str, Any], end: RunEnd,
                on_recorded: RunListener | None = None) -> dict[str, Any] | None:
        assert end.status in FINISHED_STATUSES
        assert condition.get("status") in ACTIVE_STATUSES, "a finish must be conditional on an active status"
        update = {"$set": _end_fields(end), "$unset": {"leaseUntil": "", "cancelRequested": "", "secretParams": ""}}
        with translate_db_errors():
            doc = self.runs.find_one_and_update(condition, update, return_document=ReturnDocument.AFTER)
        if doc is not None:
            # Listeners first, before any further database round trip: whoever
            # sees the final status (GET, then /metrics) finds the run counted,
            # give or take the few ms a database may show a commit before it
            # has answered the write to its writer.
            if self._on_finished is not None:
                self._on_finished(doc)
            if on_recorded is not None:
                on_recorded(doc)  # it calls after_finish itself, once its viewers know
            else:
                self.after_finish(doc)
        return doc

    def after_finish(self, doc: dict[str, Any]) -> int:
        """What follows a run's end: its script's summary, and the runs queued
        behind it; returns how many of those were released."""
        self.last.changed(doc)
        return self.release_waiting(doc["_id"])

    def release_waiting(self, run_id: ObjectId) -> int:
        """Let runs queued behind `run_id` (schedule overlap `queue`) be claimed; returns how many."""
        with translate_db_errors():
            return int(self.runs.update_many({"waitsFor": run_id, "status": "queued"},
                                             {"$set": {"waitsFor": None}}).modified_count)

    def finish_queued(self, run_id: str, end: RunEnd) -> dict[str, Any] | None:
        """End a run that is still queued; None if it is not."""
        return self._finish({"_id": ObjectId(run_id), "status": "queued"}, end)

    def finish_held(self, run_id: str, executor_id: str | None, end: RunEnd,
                    on_recorded: RunListener | None = None) -> dict[str, Any] | None:
        """End a running run held by this executor; None if it does not hold it any more.

        `on_recorded` is told of the finished run as soon as its final status
        is stored; the caller then owes the run its after_finish()."""
        return self._finish({"_id": ObjectId(run_id), "status": "running", "executor.id": executor_id}, end,
                            on_recorded)

    def finish_open_browser_run(self, run_id: str, end: RunEnd) -> dict[str, Any] | None:
        """End a browser run whose result is not being recorded (cancel); None otherwise."""
        return self._finish({"_id": ObjectId(run_id), **_OPEN_BROWSER_RUN}, end)

    def claim_browser_result(self, run_id: str) -> bool:
        """Reserve the right to record a browser run's result (once only)."""
        with translate_db_errors():
            doc = self.runs.find_one_and_update({"_id": ObjectId(run_id), **_OPEN_BROWSER_RUN},
                                                {"$set": {"browserResult": True}})
        return doc is not None

    def finish_browser_result(self, run_id: str, end: RunEnd) -> dict[str, Any] | None:
        """Record the result claimed with claim_browser_result; None if the run ended meanwhile."""
        return self._finish({"_id": ObjectId(run_id), "status": "running", "meta.node": BROWSER_NODE}, end)

    def expire_lapsed(self, run_id: str, executor_id: str | None, now: datetime,
                      end: RunEnd) -> dict[str, Any] | None:
        """End a run whose lease lapsed before `now` (executor_id None: a browser
        run past its deadline); None if it was renewed, reported or ended meanwhile."""
        condition: dict[str, Any] = {"_id": ObjectId(run_id), "leaseUntil": {"$lt": now}}
        if executor_id is None:
            condition.update(_OPEN_BROWSER_RUN)
        else:
            condition.update({"status": "running", "executor.id": executor_id})
        return self._finish(condition, end)

    # -- listing ------------------------------------------------------------

    def page(
        self,
        script_id: str | None,
        statuses: list[str] | None,
        limit: int,
        before: tuple[datetime, ObjectId] | None,
        triggers: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first, and the cursor for the next page (or None)."""
        query: dict[str, Any] = {}
        if triggers:
            query["trigger"] = {"$in": triggers}
        if script_id is not None:
            query["scriptId"] = ObjectId(script_id)
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


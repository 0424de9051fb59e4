"""executors: the processes that execute runs, and the cluster-wide run slots.

Each executing process (`serve` with its worker, `worker`) has one document in
`executors`, ``{_id: executor id, host, pid, start, role, startedAt,
heartbeatAt, slots, runs}``, written at start and renewed on every lease
renewal. A fresh ``heartbeatAt`` proves the process is alive and reaching the
database; the reaper never ends the runs of such an executor. Documents of
executors that stopped heartbeating are shown as gone and deleted a while
later (``prune``); a clean stop deletes its own at once.

`cluster_slots` holds ``SCRIPTBOX_CLUSTER_MAX_RUNS`` slot documents
``{_id: 0..N-1, holder, runId, at}``. A process takes a free slot with one
conditional update before it claims a run, binds it to the run it claimed, and
frees it when the run ends; so no more than N runs run at once across every
process, whatever claims race. A slot whose run is no longer running, or that
was taken but never bound (the process died in between), is freed by
``heal`` — the state of the runs is the truth the slots are checked against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import BulkWriteError

from . import Database, translate_db_errors, utcnow
from .records import Executor


class ExecutorStore:
    """Registers executors, renews their heartbeat, lists and prunes them."""

    def __init__(self, database: Database) -> None:
        self._executors = database.db.executors

    def register(self, executor: Executor, role: str, slots: int) -> None:
        """Write (or rewrite) this executor's document, heartbeat now."""
        now = utcnow()
        with translate_db_errors():
            self._executors.replace_one(
                {"_id": executor.id},
                {"host": executor.host, "pid": executor.pid, "start": executor.start, "role": role,
                 "startedAt": now, "heartbeatAt": now, "slots": slots, "runs": []},
                upsert=True)

    def heartbeat(self, executor_id: str, run_ids: list[str]) -> bool:
        """Renew the heartbeat and the list of runs executing; False when the
        document is gone (pruned during a long outage): register again."""
        with translate_db_errors():
            result = self._executors.update_one({"_id": executor_id},
                                                {"$set": {"heartbeatAt": utcnow(), "runs": run_ids}})
        return result.matched_count == 1

    def remove(self, executor_id: str) -> None:
        """A clean stop: this executor is gone now, not after its heartbeat ages."""
        with translate_db_errors():
            self._executors.delete_one({"_id": executor_id})

    def fresh(self, executor_ids: list[str], since: datetime) -> set[str]:
        """Those of these executors whose last heartbeat is at or after `since`."""
        if not executor_ids:
            return set()
        with translate_db_errors():
            return {str(d["_id"]) for d in self._executors.find(
                {"_id": {"$in": executor_ids}, "heartbeatAt": {"$gte": since}}, {"_id": 1})}

    def all(self) -> list[dict[str, Any]]:
        """Every registered executor, oldest start first."""
        with translate_db_errors():
            return list(self._executors.find().sort([("startedAt", ASCENDING), ("_id", ASCENDING)]))

    def prune(self, before: datetime) -> int:
        """Delete executors whose last heartbeat is older than `before`; returns how many."""
        with translate_db_errors():
            return int(self._executors.delete_many({"heartbeatAt": {"$lt": before}}).deleted_count)


class ClusterSlots:
    """At most `limit` runs running across every process sharing the database."""

    def __init__(self, database: Database, limit: int) -> None:
        self.limit = limit
        self._slots = database.db.cluster_slots
        self._runs = database.db.script_runs

    def ensure(self) -> None:
        """Create the slot documents that do not exist yet (idempotent, any process)."""
        docs = [{"_id": n, "holder": None, "runId": None, "at": None} for n in range(self.limit)]
        try:
            with translate_db_errors():
                self._slots.insert_many(docs, ordered=False)
        except BulkWriteError:
            pass  # the slots another process (or an earlier start) created are kept as they are

    def acquire(self, holder: str) -> int | None:
        """Take a free slot for a claim about to be made; None when all are taken."""
        with translate_db_errors():
            doc = self._slots.find_one_and_update(
                {"_id": {"$lt": self.limit}, "holder": None},
                {"$set": {"holder": holder, "runId": None, "at": utcnow()}},
                return_document=ReturnDocument.AFTER)
        return None if doc is None else int(doc["_id"])

    def bind(self, slot: int, holder: str, run_id: str) -> None:
        """The claim succeeded: the slot now belongs to that run."""
        with translate_db_errors():
            self._slots.update_one({"_id": slot, "holder": holder}, {"$set": {"runId": run_id}})

    def release(self, slot: int, holder: str, run_id: str | None) -> None:
        """Give a slot back: its run ended, or (run_id None) the claim found no run.
        Only while it is still ours for that run (a reaper may have freed it, and
        it may be taken again since)."""
        with translate_db_errors():
            self._slots.update_one({"_id": slot, "holder": holder, "runId": run_id},
                                   {"$set": {"holder": None, "runId": None, "at": None}})

    def release_run(self, run_id: str) -> None:
        """Give back the slot of a run that ended elsewhere (reaped)."""
        with translate_db_errors():
            self._slots.update_many({"runId": run_id}, {"$set": {"holder": None, "runId": None, "at": None}})

    def heal(self, unbound_before: datetime) -> int:
        """Free slots whose run is not running any more, and slots taken before
        `unbound_before` but never bound to a run; returns how many were freed."""
        with translate_db_errors():
            bound = list(self._slots.find({"holder": {"$ne": None}, "runId": {"$ne": None}}))
            running = {str(d["_id"]) for d in self._runs.find(
                {"_id": {"$in": [ObjectId(d["runId"]) for d in bound]}, "status": "running"}, {"_id": 1})}
            stale = [d for d in bound if d["runId"] not in running]
            stale += self._slots.find({"holder": {"$ne": None}, "runId": None, "at": {"$lt": unbound_before}})
            freed = 0
            for d in stale:
                # Conditional on what was read: a slot taken again meanwhile is left alone.
                result = self._slots.update_one({"_id": d["_id"], "holder": d["holder"], "runId": d["runId"]},
                                                {"$set": {"holder": None, "runId": None, "at": None}})
                freed += result.modified_count
        return freed

    def in_use(self) -> int:
        with translate_db_errors():
            return int(self._slots.count_documents({"_id": {"$lt": self.limit}, "holder": {"$ne": None}}))

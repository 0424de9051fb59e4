"""The newest run of each script, kept beside the runs (collection `script_last_run`).

The scripts list shows every script's newest run. Finding it in `script_runs`
costs time in proportion to the script's whole history on the embedded
database (a sort with a limit reads every key of the script's range first):
about 2 s for 20 scripts with 5,000 runs, growing without bound under a
once-a-minute schedule. So the summary is written where runs change: one
small document per script, `{_id: scriptId, runId, status, createdAt,
finishedAt}`, updated when a run is created, claimed and finished.

The summary of a run inserted already claimed (one this process starts at
once) is written just after its POST is answered (`created_soon`): on the
embedded database that write is a few ms of a start. This process still
reads its own writes: the list waits for them and for a finished run's
summary, which follows the news of its end (`of`), and the run's next
change waits for its summary to land first (`changed`), so the two writes
cannot land in the wrong order.

A summary is only a cache of `script_runs`. When it is missing (a database
from before it existed, or a run deleted by retention or by an admin), the
list computes it from the runs once and stores it again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import gevent
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from ..errors import DatabaseUnavailable
from ..inflight import InFlight
from . import Database, translate_db_errors

log = logging.getLogger("scriptbox.store")


class LastRuns:
    def __init__(self, database: Database) -> None:
        self.summaries = database.db.script_last_run
        self.runs = database.db.script_runs
        # Summaries written after their run was answered or its end told.
        self.in_flight = InFlight()
        # run id -> the greenlet writing its summary (created_soon); one that
        # failed stays until the run's next change.
        self._soon: dict[ObjectId, gevent.Greenlet] = {}

    def created(self, run: dict[str, Any]) -> None:
        """A new run is the script's newest unless a newer one was recorded first."""
        self._offer(run["scriptId"], run["_id"], run["status"], run["createdAt"], run.get("finishedAt"))

    def created_soon(self, run: dict[str, Any]) -> None:
        """created(), written in the background (see the module's docstring)."""
        run_id = run["_id"]
        writing = self.in_flight.spawn(self._created_or_false, run)
        self._soon[run_id] = writing
        writing.link_value(lambda done: self._soon.pop(run_id, None) if done.value else None)

    def _created_or_false(self, run: dict[str, Any]) -> bool:
        try:
            self.created(run)
        except DatabaseUnavailable as exc:
            log.warning("run %s: its script's last-run summary is written at its next change (%s)",
                        run["_id"], exc)
            return False
        except Exception:  # noqa: BLE001 - a summary is a cache: its run's next change offers it again
            log.exception("run %s: its script's last-run summary was not written", run["_id"])
            return False
        return True

    def changed(self, run: dict[str, Any]) -> None:
        """A run's status changed (claimed or finished): update its summary if it is the newest."""
        soon = self._soon.pop(run["_id"], None)
        with self.in_flight.writing():  # a run's end is told before its summary is updated
            if soon is not None and not soon.get():
                # Its first summary was never written: offer the run as it is now.
                self._offer(run["scriptId"], run["_id"], run["status"], run["createdAt"], run.get("finishedAt"))
                return
            with translate_db_errors():
                self.summaries.update_one({"_id": run["scriptId"], "runId": run["_id"]},
                                          {"$set": {"status": run["status"], "finishedAt": run.get("finishedAt")}})

    def forget(self, run_ids: list[ObjectId]) -> None:
        """These runs are deleted: drop summaries that name them (recomputed when next listed)."""
        with translate_db_errors():
            self.summaries.delete_many({"runId": {"$in": run_ids}})

    def of(self, script_ids: list[ObjectId]) -> dict[str, dict[str, Any]]:
        """The newest run of each script that has one (id hex -> {id, status, createdAt, finishedAt})."""
        self.in_flight.settle()
        with translate_db_errors():
            found = {doc["_id"]: doc for doc in self.summaries.find({"_id": {"$in": script_ids}})}
        missing = [oid for oid in script_ids if oid not in found]
        if missing:
            for row in self._compute(missing):
                run = row["run"]
                self._offer(row["_id"], run["id"], run["status"], run["createdAt"], run.get("finishedAt"))
                found[row["_id"]] = {"runId": run["id"], **run}
        return {str(sid): {"id": doc["runId"], "status": doc["status"], "createdAt": doc["createdAt"],
                           "finishedAt": doc.get("finishedAt")} for sid, doc in found.items()}

    def _compute(self, script_ids: list[ObjectId]) -> list[dict[str, Any]]:
        pipeline: list[dict[str, Any]] = [
            {"$match": {"scriptId": {"$in": script_ids}}},
            {"$sort": {"scriptId": 1, "createdAt": -1}},
            {"$group": {"_id": "$scriptId", "run": {"$first": {
                "id": "$_id", "status": "$status", "createdAt": "$createdAt", "finishedAt": "$finishedAt"}}}},
        ]
        with translate_db_errors():
            return list(self.runs.aggregate(pipeline))

    def _offer(self, script_id: ObjectId, run_id: ObjectId, status: str, created_at: datetime,
               finished_at: datetime | None) -> None:
        summary = {"runId": run_id, "status": status, "createdAt": created_at, "finishedAt": finished_at}
        with translate_db_errors():
            try:
                # Matches only an older summary (or none: then it is inserted).
                self.summaries.update_one({"_id": script_id, "createdAt": {"$lte": created_at}},
                                          {"$set": summary}, upsert=True)
            except DuplicateKeyError:
                pass  # a newer run of this script is already the summary

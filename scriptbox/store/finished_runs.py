"""Finished runs by age, and their deletion with their output (retention, DELETE of a run).

Split from store/runs.py: RunStore writes runs and chunks while they run;
this class only reads finished runs and deletes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING

from ..vocabulary import FINISHED_STATUSES
from . import Database, translate_db_errors
from .last_runs import LastRuns
from .records import FinishedRun

# Runs per delete statement (see delete_finished). The embedded database
# matches every candidate document against the whole `$in` list, twice (when
# it collects the candidates and again in the write transaction); 10 costs
# ~20% less database CPU per deleted document than 50 (bench/retention.py,
# docs/retention.md), and more statements cost little next to the documents.
_DELETE_GROUP = 10
# Below every finishedAt: "finished" as an index range (null is not in it).
_EPOCH = datetime(1970, 1, 1)


class FinishedRuns:
    """Finished runs by age, and their deletion with their output (retention, DELETE of a run).

    Uses RunStore's collections and indexes (RunStore.ensure_indexes creates them):
    `runs_by_finished` and `runs_finished_by_script` (active runs have finishedAt
    null, which no date range matches), and `chunk_seq`, whose leading runId lets
    delete_many on runId walk the index instead of the collection.
    """

    def __init__(self, database: Database) -> None:
        self.runs = database.db.script_runs
        self.chunks = database.db.script_run_output
        self.last = LastRuns(database)

    def runs_finished_between(self, start: datetime, end: datetime, limit: int,
                              script_id: str | None = None) -> list[FinishedRun]:
        """Up to `limit` (0: all) runs with start <= finishedAt < end (any order), of one script or of all.

        Only finished runs have a finishedAt. A bounded range on an index: the
        embedded database reads every index key in the range before applying
        the limit, so callers keep ranges small.
        """
        query: dict[str, Any] = {"finishedAt": {"$gte": start, "$lt": end}}
        if script_id is not None:
            query["scriptId"] = ObjectId(script_id)
        with translate_db_errors():
            docs = list(self.runs.find(query, {"_id": 1, "scriptId": 1, "status": 1, "finishedAt": 1}).limit(limit))
        return [FinishedRun(str(d["_id"]), str(d["scriptId"]) if d.get("scriptId") else None, str(d.get("status")),
                            d["finishedAt"]) for d in docs]

    def has_runs(self, script_id: str) -> bool:
        """Whether any run of this script is stored."""
        with translate_db_errors():
            return self.runs.find_one({"scriptId": ObjectId(script_id)}, {"_id": 1}) is not None

    def newest_finished_at(self, script_id: str, rank: int) -> datetime | None:
        """finishedAt of the script's `rank`-th newest finished run (1 = newest); None when it has fewer."""
        with translate_db_errors():
            docs = list(self.runs.find({"scriptId": ObjectId(script_id), "finishedAt": {"$gt": _EPOCH}},
                                       {"finishedAt": 1}).sort("finishedAt", DESCENDING).skip(rank - 1).limit(1))
        return docs[0]["finishedAt"] if docs else None

    def delete_finished(self, run_ids: list[str]) -> tuple[int, int]:
        """Delete these runs, if finished, with their output; returns (runs, chunks) deleted.

        Idempotent: a run already gone counts nothing, so processes pruning at
        once never fail each other. Output goes first: an interruption leaves a
        run without output, which the next pass deletes, never output without its run.
        Deletes go in groups: the embedded database checks each document
        against the whole `$in` list, so one huge list costs quadratic time.
        """
        runs = chunks = 0
        oids = [ObjectId(r) for r in run_ids]
        for at in range(0, len(oids), _DELETE_GROUP):
            group = oids[at:at + _DELETE_GROUP]
            with translate_db_errors():
                # Proven finished first (a finished run never changes again), so an
                # active run's output is never touched. An _id-only filter is a key lookup.
                finished = [d["_id"] for d in self.runs.find({"_id": {"$in": group}}, {"status": 1})
                            if d.get("status") in FINISHED_STATUSES]
                if not finished:
                    continue
                chunks += self.chunks.delete_many({"runId": {"$in": finished}}).deleted_count
                runs += self.runs.delete_many(
                    {"_id": {"$in": finished}, "status": {"$in": list(FINISHED_STATUSES)}}).deleted_count
                self.last.forget(finished)
        return runs, chunks

"""Finished runs with old `finishedAt`, inserted through the store, for retention tests and bench/retention.py.

The documents have the shape RunStore.create writes, finished as
RunStore._finish leaves them; their output goes in through RunStore.add_chunks
(the engine's own write path), or in bulk for the benchmark.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from scriptbox.store.records import Chunk
from scriptbox.store.runs import META_DEFAULTS, RunStore


def finished_run_doc(script_id: str, finished_at: datetime, *, status: str = "succeeded",
                     name: str = "seeded") -> dict[str, Any]:
    """A finished run document that ended at `finished_at` (naive UTC) after a one-second run."""
    started = finished_at - timedelta(seconds=1)
    return {
        "_id": ObjectId(), "scriptId": ObjectId(script_id), "status": status, "trigger": "schedule",
        "createdAt": started, "startedAt": started, "finishedAt": finished_at,
        "exitCode": 0 if status == "succeeded" else 1, "outputTail": "line\n",
        "meta": {**META_DEFAULTS, "node": "bench", "outputBytes": 5,
                 "snapshot": {"name": name, "codeIdentifier": name, "type": "bash", "runner": "host",
                              "timeoutMs": 300_000, "workingDirectory": ""}},
    }


def active_run_doc(script_id: str, status: str, created_at: datetime) -> dict[str, Any]:
    """A queued or running run created at `created_at` (no finishedAt, as RunStore.create leaves it)."""
    doc = finished_run_doc(script_id, created_at, status=status)
    doc.update(finishedAt=None, exitCode=None, startedAt=None if status == "queued" else created_at)
    return doc


def insert_runs(store: RunStore, docs: list[dict[str, Any]], chunks_per_run: int = 3) -> list[str]:
    """Insert run documents and `chunks_per_run` output chunks each (through add_chunks); returns their ids."""
    if docs:
        store.runs.insert_many(docs, ordered=False)
    ids = [str(d["_id"]) for d in docs]
    store.add_chunks([Chunk(run_id, seq, "stdout", f"{run_id} line {seq}\n")
                      for run_id in ids for seq in range(chunks_per_run)])
    return ids


def chunk_docs(run_ids: Iterable[ObjectId], per_run: int, when: datetime) -> list[dict[str, Any]]:
    """Stored-output documents as RunStore.add_chunks writes them, for bulk inserts."""
    return [{"runId": run_id, "seq": seq, "stream": "stdout", "data": f"output line {seq} of a seeded run\n",
             "createdAt": when} for run_id in run_ids for seq in range(per_run)]

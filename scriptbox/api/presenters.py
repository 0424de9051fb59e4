"""Stored documents -> the JSON the API shows: `id` as hex, ISO times, no internals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..definition_secrets import present_env, present_params
from ..schedule import present_schedule
from ..store import iso, utcnow
from ..store.records import Chunk
from ..store.runs import META_DEFAULTS
from ..vocabulary import DEFAULT_OUTPUT_MODE


def definition_fields_to_json(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields of a definition (stored, or kept in a version) as every answer shows them.

    Both definitions and their versions go through here, so what an answer
    must never show (secret values, sealed or not) is left out in one place.
    """
    out = {k: v for k, v in fields.items() if k not in ("_id", "scheduleState")}
    out["env"] = present_env(fields.get("env"))
    out["params"] = present_params(fields.get("params"))
    out["outputMode"] = fields.get("outputMode") or DEFAULT_OUTPUT_MODE  # stored before it existed: separate
    return out


def definition_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a stored definition."""
    out = definition_fields_to_json(doc)
    out["id"] = str(doc["_id"])
    out["tags"] = doc.get("tags") or []  # definitions stored before tags existed have none
    out["schedule"] = present_schedule(doc, utcnow())
    out["retention"] = doc.get("retention")  # null for definitions stored before retention existed
    out["createdAt"] = iso(doc.get("createdAt"))
    out["updatedAt"] = iso(doc.get("updatedAt"))
    return out


def last_run_to_json(run: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `lastRun` summary shown in the scripts list."""
    if run is None:
        return None
    return {"id": str(run["id"]), "status": run["status"],
            "createdAt": iso(run.get("createdAt")), "finishedAt": iso(run.get("finishedAt"))}


def run_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a run (also the `status` and `end` events of its stream)."""
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
        "params": doc.get("params") or {},
        "meta": meta,
    }


def chunk_to_json(chunk: Chunk) -> dict[str, Any]:
    """The API form of a stored output chunk (GET …/runs/:runId/chunks)."""
    out: dict[str, Any] = {"seq": chunk.seq, "stream": chunk.stream, "data": chunk.data, "at": iso(chunk.at)}
    if chunk.system:
        out["system"] = True
    return out


def version_summary_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A version as listed: number, time, who saved it."""
    return {"n": int(doc["n"]), "at": iso(doc.get("at")), "actor": doc.get("actor")}


def version_to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A whole version: the definition as it was."""
    return {**version_summary_to_json(doc), "scriptId": str(doc["scriptId"]),
            "definition": definition_fields_to_json(doc["definition"])}


def executor_to_json(doc: dict[str, Any], lease_s: float) -> dict[str, Any]:
    """The API form of an executors document: alive while its heartbeat is younger than a lease."""
    beat = doc.get("heartbeatAt")
    alive = beat is not None and beat >= utcnow().replace(tzinfo=None) - timedelta(seconds=lease_s)
    runs = [str(r) for r in doc.get("runs") or []]
    return {"id": str(doc["_id"]), "host": str(doc.get("host", "")), "pid": int(doc.get("pid") or 0),
            "role": doc.get("role") if doc.get("role") in ("serve", "worker") else "worker",
            "startedAt": iso(doc.get("startedAt")), "heartbeatAt": iso(beat), "state": "alive" if alive else "gone",
            "slots": int(doc.get("slots") or 0), "running": len(runs), "runs": runs}

"""A run started at once is answered as soon as it is stored (docs/engine.md, "The
start path"): its script's last-run summary and its `run.start` audit entry are
written just after the answer. This process still reads both at once, the audit
entry keeps the place in the log it had when the run was stored, and the run's
end never lands before its first summary."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import gevent
from bson import ObjectId

from scriptbox.audit import AuditLog
from scriptbox.store import Database
from scriptbox.store.audit import AuditStore
from scriptbox.store.records import Claim, Executor, NewRun, RunEnd, Snapshot
from support import Api, AppClient, eventually, start_run
from support.inprocess import InProcessApp
from support.separate_db import SeparateDatabase

EXECUTOR = Executor("test-host/1/1", "test-host", 1, None)


def _script(client: AppClient) -> str:
    answer = client.post("/api/admin/scripts", json={"name": "a", "codeIdentifier": f"a-{ObjectId()}",
                                                     "type": "bash", "script": "true"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _started_here(script_id: str) -> NewRun:
    """A run as Engine.submit inserts one this process starts at once: already claimed."""
    return NewRun(script_id, "api", None, Snapshot("a", "a", "bash", "host", 1000, "/"),
                  claim=Claim(EXECUTOR, timedelta(seconds=60)))


def _last_run(client: AppClient, script_id: str) -> dict[str, Any] | None:
    listed = {s["id"]: s for s in client.get("/api/admin/scripts").json()["scripts"]}
    return listed[script_id]["lastRun"]


def test_a_summary_written_after_the_answer_is_listed_at_once_and_never_lands_after_the_end(
        app: InProcessApp, client: AppClient) -> None:
    script_id = _script(client)
    runs = app.services.runs
    first = runs.create(_started_here(script_id))
    # Nothing has yielded since the insert: the summary is not written yet...
    assert app.database.db.script_last_run.find_one({"_id": ObjectId(script_id)}) is None
    # ...yet the list, read now by this process, shows the run.
    assert _last_run(client, script_id) == {**(_last_run(client, script_id) or {}), "id": str(first["_id"]),
                                            "status": "running", "finishedAt": None}

    # An instant script ends before its summary was written: the end waits for it.
    second = runs.create(_started_here(script_id))
    assert runs.finish_held(str(second["_id"]), EXECUTOR.id, RunEnd("succeeded", exit_code=0)) is not None
    listed = _last_run(client, script_id)
    assert listed is not None and listed["id"] == str(second["_id"]) and listed["status"] == "succeeded"
    stored = app.database.db.script_last_run.find_one({"_id": ObjectId(script_id)})
    assert stored is not None and stored["status"] == "succeeded"


def test_an_audit_entry_written_after_the_answer_keeps_its_place_and_is_read_at_once(
        app: InProcessApp, client: AppClient) -> None:
    script_id = _script(client)
    run_id = str(ObjectId())
    audit = app.services.audit
    audit.record_soon("admin", "run.start", "run", run_id, "started 'a' (api)", {"trigger": "api"}, None, script_id)
    audit.record("admin", "run.cancel", "run", run_id, "canceled", {}, None, script_id)  # lands first
    assert [e["action"] for e in app.database.db.audit_log.find({"targetId": run_id})] == ["run.cancel"]
    listed = client.get("/api/admin/audit", params={"targetId": run_id}).json()["entries"]
    # Newest first, as they happened: the start before the cancel.
    assert [e["action"] for e in listed] == ["run.cancel", "run.start"]


def test_an_audit_entry_written_again_after_a_lost_answer_is_stored_once(app: InProcessApp) -> None:
    store = app.services.audit.store
    target = str(ObjectId())
    entry = store.stamped({"actor": "admin", "action": "run.start", "targetType": "run", "targetId": target,
                           "summary": "started", "details": {}, "remoteAddr": None})
    store.append(entry)
    store.append(entry)  # the retry of a write whose answer was lost, though it landed
    assert app.database.db.audit_log.count_documents({"targetId": target}) == 1


def test_an_audit_entry_whose_write_meets_an_outage_lands_once_the_database_is_back(
        separate_db: SeparateDatabase) -> None:
    database = Database(separate_db.uri, "sbx_audit_outage")
    audit = AuditLog(AuditStore(database))
    target = str(ObjectId())
    separate_db.kill()
    audit.record_soon("admin", "run.start", "run", target, "started 'a' (api)", {"trigger": "api"}, None, None)
    gevent.sleep(1)  # its first attempt fails (server selection), then it waits to try again
    separate_db.start()
    eventually(lambda: database.db.audit_log.count_documents({"targetId": target}) == 1, 60,
               message="the entry written once the database is back", sleep=gevent.sleep)
    audit.settle()
    assert database.db.audit_log.count_documents({"targetId": target}) == 1
    database.close()


def test_a_started_run_is_in_the_audit_log_and_the_scripts_list_as_soon_as_it_is_answered(api: Api) -> None:
    script = api.create_script(script="sleep 5")
    run_id = start_run(api, script["id"])
    entries = api.get("/api/admin/audit", params={"targetId": run_id}).json()["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [("run.start", "admin")]
    listed = {s["id"]: s for s in api.get("/api/admin/scripts").json()["scripts"]}
    assert listed[script["id"]]["lastRun"]["id"] == run_id
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202

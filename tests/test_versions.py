"""Script versions (SPEC §8.9) in-process on the real database: a version per
changing save, paging, restore, the version a run ran, pruning, crash repair."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bson import ObjectId

from scriptbox.engine import EngineOptions
from scriptbox.store.definitions import DefinitionStore, SavedMeanwhile
from support import AppClient, unique_name
from support.inprocess import InProcessApp, driven_engine_app


def versions(client: AppClient, script_id: str, **query: Any) -> dict[str, Any]:
    answer = client.get(f"/api/admin/scripts/{script_id}/versions", params=query)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def numbers(client: AppClient, script_id: str) -> list[int]:
    return [v["n"] for v in versions(client, script_id, limit=500)["versions"]]


def put(client: AppClient, script_id: str, **fields: Any) -> dict[str, Any]:
    answer = client.put(f"/api/admin/scripts/{script_id}", json=fields)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_create_is_version_1_and_only_saves_that_change_something_make_a_version(client: AppClient) -> None:
    script = client.create_script(script="echo one", env=[{"key": "A", "value": "1"}])
    sid = script["id"]
    assert script["version"] == 1 and script["updatedBy"] == "admin"
    assert numbers(client, sid) == [1]

    same = put(client, sid, script="echo one", name=script["name"])
    resent = put(client, sid, **{k: v for k, v in script.items() if k != "updatedAt"})  # a GET answer sent back
    assert same["version"] == resent["version"] == 1 and resent["updatedAt"] == script["updatedAt"]
    assert numbers(client, sid) == [1]

    changed = put(client, sid, script="echo two")
    assert changed["version"] == 2 and changed["updatedAt"] != script["updatedAt"]
    assert put(client, sid, env=[{"key": "A", "value": "2"}])["version"] == 3
    listed = versions(client, sid)
    assert [v["n"] for v in listed["versions"]] == [3, 2, 1] and listed["nextBefore"] is None
    assert all(v["actor"] == "admin" and v["at"].endswith("Z") and set(v) == {"n", "at", "actor"}
               for v in listed["versions"])
    assert listed["versions"][1]["at"] == changed["updatedAt"]

    first = client.get(f"/api/admin/scripts/{sid}/versions/1").json()
    assert first["n"] == 1 and first["scriptId"] == sid
    assert first["definition"]["script"] == "echo one" and first["definition"]["env"] == [{"key": "A", "value": "1"}]
    assert not {"id", "_id", "createdAt", "updatedAt", "version", "updatedBy"} & set(first["definition"])
    second = client.get(f"/api/admin/scripts/{sid}/versions/2").json()["definition"]
    assert second["script"] == "echo two" and second["env"] == [{"key": "A", "value": "1"}]
    for missing in ("0", "4", "999999999"):
        answer = client.get(f"/api/admin/scripts/{sid}/versions/{missing}")
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_versions_page_newest_first_with_a_before_cursor(client: AppClient) -> None:
    sid = client.create_script(script="echo 1")["id"]
    for n in range(2, 8):
        put(client, sid, script=f"echo {n}")
    pages, before = [], None
    while True:
        page = versions(client, sid, limit=3, **({"before": before} if before else {}))
        pages.append([v["n"] for v in page["versions"]])
        before = page["nextBefore"]
        if before is None:
            break
    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    for query, field in (({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "x"}, "limit"),
                         ({"before": "-1"}, "before"), ({"before": "abc"}, "before")):
        answer = client.get(f"/api/admin/scripts/{sid}/versions", params=query)
        assert answer.status_code == 400 and field in answer.json()["error"]["fields"], (query, answer.text)
    assert client.get(f"/api/admin/scripts/{'0' * 24}/versions").status_code == 404


def test_restore_saves_the_old_definition_as_a_new_version_and_audits_it(client: AppClient) -> None:
    script = client.create_script(script="echo original", description="first", timeoutMs=5000)
    sid = script["id"]
    put(client, sid, script="echo edited", description="second", timeoutMs=9000)
    restored = client.post(f"/api/admin/scripts/{sid}/versions/1/restore")
    assert restored.status_code == 200, restored.text
    doc = restored.json()
    assert doc["version"] == 3 and doc["script"] == "echo original" and doc["timeoutMs"] == 5000
    assert client.get(f"/api/admin/scripts/{sid}").json()["description"] == "first"
    assert numbers(client, sid) == [3, 2, 1]
    three = client.get(f"/api/admin/scripts/{sid}/versions/3").json()["definition"]
    one = client.get(f"/api/admin/scripts/{sid}/versions/1").json()["definition"]
    assert three == one

    again = client.post(f"/api/admin/scripts/{sid}/versions/3/restore")  # equal to the current one
    assert again.status_code == 200 and again.json()["version"] == 3 and numbers(client, sid) == [3, 2, 1]
    audit = client.get("/api/admin/audit", params={"targetId": sid, "action": "script.restore"}).json()["entries"]
    assert [e["details"] for e in audit] == [
        {"restoredVersion": 3, "version": 3, "fields": []},
        {"restoredVersion": 1, "version": 3, "fields": ["description", "script", "timeoutMs"]}]
    assert audit[1]["actor"] == "admin" and "as version 3" in audit[1]["summary"]

    assert client.post(f"/api/admin/scripts/{sid}/versions/9/restore").status_code == 404
    assert client.post(f"/api/admin/scripts/{'a' * 24}/versions/1/restore").status_code == 404


def test_a_restore_whose_code_identifier_was_taken_since_is_refused(client: AppClient) -> None:
    old_name = unique_name()
    sid = client.create_script(codeIdentifier=old_name)["id"]
    put(client, sid, codeIdentifier=unique_name())
    client.create_script(codeIdentifier=old_name)
    answer = client.post(f"/api/admin/scripts/{sid}/versions/1/restore")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "duplicate_code_identifier"
    assert numbers(client, sid) == [2, 1]


def test_a_version_that_fails_todays_checks_is_not_restored(app: InProcessApp, client: AppClient) -> None:
    sid = client.create_script()["id"]
    put(client, sid, script="echo 2")
    # As if the rules had tightened since version 1 was saved.
    app.database.db.script_versions.update_one({"scriptId": ObjectId(sid), "n": 1},
                                               {"$set": {"definition.timeoutMs": 5}})
    answer = client.post(f"/api/admin/scripts/{sid}/versions/1/restore")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "version_invalid" and "timeoutMs" in answer.json()["error"]["fields"]


def test_two_saves_of_the_same_version_cannot_both_become_the_next_one(app: InProcessApp, client: AppClient) -> None:
    sid = client.create_script(script="echo base")["id"]
    store = app.services.definitions
    loaded = store.get(sid)
    first, changed = store.save(loaded, {**_fields(loaded), "script": "echo mine"}, actor="admin")
    assert changed and first["version"] == 2
    with pytest.raises(SavedMeanwhile):  # the route reads again and retries
        store.save(loaded, {**_fields(loaded), "script": "echo theirs"}, actor="token:bot")
    assert store.versions.record(first) is False  # (scriptId, n) is unique: a second write is a no-op
    answer = client.put(f"/api/admin/scripts/{sid}", json={"script": "echo theirs"})
    assert answer.status_code == 200 and answer.json()["version"] == 3
    assert numbers(client, sid) == [3, 2, 1]


def test_a_version_lost_between_the_two_writes_is_written_from_the_definition(app: InProcessApp,
                                                                             client: AppClient) -> None:
    sid = client.create_script(script="echo 1")["id"]
    put(client, sid, script="echo 2")
    db = app.database.db
    oid = app.services.definitions.get(sid)["_id"]
    db.script_versions.delete_one({"scriptId": oid, "n": 2})  # the crash: definition saved, version not
    legacy = db.script_definitions.insert_one({  # saved before versions existed
        "name": "old", "codeIdentifier": unique_name(), "description": "", "type": "bash", "runner": "host",
        "script": "echo legacy", "defaultWorkingDirectory": "", "env": [], "timeoutMs": 1000, "enabled": True,
        "schedule": None, "createdAt": db.script_definitions.find_one({"_id": oid})["createdAt"],
        "updatedAt": db.script_definitions.find_one({"_id": oid})["updatedAt"]}).inserted_id
    assert app.services.definitions.ensure_versions() == 2  # what serve does at start
    assert app.services.definitions.ensure_versions() == 0
    assert client.get(f"/api/admin/scripts/{sid}/versions/2").json()["definition"]["script"] == "echo 2"
    assert numbers(client, str(legacy)) == [1]
    assert client.get(f"/api/admin/scripts/{legacy}").json()["version"] == 1

    # Without a restart, the next save writes the missing one first.
    db.script_versions.delete_one({"scriptId": oid, "n": 2})
    assert put(client, sid, script="echo 3")["version"] == 3
    assert numbers(client, sid) == [3, 2, 1]


def test_saves_keep_the_newest_versions_and_those_runs_ran(app: InProcessApp, client: AppClient) -> None:
    store = DefinitionStore(app.database, keep_versions=3)  # SCRIPTBOX_KEEP_VERSIONS=3
    sid = client.create_script(script="echo 1")["id"]
    for n in (2, 3):
        put(client, sid, script=f"echo {n}")
    queued = app.engine.submit(sid, "api", "admin")  # this app executes nothing: it stays queued, at version 3
    assert queued["meta"]["version"] == 3
    for n in range(4, 10):
        store.save(store.get(sid), {**_fields(store.get(sid)), "script": f"echo {n}"}, actor="admin")
    assert numbers(client, sid) == list(range(9, 0, -1))  # saves prune every PRUNE_EVERY (10) versions
    store.save(store.get(sid), {**_fields(store.get(sid)), "script": "echo 10"}, actor="admin")
    assert numbers(client, sid) == [10, 9, 8, 3]
    assert store.versions.prune_versions(sid, 2, {3}) == 1 and numbers(client, sid) == [10, 9, 3]
    newest_at = store.versions.get(sid, 10)["at"]
    assert store.versions.prune_versions(sid, 1, set(), older_than=newest_at) == 2  # 9 and 3 are older
    assert numbers(client, sid) == [10]
    app.engine.cancel(str(queued["_id"]))


def test_a_deleted_script_keeps_its_versions_while_its_runs_exist(app: InProcessApp, client: AppClient) -> None:
    with_runs = client.create_script(script="echo 1")["id"]
    put(client, with_runs, script="echo 2")
    run = app.engine.submit(with_runs, "api", "admin")
    app.engine.cancel(str(run["_id"]))
    without_runs = client.create_script()["id"]
    put(client, without_runs, script="echo 2")
    for sid in (with_runs, without_runs):
        assert client.delete(f"/api/admin/scripts/{sid}").status_code == 204
    assert numbers(client, with_runs) == [2, 1]
    assert client.get(f"/api/admin/scripts/{with_runs}/versions/2").json()["definition"]["script"] == "echo 2"
    assert client.post(f"/api/admin/scripts/{with_runs}/versions/1/restore").status_code == 404
    assert client.get(f"/api/admin/scripts/{without_runs}/versions").status_code == 404
    assert client.get(f"/api/admin/scripts/{without_runs}/versions/1").status_code == 404


def test_secrets_never_appear_in_a_version_and_a_restore_brings_back_the_versions_own(app: InProcessApp,
                                                                                       client: AppClient) -> None:
    first, second = "first-s3cret-value", "second-s3cret-value"
    sid = client.create_script(script='echo "$TOKEN"', env=[{"key": "TOKEN", "value": first, "secret": True}])["id"]
    put(client, sid, env=[{"key": "TOKEN", "value": second, "secret": True}])
    kept = put(client, sid, env=[{"key": "TOKEN", "value": None, "secret": True}], description="same secret")
    assert kept["version"] == 3
    answers = [client.get(f"/api/admin/scripts/{sid}/versions").text]
    answers += [client.get(f"/api/admin/scripts/{sid}/versions/{n}").text for n in (1, 2, 3)]
    for text in answers:
        assert first not in text and second not in text and "sealed" not in text
    assert client.get(f"/api/admin/scripts/{sid}/versions/1").json()["definition"]["env"] == [
        {"key": "TOKEN", "value": None, "secret": True}]
    stored = {v["n"]: v["definition"]["env"][0]["sealed"]
              for v in app.database.db.script_versions.find({"scriptId": ObjectId(sid)})}
    assert stored[2] == stored[3] != stored[1]  # kept as stored: encrypted, the same ciphertext
    assert all(first not in value and second not in value for value in stored.values())

    restored = client.post(f"/api/admin/scripts/{sid}/versions/1/restore")
    assert restored.status_code == 200 and first not in restored.text and restored.json()["version"] == 4
    definition = app.services.definitions.get(sid)
    assert definition["env"][0]["sealed"] == stored[1]  # version 1's secret, never decrypted on the way
    assert app.services.secrets.open(definition["env"][0]["sealed"], "env TOKEN") == first


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items()
            if k not in ("_id", "createdAt", "updatedAt", "updatedBy", "version", "scheduleState")}


# -- the version a run ran ---------------------------------------------------


@pytest.fixture(scope="module")
def engine_app(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    with driven_engine_app(mongodb_uri, tmp_path_factory.mktemp("versions-engine"),
                           EngineOptions(flush_every_s=0.02), max_concurrent_runs=1) as instance:
        yield instance


def test_a_run_records_the_version_it_started_with_even_if_edited_while_queued(engine_app: InProcessApp) -> None:
    client = engine_app.client()
    engine = engine_app.engine
    sid = client.create_script(script="echo v1")["id"]
    answer = client.post(f"/api/admin/scripts/{sid}/run", json={"trigger": "manual"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["runId"]
    assert client.get(f"/api/admin/scripts/runs/{run_id}").json()["meta"]["version"] == 1  # queued: as submitted
    put(client, sid, script="echo v2")

    [execution] = engine.dispatcher.claim_available()
    assert execution.greenlet is not None
    execution.greenlet.join(timeout=30)
    run = client.get(f"/api/admin/scripts/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["outputTail"] == "v2\n"
    assert run["meta"]["version"] == 2
    ran = client.get(f"/api/admin/scripts/{sid}/versions/{run['meta']['version']}").json()
    assert ran["definition"]["script"] == "echo v2"

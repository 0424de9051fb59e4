"""The audit log: one entry per action with the right actor, filters, paging, no secrets."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from support import ADMIN_PASSWORD, Api, ScriptboxServer, make_token, start_run, token_api, wait_status


def entries(api: Api, **query: Any) -> list[dict[str, Any]]:
    answer = api.get("/api/admin/audit", params=query)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["entries"])


def test_each_action_is_recorded_with_its_actor_and_changed_field_names(api: Api, server: ScriptboxServer) -> None:
    script = api.create_script(env=[{"key": "API_KEY", "value": "hunter2-value"}])
    sid = script["id"]
    updated = api.put(f"/api/admin/scripts/{sid}", json={"env": [{"key": "API_KEY", "value": "new-s3cret"}],
                                                          "description": "nightly", "name": script["name"]})
    assert updated.status_code == 200
    run_id = start_run(api, sid)
    wait_status(api, run_id)
    long_run = api.create_script(script="sleep 30")
    long_id = start_run(api, long_run["id"])
    assert api.post(f"/api/admin/scripts/runs/{long_id}/cancel").status_code == 202
    token = make_token(api, scope="admin")
    bot = token_api(server, token["token"])
    assert bot.post(f"/api/admin/scripts/{sid}/run").status_code == 202
    assert api.delete(f"/api/admin/tokens/{token['id']}").status_code == 204
    wait_status(api, api.get(f"/api/admin/scripts/runs?scriptId={sid}").json()["runs"][0]["id"])
    assert api.delete(f"/api/admin/scripts/{sid}").status_code == 204

    mine = entries(api, scriptId=sid)
    assert [(e["action"], e["actor"]) for e in mine] == [
        ("script.delete", "admin"), ("run.start", f"token:{token['name']}"), ("run.start", "admin"),
        ("script.update", "admin"), ("script.create", "admin")]
    update = mine[3]
    assert update["details"] == {"fields": ["description", "env"]} and update["targetId"] == sid
    assert all(e["remoteAddr"] == "127.0.0.1" and e["at"].endswith("Z") for e in mine)
    assert mine[2]["targetId"] == run_id and mine[2]["targetType"] == "run" and mine[2]["scriptId"] == sid

    cancel = entries(api, targetId=long_id, action="run.cancel")
    assert len(cancel) == 1 and cancel[0]["actor"] == "admin"
    tokens = entries(api, targetId=token["id"])
    assert [e["action"] for e in tokens] == ["token.revoke", "token.create"]
    assert tokens[1]["details"]["scope"] == "admin"

    everything = json.dumps(entries(api, limit=500))
    for secret in ("hunter2-value", "new-s3cret", token["token"], ADMIN_PASSWORD):
        assert secret not in everything


def test_the_audit_log_pages_newest_first_and_filters_by_action_prefix(api: Api) -> None:
    script = api.create_script()
    for n in range(5):
        assert api.put(f"/api/admin/scripts/{script['id']}", json={"description": f"v{n}"}).status_code == 200
    first = api.get("/api/admin/audit", params={"targetId": script["id"], "limit": 4}).json()
    assert [e["details"]["fields"] for e in first["entries"]] == [["description"]] * 4
    assert [e["summary"] for e in first["entries"]][0].startswith("updated script")
    second = api.get("/api/admin/audit", params={"targetId": script["id"], "limit": 4,
                                                 "before": first["nextBefore"]}).json()
    assert [e["action"] for e in second["entries"]] == ["script.update", "script.create"]
    assert second["nextBefore"] is None
    ids = [e["id"] for e in first["entries"] + second["entries"]]
    assert len(set(ids)) == 6 and ids == sorted(ids, reverse=True)
    start_run(api, script["id"])
    assert {e["action"] for e in entries(api, action="run", scriptId=script["id"])} == {"run.start"}
    assert entries(api, action="script.delete", targetId=script["id"]) == []


@pytest.mark.parametrize("query", [{"action": "DROP TABLE"}, {"limit": "0"}, {"limit": "501"},
                                   {"before": "zz"}, {"targetId": "1"}, {"scriptId": "x"}])
def test_bad_audit_queries_are_400(api: Api, query: dict[str, str]) -> None:
    answer = api.get("/api/admin/audit", params=query)
    assert answer.status_code == 400 and set(answer.json()["error"]["fields"]) == set(query)


def test_desktop_sessions_and_failed_sign_ins_are_recorded(server_factory: Any) -> None:
    instance = server_factory(extra_args=["--desktop-login-stdin"]).start(stdin_text="one-time-token-xyz\n")
    window = requests.Session()
    assert window.post(instance.base_url + "/desktop-login", json={"token": "one-time-token-xyz"},
                       timeout=10).status_code == 204
    created = window.post(instance.base_url + "/api/admin/scripts", timeout=10,
                          json={"name": "from the window", "codeIdentifier": "desk", "type": "bash"})
    assert created.status_code == 201
    for password in ("guess-1", "guess-2", "guess-3"):
        assert requests.get(instance.base_url + "/api/admin/scripts", auth=("admin", password),
                            timeout=30).status_code == 401
    assert requests.get(instance.base_url + "/api/admin/scripts", timeout=10,
                        headers={"Authorization": "Bearer sbx_unknown"}).status_code == 401

    api = instance.api()
    assert [e["actor"] for e in entries(api, action="script.create")] == ["desktop"]
    failed = entries(api, action="auth.failed")
    # Throttled: the first failure of the window is written at once, the next ones are counted.
    assert len(failed) == 1
    assert failed[0]["remoteAddr"] == "127.0.0.1" and failed[0]["details"]["failures"] == 1
    everything = json.dumps(entries(api, limit=500))
    for secret in ("guess-1", "guess-2", "guess-3", "sbx_unknown", "one-time-token-xyz", ADMIN_PASSWORD):
        assert secret not in everything

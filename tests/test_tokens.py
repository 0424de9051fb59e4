"""API tokens (create once, hashed, scopes, expiry, revocation) and run-and-wait, against a real server."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from pymongo import MongoClient

from support import (
    ADMIN_PASSWORD,
    Api,
    ScriptboxServer,
    SseStream,
    eventually,
    make_token,
    start_run,
    token_api,
    wait_status,
)


def test_a_token_is_shown_once_and_stored_only_as_its_hash(api: Api, server: ScriptboxServer,
                                                            mongodb_uri: str) -> None:
    created = make_token(api, scope="admin")
    secret = created["token"]
    assert secret.startswith("sbx_") and len(secret) >= 4 + 43
    assert set(secret[4:]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert created["lastUsedAt"] is None and created["expiresAt"] is None

    listed = [t for t in api.get("/api/admin/tokens").json()["tokens"] if t["id"] == created["id"]]
    assert len(listed) == 1 and "token" not in listed[0] and "hash" not in listed[0]
    assert secret not in json.dumps(api.get("/api/admin/tokens").json())

    with MongoClient(mongodb_uri) as client:
        stored = client[server.db_name].api_tokens.find_one({"name": created["name"]})
    assert stored is not None
    assert stored["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(stored)

    assert token_api(server, secret).get("/api/admin/scripts").status_code == 200
    used = [t for t in api.get("/api/admin/tokens").json()["tokens"] if t["id"] == created["id"]][0]
    assert used["lastUsedAt"] is not None


def test_token_requests_are_validated(api: Api) -> None:
    bad = api.post("/api/admin/tokens", json={"name": "", "scope": "root", "scriptIds": ["nope"],
                                              "expiresAt": "yesterday", "extra": 1})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"name", "scope", "scriptIds.0", "expiresAt", "extra"}
    past = api.post("/api/admin/tokens", json={"name": "old", "scope": "run", "expiresAt": "2020-01-01T00:00:00Z"})
    assert past.status_code == 400 and "future" in past.json()["error"]["fields"]["expiresAt"]
    unknown_script = api.post("/api/admin/tokens", json={"name": "x", "scope": "run",
                                                         "scriptIds": ["ffffffffffffffffffffffff"]})
    assert unknown_script.json()["error"]["fields"] == {"scriptIds.0": "no script has this id"}
    admin_limited = api.post("/api/admin/tokens", json={"name": "x", "scope": "admin",
                                                        "scriptIds": [api.create_script()["id"]]})
    assert admin_limited.status_code == 400 and "scriptIds" in admin_limited.json()["error"]["fields"]
    name = make_token(api)["name"]
    duplicate = api.post("/api/admin/tokens", json={"name": name, "scope": "run"})
    assert duplicate.status_code == 409 and "name" in duplicate.json()["error"]["fields"]
    assert api.post("/api/admin/tokens", data="[", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.delete("/api/admin/tokens/ffffffffffffffffffffffff").status_code == 404


def test_a_run_token_works_only_within_its_scripts_and_runs(api: Api, server: ScriptboxServer) -> None:
    mine = api.create_script(script="echo mine")
    other = api.create_script(script="echo other")
    other_run = start_run(api, other["id"])
    token = make_token(api, scriptIds=[mine["id"]])
    bot = token_api(server, token["token"])

    started = bot.post(f"/api/admin/scripts/{mine['id']}/run", json={"trigger": "manual"})
    assert started.status_code == 202, started.text
    run = wait_status(bot, started.json()["runId"])
    assert run["trigger"] == "api" and run["meta"]["requestedBy"] == f"token:{token['name']}"
    assert bot.get(f"/api/admin/scripts/runs/{run['id']}/log").text == "mine\n"
    events = SseStream(bot, run["id"]).until_end()
    assert events[-1].event == "end"
    assert bot.post(f"/api/admin/scripts/by-code/{mine['codeIdentifier']}/run").status_code == 202
    assert bot.get(f"/api/admin/scripts/runs?scriptId={mine['id']}").status_code == 200

    refused = [
        ("POST", f"/api/admin/scripts/{other['id']}/run"),
        ("POST", f"/api/admin/scripts/by-code/{other['codeIdentifier']}/run"),
        ("POST", "/api/admin/scripts/by-code/no-such-script/run"),
        ("GET", f"/api/admin/scripts/runs/{other_run}"),
        ("GET", f"/api/admin/scripts/runs/{other_run}/stream"),
        ("GET", f"/api/admin/scripts/runs/{other_run}/log"),
        ("GET", "/api/admin/scripts/runs/ffffffffffffffffffffffff"),
        ("GET", "/api/admin/scripts/runs"),
        ("GET", f"/api/admin/scripts/runs?scriptId={other['id']}"),
        ("POST", f"/api/admin/scripts/runs/{run['id']}/cancel"),
        ("GET", "/api/admin/scripts"),
        ("GET", f"/api/admin/scripts/{mine['id']}"),
        ("GET", f"/api/admin/scripts/by-code/{mine['codeIdentifier']}"),
        ("PUT", f"/api/admin/scripts/{mine['id']}"),
        ("POST", "/api/admin/scripts"),
        ("DELETE", f"/api/admin/scripts/{mine['id']}"),
        ("GET", "/api/admin/tokens"),
        ("POST", "/api/admin/tokens"),
        ("DELETE", f"/api/admin/tokens/{token['id']}"),
        ("GET", "/api/admin/audit"),
    ]
    for method, path in refused:
        answer = bot.request(method, path, json={} if method in ("POST", "PUT") else None)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "token_scope"


def test_a_run_token_without_scripts_runs_any_script_but_reads_no_definitions(api: Api,
                                                                               server: ScriptboxServer) -> None:
    script = api.create_script()
    bot = token_api(server, make_token(api)["token"])
    assert bot.post(f"/api/admin/scripts/{script['id']}/run").status_code == 202
    assert bot.get("/api/admin/scripts/runs").status_code == 200
    assert bot.get("/api/admin/scripts/runs/ffffffffffffffffffffffff").status_code == 404
    assert bot.post("/api/admin/scripts/by-code/no-such-script/run").status_code == 404
    assert bot.get("/api/admin/scripts").status_code == 403
    assert bot.get("/api/admin/audit").status_code == 403


def test_an_admin_token_has_the_whole_api_but_never_opens_the_ui(api: Api, server: ScriptboxServer) -> None:
    bot = token_api(server, make_token(api, scope="admin")["token"])
    created = bot.post("/api/admin/scripts", json={"name": "by token", "codeIdentifier": f"tok-{time.time_ns()}",
                                                   "type": "bash"})
    assert created.status_code == 201
    assert bot.get("/api/admin/tokens").status_code == 200
    assert bot.get("/api/admin/audit").status_code == 200
    assert bot.get("/metrics").status_code == 200 and bot.get("/api/openapi.json").status_code == 200
    runner = token_api(server, make_token(api)["token"])
    assert runner.get("/metrics").status_code == 403 and runner.get("/api/openapi.json").status_code == 403
    for page in ("/admin/scripts", "/admin/scripts/tokens", "/admin/assets/app.js"):
        answer = bot.get(page)
        assert answer.status_code == 401 and answer.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("secret", ["sbx_" + "A" * 43, "not-even-sbx", "", "sbx_\u00e9"])
def test_unknown_tokens_are_refused_with_401(server: ScriptboxServer, secret: str) -> None:
    answer = requests.get(server.base_url + "/api/admin/scripts", timeout=10,
                          headers={"Authorization": f"Bearer {secret}".encode()})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] in ("invalid_token", "unauthorized")


def test_an_expired_token_is_refused(api: Api, server: ScriptboxServer) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    token = make_token(api, scope="admin", expiresAt=expires.isoformat().replace("+00:00", "Z"))
    assert token["expiresAt"].startswith(expires.strftime("%Y-%m-%dT%H:%M:%S"))
    bot = token_api(server, token["token"])
    assert bot.get("/api/admin/scripts").status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    answer = bot.get("/api/admin/scripts")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"


def test_revoking_a_token_refuses_it_at_once_and_ends_its_open_streams(api: Api, server: ScriptboxServer) -> None:
    script = api.create_script(script="echo started; sleep 60")
    token = make_token(api, scriptIds=[script["id"]])
    bot = token_api(server, token["token"])
    run_id = bot.post(f"/api/admin/scripts/{script['id']}/run").json()["runId"]
    stream = SseStream(bot, run_id, timeout=30)
    events = stream.events()
    while (event := next(events)).event != "output":
        pass
    assert event.data["data"] == "started\n"

    assert api.delete(f"/api/admin/tokens/{token['id']}").status_code == 204
    rest = list(events)  # ends when the server closes the stream
    assert [e.event for e in rest] == ["revoked"]
    assert rest[0].data["error"]["code"] == "invalid_token"
    assert bot.get(f"/api/admin/scripts/runs/{run_id}").status_code == 401
    assert token["id"] not in {t["id"] for t in api.get("/api/admin/tokens").json()["tokens"]}
    # Revoking the token does not stop what it started.
    assert api.get(f"/api/admin/scripts/runs/{run_id}").json()["status"] == "running"
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202


def test_a_bearer_request_from_a_foreign_origin_is_still_refused(api: Api, server: ScriptboxServer) -> None:
    script = api.create_script()
    bot = token_api(server, make_token(api, scope="admin")["token"])
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = bot.post(f"/api/admin/scripts/{script['id']}/run", headers=headers)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "cross_site_refused"
        assert bot.delete(f"/api/admin/scripts/{script['id']}", headers=headers).status_code == 403
    assert api.get(f"/api/admin/scripts/runs?scriptId={script['id']}").json()["runs"] == []


def test_run_and_wait_answers_the_finished_run_when_it_ends_in_time(api: Api, server: ScriptboxServer) -> None:
    script = api.create_script(script="echo done; exit 3")
    bot = token_api(server, make_token(api, scriptIds=[script["id"]])["token"])
    answer = bot.post(f"/api/admin/scripts/{script['id']}/run?wait=30")
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert (run["status"], run["exitCode"], run["outputTail"]) == ("failed", 3, "done\n")
    by_code = bot.post(f"/api/admin/scripts/by-code/{script['codeIdentifier']}/run?wait=30")
    assert by_code.status_code == 200 and by_code.json()["status"] == "failed"


def test_run_and_wait_answers_202_when_the_run_outlasts_the_wait(api: Api) -> None:
    script = api.create_script(script="sleep 30")
    answer = api.post(f"/api/admin/scripts/{script['id']}/run?wait=1")
    assert answer.status_code == 202
    run_id = answer.json()["runId"]
    assert api.get(f"/api/admin/scripts/runs/{run_id}").json()["status"] in ("queued", "running")
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    zero = api.post(f"/api/admin/scripts/{api.create_script()['id']}/run?wait=0")
    assert zero.status_code == 202


@pytest.mark.parametrize("wait", ["301", "-1", "1.5", "abc", "\u00b2", "99999"])
def test_run_and_wait_refuses_bad_waits(api: Api, wait: str) -> None:
    script = api.create_script()
    answer = api.post(f"/api/admin/scripts/{script['id']}/run", params={"wait": wait})
    assert answer.status_code == 400 and "wait" in answer.json()["error"]["fields"]
    assert api.get(f"/api/admin/scripts/runs?scriptId={script['id']}").json()["runs"] == []


def test_a_client_that_leaves_while_waiting_does_not_cancel_the_run(api: Api, server: ScriptboxServer) -> None:
    script = api.create_script(script="sleep 1; echo finished")
    request = (f"POST /api/admin/scripts/{script['id']}/run?wait=60 HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{server.port}\r\nAuthorization: Basic "
               + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
               + "\r\nContent-Length: 0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        time.sleep(0.3)  # the server has started the run and is waiting
    runs = eventually(lambda: api.get(f"/api/admin/scripts/runs?scriptId={script['id']}").json()["runs"],
                      message="the run was created")
    run = wait_status(api, runs[0]["id"])
    assert run["status"] == "succeeded" and run["outputTail"] == "finished\n"

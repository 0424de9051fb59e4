"""Parameters and secrets end to end (SPEC §8.2, §8.3), on one real server.

Values must reach bash, node and vm2 scripts with the right names and types;
secret values must appear nowhere a person or the database could read them:
API answers, the live stream, the stored log, the tail, audit entries, the
server's own log, any document of any collection. Scripts prove they received
a secret by printing it reversed (which is not the secret, so not masked).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from bson import json_util
from pymongo import MongoClient

from support import Api, ScriptboxServer, SseStream, eventually, get_run, output_text, wait_status

ENV_SECRET = "env-" + secrets.token_hex(12)
DEFAULT_SECRET = "dflt-" + secrets.token_hex(12)
RUN_SECRET = "run-" + secrets.token_hex(12)
ALL_SECRETS = (ENV_SECRET, DEFAULT_SECRET, RUN_SECRET)
PARAMS = [
    {"name": "host", "type": "string", "required": True},
    {"name": "count", "type": "int", "default": 3},
    {"name": "ratio", "type": "number"},
    {"name": "dry_run", "type": "bool"},
    {"name": "mode", "type": "enum", "choices": ["fast", "safe"], "default": "safe"},
    {"name": "notes", "type": "text"},
    {"name": "token", "type": "secret"},
    {"name": "fallback", "type": "secret", "default": DEFAULT_SECRET},
]
ENV = [{"key": "PLAIN", "value": "visible"}, {"key": "API_KEY", "value": ENV_SECRET, "secret": True}]
VALUES = {"host": "db-1", "count": "7", "ratio": 0.5, "dry_run": True, "token": RUN_SECRET}


def rev(text: str) -> str:
    return text[::-1]


@pytest.fixture(scope="module")
def server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("data"), mongodb_uri=mongodb_uri).start()
    yield instance
    instance.stop()


def _create(api: Api, **fields: Any) -> dict[str, Any]:
    return api.create_script(env=ENV, params=PARAMS, **fields)


def _run(api: Api, script: dict[str, Any], params: dict[str, Any] | None = None) -> tuple[dict[str, Any], str,
                                                                                           list[Any]]:
    started = api.post(f"/api/admin/scripts/{script['id']}/run", json={"params": params or VALUES})
    assert started.status_code == 202, started.text
    run_id = started.json()["runId"]
    viewer = SseStream(api, run_id)
    events = viewer.until_end()
    viewer.close()
    run = wait_status(api, run_id)
    return run, api.get(f"/api/admin/scripts/runs/{run_id}/log").text, events


BASH_PROBE = r"""printf 'host=%s count=%s ratio=%s dry=%s mode=%s notes=%s plain=%s\n' \
  "$host" "$count" "$ratio" "$dry_run" "$mode" "${notes-unset}" "$PLAIN"
printf 'rev key=%s token=%s fallback=%s\n' "$(printf %s "$API_KEY" | rev)" "$(printf %s "$token" | rev)" \
  "$(printf %s "$fallback" | rev)"
"""
NODE_PROBE = r"""const r = (s) => [...s].reverse().join('');
const e = process.env;
console.log(JSON.stringify({host: e.host, count: e.count, ratio: e.ratio, dry: e.dry_run, mode: e.mode,
  notes: 'notes' in e, key: r(e.API_KEY), token: r(e.token), fallback: r(e.fallback)}));"""
VM2_PROBE = r"""const r = (s) => [...s].reverse().join('');
const types = {};
for (const [k, v] of Object.entries(params)) types[k] = v === null ? 'null' : typeof v;
let assigned = true;
try { params.count = 1; } catch (err) { assigned = false; }
console.log(JSON.stringify({types, frozen: Object.isFrozen(params), assigned, count: params.count,
  ratio: params.ratio, dry: params.dry_run, mode: params.mode, key: r(env.API_KEY), token: r(params.token),
  fallback: r(params.fallback)}));"""


def test_values_reach_bash_node_and_vm2_scripts_with_their_names_and_types(api: Api) -> None:
    bash, log, _ = _run(api, _create(api, script=BASH_PROBE))
    assert bash["status"] == "succeeded", log
    assert "host=db-1 count=7 ratio=0.5 dry=true mode=safe notes=unset plain=visible\n" in log
    assert f"rev key={rev(ENV_SECRET)} token={rev(RUN_SECRET)} fallback={rev(DEFAULT_SECRET)}\n" in log
    assert bash["params"] == {"host": "db-1", "count": 7, "ratio": 0.5, "dry_run": True, "mode": "safe",
                              "notes": None, "token": "***", "fallback": "***"}

    node, log, _ = _run(api, _create(api, type="node", script=NODE_PROBE), {**VALUES, "dry_run": "false"})
    assert node["status"] == "succeeded", log
    assert json.loads(log) == {"host": "db-1", "count": "7", "ratio": "0.5", "dry": "false", "mode": "safe",
                               "notes": False, "key": rev(ENV_SECRET), "token": rev(RUN_SECRET),
                               "fallback": rev(DEFAULT_SECRET)}

    vm2, log, _ = _run(api, _create(api, type="node", runner="vm2", script=VM2_PROBE))
    assert vm2["status"] == "succeeded", log
    assert json.loads(log) == {
        "types": {"host": "string", "count": "number", "ratio": "number", "dry_run": "boolean", "mode": "string",
                  "notes": "null", "token": "string", "fallback": "string"},
        "frozen": True, "assigned": True, "count": 7, "ratio": 0.5, "dry": True, "mode": "safe",
        "key": rev(ENV_SECRET), "token": rev(RUN_SECRET), "fallback": rev(DEFAULT_SECRET)}


LEAKY = r"""echo "plain $API_KEY and $token"
echo "stderr $fallback" >&2
# One character per write, each flushed (printf is a builtin: one write each).
for ((i = 0; i < ${#API_KEY}; i++)); do printf %s "${API_KEY:i:1}"; sleep 0.01; done; echo
for ((i = 0; i < ${#token}; i++)); do printf %s "${token:i:1}" >&2; sleep 0.01; done; echo >&2
# Across a 64 KiB read: the filler and the secret in one write of 65536 + 10 bytes.
filler=$(head -c $((65536 - 10)) /dev/zero | tr '\0' x)
printf '%s%s\n' "$filler" "$fallback"
printf 'tail %s' "$API_KEY"
"""


def _scan_database(uri: str, db_name: str) -> list[str]:
    """Every secret found in any document of any collection, as (collection, secret)."""
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        database = client[db_name]
        found = []
        for name in database.list_collection_names():
            for doc in database[name].find():
                text = json_util.dumps(doc)
                found += [f"{name}: {s}" for s in ALL_SECRETS if s in text]
        return found
    finally:
        client.close()


def test_secret_values_never_appear_in_answers_stream_log_tail_audit_or_database(
        api: Api, server: ScriptboxServer, mongodb_uri: str) -> None:
    script = _create(api, script=LEAKY)
    run, log, events = _run(api, script)
    assert run["status"] == "succeeded", log
    # stdout and stderr are two pipes read side by side: their lines may interleave in any
    # order, so each stream is checked on its own; the stored log is the same sequence.
    live = output_text(events)
    stdout, stderr = output_text(events, "stdout"), output_text(events, "stderr")
    masked = "x" * (65536 - 10) + "***\n"
    assert stdout == "plain *** and ***\n***\n" + masked + "tail ***", stdout[-300:]
    assert stderr == "stderr ***\n***\n", stderr
    assert log == live and live.count("***") == 7, live[-300:]
    tail = run["outputTail"]  # the end of the same sequence (stderr's last newline may come after stdout's)
    assert tail and live.endswith(tail) and "***\ntail ***" in tail, tail[-100:]
    answers = [api.get(f"/api/admin/scripts/{script['id']}").text, api.get("/api/admin/scripts").text,
               api.get(f"/api/admin/scripts/runs/{run['id']}").text, api.get("/api/admin/scripts/runs").text,
               api.get("/api/admin/audit").text, json.dumps(events, default=vars), log, server.text]
    for answer in answers:
        assert not [s for s in ALL_SECRETS if s in answer], answer[:500]
    shown = api.get(f"/api/admin/scripts/{script['id']}").json()
    assert shown["env"] == [{"key": "PLAIN", "value": "visible"}, {"key": "API_KEY", "value": None, "secret": True}]
    assert {p["name"]: p.get("hasDefault") for p in shown["params"]}["fallback"] is True
    assert _scan_database(mongodb_uri, server.db_name) == []


def test_a_put_with_value_null_keeps_the_secret_and_a_new_secret_needs_a_value(api: Api) -> None:
    script = _create(api, script=BASH_PROBE)
    fetched = api.get(f"/api/admin/scripts/{script['id']}").json()
    fetched["name"] = "renamed"
    updated = api.put(f"/api/admin/scripts/{script['id']}", json=fetched)
    assert updated.status_code == 200, updated.text
    partial = api.put(f"/api/admin/scripts/{script['id']}", json={"description": "env and params not sent"})
    assert partial.status_code == 200 and partial.json()["env"] == fetched["env"], partial.text
    _, log, _ = _run(api, script)
    assert f"rev key={rev(ENV_SECRET)} token={rev(RUN_SECRET)} fallback={rev(DEFAULT_SECRET)}\n" in log
    # Replacing: a new value for one, the removal ("") of the default of another.
    fetched = partial.json()
    fetched["env"][1]["value"] = "replaced-value"
    fetched["params"][7]["default"] = ""
    fetched["params"][7]["required"] = False
    assert api.put(f"/api/admin/scripts/{script['id']}", json=fetched).status_code == 200
    run, log, _ = _run(api, script)
    assert f"rev key={rev('replaced-value')} token={rev(RUN_SECRET)} fallback=\n" in log
    assert run["params"]["fallback"] is None
    new = api.put(f"/api/admin/scripts/{script['id']}",
                  json={"env": [*fetched["env"], {"key": "OTHER", "value": None, "secret": True}]})
    assert new.status_code == 400 and "env.2.value" in new.json()["error"]["fields"], new.text
    plain_null = api.put(f"/api/admin/scripts/{script['id']}", json={"env": [{"key": "A", "value": None}]})
    assert plain_null.status_code == 400 and "env.0.value" in plain_null.json()["error"]["fields"]


def test_browser_results_are_masked_and_browser_scripts_hold_no_stored_secrets(api: Api) -> None:
    refused = api.post("/api/admin/scripts", json={"name": "b", "codeIdentifier": "browser-secret", "type": "browser",
                                                   "env": ENV})
    assert refused.status_code == 400 and "env.1.secret" in refused.json()["error"]["fields"]
    script = api.create_script(type="browser", script="console.log(params.token)",
                               params=[{"name": "token", "type": "secret"}, {"name": "n", "type": "int"}])
    started = api.post(f"/api/admin/scripts/{script['id']}/run", json={"params": {"token": RUN_SECRET, "n": "2"}})
    assert started.status_code == 202
    # What the page hands to the worker: typed values, the secret as *** (the page asked for it itself).
    assert started.json()["params"] == {"token": "***", "n": 2}
    run_id = started.json()["runId"]
    half = len(RUN_SECRET) // 2
    body = {"status": "failed", "exitCode": 1, "error": f"Error: bad {RUN_SECRET}",
            "output": [{"stream": "stdout", "data": f"a {RUN_SECRET[:half]}"}, {"stream": "stderr", "data": "e\n"},
                       {"stream": "stdout", "data": f"{RUN_SECRET[half:]} b\n"}]}
    answer = api.post(f"/api/admin/scripts/runs/{run_id}/browser-result", json=body)
    assert answer.status_code == 200, answer.text
    assert RUN_SECRET not in answer.text
    run = get_run(api, run_id)
    assert run["meta"]["error"] == "Error: bad ***"
    log = api.get(f"/api/admin/scripts/runs/{run_id}/log").text
    assert log == "a e\n*** b\n" and run["outputTail"] == log


def test_a_scheduled_run_gets_the_schedule_params_and_the_defaults(api: Api) -> None:
    script = api.create_script(
        script=BASH_PROBE, env=ENV, params=[p for p in PARAMS if p["name"] != "token"],
        schedule={"cron": "* * * * * *", "overlap": "allow", "params": {"host": "sched", "dry_run": "false"}})
    assert script["schedule"]["params"] == {"host": "sched", "dry_run": False}

    def first_run() -> dict[str, Any] | None:
        runs = api.get("/api/admin/scripts/runs", params={"scriptId": script["id"]}).json()["runs"]
        return runs[-1] if runs else None

    run = eventually(first_run, 10, message="a scheduled run")
    api.put(f"/api/admin/scripts/{script['id']}", json={"schedule": None})
    run = wait_status(api, run["id"])
    log = api.get(f"/api/admin/scripts/runs/{run['id']}/log").text
    assert run["trigger"] == "schedule" and run["status"] == "succeeded", log
    assert run["params"] == {"host": "sched", "count": 3, "ratio": None, "dry_run": False, "mode": "safe",
                             "notes": None, "fallback": "***"}
    assert "host=sched count=3 ratio= dry=false mode=safe" in log
    assert f"fallback={rev(DEFAULT_SECRET)}\n" in log

"""Host runners end to end: real bash/node processes under a real server."""

from __future__ import annotations

import os
from pathlib import Path

from support import Api, get_run, run_script, start_run, wait_status


def test_exit_zero_succeeds_and_keeps_stdout_and_stderr_apart(api: Api) -> None:
    run, log = run_script(api, "echo out; echo err >&2")
    assert run["status"] == "succeeded"
    assert run["exitCode"] == 0
    assert "out\n" in log and "err\n" in log
    assert run["meta"]["outputBytes"] == 8
    assert run["meta"]["logTruncated"] is False
    assert sorted(run["outputTail"].splitlines()) == ["err", "out"]
    assert run["startedAt"] and run["finishedAt"] and run["createdAt"].endswith("Z")
    assert run["meta"]["requestedBy"] == "admin"
    assert run["meta"]["snapshot"]["type"] == "bash" and run["meta"]["snapshot"]["runner"] == "host"


def test_non_zero_exit_fails_with_its_code(api: Api) -> None:
    run, _ = run_script(api, "echo partial; exit 7")
    assert run["status"] == "failed"
    assert run["exitCode"] == 7
    assert run["meta"]["error"] is None


def test_killed_by_a_signal_fails_without_exit_code(api: Api) -> None:
    run, _ = run_script(api, "kill -KILL $$")
    assert run["status"] == "failed"
    assert run["exitCode"] is None
    assert run["meta"]["signal"] == "SIGKILL"


def test_env_has_script_values_and_run_ids_but_no_scriptbox_secrets(api: Api) -> None:
    definition = api.create_script(
        script="env | sort",
        env=[{"key": "GREETING", "value": "hello world"}, {"key": "EMPTY", "value": ""}],
    )
    run_id = start_run(api, definition["id"])
    run = wait_status(api, run_id)
    assert run["status"] == "succeeded"
    lines = set(api.get(f"/api/admin/scripts/runs/{run_id}/log").text.splitlines())
    assert "GREETING=hello world" in lines
    assert "EMPTY=" in lines
    assert f"SCRIPTBOX_RUN_ID={run_id}" in lines
    assert f"SCRIPTBOX_SCRIPT_ID={definition['id']}" in lines
    names = {line.split("=", 1)[0] for line in lines if "=" in line}
    # The server runs with SCRIPTBOX_ADMIN_PASSWORD and SCRIPTBOX_DB_NAME set.
    assert "SCRIPTBOX_ADMIN_PASSWORD" not in names
    assert "SCRIPTBOX_DB_NAME" not in names
    assert not any("test-password-123" in line for line in lines)


def test_default_working_directory_is_the_data_dir_work_folder(api: Api, server) -> None:  # type: ignore[no-untyped-def]
    run, log = run_script(api, "pwd")
    assert run["status"] == "succeeded"
    expected = os.path.realpath(Path(server.data_dir) / "work")
    assert log.strip() == expected
    assert run["meta"]["snapshot"]["workingDirectory"] == str(Path(server.data_dir) / "work")


def test_configured_working_directory_is_used(api: Api, tmp_path: Path) -> None:
    run, log = run_script(api, "pwd", defaultWorkingDirectory=str(tmp_path))
    assert run["status"] == "succeeded"
    assert log.strip() == str(tmp_path)


def test_missing_working_directory_fails_with_the_reason(api: Api, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    run, log = run_script(api, "echo never", defaultWorkingDirectory=str(missing))
    assert run["status"] == "failed"
    assert run["exitCode"] is None
    assert str(missing) in run["meta"]["error"] and "does not exist" in run["meta"]["error"]
    assert "does not exist" in log
    assert "never" not in log


def test_stdin_is_empty(api: Api) -> None:
    run, log = run_script(api, "cat; echo \"bytes=$(wc -c < /dev/stdin)\"", timeout=10)
    assert run["status"] == "succeeded"
    assert log.strip() == "bytes=0"


def test_runs_in_its_own_session_and_process_group(api: Api) -> None:
    run, log = run_script(api, "ps -o pid=,pgid=,sid= -p $$")
    pid, pgid, sid = (int(x) for x in log.split())
    assert pid == pgid == sid == run["meta"]["pid"]


def test_node_host_runner_runs_node_e(api: Api) -> None:
    script = "console.log('from node', process.env.GREETING); console.error('oops'); process.exit(4)"
    run, log = run_script(api, script, type="node", env=[{"key": "GREETING", "value": "hi"}])
    assert run["status"] == "failed"
    assert run["exitCode"] == 4
    assert "from node hi" in log and "oops" in log
    assert run["meta"]["snapshot"]["runner"] == "host"


def test_run_of_unknown_script_is_404_and_of_disabled_script_409(api: Api) -> None:
    assert api.post("/api/admin/scripts/0123456789abcdef01234567/run").status_code == 404
    disabled = api.create_script(enabled=False)
    response = api.post(f"/api/admin/scripts/{disabled['id']}/run")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "script_disabled"


def test_run_request_trigger_is_validated(api: Api) -> None:
    definition = api.create_script()
    path = f"/api/admin/scripts/{definition['id']}/run"
    bad = api.post(path, json={"trigger": "schedule"})
    assert bad.status_code == 400 and "trigger" in bad.json()["error"]["fields"]
    assert api.post(path, json={"trigger": "cron"}).status_code == 400
    unknown = api.post(path, json={"trigger": "api", "extra": 1})
    assert unknown.status_code == 400 and "extra" in unknown.json()["error"]["fields"]
    assert api.post(path, json=[1]).status_code == 400
    manual = api.post(path, json={"trigger": "manual"})
    assert manual.status_code == 202
    assert get_run(api, manual.json()["runId"])["trigger"] == "manual"
    default = api.post(path)
    assert default.status_code == 202
    assert get_run(api, default.json()["runId"])["trigger"] == "api"


def test_unknown_run_ids_are_404_as_json(api: Api) -> None:
    for path in ("/api/admin/scripts/runs/0123456789abcdef01234567",
                 "/api/admin/scripts/runs/0123456789abcdef01234567/log",
                 "/api/admin/scripts/runs/0123456789abcdef01234567/stream",
                 "/api/admin/scripts/runs/not-an-id"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert api.post("/api/admin/scripts/runs/0123456789abcdef01234567/cancel").status_code == 404


def test_runs_list_filters_pages_and_is_newest_first(api: Api) -> None:
    definition = api.create_script(script="exit 0")
    other = api.create_script(script="exit 1")
    ids = [start_run(api, definition["id"]) for _ in range(5)]
    failing = start_run(api, other["id"])
    for run_id in ids + [failing]:
        wait_status(api, run_id)

    page = api.get("/api/admin/scripts/runs", params={"scriptId": definition["id"], "limit": 2}).json()
    assert [r["id"] for r in page["runs"]] == ids[::-1][:2]
    seen = [r["id"] for r in page["runs"]]
    while page["nextBefore"]:
        page = api.get("/api/admin/scripts/runs",
                       params={"scriptId": definition["id"], "limit": 2, "before": page["nextBefore"]}).json()
        seen += [r["id"] for r in page["runs"]]
    assert seen == ids[::-1]

    failed = api.get("/api/admin/scripts/runs", params={"status": "failed", "scriptId": other["id"]}).json()
    assert [r["id"] for r in failed["runs"]] == [failing]
    both = api.get("/api/admin/scripts/runs", params={"status": "failed,succeeded", "limit": 500}).json()
    assert {failing, *ids} <= {r["id"] for r in both["runs"]}
    everything = api.get("/api/admin/scripts/runs").json()
    assert len(everything["runs"]) <= 50


def test_runs_list_rejects_bad_parameters_naming_them(api: Api) -> None:
    cases = {"limit": ["0", "501", "x", "-1"], "status": ["done", "queued,nope"],
             "scriptId": ["xyz"], "before": ["!!", "bm90LWEtY3Vyc29y"]}
    for name, values in cases.items():
        for value in values:
            response = api.get("/api/admin/scripts/runs", params={name: value})
            assert response.status_code == 400, (name, value)
            assert name in response.json()["error"]["fields"], (name, value)

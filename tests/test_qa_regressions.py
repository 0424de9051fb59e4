"""Regressions for bugs found by QA against a real server (real processes, real HTTP)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support import Api, SseStream, eventually, get_run, output_text, pid_alive, run_script, start_run, wait_status


def _replayed_output(body: str) -> str:
    """The concatenated output events of a complete SSE body."""
    out = []
    for block in body.split("\n\n"):
        lines = block.split("\n")
        if "event: output" in lines:
            out.append(json.loads("".join(line[len("data: "):] for line in lines if line.startswith("data: ")))["data"])
    return "".join(out)


def test_last_event_id_that_is_not_a_sequence_number_is_ignored_not_a_500(api: Api) -> None:
    run, log = run_script(api, "echo one; echo two")
    # > 2**63 overflowed the database query; "²" passes str.isdigit() but not int().
    for value in ("99999999999999999999999999", "²"):
        path = f"/api/admin/scripts/runs/{run['id']}/stream"
        for response in (api.get(path, headers={"Last-Event-ID": value.encode()}),
                         api.get(path, params={"lastEventId": value})):
            assert response.status_code == 200, response.text
            # Ignored means a fresh start: the whole log is replayed, then end.
            assert _replayed_output(response.text) == log == "one\ntwo\n"
            assert "event: end" in response.text


def test_run_list_limit_with_a_non_ascii_digit_is_a_400_naming_limit(api: Api) -> None:
    response = api.get("/api/admin/scripts/runs", params={"limit": "²"})
    assert response.status_code == 400, response.text
    assert "limit" in response.json()["error"]["fields"]


def test_bash_script_longer_than_one_process_argument_runs_and_its_temp_file_is_removed(api: Api) -> None:
    # Linux refuses a single argv string over 128 KiB; the contract allows 1 MiB.
    script = 'echo "file=$BASH_SOURCE"; exit 3\n' + "#" * 300_000 + "\n"
    run, log = run_script(api, script)
    assert run["status"] == "failed" and run["exitCode"] == 3, (run, log)
    path = log.split("file=", 1)[1].strip()
    assert path and not os.path.exists(path)


def test_node_script_longer_than_one_process_argument_runs_like_node_e(api: Api) -> None:
    script = "console.log(typeof require, typeof module, process.cwd() !== '')\n//" + "x" * 300_000
    run, log = run_script(api, script, type="node")
    assert run["status"] == "succeeded", (run, log)
    assert log == "function object true\n"


def test_nul_character_in_script_or_env_fails_to_start_with_the_reason(api: Api) -> None:
    for fields in ({"script": "echo a\u0000b"}, {"env": [{"key": "A", "value": "x\u0000y"}]}):
        run, log = run_script(api, fields.pop("script", "echo hi"), **fields)
        assert run["status"] == "failed" and run["exitCode"] is None
        assert "NUL" in run["meta"]["error"] and "NUL" in log
        assert "internal error" not in run["meta"]["error"]


def test_daemon_with_a_cleared_environment_holding_the_output_pipe_is_killed(api: Api, tmp_path: Path) -> None:
    # setsid + double fork + `env -i`: not in the tree, session or environment
    # of the run; only the output pipe it still holds ties it to the run.
    pid_file = tmp_path / "daemon.pid"
    script = f"( setsid env -i /bin/sh -c 'echo $$ > {pid_file}; exec sleep 1000' & ); sleep 0.5; echo started"
    definition = api.create_script(script=script)
    run_id = start_run(api, definition["id"])
    run = wait_status(api, run_id)
    assert run["status"] == "succeeded", run
    pid = int(pid_file.read_text())
    try:
        eventually(lambda: not pid_alive(pid), timeout=15, message="the daemon of the run is killed")
    finally:
        if pid_alive(pid):
            os.kill(pid, 9)
    assert get_run(api, run_id)["status"] == "succeeded"


def test_sse_stream_of_a_finished_run_replays_everything_then_ends(api: Api) -> None:
    run, log = run_script(api, "printf 'a\\xffb\\r50%%\\n'; printf '\\e[31mred\\e[0m\\n' >&2")
    events = SseStream(api, run["id"]).until_end()
    assert events[0].event == "status" and events[-1].event == "end"
    assert output_text(events) == log
    assert "\ufffd" in log and "\r50%" in log and "\x1b[31m" in log

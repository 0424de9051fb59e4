"""SCRIPTBOX_LOG_FORMAT=json: every log record is one JSON object per line (a real server's output)."""

from __future__ import annotations

import json
from typing import Any

from scriptbox.config import ConfigError, load_settings
from support import ScriptboxServer, eventually, start_run, wait_status

# What `serve` prints on stdout for the person who started it (not log records).
ANNOUNCEMENTS = ("Scriptbox listening on ", "Starting the embedded database")


def records(server: ScriptboxServer) -> list[dict[str, Any]]:
    out = []
    for line in server.text.splitlines():
        if not line or line.startswith(ANNOUNCEMENTS):
            continue
        record = json.loads(line)  # every other line is one JSON object
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        out.append(record)
    return out


def test_json_log_lines_parse_and_carry_the_run_id(server_factory: Any) -> None:
    server = server_factory(env={"SCRIPTBOX_LOG_FORMAT": "json"}).start()
    api = server.api()
    script = api.create_script(script="echo logged")
    run_id = start_run(api, script["id"])
    assert wait_status(api, run_id)["status"] == "succeeded"
    api.get(f"/api/admin/scripts/runs/{run_id}/log")
    # The server writes the record when the run ends; the test may read first.
    eventually(lambda: any(r.get("runId") == run_id for r in records(server)), message="the run's log record")
    server.stop()
    logged = records(server)
    ended = [r for r in logged if r.get("runId") == run_id]
    assert ended and ended[0]["logger"] == "scriptbox.engine" and ended[0]["level"] == "INFO"
    assert "succeeded" in ended[0]["message"]
    assert any(r["logger"] == "scriptbox.access" and f"/runs/{run_id}/log" in r["message"] for r in logged)
    assert any(r["message"] == "shutting down" for r in logged)
    assert all(r["time"].endswith("+00:00") for r in logged)


def test_an_unknown_log_format_is_refused_at_start() -> None:
    try:
        load_settings({}, {"SCRIPTBOX_LOG_FORMAT": "xml"})
    except ConfigError as exc:
        assert "SCRIPTBOX_LOG_FORMAT" in str(exc)
    else:
        raise AssertionError("SCRIPTBOX_LOG_FORMAT=xml must be refused")

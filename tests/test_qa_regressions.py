"""Regressions for bugs found by QA against a real server (real processes, real HTTP)."""

from __future__ import annotations

import json

from conftest import Api
from runs_support import SseStream, output_text, run_script


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


def test_sse_stream_of_a_finished_run_replays_everything_then_ends(api: Api) -> None:
    run, log = run_script(api, "printf 'a\\xffb\\r50%%\\n'; printf '\\e[31mred\\e[0m\\n' >&2")
    events = SseStream(api, run["id"]).until_end()
    assert events[0].event == "status" and events[-1].event == "end"
    assert output_text(events) == log
    assert "\ufffd" in log and "\r50%" in log and "\x1b[31m" in log

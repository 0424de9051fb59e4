"""The `at` of SSE output events (issue 21 item 11: per-line times in the live panel)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from scriptbox.sse_wire import output_frame


def _data(frame: bytes) -> dict[str, object]:
    line = next(x for x in frame.decode().splitlines() if x.startswith("data: "))
    return json.loads(line[len("data: "):])


def test_an_output_event_carries_when_the_server_read_it_in_utc_with_milliseconds() -> None:
    local = datetime(2026, 3, 29, 3, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2)))
    assert _data(output_frame(7, "stderr", "x\n", at=local)) == {
        "stream": "stderr", "data": "x\n", "at": "2026-03-29T01:04:05.678Z"}
    naive_utc = datetime(2026, 3, 29, 1, 4, 5, 678_000)
    assert _data(output_frame(7, "stdout", "y", True, naive_utc))["at"] == "2026-03-29T01:04:05.678Z"
    assert datetime.fromisoformat(str(_data(output_frame(1, "stdout", "z", at=datetime.now(UTC)))["at"]))


def test_without_a_time_the_event_is_the_one_older_clients_know() -> None:
    assert _data(output_frame(3, "stdout", "plain")) == {"stream": "stdout", "data": "plain"}

"""The run-events feed (GET /api/admin/scripts/runs/events), in-process on the real database.

Runs of this process arrive through the engine's hub at once; runs changed by
another process (here: written straight to the store, as another executor
would) arrive through the feed's database poll. Each status is sent once, never
backwards; bad query values get the JSON error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scriptbox.api.presenters import run_to_json
from scriptbox.api.run_events import RunEvents, RunEventsSource
from scriptbox.engine.live import ALL_RUNS
from scriptbox.store.records import RunEnd
from support import AppClient
from support.inprocess import InProcessApp


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("run-events"))  # no worker: runs stay queued
    yield instance
    instance.close()


def _feed(inproc: InProcessApp, poll_s: float = 0.2) -> Iterator[bytes]:
    """The feed's blocks; a keepalive every 0.3 s so that reading it never blocks long."""
    hub = inproc.engine.ctx.live.hub
    source = RunEventsSource(changed_since=inproc.services.runs.active_or_finished_since,
                             subscribe=lambda: hub.subscribe(ALL_RUNS), unsubscribe=hub.unsubscribe,
                             present=run_to_json)
    return iter(RunEvents(source, heartbeat_s=0.3, poll_s=poll_s, max_seconds=30))


def _runs_in(block: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[len(b"data: "):]) for line in block.split(b"\n") if line.startswith(b"data: ")]


def _next_runs(feed: Iterator[bytes], within_s: float) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    while not runs and time.monotonic() - started < within_s:
        runs = _runs_in(next(feed))
    return runs, time.monotonic() - started


def test_runs_of_this_process_arrive_at_once_and_others_through_the_database(inproc: InProcessApp) -> None:
    script_id = str(inproc.services.definitions.create(
        {"name": "feed", "codeIdentifier": "feed", "type": "bash", "script": "echo hi"})["_id"])
    before = str(inproc.engine.submit(script_id, "api", None)["_id"])  # exists when the feed opens
    feed = _feed(inproc, poll_s=2.0)  # a slow poll: what arrives fast came through the hub
    assert next(feed) == b": ready\n\n"
    run_id = str(inproc.engine.submit(script_id, "manual", "admin")["_id"])
    [queued], took = _next_runs(feed, 10)
    assert (queued["id"], queued["status"], queued["trigger"]) == (run_id, "queued", "manual")
    assert took < 1.0, took  # the hub, not the 2 s poll
    # Another process ends both runs: only the database knows.
    for rid in (before, run_id):
        assert inproc.services.runs.finish_queued(rid, RunEnd("canceled", error="canceled")) is not None
    seen: dict[str, str] = {}
    while len(seen) < 2:
        runs, _ = _next_runs(feed, 10)
        assert runs, "the poll brought nothing"
        seen.update({r["id"]: r["status"] for r in runs})
    assert seen == {before: "canceled", run_id: "canceled"}


def test_a_status_is_sent_once_and_never_backwards(inproc: InProcessApp) -> None:
    script_id = str(inproc.services.definitions.create(
        {"name": "once", "codeIdentifier": "once", "type": "bash", "script": "echo hi"})["_id"])
    feed = _feed(inproc, poll_s=0.1)
    next(feed)
    doc = inproc.engine.submit(script_id, "api", None)
    [first], _ = _next_runs(feed, 5)
    assert first["status"] == "queued"
    done = inproc.services.runs.finish_queued(str(doc["_id"]), RunEnd("canceled", error="canceled"))
    assert done is not None
    inproc.engine.ctx.live.publish_end(done)  # the hub and the poll both report it
    inproc.engine.ctx.live.publish_status(doc)  # a stale "queued" after the end
    statuses: list[str] = []
    deadline = time.monotonic() + 1.5  # several polls
    while time.monotonic() < deadline:
        statuses += [r["status"] for r in _runs_in(next(feed)) if r["id"] == str(doc["_id"])]
    assert statuses == ["canceled"]


def test_the_route_refuses_a_bad_max_seconds_and_streams_with_a_good_one(inproc: InProcessApp) -> None:
    client: AppClient = inproc.client()
    for bad in ("0", "abc", "3601", "²"):
        answer = client.get(f"/api/admin/scripts/runs/events?maxSeconds={bad}")
        assert answer.status_code == 400, bad
        assert "maxSeconds" in answer.json()["error"]["fields"]
    answer = client.get("/api/admin/scripts/runs/events?maxSeconds=1")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.content.startswith(b": ready\n\n")

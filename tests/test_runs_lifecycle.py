"""Concurrency limit, FIFO queue, graceful stop and crash recovery."""

from __future__ import annotations

import time
from typing import Any

from support import get_run, pid_alive, run_pids, start_run, wait_status


def _iso_order(runs: list[dict[str, Any]], key: str) -> list[str]:
    return [r["id"] for r in sorted(runs, key=lambda r: r[key])]


def test_at_most_max_concurrent_runs_execute_and_the_rest_wait_in_order(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "2"}).start()
    api = server.api()
    definition = api.create_script(script="sleep 0.6")
    ids = [start_run(api, definition["id"]) for _ in range(5)]
    time.sleep(0.3)
    statuses = [get_run(api, i)["status"] for i in ids]
    assert statuses[:2] == ["running", "running"]
    assert statuses[2:] == ["queued"] * 3
    max_running = 0
    while True:
        # One query, so one consistent view of the statuses.
        listed = api.get("/api/admin/scripts/runs", params={"scriptId": definition["id"]}).json()["runs"]
        max_running = max(max_running, sum(r["status"] == "running" for r in listed))
        if all(r["status"] == "succeeded" for r in listed):
            break
        time.sleep(0.02)
    assert max_running == 2
    runs = [get_run(api, i) for i in ids]
    assert _iso_order(runs, "startedAt") == ids  # FIFO


def test_graceful_stop_ends_running_runs_failed_and_restart_runs_the_queue(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "1"}).start()
    api = server.api()
    long = api.create_script(script="sleep 60")
    quick = api.create_script(script="echo after restart")
    running = start_run(api, long["id"])
    wait_status(api, running, ("running",))
    queued = start_run(api, quick["id"])
    assert server.stop() == 0
    assert not run_pids(running)

    server.start()
    api = server.api()
    run = get_run(api, running)
    assert run["status"] == "failed"
    assert run["meta"]["error"] == "server shut down"
    try:
        after = wait_status(api, queued)
    except AssertionError:
        print(server.text)
        print(get_run(api, queued))
        raise
    assert after["status"] == "succeeded"
    assert api.get(f"/api/admin/scripts/runs/{queued}/log").text == "after restart\n"


def test_sigkill_of_the_server_mid_run_then_restart_recovers(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "1"}).start()
    api = server.api()
    long = api.create_script(script="setsid sleep 120 & sleep 121 & echo started; wait")
    quick = api.create_script(script="echo queued one ran")
    running = start_run(api, long["id"])
    wait_status(api, running, ("running",))
    # Once "started" is stored, both sleeps exist and the output is persisted.
    deadline = time.monotonic() + 10
    while "started" not in api.get(f"/api/admin/scripts/runs/{running}/log").text:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    orphans = run_pids(running)
    assert len(orphans) >= 3
    queued = start_run(api, quick["id"])

    server.kill()  # a crash: nothing is cleaned up
    time.sleep(0.2)
    assert any(pid_alive(p) for p in orphans)  # the run's processes outlived the server

    server.start()
    api = server.api()
    run = get_run(api, running)
    assert run["status"] == "failed"
    assert run["meta"]["error"] == "executor lost: server restarted"
    assert run["finishedAt"] is not None
    deadline = time.monotonic() + 5
    while run_pids(running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run_pids(running) == []
    assert wait_status(api, queued)["status"] == "succeeded"
    # The log stored before the crash is still there.
    assert api.get(f"/api/admin/scripts/runs/{running}/log").text.startswith("started\n")

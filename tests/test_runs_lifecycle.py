"""Concurrency limit, FIFO queue, graceful stop and crash recovery."""

from __future__ import annotations

import threading
from typing import Any

from support import SseStream, eventually, get_run, pid_alive, run_pids, start_run, wait_status


def _iso_order(runs: list[dict[str, Any]], key: str) -> list[str]:
    return [r["id"] for r in sorted(runs, key=lambda r: r[key])]


def test_at_most_max_concurrent_runs_execute_and_the_rest_wait_in_order(server_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "2"}).start()
    api = server.api()
    gate = tmp_path / "gate"
    definition = api.create_script(script=f"while [ ! -e {gate} ]; do sleep 0.02; done")
    ids = [start_run(api, definition["id"]) for _ in range(5)]
    eventually(lambda: [get_run(api, i)["status"] for i in ids[:2]] == ["running", "running"],
               message="the first two runs start")
    # Both slots are taken until the gate opens: the rest wait, however long that is.
    assert [get_run(api, i)["status"] for i in ids[2:]] == ["queued"] * 3
    gate.touch()
    runs = [wait_status(api, i) for i in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 5
    # From the recorded times: never more than two runs at once (half-open intervals).
    edges = sorted([(r["startedAt"], 1) for r in runs] + [(r["finishedAt"], -1) for r in runs],
                   key=lambda edge: (edge[0], edge[1]))
    running = max_running = 0
    for _, step in edges:
        running += step
        max_running = max(max_running, running)
    assert max_running == 2
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
    eventually(lambda: "started" in api.get(f"/api/admin/scripts/runs/{running}/log").text, timeout=10,
               message="the first line is stored")
    orphans = run_pids(running)
    assert len(orphans) >= 3
    queued = start_run(api, quick["id"])

    server.kill()  # a crash: nothing is cleaned up
    assert any(pid_alive(p) for p in orphans)  # the run's processes outlived the server

    server.start()
    api = server.api()
    run = get_run(api, running)
    assert run["status"] == "failed"
    assert run["meta"]["error"] == "executor lost: server restarted"
    assert run["finishedAt"] is not None
    eventually(lambda: run_pids(running) == [], timeout=5, message="no process of the run is left")
    assert wait_status(api, queued)["status"] == "succeeded"
    # The log stored before the crash is still there.
    assert api.get(f"/api/admin/scripts/runs/{running}/log").text.startswith("started\n")


def test_a_graceful_stop_ends_open_streams_cleanly_and_answers_waiting_requests(server_factory) -> None:  # type: ignore[no-untyped-def]
    # The embedded database: it is stopped last, so anything still reading the
    # database after the server closed its connection would show here.
    server = server_factory(mongodb_uri=None).start()
    api = server.api()
    long = api.create_script(script="sleep 60")
    watched = start_run(api, long["id"])
    wait_status(api, watched, ("running",))
    results: dict[str, Any] = {}

    def watch_run() -> None:
        stream = SseStream(server.api(), watched)
        results["run"] = stream.until_end()
        results["run_rest"] = b"".join(stream.response.iter_content(chunk_size=None))  # then a clean close

    def watch_feed() -> None:
        with server.api().get("/api/admin/scripts/runs/events", stream=True) as feed:
            results["feed_opened"] = feed.status_code
            results["feed"] = b"".join(feed.iter_content(chunk_size=None))

    def wait_for_run() -> None:
        answer = server.api().post(f"/api/admin/scripts/{long['id']}/run?wait=120", timeout=60)
        results["wait"] = (answer.status_code, answer.json())

    threads = [threading.Thread(target=target, daemon=True) for target in (watch_run, watch_feed, wait_for_run)]
    for thread in threads:
        thread.start()
    eventually(lambda: len(api.get("/api/admin/scripts/runs?status=running").json()["runs"]) == 2,
               message="the waited-for run is running too")
    eventually(lambda: "feed_opened" in results, message="the feed is open")
    api.get("/api/admin/scripts")  # and a keep-alive connection sits idle

    assert server.stop() == 0
    for thread in threads:
        thread.join(15)
    assert not any(thread.is_alive() for thread in threads), results

    # Every open answer ended as HTTP says (no reset connection, no truncated chunk),
    # after what the stop did to the runs was told.
    end = results["run"][-1]
    assert (end.event, end.data["status"], end.data["meta"]["error"]) == ("end", "failed", "server shut down")
    assert results["run_rest"] == b""
    assert results["feed"].startswith(b": ready")
    status, body = results["wait"]
    assert (status, body["status"], body["meta"]["error"]) == (200, "failed", "server shut down")
    assert "Traceback" not in server.text, server.text

"""Several real processes on one database: queued runs, cancels and output are pushed.

One `serve --no-worker` and three workers (change streams on) share the module;
a second, smaller pair runs with SCRIPTBOX_CHANGE_STREAMS=off (the polling fallback).
The old code polled: pickup after up to 2 s, lines after ~350 ms, cancel within ~1 s.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from support import SseStream, get_run, run_pids, start_run, unique_name, wait_status
from support.cluster import Cluster
from support.runs import FINISHED
from support.separate_db import SeparateDatabase
from support.wait import eventually

RUNS = 120


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeparateDatabase]:
    """The pushed cluster's own SecantusDB: the last test stops and restarts it."""
    db = SeparateDatabase(tmp_path_factory.mktemp("db")).start()
    yield db
    if db.process is not None and db.process.poll() is None:
        db.kill()


@pytest.fixture(scope="module")
def clusters(database: SeparateDatabase, mongodb_uri: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Cluster]]:
    pushed = Cluster(tmp_path_factory.mktemp("pushed"), database.uri, workers=3, slots=4)
    polled = Cluster(tmp_path_factory.mktemp("polled"), mongodb_uri, workers=1, slots=2,
                     env={"SCRIPTBOX_CHANGE_STREAMS": "off"})
    # Start all six processes before waiting for any (they start in parallel).
    pushed.server.start(wait=False)
    polled.server.start(wait=False)
    for worker in pushed.workers + polled.workers:
        worker.start()
    pushed.start_wait()
    polled.start_wait(wait_for="change streams off")
    yield pushed, polled
    pushed.terminate()
    polled.terminate()
    pushed.stop()
    polled.stop()


@pytest.fixture(scope="module")
def cluster(clusters: tuple[Cluster, Cluster]) -> Cluster:
    return clusters[0]


def test_120_instant_runs_from_3_clients_on_3_workers_each_execute_exactly_once(
        cluster: Cluster, tmp_path: Path) -> None:
    api = cluster.server.api()
    ledger = tmp_path / "ledger"
    definition = api.create_script(script=f'echo "$SCRIPTBOX_RUN_ID" >> {ledger}')
    with ThreadPoolExecutor(3) as clients:
        run_ids = list(clients.map(lambda _: start_run(cluster.server.api(), definition["id"]), range(RUNS)))

    def all_finished() -> list[dict[str, Any]] | None:
        items = api.get(f"/api/admin/scripts/runs?scriptId={definition['id']}&limit=200").json()["runs"]
        return items if len(items) == RUNS and all(r["status"] in FINISHED for r in items) else None

    runs = eventually(all_finished, 90, message=f"{RUNS} runs finished")
    assert Counter(r["status"] for r in runs) == {"succeeded": RUNS}
    executed = Counter(ledger.read_text().split())
    assert set(executed) == set(run_ids)
    assert max(executed.values()) == 1  # each run executed once, none lost


def test_an_idle_worker_picks_up_a_queued_run_well_within_the_old_2s_poll(cluster: Cluster) -> None:
    api = cluster.server.api()
    definition = api.create_script(script="true")
    waits = []
    for _ in range(8):
        run = wait_status(api, start_run(api, definition["id"]), timeout=30)
        assert run["status"] == "succeeded"
        waits.append(_at(run["startedAt"]) - _at(run["createdAt"]))
        time.sleep(0.1)  # idle workers again: each submit must wake one
    assert statistics.median(waits) < 0.5, waits


def test_a_line_printed_on_a_worker_reaches_a_viewer_of_the_no_worker_server_at_once(cluster: Cluster) -> None:
    api = cluster.server.api()
    definition = api.create_script(script="sleep 0.5; for i in $(seq 15); do date +%s.%N; sleep 0.1; done")
    run_id = start_run(api, definition["id"])
    stream = SseStream(api, run_id)
    lags = stream.clock_lags()
    stream.close()
    assert len(lags) == 15
    # Old: 200 ms batches + 0.5 s polling, median ~333 ms.
    assert statistics.median(lags) < 0.25, sorted(lags)


def test_cancel_through_the_no_worker_server_stops_a_workers_run_at_once(cluster: Cluster) -> None:
    api = cluster.server.api()
    definition = api.create_script(script="echo started; sleep 60")
    run_id = start_run(api, definition["id"])
    eventually(lambda: "started" in api.get(f"/api/admin/scripts/runs/{run_id}/log").text, 30,
               message="the run started")
    asked = time.monotonic()
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    run = wait_status(api, run_id, timeout=10)
    took = time.monotonic() - asked
    assert run["status"] == "canceled"
    assert took < 1.0, took  # old: the watchdog read cancel flags once a second
    assert run_pids(run_id) == []


def test_with_change_streams_off_the_processes_poll_as_before(clusters: tuple[Cluster, Cluster]) -> None:
    polled = clusters[1]
    api = polled.server.api()
    assert "change streams off" in polled.workers[0].text
    definition = api.create_script(script="for i in 1 2 3; do echo tick-$i; sleep 0.2; done; sleep 60")
    run_id = start_run(api, definition["id"])
    stream = SseStream(api, run_id)
    stream.output_until("tick-1\ntick-2\ntick-3\n")
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    rest = stream.until_end()
    assert rest[-1].event == "end" and rest[-1].data["status"] == "canceled"
    assert get_run(api, run_id)["status"] == "canceled"


def test_a_restarted_database_makes_the_change_streams_reconnect_with_one_line_each(
        cluster: Cluster, database: SeparateDatabase) -> None:
    # Last in the module: it stops the pushed cluster's database.
    worker = cluster.workers[0]
    database.kill()
    worker.wait_for("change stream on script_runs interrupted", timeout=30)
    time.sleep(1.0)  # a few reconnect attempts fail meanwhile
    database.start()  # same port, same files
    worker.wait_for("change stream on script_runs is back", timeout=30)
    api = cluster.server.api()
    body = {"name": "after", "codeIdentifier": unique_name(), "type": "bash", "script": "true"}

    def created() -> dict[str, Any] | None:
        answer = api.post("/api/admin/scripts", json=body)
        return dict(answer.json()) if answer.status_code == 201 else None

    definition = eventually(created, 30, message="the server answers again")
    for _ in range(3):
        run = wait_status(api, start_run(api, definition["id"]), timeout=30)
        assert run["status"] == "succeeded"
        assert _at(run["startedAt"]) - _at(run["createdAt"]) < 1.0  # pushed again, not the 2 s poll
    for process in cluster.workers:
        assert process.text.count("change stream on script_runs interrupted") == 1
        assert "Traceback" not in process.text
    assert "Traceback" not in cluster.server.text

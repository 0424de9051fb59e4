"""Several real processes on one SecantusDB: a `serve --no-worker` and two
`worker`s, 3 s leases. The database stopped for longer than a lease while runs
are live on both workers: healthy runs survive and finish normally, a run that
ended during the outage keeps its real outcome and all of its output, and a
viewer gets every chunk before `end`. A worker killed with SIGKILL: its runs
end "executor lost" within a few leases and it shows gone. And in-process, a
run claimed just as the database stops still starts once it is back.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from scriptbox.engine import Engine, EngineOptions
from scriptbox.store import Database
from scriptbox.store.definitions import DefinitionStore
from scriptbox.store.runs import RunStore
from scriptbox.store.versions import VersionStore
from support import Api, ScriptboxServer, SseStream, eventually, output_text, run_pids, start_run, wait_status
from support.separate_db import SeparateDatabase
from support.server import ScriptboxWorker

LEASE_S = 3
ENV = {"SCRIPTBOX_LEASE_SECONDS": str(LEASE_S), "SCRIPTBOX_MAX_CONCURRENT_RUNS": "2"}


class Cluster:
    def __init__(self, root: Path) -> None:
        self.db = SeparateDatabase(root / "mongo").start()
        self.web = ScriptboxServer(root / "web", mongodb_uri=self.db.uri, env=ENV, extra_args=["--no-worker"])
        self.workers = [ScriptboxWorker(root / f"worker{n}", mongodb_uri=self.db.uri, db_name=self.web.db_name,
                                        env=ENV) for n in range(2)]

    def start(self) -> Cluster:
        for worker in self.workers:
            worker.start()  # they start beside the server (a worker does not wait for it)
        # Three Python processes and a database starting at once on a busy machine: more than the usual minute.
        self.web.start(wait=False).wait_ready(timeout=180)
        eventually(lambda: len(self.alive()) == 3, 120, message="the server and both workers registered")
        return self

    def api(self) -> Api:
        return self.web.api()

    def executors(self) -> list[dict[str, Any]]:
        return list(self.api().get("/api/admin/executors").json()["executors"])

    def alive(self) -> list[dict[str, Any]]:
        return [e for e in self.executors() if e["state"] == "alive"]

    def alive_workers(self) -> set[str]:
        """The ids of the workers alive (the no-worker server is listed with 0 slots)."""
        return {e["id"] for e in self.alive() if e["role"] == "worker" and e["slots"] == 2}

    def stop(self) -> None:
        for process in [*self.workers, self.web]:
            if process.process is not None and process.process.poll() is None:
                process.process.kill()
                process.process.wait(10)
        if self.db.process is not None and self.db.process.poll() is None:
            self.db.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    instance = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield instance
    instance.stop()


def _log(api: Api, run_id: str) -> str:
    return str(api.get(f"/api/admin/scripts/runs/{run_id}/log").text)


def test_a_database_outage_longer_than_a_lease_kills_no_healthy_run(cluster: Cluster, tmp_path: Path) -> None:
    api = cluster.api()
    gate = tmp_path / "gate"
    long_def = api.create_script(script="echo start; sleep 14; echo end")
    chatty_def = api.create_script(
        script=f"echo ready; while [ ! -e {gate} ]; do sleep 0.05; done; "
               "for i in $(seq 1 100); do echo line $i; sleep 0.01; done")
    chatty = start_run(api, chatty_def["id"])
    longs = [start_run(api, long_def["id"]) for _ in range(3)]
    eventually(lambda: all(_log(api, r) in ("start\n", "ready\n") for r in [chatty, *longs]), 30,
               message="all four runs started and their first line stored")
    runs = [api.get(f"/api/admin/scripts/runs/{r}").json() for r in [chatty, *longs]]
    executors = {run["meta"]["executor"] for run in runs}
    assert len(executors) == 2, "two slots per worker: the four runs are on both workers"

    cluster.db.kill()
    outage_start = time.monotonic()
    gate.write_text("")  # the chatty run prints its 100 lines and exits while the database is away
    eventually(lambda: not run_pids(chatty), 20, message="the chatty run's process to exit")
    time.sleep(max(0.0, 2 * LEASE_S + 1 - (time.monotonic() - outage_start)))  # longer than a lease
    cluster.db.start()

    viewer = SseStream(api, chatty, timeout=60)  # a viewer reconnecting after the outage
    events = viewer.until_end()
    viewer.close()
    expected = "ready\n" + "".join(f"line {i}\n" for i in range(1, 101))
    assert events[-1].event == "end" and output_text(events) == expected
    assert events[-1].data["status"] == "succeeded" and events[-1].data["exitCode"] == 0
    assert _log(api, chatty) == expected
    for run_id in longs:
        run = wait_status(api, run_id, timeout=40)
        assert run["status"] == "succeeded" and run["exitCode"] == 0, run
        assert _log(api, run_id) == "start\nend\n"
    for worker in cluster.workers:
        assert worker.process is not None and worker.process.poll() is None
        assert "Traceback" not in worker.text and "taken away" not in worker.text, worker.text[-4000:]
    assert cluster.alive_workers() == executors
    [web] = [e for e in cluster.alive() if e["role"] == "serve"]
    assert web["slots"] == 0 and web["running"] == 0


def test_a_worker_killed_with_sigkill_loses_its_runs_within_its_lease_and_shows_gone(cluster: Cluster) -> None:
    api = cluster.api()
    long_def = api.create_script(script="echo start; exec sleep 60")
    run_ids = [start_run(api, long_def["id"]) for _ in range(2)]
    eventually(lambda: all(_log(api, r) == "start\n" for r in run_ids), 30, message="both runs started")
    victim_run = api.get(f"/api/admin/scripts/runs/{run_ids[0]}").json()
    executor_id = victim_run["meta"]["executor"]
    victim = next(w for w in cluster.workers if w.process is not None and f"/{w.process.pid}/" in executor_id)
    assert victim.process is not None
    pids = run_pids(run_ids[0])
    assert pids

    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(10)
    killed_at = time.monotonic()
    run = wait_status(api, run_ids[0], timeout=6 * LEASE_S)
    assert run["status"] == "failed" and run["meta"]["error"] == "executor lost: its lease expired"
    assert time.monotonic() - killed_at < 4 * LEASE_S
    eventually(lambda: not run_pids(run_ids[0]), 10, message="the lost run's process killed by a reaper")
    state = {e["id"]: e["state"] for e in cluster.executors()}
    assert state[executor_id] == "gone"
    for run_id in run_ids[1:]:
        other = api.get(f"/api/admin/scripts/runs/{run_id}").json()
        if other["meta"]["executor"] != executor_id:
            assert other["status"] == "running"  # the surviving worker's run is untouched
        api.post(f"/api/admin/scripts/runs/{run_id}/cancel")


def test_a_run_claimed_just_as_the_database_stops_starts_once_it_is_back(cluster: Cluster, tmp_path: Path) -> None:
    """In-process on the cluster's database (its processes ride this outage out too)."""
    db = cluster.db
    database = Database(db.uri, "claim_outage")
    try:
        runs = RunStore(database)
        definitions = DefinitionStore(database, VersionStore(database), 10)
        calls: list[float] = []
        armed = threading.Event()

        def get_definition(script_id: str) -> dict[str, Any]:
            if not armed.is_set():
                return definitions.get(script_id)  # the submit's read
            if not calls:
                # The outage begins right after the claim: the definition's read is the first to meet it.
                db.kill()
                # Back after two server-selection timeouts (3 s each): the first read of each run fails.
                threading.Timer(6.5, db.start).start()
            calls.append(time.monotonic())
            return definitions.get(script_id)

        engine = Engine(runs, get_definition, data_dir=str(tmp_path / "data"),
                        options=EngineOptions(flush_every_s=0.02, retry_first_s=0.2, retry_max_s=1.0))
        script_id = str(definitions.create({"name": "c", "codeIdentifier": "c", "type": "bash",
                                            "script": "echo it ran"})["_id"])
        # Its timeout passes before the database is back: it gives up, with the reason.
        short_id = str(definitions.create({"name": "s", "codeIdentifier": "s", "type": "bash", "timeoutMs": 1000,
                                           "script": "echo never"})["_id"])
        run_id = str(engine.submit(script_id, "api", None)["_id"])
        short_run = str(engine.submit(short_id, "api", None)["_id"])
        engine.ctx.live.start()
        armed.set()
        executions = engine.dispatcher.claim_available()
        assert len(executions) == 2
        gevent.joinall([e.greenlet for e in executions if e.greenlet is not None], timeout=60)
        assert all(e.greenlet is not None and e.greenlet.dead for e in executions)
        doc = runs.get(run_id)
        assert doc is not None and doc["status"] == "succeeded" and doc["exitCode"] == 0, doc
        assert "".join(c.data for c in runs.chunks_after(run_id, 0)) == "it ran\n"
        assert len(calls) >= 3, "the definition's read was retried"
        short = runs.get(short_run)
        reason = "the database was unreachable until the run's timeout had passed"
        assert short is not None and short["status"] == "failed" and short["meta"]["error"] == reason, short
        stored = "".join(c.data for c in runs.chunks_after(short_run, 0))
        assert stored == f"[scriptbox] cannot start the run: {reason}\n"
        engine.ctx.live.stop()
    finally:
        eventually(lambda: db.process is not None and db.process.poll() is None, 30, message="the database back")
        database.close()

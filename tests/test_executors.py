"""Executors in-process on the real database: the registry and its route, the
reaper's rules (fresh heartbeat, renewal window after reaching the database),
runs taken away, and the cluster-wide run limit under concurrent claims."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import gevent
import pytest

from scriptbox.engine import Engine, EngineOptions
from scriptbox.engine.watchdog import Reachability, Watchdog
from scriptbox.store import utcnow
from scriptbox.store.executors import ClusterSlots, ExecutorStore
from scriptbox.store.records import Executor, NewRun, RunEnd, Snapshot
from support import eventually
from support.inprocess import InProcessApp

LEASE_S = 3.0


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """A started engine (dispatcher and watchdog running) with a 3 s lease."""
    options = EngineOptions.for_lease(LEASE_S)
    options.kill_grace_s, options.flush_every_s = 1.0, 0.02
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("executors"), execute=True, options=options,
                            max_concurrent_runs=3)
    instance.engine.start()
    yield instance
    instance.engine.stop()
    instance.close()


def _script(inproc: InProcessApp, script: str) -> str:
    code = f"e{len(inproc.services.definitions.search())}"
    return str(inproc.services.definitions.create({"name": code, "codeIdentifier": code, "type": "bash",
                                                   "script": script})["_id"])


def _run(inproc: InProcessApp, run_id: str) -> dict[str, Any]:
    doc = inproc.services.runs.get(run_id)
    assert doc is not None
    return doc


def _other_executor(store: ExecutorStore, name: str, beat_age_s: float) -> Executor:
    """An executor of another (fictitious) host whose last heartbeat was `beat_age_s` ago."""
    executor = Executor(id=f"{name}/1/ab", host=name, pid=1, start=1)
    store.register(executor, "worker", 2)
    store._executors.update_one({"_id": executor.id},  # noqa: SLF001 - ageing the document, as time would
                                {"$set": {"heartbeatAt": utcnow() - timedelta(seconds=beat_age_s)}})
    return executor


def _lapsed_run_of(inproc: InProcessApp, executor: Executor) -> str:
    """A run claimed by `executor` whose lease lapsed a second ago."""
    run_id = str(inproc.services.runs.create(_new_run(inproc))["_id"])
    runs = inproc.services.runs
    runs.runs.update_one({"_id": runs.get(run_id)["_id"]},  # type: ignore[index]
                         {"$set": {"status": "running", "executor": executor.to_doc(), "startedAt": utcnow(),
                                   "meta.executor": executor.id, "meta.node": executor.host,
                                   "leaseUntil": utcnow() - timedelta(seconds=1)}})
    return run_id


def _new_run(inproc: InProcessApp) -> NewRun:
    """A run inserted running (as a browser run is), so no dispatcher claims it first."""
    script_id = _script(inproc, "true")
    return NewRun(script_id, "api", None, Snapshot("x", "x", "bash", "host", 1000, "/"),
                  browser_time=timedelta(seconds=600))


def test_a_running_engine_lists_itself_with_its_runs_and_runs_name_it(inproc: InProcessApp, tmp_path: Path) -> None:
    client = inproc.client()
    gate = tmp_path / "gate"
    run_id = str(inproc.engine.submit(_script(inproc, f"while [ ! -e {gate} ]; do sleep 0.02; done"), "api",
                                      None)["_id"])
    me = inproc.engine.executor_id

    def listed() -> dict[str, Any] | None:
        answer = client.get("/api/admin/executors").json()
        mine = [e for e in answer["executors"] if e["id"] == me]
        return mine[0] if mine and mine[0]["runs"] == [run_id] else None

    entry = eventually(listed, 10, message="the executor listed with its run", sleep=gevent.sleep)
    assert entry["state"] == "alive" and entry["role"] == "serve" and entry["slots"] == 3 and entry["running"] == 1
    host, pid, _ = me.split("/")
    assert entry["host"] == host and entry["pid"] == int(pid) and entry["startedAt"] <= entry["heartbeatAt"]
    run = client.get(f"/api/admin/scripts/runs/{run_id}").json()
    assert run["meta"]["executor"] == me and run["meta"]["node"] == host
    gate.touch()
    eventually(lambda: _run(inproc, run_id)["status"] == "succeeded", 10, message="the run to end", sleep=gevent.sleep)
    answer = client.get("/api/admin/executors").json()
    assert answer["leaseSeconds"] == LEASE_S and answer["clusterMaxRuns"] == 0


def test_only_admin_may_list_executors(inproc: InProcessApp) -> None:
    assert inproc.client(auth=None).get("/api/admin/executors").status_code == 401
    secret = inproc.client().post("/api/admin/tokens", json={"name": "run-only", "scope": "run"}).json()["token"]
    as_run_token = inproc.client(auth=None).get("/api/admin/executors", headers={"Authorization": f"Bearer {secret}"})
    assert as_run_token.status_code == 403 and as_run_token.json()["error"]["code"]
    admin = inproc.client().post("/api/admin/tokens", json={"name": "admin-t", "scope": "admin"}).json()["token"]
    as_admin = inproc.client(auth=None).get("/api/admin/executors", headers={"Authorization": f"Bearer {admin}"})
    assert as_admin.status_code == 200 and as_admin.json()["executors"]


def test_a_silent_executor_shows_gone_and_is_forgotten_after_ten_leases(inproc: InProcessApp) -> None:
    store = inproc.services.executors
    assert store is not None
    gone = _other_executor(store, "gone-host", 2 * LEASE_S)
    old = _other_executor(store, "old-host", 11 * LEASE_S)
    states = {e["id"]: e["state"] for e in inproc.client().get("/api/admin/executors").json()["executors"]}
    assert states[gone.id] == "gone" and states[old.id] == "gone"
    inproc.engine.watchdog._tidy(utcnow())  # noqa: SLF001 - the reaper's housekeeping, without waiting for it
    ids = [e["id"] for e in inproc.client().get("/api/admin/executors").json()["executors"]]
    assert gone.id in ids and old.id not in ids
    store.remove(gone.id)


def test_the_reaper_spares_runs_of_an_executor_whose_heartbeat_is_fresh(inproc: InProcessApp) -> None:
    store = inproc.services.executors
    assert store is not None
    alive = _other_executor(store, "busy-host", 0.5)
    dead = _other_executor(store, "dead-host", 2 * LEASE_S)
    spared, reaped = _lapsed_run_of(inproc, alive), _lapsed_run_of(inproc, dead)
    inproc.engine.watchdog.reap_lapsed()
    assert _run(inproc, spared)["status"] == "running"
    lost = _run(inproc, reaped)
    assert lost["status"] == "failed" and lost["meta"]["error"] == "executor lost: its lease expired"
    # Its heartbeat stops too: now it is reaped.
    store._executors.update_one({"_id": alive.id},  # noqa: SLF001 - ageing it
                                {"$set": {"heartbeatAt": utcnow() - timedelta(seconds=2 * LEASE_S)}})
    inproc.engine.watchdog.reap_lapsed()
    assert _run(inproc, spared)["status"] == "failed"
    store.remove(alive.id)
    store.remove(dead.id)


def test_a_reaper_waits_a_whole_lease_of_answers_after_the_database_failed_it() -> None:
    reach = Reachability(30.0)
    assert not reach.may_reap(100.0)  # never answered yet (a fresh start)
    reach.answered(100.0)
    assert not reach.may_reap(129.9) and reach.may_reap(130.0)
    reach.failed()
    reach.answered(200.0)
    reach.answered(215.0)  # later answers do not move the start of the window
    assert not reach.may_reap(229.0) and reach.may_reap(230.0)


def test_after_the_database_failed_it_a_reaper_waits_a_lease_of_answers_before_reaping(inproc: InProcessApp) -> None:
    store = inproc.services.executors
    assert store is not None
    dead = _other_executor(store, "quiet-host", 2 * LEASE_S)
    run_id = _lapsed_run_of(inproc, dead)
    inproc.engine.watchdog.stop()  # the module's reaper stays out; this one is driven with its clock
    try:
        reaper = Watchdog(inproc.engine.ctx, inproc.engine.dispatcher)
        reaper.reachability.failed()
        reaper.tick(1000.0)  # the database answers again
        reaper.tick(1000.0 + LEASE_S - 0.5)
        assert _run(inproc, run_id)["status"] == "running"
        reaper.tick(1000.0 + LEASE_S + 0.1)
        assert _run(inproc, run_id)["meta"]["error"] == "executor lost: its lease expired"
    finally:
        inproc.engine.watchdog.start()
        store.remove(dead.id)


def test_a_run_taken_away_is_stopped_and_keeps_the_reapers_record(inproc: InProcessApp) -> None:
    run_id = str(inproc.engine.submit(_script(inproc, "echo started; exec sleep 60"), "api", None)["_id"])
    eventually(lambda: _run(inproc, run_id).get("meta", {}).get("pid"), 10, message="the run to start",
               sleep=gevent.sleep)
    runs = inproc.services.runs
    # As a reaper elsewhere would after this executor's lease lapsed.
    runs.runs.update_one({"_id": _run(inproc, run_id)["_id"]},
                         {"$set": {"leaseUntil": utcnow() - timedelta(seconds=1)}})
    assert runs.expire_lapsed(run_id, inproc.engine.executor_id, utcnow(),
                              _end("failed", "executor lost: its lease expired")) is not None
    execution = inproc.engine.dispatcher.get(run_id)
    assert execution is not None and execution.greenlet is not None
    execution.greenlet.join(timeout=LEASE_S + 5)
    assert execution.greenlet.dead, "the taken-away run's process was not stopped"
    doc = _run(inproc, run_id)
    assert doc["status"] == "failed" and doc["meta"]["error"] == "executor lost: its lease expired"


def _end(status: str, error: str) -> RunEnd:
    return RunEnd(status, error=error)


def test_cluster_slots_admit_exactly_the_limit_under_concurrent_claims(inproc: InProcessApp) -> None:
    slots = ClusterSlots(inproc.database, 3)
    slots._slots.delete_many({})  # noqa: SLF001 - a clean slate for the count
    slots.ensure()
    slots.ensure()  # idempotent
    won: list[int] = []
    barrier = threading.Barrier(12)

    def claim(n: int) -> None:
        barrier.wait()
        slot = slots.acquire(f"holder-{n}")
        if slot is not None:
            won.append(slot)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won) == [0, 1, 2] and slots.in_use() == 3
    # Healing: a slot bound to a run that is not running, and one never bound for too long, are freed.
    finished = str(inproc.services.runs.create(_new_run(inproc))["_id"])
    inproc.services.runs.finish_open_browser_run(finished, _end("canceled", "canceled"))
    holder = slots._slots.find_one({"_id": won[0]})["holder"]  # noqa: SLF001
    slots.bind(won[0], holder, finished)
    assert slots.heal(utcnow() - timedelta(seconds=60)) == 1 and slots.in_use() == 2
    assert slots.heal(utcnow() + timedelta(seconds=1)) == 2 and slots.in_use() == 0
    slots._slots.delete_many({})  # noqa: SLF001


def test_the_cluster_limit_holds_across_two_engines_claiming_at_once(inproc: InProcessApp, tmp_path: Path) -> None:
    slots = ClusterSlots(inproc.database, 2)
    slots._slots.delete_many({})  # noqa: SLF001
    options = EngineOptions(kill_grace_s=1.0, flush_every_s=0.02)
    engines = [Engine(inproc.services.runs, inproc.services.definitions.get, data_dir=str(tmp_path), options=options,
                      max_concurrent_runs=3, cluster_slots=ClusterSlots(inproc.database, 2)) for _ in range(2)]
    inproc.engine.dispatcher.max_concurrent_runs = 0  # the module's engine stays out of this
    try:
        gate = tmp_path / "gate"
        script_id = _script(inproc, f"while [ ! -e {gate} ]; do sleep 0.02; done")
        for engine in engines:
            engine.ctx.live.start()
            engine._register()  # noqa: SLF001 - makes the slots, as start() does
        run_ids = [str(engines[0].submit(script_id, "api", None)["_id"]) for _ in range(5)]
        jobs = [gevent.spawn(e.dispatcher.claim_available) for e in engines]
        gevent.joinall(jobs, timeout=30)
        started = [x for job in jobs for x in job.value]
        assert len(started) == 2 and slots.in_use() == 2
        assert [_run(inproc, r)["status"] for r in run_ids].count("running") == 2
        gate.touch()
        for execution in started:
            assert execution.greenlet is not None
            execution.greenlet.join(timeout=30)
        assert slots.in_use() == 0  # given back as each run ended
        more = engines[1].dispatcher.claim_available()
        assert len(more) == 2
        for execution in more:
            assert execution.greenlet is not None
            execution.greenlet.join(timeout=30)
        [last] = engines[0].dispatcher.claim_available()
        assert last.greenlet is not None
        last.greenlet.join(timeout=30)
        assert all(_run(inproc, r)["status"] == "succeeded" for r in run_ids)
    finally:
        inproc.engine.dispatcher.max_concurrent_runs = 3
        for engine in engines:
            engine.dispatcher.stop(join_timeout=10)
            engine.ctx.live.stop()
        slots._slots.delete_many({})  # noqa: SLF001

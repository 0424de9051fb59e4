"""The start path (issue 16): a run this process can execute at once is inserted
already claimed and started without a claim round trip; a viewer of a local run
whose output is still in memory starts without the database; and a run is still
executed exactly once when several processes share the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gevent
import pytest

from scriptbox.api.presenters import run_to_json
from scriptbox.api.stream import RunStream, RunStreamSource
from scriptbox.engine import Engine, EngineOptions
from support import ADMIN_PASSWORD, REPO, Api, eventually, start_run, wait_status
from support.inprocess import InProcessApp


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """An engine with a running dispatcher, two slots, and output persisted only when
    asked (flush_now) or every 30 s: what is in memory stays there during a test."""
    options = EngineOptions(kill_grace_s=1.0, flush_every_s=30.0)
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("start"), execute=True, options=options,
                            max_concurrent_runs=2)
    engine = instance.engine
    engine.ctx.live.start()
    engine.dispatcher.start()
    gevent.sleep(0.05)  # its first look at the queue (empty)
    try:
        yield instance
    finally:
        engine.dispatcher.stop(join_timeout=10)
        engine.ctx.live.stop()
        instance.close()


def _script(inproc: InProcessApp, script: str) -> str:
    body = {"name": "t", "codeIdentifier": f"s{time.monotonic_ns()}", "type": "bash", "script": script}
    return str(inproc.services.definitions.create(body)["_id"])


def _ended(engine: Engine, run_id: str) -> dict[str, Any]:
    def done() -> Any:
        doc = engine.ctx.runs.get(run_id)
        return doc if doc is not None and doc.get("finishedAt") is not None else None

    return eventually(done, 30, sleep=gevent.sleep, message=f"run {run_id} ends")


def test_a_run_with_a_free_slot_is_inserted_claimed_and_started_at_once(inproc: InProcessApp,
                                                                         tmp_path: Path) -> None:
    engine = inproc.engine
    doc = engine.submit(_script(inproc, "echo direct"), "api", None)
    run_id = str(doc["_id"])
    # Stored running, held by this executor, started when created: no claim came in between.
    assert doc["status"] == "running" and doc["executor"]["id"] == engine.executor_id
    assert doc["startedAt"] == doc["createdAt"] and doc["leaseUntil"] > doc["startedAt"]
    execution = engine.dispatcher.get(run_id)
    assert execution is not None and execution.definition is not None  # the definition is not read again
    done = _ended(engine, run_id)
    assert (done["status"], done["outputTail"]) == ("succeeded", "direct\n")

    # With both slots taken, runs queue, and a later one never overtakes them.
    gate = tmp_path / "gate"
    busy = _script(inproc, f"while [ ! -e {gate} ]; do sleep 0.02; done")
    holders = [engine.submit(busy, "api", None) for _ in range(2)]
    assert [h["status"] for h in holders] == ["running", "running"]
    queued = [engine.submit(_script(inproc, "echo queued"), "api", None) for _ in range(2)]
    assert [q["status"] for q in queued] == ["queued", "queued"]
    gate.touch()
    ends = [_ended(engine, str(d["_id"])) for d in holders + queued]
    assert [e["status"] for e in ends] == ["succeeded"] * 4
    assert ends[2]["startedAt"] <= ends[3]["startedAt"]  # FIFO among the queued ones
    assert all(e["startedAt"] > e["createdAt"] for e in ends[2:])  # claimed from the queue


class _Counting:
    """Calls through to the real store, counting the calls (the database is not replaced)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.fn(*args)


def _stream_until(stream: RunStream, text: str) -> bytes:
    got = b""
    for block in stream:
        got += block
        if text.encode() in got:
            return got
    raise AssertionError(f"{text!r} never came: {got!r}")


def test_a_viewer_of_a_local_run_starts_from_memory_and_falls_back_to_the_database(
        inproc: InProcessApp, tmp_path: Path) -> None:
    engine = inproc.engine
    gate, big_gate = tmp_path / "gate", tmp_path / "big"
    script = (f"echo from-memory; while [ ! -e {big_gate} ]; do sleep 0.02; done; "
              f"head -c 70000 /dev/zero | tr '\\0' x; echo; echo big-done; "
              f"while [ ! -e {gate} ]; do sleep 0.02; done")
    run_id = str(engine.submit(_script(inproc, script), "manual", None)["_id"])
    execution = engine.dispatcher.get(run_id)
    assert execution is not None
    eventually(lambda: execution.output.seq, sleep=gevent.sleep, message="the script prints")
    runs = engine.ctx.runs
    get_run, chunks_after = _Counting(runs.get), _Counting(runs.chunks_after)
    source = RunStreamSource(get_run=get_run, chunks_after=chunks_after, subscribe=engine.subscribe,
                             unsubscribe=engine.unsubscribe, is_local=engine.is_local, present=run_to_json,
                             local_run=engine.local_run)
    got = _stream_until(RunStream(source, run_id, None), "from-memory")
    assert b"event: status" in got
    assert (get_run.calls, chunks_after.calls) == (0, 0), "the stream waited for the database"

    # A small log stays in memory once it is persisted too.
    eventually(lambda: not execution.output.unstored(), sleep=gevent.sleep, message="the output is handed on")
    engine.ctx.live.flush_now()
    assert engine.local_run(run_id, -1) is not None
    _stream_until(RunStream(source, run_id, None), "from-memory")
    assert (get_run.calls, chunks_after.calls) == (0, 0)

    # Past 64 KiB it is not kept: once persisted and gone from memory, a new viewer replays from the database.
    big_gate.touch()
    eventually(lambda: execution.output.history is None and not execution.output.unstored(),
               sleep=gevent.sleep, message="the big output is handed on")
    engine.ctx.live.flush_now()
    assert engine.local_run(run_id, -1) is None
    assert engine.local_run(run_id, execution.output.seq) is not None  # nothing after what it has seen
    got = _stream_until(RunStream(source, run_id, None), "big-done")
    assert b"from-memory" in got
    assert get_run.calls >= 1 and chunks_after.calls >= 1
    gate.touch()
    assert _ended(engine, run_id)["status"] == "succeeded"
    assert engine.local_run(run_id, -1) is None  # not executing here any more, and too big to keep


# -- several processes on one database -----------------------------------------


def test_runs_submitted_concurrently_to_two_servers_and_a_worker_execute_exactly_once(
        server_factory: Callable[..., Any], mongodb_uri: str, tmp_path: Path) -> None:
    slots = {"SCRIPTBOX_MAX_CONCURRENT_RUNS": "2"}
    first = server_factory(env=slots).start()
    second = server_factory(env=slots, db_name=first.db_name).start()
    env = {**os.environ, **slots, "SCRIPTBOX_DB_NAME": first.db_name, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}
    worker = subprocess.Popen([sys.executable, str(REPO / "app.py"), "worker", "--mongodb-uri", mongodb_uri,
                               "--data-dir", str(tmp_path / "worker")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        for line in worker.stdout:  # ready: it claims queued runs from now on
            if line.startswith("Scriptbox worker executing runs"):
                break
        apis = [first.api(), second.api()]
        executions = tmp_path / "executions"
        # O_APPEND writes of one short line are atomic: every execution leaves exactly one line.
        script_id = apis[0].create_script(script=f'echo "$SCRIPTBOX_RUN_ID" >> {executions}; echo ran')["id"]
        # One sign-in each first: a verified password skips the login throttle, which
        # counts checks in flight as failures in advance.
        assert apis[1].get(f"/api/admin/scripts/{script_id}").status_code == 200

        def submit(i: int) -> str:
            return start_run(Api(apis[i % 2].base_url), script_id)

        with ThreadPoolExecutor(8) as pool:
            run_ids = list(pool.map(submit, range(24)))
        ends = [wait_status(apis[0], run_id, timeout=120) for run_id in run_ids]
        assert [e["status"] for e in ends] == ["succeeded"] * 24
        lines = executions.read_text().split()
        assert sorted(lines) == sorted(run_ids), "a run executed more or less than once"
        docs = [_raw_times(apis[0], run_id) for run_id in run_ids]
        assert any(d == "direct" for d in docs), "no run started at once"
        assert any(d == "queued" for d in docs), "no run went through the queue"
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


def _raw_times(api: Api, run_id: str) -> str:
    """direct: inserted already claimed (started when created); queued: claimed later."""
    run = api.get(f"/api/admin/scripts/runs/{run_id}").json()
    return "direct" if run["startedAt"] == run["createdAt"] else "queued"

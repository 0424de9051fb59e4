"""The engine's rules in-process: `outcome` (pure), cancel, the dispatcher and
browser runs, on the real database with real processes but no server process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from scriptbox.engine import Engine, EngineOptions
from scriptbox.engine.execution import RunExecution
from scriptbox.engine.outcome import CANCEL, SHUTDOWN, TIMEOUT, outcome, stopped_before_start
from scriptbox.errors import Conflict, NotFound
from scriptbox.store.records import RunEnd
from scriptbox.vocabulary import TIMEOUT_EXIT_CODE
from support import eventually
from support.inprocess import InProcessApp, driven_engine_app

# -- outcome: how a run ended -> what is recorded ---------------------------


@pytest.mark.parametrize(("returncode", "reason", "own_timeout", "expected"), [
    (0, None, False, RunEnd("succeeded", 0)),
    (3, None, False, RunEnd("failed", 3)),
    (-9, None, False, RunEnd("failed", None, "killed by SIGKILL", "SIGKILL")),
    (-15, TIMEOUT, False, RunEnd("timed_out", None, "timed out after 1500 ms", "SIGTERM")),
    (0, TIMEOUT, False, RunEnd("timed_out", None, "timed out after 1500 ms")),
    (-15, CANCEL, False, RunEnd("canceled", None, "canceled", "SIGTERM")),
    (143, CANCEL, False, RunEnd("canceled", 143, "canceled")),
    (-15, SHUTDOWN, False, RunEnd("failed", None, "server shut down", "SIGTERM")),
    (TIMEOUT_EXIT_CODE, None, True, RunEnd("timed_out", None, "timed out after 1500 ms")),
    (TIMEOUT_EXIT_CODE, None, False, RunEnd("failed", TIMEOUT_EXIT_CODE)),
    (-200, None, False, RunEnd("failed", None, "killed by signal 200", "signal 200")),
])
def test_outcome_maps_how_a_run_ended_to_what_is_recorded(returncode: int, reason: str | None, own_timeout: bool,
                                                         expected: RunEnd) -> None:
    assert outcome(returncode, reason, timeout_ms=1500, times_itself_out=own_timeout) == expected


def test_a_run_stopped_before_its_process_started_is_canceled_or_failed_by_shutdown() -> None:
    assert stopped_before_start(CANCEL) == RunEnd("canceled", error="canceled")
    assert stopped_before_start(SHUTDOWN) == RunEnd("failed", error="server shut down")


# -- the engine in-process ---------------------------------------------------


@contextlib.contextmanager
def _engine_app(mongodb_uri: str, data_dir: Path) -> Iterator[InProcessApp]:
    options = EngineOptions(kill_grace_s=1.0, flush_every_s=0.02)
    with driven_engine_app(mongodb_uri, data_dir, options, max_concurrent_runs=2) as instance:
        yield instance


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    """One engine for the module; every test leaves no run queued behind it."""
    with _engine_app(mongodb_uri, tmp_path_factory.mktemp("engine")) as instance:
        yield instance


def _script(inproc: InProcessApp, **fields: Any) -> str:
    body = {"name": "t", "codeIdentifier": f"t{len(inproc.services.definitions.search())}", "type": "bash",
            "script": "echo hi"}
    body.update(fields)
    return str(inproc.services.definitions.create(body)["_id"])


def _status(engine: Engine, run_id: str) -> str:
    doc = engine.ctx.runs.get(run_id)
    assert doc is not None
    return str(doc["status"])


def _run_to_end(engine: Engine, execution: RunExecution) -> dict[str, Any]:
    assert execution.greenlet is not None
    execution.greenlet.join(timeout=30)
    assert execution.greenlet.dead, "the run did not end"
    doc = engine.ctx.runs.get(execution.run_id)
    assert doc is not None
    return doc


def test_the_dispatcher_fills_free_slots_oldest_first_and_no_more(inproc: InProcessApp, tmp_path: Path) -> None:
    engine = inproc.engine
    gate = tmp_path / "gate"
    script_id = _script(inproc, script=f"while [ ! -e {gate} ]; do sleep 0.02; done; echo done")
    run_ids = [str(engine.submit(script_id, "api", None)["_id"]) for _ in range(3)]
    started = engine.dispatcher.claim_available()
    assert [e.run_id for e in started] == run_ids[:2]  # FIFO, two slots
    assert [_status(engine, r) for r in run_ids] == ["running", "running", "queued"]
    assert engine.dispatcher.claim_available() == []  # full
    gate.touch()
    for execution in started:
        assert _run_to_end(engine, execution)["status"] == "succeeded"
    [last] = engine.dispatcher.claim_available()
    assert last.run_id == run_ids[2]
    done = _run_to_end(engine, last)
    assert done["status"] == "succeeded" and done["outputTail"] == "done\n"


def test_cancel_ends_a_queued_run_at_once_and_tells_its_viewers(inproc: InProcessApp) -> None:
    engine = inproc.engine
    run_id = str(engine.submit(_script(inproc), "manual", "admin")["_id"])
    viewer = engine.subscribe(run_id)
    done = engine.cancel(run_id)
    assert done["status"] == "canceled" and done["meta"]["error"] == "canceled before it started"
    events = viewer.take(0)
    assert [e.kind for e in events] == ["end"] and events[0].doc is not None
    assert events[0].doc["status"] == "canceled"
    assert engine.dispatcher.claim_available() == []  # nothing left to execute


def test_cancel_stops_a_running_run_through_its_executor(inproc: InProcessApp) -> None:
    engine = inproc.engine
    run_id = str(engine.submit(_script(inproc, script="echo started; exec sleep 30"), "api", None)["_id"])
    [execution] = engine.dispatcher.claim_available()
    eventually(lambda: execution.output.seq, sleep=gevent.sleep, message="the script prints")
    flagged = engine.cancel(run_id)
    assert flagged["status"] == "running" and flagged["cancelRequested"] is True
    done = _run_to_end(engine, execution)
    assert (done["status"], done["meta"]["error"], done["meta"]["signal"]) == ("canceled", "canceled", "SIGTERM")
    with pytest.raises(Conflict) as finished:
        engine.cancel(run_id)
    assert finished.value.code == "run_finished"


def test_cancel_of_unknown_or_malformed_ids_is_not_found(inproc: InProcessApp) -> None:
    for run_id in ("ffffffffffffffffffffffff", "nope"):
        with pytest.raises(NotFound):
            inproc.engine.cancel(run_id)


def test_a_canceled_browser_run_accepts_no_result(inproc: InProcessApp) -> None:
    engine = inproc.engine
    run = engine.submit(_script(inproc, type="browser", runner="browser", script="console.log(1)"), "manual", None)
    run_id = str(run["_id"])
    assert run["status"] == "running" and run["meta"]["node"] == "browser"
    assert engine.dispatcher.claim_available() == []  # never executed here
    assert engine.cancel(run_id)["status"] == "canceled"
    with pytest.raises(Conflict):
        engine.browser_result(run_id, {"status": "succeeded", "exitCode": 0, "output": []})


def test_a_browser_result_is_recorded_once_with_its_output(inproc: InProcessApp) -> None:
    engine = inproc.engine
    run_id = str(engine.submit(_script(inproc, type="browser", runner="browser"), "manual", None)["_id"])
    done = engine.browser_result(run_id, {"status": "failed", "exitCode": 2,
                                          "output": [{"stream": "stdout", "data": "a\n"},
                                                     {"stream": "stderr", "data": "b\n"}], "error": "boom"})
    assert (done["status"], done["exitCode"], done["meta"]["error"]) == ("failed", 2, "boom")
    assert done["outputTail"] == "a\nb\n" and done["meta"]["outputBytes"] == 4
    assert [(c.seq, c.stream, c.data) for c in engine.ctx.runs.chunks_after(run_id, 1)] == [(2, "stderr", "b\n")]
    with pytest.raises(Conflict):
        engine.browser_result(run_id, {"status": "succeeded", "exitCode": 0, "output": []})


def test_stopping_the_engine_ends_running_runs_as_shut_down(mongodb_uri: str, tmp_path: Path) -> None:
    with _engine_app(mongodb_uri, tmp_path) as own:
        engine = own.engine
        run_id = str(engine.submit(_script(own, script="echo started; exec sleep 30"), "api", None)["_id"])
        [execution] = engine.dispatcher.claim_available()
        eventually(lambda: execution.output.seq, sleep=gevent.sleep, message="the script prints")
        engine.dispatcher.stop(join_timeout=10)
        doc = engine.ctx.runs.get(run_id)
        assert doc is not None
        assert (doc["status"], doc["meta"]["error"], doc["meta"]["signal"]) == ("failed", "server shut down", "SIGTERM")

"""The vm2 sandbox pool (SCRIPTBOX_VM2_POOL): harness processes started ahead of
their runs, each serving exactly one run, refilled, replaced when they die,
timed out and killed like any run's process, gone when the server stops."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

from support import Api, ScriptboxServer, eventually, pid_alive, start_run, wait_status


def pooled_pids(server: ScriptboxServer) -> set[int]:
    """The server's live harness processes started with --pooled (waiting, or serving a run)."""
    assert server.process is not None
    found = set()
    for child in psutil.Process(server.process.pid).children():
        try:
            if "--pooled" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def waiting(server: ScriptboxServer, count: int, exclude: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
    """The pooled processes once `count` of them (none of `exclude`) are there."""
    def ready() -> set[int] | None:
        pids = pooled_pids(server) - exclude
        return pids if len(pids) >= count else None

    return eventually(ready, 60, message=f"{count} pooled sandbox processes")


@pytest.fixture(scope="module")
def pooled(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("pool"), mongodb_uri=mongodb_uri,
                               env={"SCRIPTBOX_VM2_POOL": "2"}).start()
    yield instance
    instance.stop()


def run_vm2(api: Api, script: str, timeout_ms: int = 10_000) -> tuple[dict[str, Any], str]:
    """Run a vm2 script to its end through POST ?wait; returns (run, log)."""
    definition = api.create_script(type="node", runner="vm2", script=script, timeoutMs=timeout_ms)
    response = api.post(f"/api/admin/scripts/{definition['id']}/run?wait=60")
    assert response.status_code == 200, response.text
    run = response.json()
    return run, api.get(f"/api/admin/scripts/runs/{run['id']}/log").text


def test_each_pooled_process_serves_one_run_and_the_pool_refills(pooled: ScriptboxServer) -> None:
    api = pooled.api()
    ready = waiting(pooled, 2)
    # A process that waited longer than the run's timeout still gives the run its
    # whole timeout: the harness counts from the hand-over, not from its own start.
    eventually(lambda: min(time.time() - psutil.Process(p).create_time() for p in ready) > 1.5, 10)
    first, log = run_vm2(api, "globalThis.left = 'by the first run'; console.log('first')", timeout_ms=1000)
    assert (first["status"], log) == ("succeeded", "first\n")
    assert first["meta"]["pid"] in ready
    second, log = run_vm2(api, "console.log(typeof globalThis.left)")
    assert (second["status"], log) == ("succeeded", "undefined\n")
    assert second["meta"]["pid"] != first["meta"]["pid"]
    assert not pid_alive(first["meta"]["pid"]) and not pid_alive(second["meta"]["pid"])
    # Refilled: two waiting processes again, neither of them one that served a run.
    waiting(pooled, 2, exclude={first["meta"]["pid"], second["meta"]["pid"]})

    # Runs started together never share a process, even with more runs than the pool holds.
    definition = api.create_script(type="node", runner="vm2", script="console.log('together')")
    run_ids = [start_run(api, definition["id"]) for _ in range(4)]
    ends = [wait_status(api, run_id, timeout=60) for run_id in run_ids]
    assert [e["status"] for e in ends] == ["succeeded"] * 4
    assert len({e["meta"]["pid"] for e in ends}) == 4


def test_a_pooled_run_times_out_and_is_canceled_with_its_process_killed(pooled: ScriptboxServer) -> None:
    api = pooled.api()
    ready = waiting(pooled, 2)
    run, log = run_vm2(api, "while (true) {}", timeout_ms=1500)
    assert run["status"] == "timed_out" and "Script timed out after 1500 ms" in log, (run, log)
    assert run["meta"]["pid"] in ready and not pid_alive(run["meta"]["pid"])

    ready = waiting(pooled, 2)
    definition = api.create_script(type="node", runner="vm2", script="while (true) {}", timeoutMs=60_000)
    run_id = start_run(api, definition["id"])
    pid = eventually(lambda: wait_status(api, run_id, ("running",))["meta"]["pid"], 30)
    assert pid in ready
    started = time.monotonic()
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    done = wait_status(api, run_id, timeout=30)
    assert done["status"] == "canceled" and time.monotonic() - started < 15
    assert not pid_alive(pid)


def test_a_pooled_process_that_dies_while_waiting_is_replaced(pooled: ScriptboxServer) -> None:
    victim = min(waiting(pooled, 2))
    os.kill(victim, signal.SIGKILL)
    replaced = waiting(pooled, 2, exclude={victim})
    assert victim not in replaced
    run, log = run_vm2(pooled.api(), "console.log(1 + 1)")
    assert (run["status"], log) == ("succeeded", "2\n")


def _run_seconds(api: Api, script_id: str) -> float:
    started = time.monotonic()
    response = api.post(f"/api/admin/scripts/{script_id}/run?wait=60")
    took = time.monotonic() - started
    assert response.status_code == 200 and response.json()["status"] == "succeeded", response.text
    return took


def test_without_a_pool_runs_start_their_own_process_and_the_pool_saves_most_of_the_start(
        pooled: ScriptboxServer, server_factory: Callable[..., ScriptboxServer]) -> None:
    unpooled = server_factory(env={"SCRIPTBOX_VM2_POOL": "0"}).start()
    api = unpooled.api()
    run, log = run_vm2(api, "console.log(params.missing, env.A)")
    assert (run["status"], log) == ("succeeded", "undefined undefined\n")
    assert pooled_pids(unpooled) == set()
    waiting(pooled, 2)
    # Gross regressions only: a pooled run skips node's start-up and vm2's loading,
    # which are most of a short run (typically 4-5 times faster); fail only if it is not even 25 % faster.
    # Interleaved, so both sides see the same machine load.
    sides = [(a, a.create_script(type="node", runner="vm2", script="console.log(1)")["id"])
             for a in (pooled.api(), api)]
    took: list[list[float]] = [[], []]
    for _ in range(5):
        for i, (side_api, script_id) in enumerate(sides):
            took[i].append(_run_seconds(side_api, script_id))
    with_pool, without = statistics.median(took[0]), statistics.median(took[1])
    assert with_pool < 0.75 * without, took


def test_the_waiting_processes_go_when_the_server_stops(pooled: ScriptboxServer) -> None:
    """Last in this module on purpose: it stops the module's server (the fixture
    then finds it stopped), which saves starting one more."""
    ready = waiting(pooled, 2)
    assert pooled.stop() == 0
    eventually(lambda: not any(pid_alive(pid) for pid in ready), 10, message="the pooled processes are gone")

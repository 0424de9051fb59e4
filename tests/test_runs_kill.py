"""Timeout, cancel and leftovers: no process of a run survives (checked in /proc)."""

from __future__ import annotations

import time

from support import Api, eventually, run_pids, run_script, start_run, wait_status

# A main process with a child, a grandchild, and a daemon that double-forked
# into its own session (setsid) so it is no longer in the run's tree or group.
TREE = """
sleep 300 &
bash -c 'sleep 301 & wait' &
setsid bash -c 'setsid sleep 302 & ' &
echo started
wait
"""


def _wait_for_pids(run_id: str, count: int, timeout: float = 10.0) -> list[int]:
    """The run's processes once there are `count` of them (AssertionError after `timeout`)."""
    return eventually(lambda: pids if len(pids := run_pids(run_id)) >= count else None, timeout,
                      message=f"{count} processes of run {run_id}")


def _assert_all_gone(run_id: str, timeout: float = 2.0) -> None:
    eventually(lambda: not run_pids(run_id), timeout, message=f"no process of run {run_id} left")


def test_timeout_kills_the_whole_tree_including_setsid_daemons(api: Api) -> None:
    definition = api.create_script(script=TREE, timeoutMs=1500)
    run_id = start_run(api, definition["id"])
    _wait_for_pids(run_id, 5)  # main bash, sleep 300, bash + sleep 301, the setsid'd sleep 302
    run = wait_status(api, run_id, timeout=15)
    assert run["status"] == "timed_out"
    assert run["exitCode"] is None
    assert "timed out after 1500 ms" in run["meta"]["error"]
    _assert_all_gone(run_id)


def test_cancel_kills_the_whole_tree_and_ends_canceled(api: Api) -> None:
    definition = api.create_script(script=TREE)
    run_id = start_run(api, definition["id"])
    _wait_for_pids(run_id, 5)  # main bash, sleep 300, bash + sleep 301, the setsid'd sleep 302
    response = api.post(f"/api/admin/scripts/runs/{run_id}/cancel")
    assert response.status_code == 202
    run = wait_status(api, run_id, timeout=10)
    assert run["status"] == "canceled"
    _assert_all_gone(run_id)
    again = api.post(f"/api/admin/scripts/runs/{run_id}/cancel")
    assert again.status_code == 409


def test_a_process_ignoring_sigterm_is_killed_after_the_grace(api: Api) -> None:
    definition = api.create_script(script="trap '' TERM; echo ready; while :; do sleep 0.1; done", timeoutMs=500)
    started = time.monotonic()
    run_id = start_run(api, definition["id"])
    run = wait_status(api, run_id, timeout=20)
    assert run["status"] == "timed_out"
    assert run["meta"]["signal"] == "SIGKILL"
    assert time.monotonic() - started < 15
    _assert_all_gone(run_id)


def test_a_daemonized_child_does_not_hold_the_run_open(api: Api) -> None:
    # The daemon keeps the stdout/stderr pipe open; the run still ends when
    # the main process exits, and the daemon is killed.
    script = "setsid sleep 300 & nohup sleep 301 & echo main done"
    started = time.monotonic()
    run, log = run_script(api, script, timeout=10)
    assert run["status"] == "succeeded"
    assert time.monotonic() - started < 8
    assert "main done" in log
    _assert_all_gone(run["id"])


def test_output_written_just_before_exit_is_kept(api: Api) -> None:
    run, log = run_script(api, "seq 1 20000; printf tail-without-newline")
    assert run["status"] == "succeeded"
    assert log.endswith("20000\ntail-without-newline")


def test_cancel_of_a_queued_run_never_starts_it(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "1"}).start()
    api = server.api()
    blocker = api.create_script(script="sleep 30")
    marker = api.create_script(script="echo ran")
    first = start_run(api, blocker["id"])
    wait_status(api, first, ("running",))
    queued = start_run(api, marker["id"])
    assert api.get(f"/api/admin/scripts/runs/{queued}").json()["status"] == "queued"
    response = api.post(f"/api/admin/scripts/runs/{queued}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "canceled"
    assert api.post(f"/api/admin/scripts/runs/{first}/cancel").status_code == 202
    wait_status(api, first)
    time.sleep(0.5)
    run = api.get(f"/api/admin/scripts/runs/{queued}").json()
    assert run["status"] == "canceled" and run["startedAt"] is None
    assert api.get(f"/api/admin/scripts/runs/{queued}/log").text == ""

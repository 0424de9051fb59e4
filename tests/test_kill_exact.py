"""The kill is exact: a run's process set holds only processes proven to be the run's.

Unit tests of the rules in scriptbox/proctree.py with real processes that exit
(and are reaped) before they are examined, plus the regression scenario of
issue 9 on a real server with its embedded database.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import requests

from scriptbox import proctree
from scriptbox.proctree import ProcInfo, RunProcesses
from support import ADMIN_PASSWORD, ADMIN_USER, Api, eventually, pid_alive, start_run, wait_status

RUN_ID = "0123456789abcdef01234567"


def _spawn_probed(argv: list[str], **kwargs: object) -> tuple[subprocess.Popen[bytes], int | None]:
    probe = proctree.StartProbe()
    try:
        proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=probe.preexec(),  # type: ignore[call-overload]
                                **kwargs)
        return proc, probe.start_of(proc.pid)
    finally:
        probe.close()


def _sleeper(**kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], **kwargs)  # type: ignore[call-overload]


def test_the_start_probe_knows_a_process_that_was_reaped_before_anyone_looked() -> None:
    before = _sleeper()
    proc, start = _spawn_probed(["true"])
    proc.wait()
    after = _sleeper()
    try:
        # Reaped: /proc can no longer tell (the old code turned this into -1).
        current = proctree.read_proc(proc.pid)
        assert current is None or current.start != start
        assert isinstance(start, int)
        info_before, info_after = proctree.read_proc(before.pid), proctree.read_proc(after.pid)
        assert info_before is not None and info_after is not None
        assert info_before.start <= start <= info_after.start
    finally:
        before.kill()
        after.kill()
        before.wait()
        after.wait()


def test_a_reaped_instant_root_whose_pipes_the_server_holds_yields_nothing() -> None:
    # The scenario of issue 9: this test process plays the server. It holds the
    # read ends of the run's pipes and has children of its own: a "database"
    # started before the run and an "other run" started after it.
    database = _sleeper()
    root, start = _spawn_probed(["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root.wait()
    other_run = _sleeper(start_new_session=True)
    assert root.stdout is not None and root.stderr is not None
    inodes = [os.fstat(root.stdout.fileno()).st_ino, os.fstat(root.stderr.fileno()).st_ino]
    try:
        tracker = RunProcesses(RUN_ID, root.pid, start, pipe_inodes=inodes)
        assert tracker.find() == []
        assert tracker.kill(0.2) == 0
        # An unknown start time (what the old code turned into -1) proves nothing.
        assert RunProcesses(RUN_ID, root.pid, None, pipe_inodes=inodes).find() == []
        assert pid_alive(database.pid) and pid_alive(other_run.pid) and pid_alive(os.getpid())
    finally:
        for proc in (database, other_run):
            proc.kill()
            proc.wait()
        root.stdout.close()
        root.stderr.close()


def test_a_daemon_that_left_the_tree_and_cleared_its_env_is_found_by_the_pipe_it_writes() -> None:
    database = _sleeper()
    script = "setsid env -i sh -c 'echo $$; exec sleep 60' & exit 0"
    root, start = _spawn_probed(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "SCRIPTBOX_RUN_ID": RUN_ID})
    assert root.stdout is not None and root.stderr is not None
    daemon_pid = int(root.stdout.readline())
    root.wait()
    other_run = _sleeper(start_new_session=True)
    inodes = [os.fstat(root.stdout.fileno()).st_ino, os.fstat(root.stderr.fileno()).st_ino]
    try:
        tracker = RunProcesses(RUN_ID, root.pid, start, pipe_inodes=inodes)
        assert [p.pid for p in tracker.find()] == [daemon_pid]
        assert tracker.kill(2.0) == 1
        eventually(lambda: not pid_alive(daemon_pid), timeout=5, message="the daemon is killed")
        assert pid_alive(database.pid) and pid_alive(other_run.pid)
    finally:
        for proc in (database, other_run):
            proc.kill()
            proc.wait()
        root.stdout.close()
        root.stderr.close()


def _info(pid: int, ppid: int, sid: int, start: int, state: str = "S") -> ProcInfo:
    return ProcInfo(pid=pid, ppid=ppid, pgid=sid, sid=sid, start=start, state=state)


def test_rules_on_a_process_table() -> None:
    me = os.getpid()
    table = {
        me: _info(me, 1, me, 10),
        500: _info(500, me, 500, 100),  # the run's root
        501: _info(501, 500, 500, 101),  # its child
        502: _info(502, 501, 500, 102),  # grandchild
        503: _info(503, me, 503, 103),  # another run (a child of the server)
        504: _info(504, 503, 503, 104),
        505: _info(505, 500, 500, 105),  # claimed by another run: excluded before expansion
        506: _info(506, 505, 506, 106),  # ... so its child is not reached through it
        507: _info(507, 1, 500, 90),  # in the session but older than the root: never ours
        508: _info(508, 500, 500, 108, state="Z"),
    }
    tracker = RunProcesses(RUN_ID, 500, 100, exclude=lambda _t: {505})
    assert sorted(p.pid for p in tracker.find(table, env_scan=False)) == [500, 501, 502]
    # The root's pid number now belongs to someone else: its session proves nothing.
    reused = {**table, 500: _info(500, me, 500, 200)}
    assert sorted(p.pid for p in tracker.find(reused, env_scan=False)) == []
    # Unknown start time: nothing.
    assert RunProcesses(RUN_ID, 500, None).find(table, env_scan=False) == []
    # A protected pid (the database) is never included; below it only what
    # another rule proves (502 is in the root's session).
    protected = RunProcesses(RUN_ID, 500, 100, protected=[501])
    assert sorted(p.pid for p in protected.find(table, env_scan=False)) == [500, 502, 505, 506]
    # The server is never a member, even when a rule would match it.
    server_in_session = {**table, me: _info(me, 1, 500, 150)}
    assert me not in {p.pid for p in tracker.find(server_in_session, env_scan=False)}


def test_recovery_without_a_start_time_only_trusts_the_environment() -> None:
    database = _sleeper()
    marked = _sleeper(env={**os.environ, "SCRIPTBOX_RUN_ID": RUN_ID}, start_new_session=True)
    unmarked = _sleeper(start_new_session=True)
    try:
        for start in (None, -1):
            found = {p.pid for p in proctree.find_run_processes(RUN_ID, unmarked.pid, start)}
            assert found == {marked.pid}
        assert proctree.kill_orphaned_run(RUN_ID, unmarked.pid, -1, 2.0) == 1
        assert marked.wait(5) is not None
        assert pid_alive(database.pid) and pid_alive(unmarked.pid)
    finally:
        for proc in (database, marked, unmarked):
            proc.kill()
            proc.wait()


# -- the scenario of issue 9 on a real server -------------------------------

INSTANT_RUNS = 240
CLIENTS = 4


def test_hundreds_of_instant_runs_beside_a_long_run_harm_nothing(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The embedded database: it is the server's child, which the old kill reached.
    server = server_factory(mongodb_uri=None, env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "8"}).start()
    api = server.api()
    db_pid = int(json.loads((server.data_dir / "db.pid").read_text())["pid"])
    flag = tmp_path / "go"
    long_def = api.create_script(script=f"while [ ! -e {flag} ]; do sleep 0.05; done; echo survived")
    instant = api.create_script(script="echo hi")
    quiet = api.create_script(script="true")
    long_run = start_run(api, long_def["id"])
    wait_status(api, long_run, ("running",))

    run_ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()  # keep-alive, as a CI job's client
        session.auth = (ADMIN_USER, ADMIN_PASSWORD)
        for i in range(INSTANT_RUNS // CLIENTS):
            script_id = instant["id"] if (i + index) % 2 else quiet["id"]
            try:
                response = session.post(f"{server.base_url}/api/admin/scripts/{script_id}/run", json={}, timeout=30)
            except requests.RequestException as exc:
                with lock:
                    errors.append(repr(exc))
                return
            with lock:
                if response.status_code == 202:
                    run_ids.append(response.json()["runId"])
                else:
                    errors.append(f"{response.status_code} {response.text}")
        session.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(run_ids) == INSTANT_RUNS
    for run_id in run_ids:
        run = wait_status(api, run_id, timeout=120)
        assert run["status"] == "succeeded", run
        expected = "hi\n" if run["scriptId"] == instant["id"] else ""
        assert api.get(f"/api/admin/scripts/runs/{run_id}/log").text == expected
    # Nothing else was touched: the long run, the server, its database.
    assert get_status(api, long_run) == "running"
    # Alone on its embedded database, the server follows no change stream:
    # its own submits, ends and cancels woke it for all of the above.
    assert "change streams off (the embedded database has no other client)" in server.text
    assert server.process.poll() is None and pid_alive(db_pid)
    flag.write_text("")
    run = wait_status(api, long_run, timeout=30)
    assert run["status"] == "succeeded"
    assert api.get(f"/api/admin/scripts/runs/{long_run}/log").text == "survived\n"
    assert requests.get(f"{server.base_url}/healthz", timeout=10).json() == {"status": "ok", "db": "ok"}
    assert "exited unexpectedly" not in server.text


def get_status(api: Api, run_id: str) -> str:
    return str(api.get(f"/api/admin/scripts/runs/{run_id}").json()["status"])

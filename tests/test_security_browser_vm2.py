"""Issue 20, the vm2 half: replays of what an escaped vm2 script tried against the host.

An escape gives a script the harness's node process (test_vm2_sandbox.py shows
what node's permission model still blocks then). These tests start processes
exactly as the runner describes them and check what the *operating system*
refuses on top: when Scriptbox runs as root (the suite does), the sandbox runs
as SCRIPTBOX_VM2_USER (default nobody), so it cannot signal, trace or read the
server's processes and data dir. The browser half lives in tests/ui/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scriptbox.runners.base import RunnerUnavailable
from scriptbox.runners.vm2_runner import HARNESS_DIR, prepare_vm2_launch, resolve_sandbox_user
from support import Api, ScriptboxServer, pid_alive, run_pids, start_run, wait_status

NOBODY_UID = 65534


def status_ids(pid: int, field: str) -> list[int]:
    """The Uid:/Gid:/Groups: numbers of /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return [int(n) for n in line.split()[1:]]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def run_as_escaped_harness(code: str, *, permission_model: bool = True) -> dict[str, object]:
    """Run `code` as the vm2 harness process (what an escape gets) and return
    the JSON it prints. Without `permission_model`, node's --permission layer
    is left out too, to show what the OS alone refuses."""
    assert os.geteuid() == 0, "the suite runs as root; this replays a root deployment"
    spec = prepare_vm2_launch("", {}, 10_000)
    argv = spec.argv[:-1]
    if not permission_model:
        argv = [a for a in argv if "permission" not in a and not a.startswith("--allow-")]
    try:
        result = subprocess.run([*argv, "-e", code], env=spec.env, cwd=spec.cwd, capture_output=True,
                                text=True, timeout=30, start_new_session=True, preexec_fn=spec.preexec)
    finally:
        assert spec.cleanup is not None
        spec.cleanup()
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


PROBE = """
const fs = require('fs');
const out = {uid: process.getuid(), euid: process.geteuid(), gid: process.getgid(), groups: process.getgroups()};
const attempt = (name, fn) => { try { fn(); out[name] = 'ALLOWED'; } catch (e) { out[name] = e.code || String(e); } };
attempt('signal0', () => process.kill(%(pid)d, 0));
attempt('sigstop', () => process.kill(%(pid)d, 'SIGSTOP'));
attempt('environ', () => fs.readFileSync('/proc/%(pid)d/environ'));
attempt('mem', () => fs.openSync('/proc/%(pid)d/mem', 'r'));
attempt('datadir', () => fs.readdirSync(%(data_dir)s));
attempt('cwd', () => fs.writeFileSync('probe', 'x'));
console.log(JSON.stringify(out));
"""


def test_an_escaped_sandbox_cannot_signal_stop_or_trace_the_server(server: ScriptboxServer) -> None:
    assert server.process is not None
    code = PROBE % {"pid": server.process.pid, "data_dir": json.dumps(str(server.data_dir))}
    seen = run_as_escaped_harness(code)
    assert seen["uid"] == seen["euid"] == NOBODY_UID
    assert seen["gid"] == NOBODY_UID
    assert seen["signal0"] == "EPERM" and seen["sigstop"] == "EPERM"
    # With node's permission model the reads stop there already...
    assert seen["environ"] == "ERR_ACCESS_DENIED" and seen["datadir"] == "ERR_ACCESS_DENIED"
    # ...and without it (as after a bug in it), the kernel refuses them to `nobody`.
    bare = run_as_escaped_harness(code, permission_model=False)
    assert bare["uid"] == NOBODY_UID
    assert bare["signal0"] == "EPERM" and bare["sigstop"] == "EPERM"
    assert bare["environ"] == "EACCES" and bare["mem"] == "EACCES" and bare["datadir"] == "EACCES"
    # The private working directory belongs to the sandbox user: it is usable.
    assert bare["cwd"] == "ALLOWED"
    assert server.process.poll() is None


def test_a_vm2_run_executes_as_the_sandbox_user_without_groups(api: Api) -> None:
    definition = api.create_script(type="node", runner="vm2", timeoutMs=20_000,
                                   script="const until = Date.now() + 2500; while (Date.now() < until) {}")
    run_id = start_run(api, definition["id"])
    pids: list[int] = []
    for _ in range(200):
        run = wait_status(api, run_id, ("running", "succeeded", "failed"), timeout=10)
        # The run's main process is meta.pid: a pooled sandbox process (SCRIPTBOX_VM2_POOL)
        # was started before its run, without SCRIPTBOX_RUN_ID in its environment.
        pid = run["meta"]["pid"]
        pids = [pid] if isinstance(pid, int) and pid_alive(pid) else run_pids(run_id)
        if pids:
            break
    assert pids, "the run's process was never seen"
    for pid in pids:
        assert status_ids(pid, "Uid") == [NOBODY_UID] * 4
        assert status_ids(pid, "Gid") == [NOBODY_UID] * 4
        assert status_ids(pid, "Groups") == []
    run = wait_status(api, run_id, timeout=30)
    assert run["status"] == "succeeded", run


def test_who_the_sandbox_runs_as() -> None:
    nobody = resolve_sandbox_user("nobody", 0)
    assert nobody is not None and nobody.uid == NOBODY_UID and nobody.gid == NOBODY_UID
    assert resolve_sandbox_user(str(NOBODY_UID), 0) == nobody
    # Not root: nobody to switch to; a uid-0 account: the operator keeps root.
    assert resolve_sandbox_user("nobody", 1000) is None
    assert resolve_sandbox_user("root", 0) is None
    with pytest.raises(RunnerUnavailable, match="SCRIPTBOX_VM2_USER"):
        resolve_sandbox_user("no-such-user-sbx", 0)


def test_a_harness_the_sandbox_user_cannot_read_makes_the_runner_unavailable(tmp_path: Path) -> None:
    # pytest's tmp_path sits in a 0700 directory: `nobody` cannot pass through it.
    copy = tmp_path / "vm2"
    shutil.copytree(HARNESS_DIR, copy, symlinks=True)
    with pytest.raises(RunnerUnavailable, match="runs as nobody .*cannot read"):
        prepare_vm2_launch("1", {}, 1000, harness_dir=copy)
    # The same harness is fine for a root sandbox (the operator's explicit choice).
    spec = prepare_vm2_launch("1", {}, 1000, harness_dir=copy, run_as="root")
    assert spec.cleanup is not None
    spec.cleanup()

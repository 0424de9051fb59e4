"""The database SIGKILLed under a server with live runs.

External MongoDB (`--mongodb-uri`): a separate SecantusDB, killed and restarted
on the same port and data dir. The server rides out the outage: 503 JSON on
the API meanwhile, no run lost or stuck, a run that ended during the outage is
recorded with its whole log once the database is back, live viewers keep
their stream.

Embedded database: the server stops (exit 1, for the service manager to
restart), leaving no process of any run; the next start records the runs that
were running as failed and executes the queued ones (docs/engine.md).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import requests

from support import Api, SseStream, eventually, output_text, pid_alive, run_pids, run_script, start_run, wait_status
from support.separate_db import SeparateDatabase


def _wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    eventually(predicate, timeout, message=what)


def _log(api: Api, run_id: str) -> str:
    return api.get(f"/api/admin/scripts/runs/{run_id}/log").text


def test_an_external_database_outage_loses_no_run(server_factory, separate_db: SeparateDatabase,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    server = server_factory(mongodb_uri=separate_db.uri).start()
    api = server.api()
    during, after = tmp_path / "end-during", tmp_path / "end-after"
    ends_during = api.create_script(script=f"echo a; while [ ! -e {during} ]; do sleep 0.05; done; echo b")
    ends_after = api.create_script(script=f"echo x; while [ ! -e {after} ]; do sleep 0.05; done; echo y")
    first, second = start_run(api, ends_during["id"]), start_run(api, ends_after["id"])
    _wait_for(lambda: _log(api, first) == "a\n" and _log(api, second) == "x\n", what="first output stored")
    viewer = SseStream(api, first, timeout=90)

    separate_db.kill()
    answer = api.get("/api/admin/scripts")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "database_unavailable"
    assert requests.get(f"{server.base_url}/healthz", timeout=30).status_code == 503
    during.write_text("")  # the first run ends while the database is away
    _wait_for(lambda: not run_pids(first), what="the first run's process to exit")
    time.sleep(1.0)  # its end is now waiting for the database

    separate_db.start()  # same port, same files
    run = wait_status(api, first, timeout=60)
    assert run["status"] == "succeeded" and run["exitCode"] == 0
    assert _log(api, first) == "a\nb\n"
    events = viewer.until_end()
    viewer.close()
    assert events[-1].event == "end" and output_text(events) == "a\nb\n"
    after.write_text("")
    run = wait_status(api, second, timeout=30)
    assert run["status"] == "succeeded" and _log(api, second) == "x\ny\n"
    run, log = run_script(api, "echo back")
    assert run["status"] == "succeeded" and log == "back\n"
    assert server.process.poll() is None
    assert requests.get(f"{server.base_url}/healthz", timeout=10).json() == {"status": "ok", "db": "ok"}


def test_the_embedded_database_killed_stops_the_server_and_the_next_start_recovers(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(mongodb_uri=None, env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "1"}).start()
    api = server.api()
    long_def = api.create_script(script="echo started; sleep 30 & exec sleep 31")
    queued_def = api.create_script(script="echo later")
    running = start_run(api, long_def["id"])
    _wait_for(lambda: _log(api, running) == "started\n", what="output stored")
    queued = start_run(api, queued_def["id"])
    assert api.get(f"/api/admin/scripts/runs/{queued}").json()["status"] == "queued"
    db_pid = int(json.loads((server.data_dir / "db.pid").read_text())["pid"])

    assert server.process is not None
    os.kill(db_pid, signal.SIGKILL)
    assert server.process.wait(90) == 1
    assert "the embedded database exited unexpectedly" in server.text
    assert run_pids(running) == [] and not pid_alive(db_pid)

    server.start()  # same data dir, the same database files
    api = server.api()
    run = wait_status(api, running, timeout=30)
    assert run["status"] == "failed"
    assert run["meta"]["error"] == "executor lost: server restarted"
    assert _log(api, running) == "started\n"
    run = wait_status(api, queued, timeout=30)
    assert run["status"] == "succeeded" and _log(api, queued) == "later\n"

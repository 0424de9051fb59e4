"""A run executed by another process sharing the database: live stream and cancel via the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support import ADMIN_PASSWORD, REPO, SseStream, run_pids, start_run, wait_status


def test_a_no_worker_server_streams_live_and_cancels_a_run_that_a_worker_executes(
        server_factory: Any, mongodb_uri: str, tmp_path: Path) -> None:
    web = server_factory(extra_args=["--no-worker"]).start()
    api = web.api()
    definition = api.create_script(script="for i in 1 2 3; do echo tick-$i; sleep 0.3; done; sleep 60")
    run_id = start_run(api, definition["id"])
    env = {**os.environ, "SCRIPTBOX_DB_NAME": web.db_name, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}
    worker = subprocess.Popen([sys.executable, str(REPO / "app.py"), "worker", "--mongodb-uri", mongodb_uri,
                               "--data-dir", str(tmp_path / "worker")], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        stream = SseStream(api, run_id)
        stream.output_until("tick-1\ntick-2\ntick-3\n")
        # The ticks came while the run was still going (polled from the database).
        assert wait_status(api, run_id, ("running",), timeout=1)["status"] == "running"
        started = time.monotonic()
        assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
        rest = list(stream.until_end())
        assert rest[-1].event == "end" and rest[-1].data["status"] == "canceled"
        assert time.monotonic() - started < 10
        assert run_pids(run_id) == []
    finally:
        worker.terminate()
        assert worker.wait(30) == 0

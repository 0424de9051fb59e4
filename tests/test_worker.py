"""`serve --no-worker` plus `worker` sharing one database: one serves, the other executes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from support import ADMIN_PASSWORD, REPO, SseStream, output_text, start_run, wait_status


def test_a_worker_executes_runs_that_a_no_worker_server_accepts_and_streams(server_factory: Any,
                                                                           mongodb_uri: str,
                                                                           tmp_path: Path) -> None:
    web = server_factory(extra_args=["--no-worker"]).start()
    api = web.api()
    definition = api.create_script(script="echo from-the-worker; echo oops >&2")
    run_id = start_run(api, definition["id"])
    # Nothing executes it yet: the server has no worker.
    assert wait_status(api, run_id, ("queued",), timeout=5)["status"] == "queued"

    env = {**os.environ, "SCRIPTBOX_DB_NAME": web.db_name, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD}
    worker = subprocess.Popen([sys.executable, str(REPO / "app.py"), "worker", "--mongodb-uri", mongodb_uri,
                               "--data-dir", str(tmp_path / "worker")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        run = wait_status(api, run_id, timeout=30)
        assert run["status"] == "succeeded", run
        events = SseStream(api, run_id).until_end()
        assert output_text(events, "stdout") == "from-the-worker\n"
        assert output_text(events, "stderr") == "oops\n"
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


def test_a_worker_refuses_to_start_without_a_shared_database(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "worker", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--mongodb-uri" in result.stderr

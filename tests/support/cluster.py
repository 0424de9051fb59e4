"""Several Scriptbox processes on one database: a `serve --no-worker` and N `worker`s.

Shared by tests/test_cluster_push.py and bench/cluster.py. Every process gets
the same database name and a home of its own (so `bash -l` reads no profile).
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

from .server import ScriptboxServer, ScriptboxWorker

WORKER_READY = "Scriptbox worker executing runs"
# Logged by store/changes.py when the runs change stream is open (workers log at INFO).
RUNS_STREAM_OPEN = "change stream on script_runs open"
START_TIMEOUT_S = 60.0


class Worker(ScriptboxWorker):
    """One real `python app.py worker` process with `slots` run slots."""

    def __init__(self, data_dir: Path, mongodb_uri: str, db_name: str, *, slots: int = 4,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, mongodb_uri=mongodb_uri, db_name=db_name,
                         env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": str(slots), **(env or {})})

    def start(self, wait: bool = False, stdin_text: str | None = None) -> Worker:
        super().start(wait=wait, stdin_text=stdin_text)
        return self

    def wait_for(self, needle: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"worker never logged {needle!r} (exit {self.process.poll()}):\n{self.text}")
            time.sleep(0.05)


class Cluster:
    """A no-worker server and `workers` workers on one fresh database name."""

    def __init__(self, root: Path, mongodb_uri: str, *, workers: int, slots: int = 4,
                 env: dict[str, str] | None = None) -> None:
        self.db_name = f"sbx_{uuid.uuid4().hex[:12]}"
        self.env = dict(env or {})
        self.server = ScriptboxServer(root / "web", mongodb_uri=mongodb_uri, db_name=self.db_name, env=self.env,
                                      extra_args=["--no-worker"])
        self.workers = [Worker(root / f"worker{i}", mongodb_uri, self.db_name, slots=slots, env=self.env)
                        for i in range(workers)]

    def start(self, wait_for: str | None = RUNS_STREAM_OPEN) -> Cluster:
        """Start every process at once; wait until each is ready (and logged `wait_for`)."""
        self.server.start(wait=False)
        for worker in self.workers:
            worker.start()
        return self.start_wait(wait_for)

    def start_wait(self, wait_for: str | None = RUNS_STREAM_OPEN) -> Cluster:
        """Wait until every started process is ready (and each worker logged `wait_for`)."""
        self.server.wait_ready()
        for worker in self.started:
            worker.wait_for(WORKER_READY)
            if wait_for:
                worker.wait_for(wait_for)
        return self

    @property
    def started(self) -> list[Worker]:
        return [w for w in self.workers if w.process is not None]

    def terminate(self) -> None:
        """SIGTERM every process without waiting (`stop` waits)."""
        for process in [w.process for w in self.workers] + [self.server.process]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        for worker in self.started:
            worker.stop()
        self.server.stop()

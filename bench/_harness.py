"""Shared benchmark plumbing: a real `app.py serve` with its own embedded
database in a temporary data dir, an authenticated session, an SSE reader,
/proc readings of the server and database processes, an empty HOME shared by
the server's scripts and the raw baselines, and median-and-spread summaries."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support._path import REPO  # noqa: E402
from tests.support.procs import cpu_seconds, reset_peak_rss  # noqa: E402
from tests.support.procs import rss_bytes as rss  # noqa: E402
from tests.support.server import ScriptboxServer  # noqa: E402
from tests.support.sse import SseParser  # noqa: E402

PASSWORD = "bench-password-123"
AUTH = ("admin", PASSWORD)

__all__ = ["AUTH", "PASSWORD", "REPO", "BenchServer", "bench_home", "cpu_seconds", "drain_output", "mib",
           "reset_peak_rss", "rss", "spread", "sse_events", "summary"]


@contextmanager
def bench_home(kind: str = "empty") -> Iterator[dict[str, str]]:
    """Environment for the server and for the raw baselines alike.

    "empty": HOME is a fresh empty directory, so `bash -l` reads no profile
    (this user's ~/.bashrc may run e.g. `pyenv init`, ~100 ms per bash -l).
    "user": this environment unchanged.
    """
    if kind == "user":
        yield dict(os.environ)
        return
    home = tempfile.mkdtemp(prefix="scriptbox-bench-home-")
    try:
        yield {**os.environ, "HOME": home}
    finally:
        shutil.rmtree(home, ignore_errors=True)


class BenchServer:
    """`python app.py serve` with its own embedded database in a temporary data
    dir (tests/support's ScriptboxServer); stopped with SIGTERM by stop()."""

    def __init__(self, env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="scriptbox-bench-"))
        self.log = open(self.data_dir / "server.out", "w")  # noqa: SIM115 - closed in stop()
        # The server's own HOME comes from `env` (bench_home), like the baselines'.
        self.server = ScriptboxServer(self.data_dir / "data", mongodb_uri=None, env=env, password=PASSWORD,
                                      log=self.log, extra_args=extra_args)
        if env and "HOME" in env:
            self.server.env["HOME"] = env["HOME"]
        self.server.start()
        assert self.server.process is not None
        self.proc = self.server.process
        self.base = self.server.base_url
        self.session = requests.Session()
        self.session.auth = AUTH

    def create_script(self, **fields: Any) -> str:
        body = {"name": "bench", "codeIdentifier": f"bench-{time.monotonic_ns()}", "type": "bash"}
        body.update(fields)
        r = self.session.post(self.base + "/api/admin/scripts", json=body, timeout=30)
        r.raise_for_status()
        return str(r.json()["id"])

    def start_run(self, script_id: str, session: requests.Session | None = None) -> str:
        r = (session or self.session).post(self.base + f"/api/admin/scripts/{script_id}/run", timeout=30)
        r.raise_for_status()
        return str(r.json()["runId"])

    def run(self, run_id: str) -> dict[str, Any]:
        return dict(self.session.get(self.base + f"/api/admin/scripts/runs/{run_id}", timeout=30).json())

    def db_pid(self) -> int | None:
        """Pid of the embedded database (a child process), None with an external one."""
        for child in psutil.Process(self.proc.pid).children():
            try:
                if "--storage-path" in child.cmdline():  # the database, however it is launched
                    return int(child.pid)
            except psutil.Error:
                continue
        return None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def children_cpu_seconds(self) -> float:
        """CPU of the server's reaped children: the scripts it ran."""
        return cpu_seconds(self.proc.pid, children=True)

    def rss(self, key: str = "VmRSS") -> int:
        return rss(self.proc.pid, key)

    def reset_peak_rss(self) -> bool:
        """Restart VmHWM from the current RSS.

        The startup peak (Argon2 verification of the first login uses 64 MiB)
        would otherwise hide what a run costs.
        """
        return reset_peak_rss(self.proc.pid)

    def stop(self) -> None:
        self.server.stop()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def sse_events(response: requests.Response) -> Iterator[tuple[str, int | None, Any]]:
    """(event, id, parsed data) from a streaming SSE response."""
    for event in SseParser().feed(response.iter_content(chunk_size=None)):
        yield event.event, event.id, event.data


def drain_output(response: requests.Response) -> tuple[int, int, bool]:
    """Read an SSE response up to `end`: (characters of the script's output,
    its output events, whether a system line said the stored log's limit was
    reached)."""
    received = events = 0
    limit_reached = False
    for name, _, data in sse_events(response):
        if name == "output" and not data.get("system"):
            received += len(data["data"])
            events += 1
        elif name == "output":
            limit_reached = limit_reached or "stored log limit" in data["data"]
        elif name == "end":
            break
    return received, events, limit_reached


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def spread(values: list[float], unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    """Median, interquartile range (from 4 values up), min-max and count."""
    v = sorted(x * scale for x in values)
    f = f"{{:.{digits}f}}".format
    parts = []
    if len(v) >= 4:
        q1, q3 = quartiles(v)
        parts.append(f"IQR {f(q1)}-{f(q3)}")
    parts.append(f"min-max {f(v[0])}-{f(v[-1])}")
    parts.append(f"n={len(v)}")
    return f"median {f(statistics.median(v))}{unit} ({', '.join(parts)})"


def summary(values: list[float]) -> str:
    """Latencies in seconds: median, p99, IQR, min, max in milliseconds."""
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    q1, q3 = quartiles(values)
    return (f"median {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"IQR {q1 * 1000:.1f}-{q3 * 1000:.1f} ms, "
            f"min {values[0] * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms (n={len(values)})")


def mib(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"

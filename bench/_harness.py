"""Shared benchmark plumbing: a real `app.py serve` with its own embedded
database in a temporary data dir, an authenticated session, an SSE reader,
/proc readings of the server and database processes, an empty HOME shared by
the server's scripts and the raw baselines, and median-and-spread summaries."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
AUTH = ("admin", PASSWORD)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (or of its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # utime, stime | cutime, cstime
    return (int(fields[first]) + int(fields[first + 1])) / CLK_TCK


def rss(pid: int, key: str = "VmRSS") -> int:
    """VmRSS (or VmHWM, the peak) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Restart a process's VmHWM from its current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchServer:
    """`python app.py serve` on a free port; stopped with SIGTERM by stop()."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="scriptbox-bench-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "SCRIPTBOX_ADMIN_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        full_env.update(env or {})
        self.log = open(self.data_dir / "server.out", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            cwd=REPO, env=full_env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.session = requests.Session()
        self.session.auth = AUTH
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + (self.data_dir / "server.out").read_text())
            time.sleep(0.1)

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
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def sse_events(response: requests.Response) -> Iterator[tuple[str, int | None, Any]]:
    """(event, id, parsed data) from a streaming SSE response."""
    buffer = b""
    for block in response.iter_content(chunk_size=None):
        parts = (buffer + block).split(b"\n\n")
        buffer = parts.pop()  # an incomplete event, if any
        for raw in parts:
            name, event_id, data = "message", None, None
            for line in raw.split(b"\n"):
                if line.startswith(b"event: "):
                    name = line[7:].decode()
                elif line.startswith(b"id: "):
                    event_id = int(line[4:])
                elif line.startswith(b"data: "):
                    data = json.loads(line[6:])
            if data is not None:
                yield name, event_id, data


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

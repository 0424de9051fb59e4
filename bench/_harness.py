"""Shared benchmark plumbing: a real `app.py serve` with its own embedded
database in a temporary data dir, an authenticated session, an SSE reader,
and /proc readings of the server process."""

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
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
AUTH = ("admin", PASSWORD)
CLK_TCK = os.sysconf("SC_CLK_TCK")


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

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss(self, key: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def reset_peak_rss(self) -> bool:
        """Restart VmHWM from the current RSS (Linux: write 5 to clear_refs).

        The startup peak (Argon2 verification of the first login uses 64 MiB)
        would otherwise hide what a run costs.
        """
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

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


def summary(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    return (f"median {statistics.median(values) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"min {values[0] * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms (n={len(values)})")


def mib(n: float) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"

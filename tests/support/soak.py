"""The soak workload, shared by tests/test_soak.py and bench/soak.py.

A mix of scripts (instant, chatty, long, failing, timing out, cancelled) started
by several keep-alive API clients, each following its run over SSE, beside
viewers that connect to random runs and drop mid-stream. Every run's expected
status, exit code and log are known, so the end state can be checked exactly.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from .client import Api
from .sse import SseStream

CHATTY_LINES = 400


@dataclass(frozen=True)
class Kind:
    name: str
    script: str
    status: str
    exit_code: int | None
    log: str
    timeout_ms: int = 300_000


KINDS = [
    Kind("instant", "echo hi", "succeeded", 0, "hi\n"),
    Kind("chatty", f'for i in $(seq 1 {CHATTY_LINES}); do echo "line $i"; '
                   '[ $((i % 100)) = 0 ] && sleep 0.05; done; exit 0',
         "succeeded", 0, "".join(f"line {i}\n" for i in range(1, CHATTY_LINES + 1))),
    Kind("long", "sleep 2; echo long-done", "succeeded", 0, "long-done\n"),
    Kind("failing", "echo failing >&2; exit 3", "failed", 3, "failing\n"),
    Kind("timeout", "echo start; sleep 30 & exec sleep 31", "timed_out", None, "start\n", timeout_ms=600),
    Kind("cancel", "echo c; sleep 30 & exec sleep 31", "canceled", None, "c\n"),
]


@dataclass
class Started:
    run_id: str
    kind: Kind
    requested_at: float  # time.monotonic() of the POST
    first_event_at: float | None = None  # first output seen by the client's SSE stream
    ended_at: float | None = None  # `end` seen by the client's SSE stream


@dataclass
class Workload:
    """Drives the mix against one server until `stop` is set."""

    api: Api
    script_ids: dict[str, str]  # kind name -> definition id
    clients: int = 4
    viewers: int = 2
    started: list[Started] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, api: Api, **kwargs: Any) -> Workload:
        ids = {k.name: api.create_script(script=k.script, timeoutMs=k.timeout_ms)["id"] for k in KINDS}
        return cls(api, ids, **kwargs)

    def _client(self, index: int) -> None:
        api = Api(self.api.base_url, auth=self.api.auth)  # its own keep-alive session
        step = index
        while not self.stop.is_set():
            kind = KINDS[step % len(KINDS)]
            step += 1
            self._guard(functools.partial(self._one_run, api, kind))

    def _one_run(self, api: Api, kind: Kind) -> None:
        requested = time.monotonic()
        response = api.post(f"/api/admin/scripts/{self.script_ids[kind.name]}/run", json={"trigger": "api"})
        if response.status_code != 202:
            raise AssertionError(f"start {kind.name}: {response.status_code} {response.text}")
        item = Started(response.json()["runId"], kind, requested)
        with self._lock:
            self.started.append(item)
        stream = SseStream(api, item.run_id, timeout=60)
        try:
            for event in stream.events():
                if event.event == "output" and item.first_event_at is None:
                    item.first_event_at = event.at
                    if kind.name == "cancel":
                        cancel = api.post(f"/api/admin/scripts/runs/{item.run_id}/cancel")
                        if cancel.status_code != 202:
                            raise AssertionError(f"cancel: {cancel.status_code} {cancel.text}")
                if event.event == "end":
                    item.ended_at = event.at
                    return
        finally:
            stream.close()

    def _viewer(self, seed: int) -> None:
        rng = random.Random(seed)
        api = Api(self.api.base_url, auth=self.api.auth)
        while not self.stop.is_set():
            with self._lock:
                pool = self.started[-20:]
            if not pool:
                time.sleep(0.05)
                continue
            self._guard(functools.partial(self._peek, api, rng.choice(pool).run_id, rng.randint(1, 5)))

    def _peek(self, api: Api, run_id: str, wanted: int) -> None:
        """Read a few events of a run's stream, then drop the connection mid-stream."""
        stream = SseStream(api, run_id, timeout=30)
        try:
            for count, _event in enumerate(stream.events(), 1):
                if count >= wanted:
                    break
        finally:
            stream.close()

    def _guard(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (AssertionError, requests.RequestException) as exc:
            with self._lock:
                self.errors.append(repr(exc))
            time.sleep(0.1)

    def run_for(self, seconds: float) -> None:
        threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]
        threads += [threading.Thread(target=self._viewer, args=(n,), daemon=True) for n in range(self.viewers)]
        self.stop.clear()
        for thread in threads:
            thread.start()
        self.stop.wait(seconds)
        self.stop.set()
        for thread in threads:
            thread.join(120)


def fd_count(pid: int, skip_remote_port: int | None = None) -> int:
    """Open fds of a process, not counting TCP sockets to `skip_remote_port`.

    The database driver's connection pool grows with concurrency and keeps its
    sockets; those are not leaks.
    """
    skip: set[str] = set()
    if skip_remote_port is not None:
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as fh:
                    lines = fh.readlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if int(parts[2].rsplit(":", 1)[1], 16) == skip_remote_port:
                    skip.add(f"socket:[{parts[9]}]")
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") not in skip:
                count += 1
        except OSError:
            continue
    return count


def live_run_ids() -> set[str]:
    """SCRIPTBOX_RUN_ID of every live (non-zombie) process, straight from /proc."""
    found: set[str] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if state in (b"Z", b"X"):
            continue
        for item in env:
            if item.startswith(b"SCRIPTBOX_RUN_ID="):
                found.add(item.split(b"=", 1)[1].decode())
    return found


def check_runs(api: Api, started: list[Started]) -> list[str]:
    """Each run's final state and stored log against what its script did; returns the mismatches."""
    problems = []
    for item in started:
        run = api.get(f"/api/admin/scripts/runs/{item.run_id}").json()
        log = api.get(f"/api/admin/scripts/runs/{item.run_id}/log").text
        kind = item.kind
        if run["status"] != kind.status or run["exitCode"] != kind.exit_code or log != kind.log:
            problems.append(f"{kind.name} {item.run_id}: {run['status']} exit {run['exitCode']} "
                            f"error {run['meta'].get('error')!r} log {log[:80]!r}")
    return problems

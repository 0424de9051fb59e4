"""Helpers for the run-engine tests: start runs, read SSE streams, inspect /proc."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests

from conftest import Api

FINISHED = ("succeeded", "failed", "canceled", "timed_out")


@dataclass
class SseEvent:
    event: str
    data: Any
    id: int | None
    at: float  # time.monotonic() when received


class SseStream:
    """A minimal EventSource: parses `event:`, `id:`, `data:` from a live response."""

    def __init__(self, api: Api, run_id: str, last_event_id: int | None = None, timeout: float = 30.0,
                 use_query: bool = False) -> None:
        headers = {}
        path = f"/api/admin/scripts/runs/{run_id}/stream"
        if last_event_id is not None:
            if use_query:
                path += f"?lastEventId={last_event_id}"
            else:
                headers["Last-Event-ID"] = str(last_event_id)
        self.response = api.get(path, headers=headers, stream=True, timeout=timeout)
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.comments = 0
        self._chunks = self.response.iter_content(chunk_size=None)
        self._buffer = b""

    def events(self) -> Iterator[SseEvent]:
        for block in self._chunks:
            self._buffer += block
            while b"\n\n" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\n\n", 1)
                event = self._parse(raw.decode("utf-8"))
                if event is not None:
                    yield event

    def _parse(self, raw: str) -> SseEvent | None:
        name, data, event_id = "message", [], None
        for line in raw.split("\n"):
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = int(value)
        if not data:
            return None
        return SseEvent(name, json.loads("\n".join(data)), event_id, time.monotonic())

    def until_end(self) -> list[SseEvent]:
        out = []
        for event in self.events():
            out.append(event)
            if event.event == "end":
                break
        return out

    def close(self) -> None:
        self.response.close()


def output_text(events: list[SseEvent], stream: str | None = None) -> str:
    return "".join(e.data["data"] for e in events
                   if e.event == "output" and (stream is None or e.data["stream"] == stream))


def start_run(api: Api, script_id: str, **body: Any) -> str:
    response = api.post(f"/api/admin/scripts/{script_id}/run", json=body or None)
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


def get_run(api: Api, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/admin/scripts/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(api: Api, run_id: str, statuses: tuple[str, ...] = FINISHED, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = get_run(api, run_id)
        if run["status"] in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run['status']} after {timeout}s")
        time.sleep(0.05)


def run_script(api: Api, script: str, timeout: float = 30.0, **fields: Any) -> tuple[dict[str, Any], str]:
    """Create a bash script (unless `type` says otherwise), run it, wait; returns (run, log)."""
    definition = api.create_script(script=script, **fields)
    run_id = start_run(api, definition["id"])
    run = wait_status(api, run_id, timeout=timeout)
    log = api.get(f"/api/admin/scripts/runs/{run_id}/log")
    assert log.status_code == 200
    return run, log.text


def run_pids(run_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries this run's id.

    Read straight from /proc, independently of the engine's own code.
    """
    needle = f"SCRIPTBOX_RUN_ID={run_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def raw_get(url: str, auth: tuple[str, str], **kwargs: Any) -> requests.Response:
    return requests.get(url, auth=auth, timeout=30, **kwargs)

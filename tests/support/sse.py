"""Reading Server-Sent Events from a streaming HTTP response, as EventSource does."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .client import Api


@dataclass
class SseEvent:
    event: str
    data: Any
    id: int | None
    at: float  # time.monotonic() when received


class SseParser:
    """Turns byte blocks into events; counts comment lines (keepalives).

    Linear in what it is fed (each block is scanned once), and JSON is parsed
    by orjson, so the throughput benchmark measures the server, not this
    client (the standard json module parses escaped output at ~50 MB/s).
    """

    def __init__(self) -> None:
        self.comments = 0
        self._pending: list[bytes] = []  # the blocks of an event not complete yet

    def feed(self, blocks: Iterable[bytes]) -> Iterator[SseEvent]:
        for block in blocks:
            # Only the new block is searched, and an event's blocks are joined
            # once, when it is complete: an event that arrives in many blocks
            # (a 600 KB output event) costs linear time, not quadratic.
            if self._pending and self._pending[-1].endswith(b"\n") and block.startswith(b"\n"):
                end = 1  # the blank line between two events spans the two blocks
            else:
                found = _blank_line(block, 0)
                end = found + 2 if found >= 0 else -1
            if end < 0:
                self._pending.append(block)
                continue
            events = [b"".join(self._pending) + block[:end - 2]] if end >= 2 else [b"".join(self._pending)[:-1]]
            start = end
            while (stop := _blank_line(block, start)) >= 0:
                events.append(block[start:stop])
                start = stop + 2
            self._pending = [block[start:]] if start < len(block) else []
            for raw in events:
                event = self._parse(raw)
                if event is not None:
                    yield event

    def _parse(self, raw: bytes) -> SseEvent | None:
        name, data, event_id = "message", [], None
        view = memoryview(raw)  # field values are sliced without copying (output data is most of the bytes)
        start = 0
        while start <= len(raw):
            stop = raw.find(b"\n", start)  # one byte: memchr, unlike split's byte loop
            stop = len(raw) if stop < 0 else stop
            colon = raw.find(b":", start, stop)
            field, value_at = (raw[start:colon], colon + 1) if colon >= 0 else (raw[start:stop], stop)
            if raw.startswith(b" ", value_at, stop):
                value_at += 1
            if colon == start:
                self.comments += 1
            elif field == b"event":
                name = raw[value_at:stop].decode("utf-8")
            elif field == b"data":
                data.append(view[value_at:stop])
            elif field == b"id":
                event_id = int(raw[value_at:stop])
            start = stop + 1
        if not data:
            return None
        return SseEvent(name, orjson.loads(data[0] if len(data) == 1 else b"\n".join(data)), event_id,
                        time.monotonic())


def _blank_line(block: bytes, start: int) -> int:
    """Where the next blank line (b"\\n\\n") starts, or -1.

    Found by looking for single newlines (memchr, several GB/s): output events
    carry their text JSON-escaped, so a raw newline ends a field and they are
    few. A two-byte find scans byte by byte and cost the throughput benchmark's
    client more CPU than the server spent sending.
    """
    while (i := block.find(b"\n", start)) >= 0:
        if block[i + 1:i + 2] == b"\n":
            return i
        start = i + 1
    return -1


class SseStream:
    """A minimal EventSource on one run's stream."""

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
        self._parser = SseParser()
        self._events = self._parser.feed(self.response.iter_content(chunk_size=None))

    @property
    def comments(self) -> int:
        return self._parser.comments

    def events(self) -> Iterator[SseEvent]:
        return self._events

    def until_end(self) -> list[SseEvent]:
        out = []
        for event in self._events:
            out.append(event)
            if event.event == "end":
                break
        return out

    def output_until(self, text: str) -> list[SseEvent]:
        """The output events up to the one that makes the output read exactly `text`."""
        got: list[SseEvent] = []
        for event in self._events:
            if event.event == "output":
                got.append(event)
                if output_text(got) == text:
                    return got
        raise AssertionError(f"the stream ended with output {output_text(got)!r}, not {text!r}")

    def clock_lags(self) -> list[float]:
        """Until `end`, for a script that prints the clock (epoch seconds) on each
        line: when each line arrived here minus when it was printed."""
        lags: list[float] = []
        for event in self._events:
            if event.event == "output":
                arrived = time.time()
                lags += [arrived - float(word) for word in event.data["data"].split()]
            elif event.event == "end":
                break
        return lags

    def close(self) -> None:
        self.response.close()


def output_text(events: list[SseEvent], stream: str | None = None) -> str:
    return "".join(e.data["data"] for e in events
                   if e.event == "output" and (stream is None or e.data["stream"] == stream))

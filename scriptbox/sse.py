"""Server-Sent Events for run output (SPEC §5): framing, replay + live, resume.

A stream is: a `status` event with the run as it is now; every stored chunk
after Last-Event-ID (replay from the database); the chunks that are written but
not yet persisted; then live events from the output hub. Every output event's
`id:` is the chunk's sequence number and the stream sends each sequence number
at most once and in order, so a client that reconnects with Last-Event-ID gets
neither gaps nor repeats. When the run is finished the stream sends `end` with
the final run document and closes.

Runs executed by another process (SPEC §9) have no live events here; for those
the stream polls the database every `remote_poll_s` instead.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .models import FINISHED_STATUSES

if TYPE_CHECKING:
    from scriptbox.output import OutputHub, Viewer

HEARTBEAT = b": keepalive\n\n"


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE message. JSON never contains a raw newline, so one data line."""
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return (head + "data: " + _json(data) + "\n\n").encode("utf-8")


def output_frame(seq: int, stream: str, data: str, system: bool = False) -> bytes:
    """An `output` event; `system` marks text written by Scriptbox itself."""
    body: dict[str, Any] = {"stream": stream, "data": data}
    if system:
        body["system"] = True
    return frame("output", body, seq)


_EVENT_ID = re.compile(r"[0-9]{1,18}")


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """Last-Event-ID from the header (preferred) or `?lastEventId=`.

    Anything that is not a non-negative integer is ignored (a fresh start),
    because browsers resend whatever id they last saw. Only ASCII digits count
    (str.isdigit() also accepts "²", which int() refuses), and at most 18 of
    them: a larger number is no sequence of ours and would not fit the
    database's 64-bit integers.
    """
    for raw in (header, query):
        if raw is None:
            continue
        raw = raw.strip()
        if _EVENT_ID.fullmatch(raw):
            return int(raw)
    return None


@dataclass(frozen=True)
class RunStreamSource:
    """What a stream needs from the rest of the app (kept small for testing)."""

    get_run: Callable[[str], dict[str, Any] | None]
    chunks_after: Callable[[str, int], Iterator[dict[str, Any]]]
    subscribe: Callable[[str], Viewer]
    hub: OutputHub
    is_local: Callable[[str], bool]
    run_json: Callable[[dict[str, Any]], dict[str, Any]]


def chunk_frame(chunk: dict[str, Any]) -> bytes:
    """The `output` event of a stored chunk."""
    return output_frame(chunk["seq"], chunk["stream"], chunk["data"], bool(chunk.get("system")))


FINISHED = frozenset(FINISHED_STATUSES)


def run_stream(
    source: RunStreamSource,
    run_id: str,
    last_event_id: int | None,
    heartbeat_s: float = 15.0,
    remote_poll_s: float = 0.5,
) -> Iterator[bytes]:
    """Yield the SSE byte blocks of one run's stream (see module docstring).

    Each yielded block holds everything that was waiting, so a busy run costs
    one socket write per wake-up, not one per event.
    """
    viewer = source.subscribe(run_id)
    try:
        last = -1 if last_event_id is None else last_event_id
        doc = source.get_run(run_id)
        if doc is None:
            return
        status = doc["status"]
        out: list[bytes] = [frame("status", source.run_json(doc))]
        # Replay what is stored. Chunks flushed after the viewer subscribed may
        # also sit in its queue; the seq check below drops the duplicates.
        for chunk in source.chunks_after(run_id, last):
            out.append(chunk_frame(chunk))
            last = chunk["seq"]
            if len(out) >= 64:
                yield b"".join(out)
                out = []
        if status in FINISHED:
            out.append(frame("end", source.run_json(doc)))
            yield b"".join(out)
            return
        if out:
            yield b"".join(out)
        last_write = time.monotonic()
        while True:
            local = source.is_local(run_id)
            timeout = heartbeat_s if local else min(heartbeat_s, remote_poll_s)
            wait = max(0.0, min(timeout, heartbeat_s - (time.monotonic() - last_write)))
            events = viewer.take(wait)
            out = []
            ended: dict[str, Any] | None = None
            for ev in events:
                if ev.kind == "output":
                    if ev.seq is not None and ev.seq <= last:
                        continue
                    out.append(ev.frame)
                    last = ev.seq if ev.seq is not None else last
                elif ev.kind == "status":
                    out.append(ev.frame)
                elif ev.kind == "end":
                    ended = ev.doc
                    break
            if ended is None and viewer.overflowed:
                # Too slow for the producer: close; the client reconnects with
                # Last-Event-ID and replays from the database.
                if out:
                    yield b"".join(out)
                return
            if ended is None and not local and not events:
                # Executed elsewhere (or not started yet): poll the database.
                for chunk in source.chunks_after(run_id, last):
                    out.append(chunk_frame(chunk))
                    last = chunk["seq"]
                doc = source.get_run(run_id)
                if doc is None:
                    ended = None
                    if out:
                        yield b"".join(out)
                    return
                if doc["status"] != status:
                    status = doc["status"]
                    if status not in FINISHED:
                        out.append(frame("status", source.run_json(doc)))
                if status in FINISHED:
                    ended = source.run_json(doc)
            if ended is not None:
                # Anything persisted but not seen live (browser results, remote
                # executors) comes from the database before `end`.
                for chunk in source.chunks_after(run_id, last):
                    out.append(chunk_frame(chunk))
                    last = chunk["seq"]
                out.append(frame("end", ended))
                yield b"".join(out)
                return
            if not out and time.monotonic() - last_write >= heartbeat_s:
                out.append(HEARTBEAT)
            if out:
                yield b"".join(out)
                last_write = time.monotonic()
    finally:
        source.hub.unsubscribe(viewer)

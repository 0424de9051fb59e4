"""The Server-Sent Events wire format: frames, the keepalive, Last-Event-ID.

A leaf module (standard library only): the run engine builds output frames
with it once per chunk, and the HTTP stream in scriptbox/api/stream.py writes them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

HEARTBEAT = b": keepalive\n\n"
_EVENT_ID = re.compile(r"[0-9]{1,18}")


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE message. JSON never contains a raw newline, so one data line."""
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return (head + "data: " + _json(data) + "\n\n").encode("utf-8")


def output_frame(seq: int, stream: str, data: str, system: bool = False, at: datetime | None = None) -> bytes:
    """An `output` event; `system` marks text written by Scriptbox itself.

    `at` (when the server read the text; naive datetimes are UTC) lets a viewer
    that replays a run show each line's real time rather than when the replay
    reached it. It is an extra field, so clients that predate it ignore it.
    """
    body: dict[str, Any] = {"stream": stream, "data": data}
    if system:
        body["system"] = True
    if at is not None:
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        body["at"] = at.isoformat(timespec="milliseconds") + "Z"
    return frame("output", body, seq)


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

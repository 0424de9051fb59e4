"""The UI's feed of run events: every run's creation, start and end, as Server-Sent Events.

`GET /api/admin/scripts/runs/events` sends `event: run` with the run document
each time a run appears (queued), starts or ends, so the Runs page, "Recent
runs" and the sidebar follow without reloading. Runs of this process arrive
through the engine's live hub at once (the `ALL_RUNS` key); runs of other
processes, and anything the hub missed, come from one database query every
`poll_s` (active runs plus those finished since the last look). What exists
when the stream opens is the baseline, not sent: the client loads its lists
itself, then applies events. Each run is sent at most once per status, and
never back to an earlier status.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bottle import Bottle, HTTPResponse, request

from ..engine.hub import Viewer
from ..engine.live import ALL_RUNS
from ..errors import ValidationFailed
from ..services import Services
from ..sse_wire import HEARTBEAT, frame
from ..store import utcnow
from ..vocabulary import FINISHED_STATUSES
from .openapi import Doc, Param, Reply
from .presenters import run_to_json
from .schemas import ErrorBody, Run
from .sse_response import sse_response

# Finished runs are asked for with this much overlap: another process's clock
# and the write's visibility may lag a little behind ours.
_OVERLAP = timedelta(seconds=5)
_RANK = {"queued": 0, "running": 1}  # finished statuses rank 2
# A feed connection ends after this long (EventSource reconnects at once): no
# connection lives for ever behind a proxy, and a client may ask for less.
MAX_SECONDS = 3600


def parse_max_seconds(raw: str | None) -> int:
    """`?maxSeconds=` (1 to MAX_SECONDS; absent: MAX_SECONDS); raises ValidationFailed."""
    if raw is None or raw == "":
        return MAX_SECONDS
    if not raw.isascii() or not raw.isdigit() or len(raw) > 5 or not 1 <= int(raw) <= MAX_SECONDS:
        raise ValidationFailed("invalid query parameters",
                               fields={"maxSeconds": f"must be a whole number of seconds from 1 to {MAX_SECONDS}"})
    return int(raw)


def _rank(status: str) -> int:
    return _RANK.get(status, 2)


@dataclass(frozen=True)
class RunEventsSource:
    """What the feed needs from the rest of the app."""

    changed_since: Callable[[datetime], list[dict[str, Any]]]
    subscribe: Callable[[], Viewer]
    unsubscribe: Callable[[Viewer], None]
    present: Callable[[dict[str, Any]], dict[str, Any]]
    now: Callable[[], datetime] = utcnow


class RunEvents:
    """The SSE byte blocks of one feed connection; iterate it once."""

    def __init__(self, source: RunEventsSource, heartbeat_s: float = 15.0, poll_s: float = 1.0,
                 max_seconds: float = MAX_SECONDS) -> None:
        self.source = source
        self.heartbeat_s = heartbeat_s
        self.poll_s = poll_s
        self.deadline = time.monotonic() + max_seconds
        self.seen: dict[str, str] = {}  # run id -> the last status sent (or the baseline's)

    def __iter__(self) -> Iterator[bytes]:
        # Subscribe before the baseline query: nothing published in between is missed.
        viewer = self.source.subscribe()
        try:
            yield from self._follow(viewer)
        finally:
            self.source.unsubscribe(viewer)

    def is_news(self, doc: dict[str, Any]) -> bool:
        """True (and remembered) when this run's status is later than what was sent."""
        run_id, status = str(doc["_id"]), str(doc["status"])
        known = self.seen.get(run_id)
        if known is not None and _rank(status) <= _rank(known):
            return False
        self.seen[run_id] = status
        return True

    def _poll(self, since: datetime) -> list[bytes]:
        docs = self.source.changed_since(since)
        out = [frame("run", self.source.present(d)) for d in docs if self.is_news(d)]
        # Forget finished runs the query no longer returns: they cannot change again.
        current = {str(d["_id"]) for d in docs}
        self.seen = {k: v for k, v in self.seen.items() if k in current or v not in FINISHED_STATUSES}
        return out

    def _follow(self, viewer: Viewer) -> Iterator[bytes]:
        since = self.source.now() - _OVERLAP
        for doc in self.source.changed_since(since):
            self.seen[str(doc["_id"])] = str(doc["status"])
        yield b": ready\n\n"  # headers and a first byte now, so the client knows it is connected
        last_poll = last_write = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                return
            wait = min(self.poll_s - (now - last_poll), self.heartbeat_s - (now - last_write), self.deadline - now)
            events = viewer.take(max(0.0, wait))
            out = [frame("run", self.source.present(ev.doc)) for ev in events
                   if ev.doc is not None and self.is_news(ev.doc)]
            if viewer.ended:  # too slow, or the server is stopping
                if out:
                    yield b"".join(out)
                return  # the client reconnects and reloads its lists
            if time.monotonic() - last_poll >= self.poll_s:
                asked = self.source.now()
                out += self._poll(since)
                since = asked - _OVERLAP
                last_poll = time.monotonic()
            if not out and time.monotonic() - last_write >= self.heartbeat_s:
                out.append(HEARTBEAT)
            if out:
                yield b"".join(out)
                last_write = time.monotonic()


def register(app: Bottle, services: Services) -> None:
    engine = services.engine
    hub = engine.ctx.live.hub
    source = RunEventsSource(changed_since=services.runs.active_or_finished_since,
                             subscribe=lambda: hub.subscribe(ALL_RUNS), unsubscribe=hub.unsubscribe,
                             present=run_to_json)

    @app.get("/api/admin/scripts/runs/events", openapi=Doc(
        "Follow every run's start and end (Server-Sent Events)", "runs",
        {200: Reply("`run` events with the run document each time a run is queued, starts or ends (any "
                    "process); `: keepalive` comments after 15 s of silence. Runs that exist when the stream "
                    "opens are not sent: load the lists first, then apply events.",
                    media="text/event-stream", events={"run": Run, "revoked": ErrorBody})},
        errors=(400, 503),
        params=(Param("maxSeconds", {"type": "integer", "minimum": 1, "maximum": MAX_SECONDS},
                      f"end the stream after this many seconds (default {MAX_SECONDS}); EventSource reconnects"),)))
    def run_events() -> HTTPResponse:
        max_seconds = parse_max_seconds(request.query.getunicode("maxSeconds"))
        return sse_response(services, RunEvents(source, heartbeat_s=engine.options.heartbeat_s,
                                                max_seconds=max_seconds))

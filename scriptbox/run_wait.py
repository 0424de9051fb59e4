"""Run-and-wait: block a request until its run ends, or a deadline passes.

The waiter listens to the run's live status and end events (an `end` wakes it
at once when this process executes the run; it takes none of the run's output,
so a waiting client costs the run nothing) and re-reads the run from the database at most
every ``poll_s`` for runs executed by another process. Nothing here cancels
anything: a client that goes away while waiting leaves its run running.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from .vocabulary import FINISHED_STATUSES

MAX_WAIT_S = 300
_FINISHED = frozenset(FINISHED_STATUSES)


class LiveEvents(Protocol):
    """A run's live events (hub.Viewer): `end` events carry the finished run in `doc`."""

    def take(self, timeout: float | None) -> list[Any]: ...

    @property
    def ended(self) -> bool: ...


def parse_wait(raw: str | None) -> tuple[int | None, str | None]:
    """(seconds to wait, None) or (None, why `?wait=` is refused). Absent or empty: no wait."""
    if raw is None or raw == "":
        return None, None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4 or int(raw) > MAX_WAIT_S:
        return None, f"must be a whole number of seconds from 0 to {MAX_WAIT_S}"
    return int(raw), None


def wait_for_end(run_id: str, timeout_s: float, *, get_run: Callable[[str], dict[str, Any] | None],
                 subscribe: Callable[[str], LiveEvents], unsubscribe: Callable[[Any], None],
                 poll_s: float = 0.5) -> dict[str, Any] | None:
    """The finished run document if the run ends within `timeout_s`, else None."""
    deadline = time.monotonic() + timeout_s
    viewer = subscribe(run_id)
    try:
        while True:
            doc = get_run(run_id)
            if doc is None or doc["status"] in _FINISHED:
                return doc
            next_read = time.monotonic() + poll_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                events = viewer.take(max(0.0, min(remaining, next_read - time.monotonic())))
                for event in events:
                    if getattr(event, "kind", None) == "end" and getattr(event, "doc", None) is not None:
                        return dict(event.doc)  # the finished run as stored: no need to read it again
                if viewer.ended:
                    return None  # the server is stopping: the run is answered as it is
                if time.monotonic() >= next_read:
                    break
    finally:
        unsubscribe(viewer)

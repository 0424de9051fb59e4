"""The live output hub: bounded queues of events for the viewers of each run.

Knows nothing of SSE framing or the database. Each viewer's queue is bounded by `Viewer.max_bytes`: a viewer slower
than the script holds the script back for up to `stall_timeout_s`, after which
it is disconnected (it reconnects with Last-Event-ID and replays from the
database).

The hub also tells the run's pipe readers whether a hand-off is still in
flight (`busy`: some viewer has events queued, or is still writing the last
ones it took) and wakes them when it is not (`wait_idle`): readers hand output
on at once when nothing is in flight and gather it while something is.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent.event

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it


class Piece(Protocol):
    """What the hub needs of an output piece's wire form (sse_wire.OutputFrame)."""

    @property
    def size(self) -> int: ...

    @property
    def frame(self) -> bytes: ...


@dataclass
class HubEvent:
    """One message for live viewers of a run.

    A run's `output` events carry their wire form in `piece` (opaque here: the
    stream joins the pieces waiting for a viewer into one event and writes
    that); other events may carry their bytes in `frame`. `status` and `end`
    carry the run document in `doc`, which the stream presents itself.
    A stored chunk's event (the chunk writer's, for seeding viewers) lists the
    events of the pieces it holds in `parts`.
    """

    kind: str  # "output" | "status" | "end"
    frame: bytes = b""
    seq: int | None = None
    doc: dict[str, Any] | None = None
    piece: Piece | None = None
    parts: tuple[HubEvent, ...] = ()

    @property
    def size(self) -> int:
        if self.piece is not None:
            return self.piece.size
        return len(self.frame) or 512

    def wire(self) -> bytes:
        """The event's bytes in one buffer (the stream itself joins pieces waiting together into one event)."""
        return self.piece.frame if self.piece is not None else self.frame


class Viewer:
    """A bounded queue of events for one SSE connection.

    A viewer without `outputs` (a request waiting for a run's end) gets the
    run's status and end events only: it never holds the script back, nor
    makes its readers gather output for it.
    """

    def __init__(self, run_id: str, max_bytes: int, on_idle: Callable[[], None] | None = None,
                 outputs: bool = True) -> None:
        self.run_id = run_id
        self.outputs = outputs
        self.max_bytes = max_bytes
        self._items: deque[HubEvent] = deque()
        self._bytes = 0
        self._ready = gevent.event.Event()
        self._room = gevent.event.Event()
        self._room.set()
        self._on_idle = on_idle
        # Between two take() calls the stream is writing what the first one
        # returned: the viewer is busy though its queue is empty.
        self._sending = False
        self.overflowed = False
        self.hung_up = False
        self.closed = False

    @property
    def busy(self) -> bool:
        """Events queued, or the last ones taken still being written."""
        return (self.outputs and not self.closed and not self.ended
                and (bool(self._items) or self._sending))

    @property
    def ended(self) -> bool:
        """Its stream is to end (the client reconnects): dropped as too slow, or the server is stopping."""
        return self.overflowed or self.hung_up

    def offer(self, event: HubEvent, force: bool = False) -> bool:
        """Queue without waiting; False if there is no room (unless forced)."""
        if self.closed or self.hung_up:
            return True
        if not force and self._items and self._bytes + event.size > self.max_bytes:
            self._room.clear()
            return False
        self._items.append(event)
        self._bytes += event.size
        self._ready.set()
        return True

    def wait_for_room(self, timeout: float) -> bool:
        return bool(self._room.wait(timeout))

    def overflow(self) -> None:
        """Give up on this viewer: its stream ends and the client reconnects."""
        self.overflowed = True
        self._items.clear()
        self._bytes = 0
        self._ready.set()
        self._room.set()

    def hang_up(self) -> None:
        """The server is stopping: what is queued is still taken, nothing more
        is queued, and its stream then ends (EventSource reconnects, to the
        next server)."""
        self.hung_up = True
        self._ready.set()
        self._room.set()

    def take(self, timeout: float | None) -> list[HubEvent]:
        """Everything queued, waiting up to `timeout` for at least one event.

        Calling it again means the events it returned before are written.
        """
        if self._sending:
            self._sending = False
            if not self._items:
                self._idle()
        if not self._items and not self.ended:
            self._ready.wait(timeout)
        items = list(self._items)
        self._items.clear()
        self._bytes = 0
        self._ready.clear()
        self._room.set()
        self._sending = bool(items)
        return items

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._room.set()
        self._idle()

    def _idle(self) -> None:
        if self._on_idle is not None:
            self._on_idle()


class OutputHub:
    """Live viewers indexed by run; publishing touches only that run's viewers."""

    def __init__(self, viewer_max_bytes: int = 1024 * 1024, stall_timeout_s: float = 5.0) -> None:
        self.viewer_max_bytes = viewer_max_bytes
        self.stall_timeout_s = stall_timeout_s
        self._viewers: dict[str, set[Viewer]] = {}
        self._idle: dict[str, list[gevent.event.Event]] = {}  # the pipe readers waiting for a run's viewers
        self._hung_up = False

    def subscribe(self, run_id: str, seed: Iterable[HubEvent] = (), *, outputs: bool = True) -> Viewer:
        """Register a viewer; `seed` events are queued first (not bounded).

        Registration and seeding happen without yielding to other greenlets,
        so no event published in between can be missed. Without `outputs`
        the viewer gets no output events (see Viewer).
        """
        viewer = Viewer(run_id, self.viewer_max_bytes, lambda: self._viewer_idle(run_id), outputs=outputs)
        for ev in seed:
            viewer.offer(ev, force=True)
        if self._hung_up:
            viewer.hang_up()  # its seed still goes out
        self._viewers.setdefault(run_id, set()).add(viewer)
        return viewer

    def hang_up_all(self) -> None:
        """The server is stopping: every viewer, and any that subscribes from
        now on, gets what is queued for it and then its stream ends."""
        self._hung_up = True
        for viewers in list(self._viewers.values()):
            for viewer in list(viewers):
                viewer.hang_up()

    def unsubscribe(self, viewer: Viewer) -> None:
        viewer.close()
        viewers = self._viewers.get(viewer.run_id)
        if viewers is not None:
            viewers.discard(viewer)
            if not viewers:
                del self._viewers[viewer.run_id]

    def run_ids(self) -> list[str]:
        """The runs that have viewers now."""
        return list(self._viewers)

    def watched(self, run_id: str) -> bool:
        """Whether a viewer of the run takes its output now."""
        return any(v.outputs for v in self._viewers.get(run_id, ()))

    def busy(self, run_id: str) -> bool:
        """Whether output handed on before is still queued or being written to a viewer of the run."""
        return any(v.busy for v in self._viewers.get(run_id, ()))

    def wait_idle(self, run_id: str, timeout: float) -> bool:
        """Wait up to `timeout` until no viewer of the run is busy; True if none is."""
        if not self.busy(run_id):
            return True
        idle = gevent.event.Event()
        waiting = self._idle.setdefault(run_id, [])
        waiting.append(idle)
        try:
            return bool(idle.wait(timeout)) or not self.busy(run_id)
        finally:
            waiting.remove(idle)
            if not waiting and self._idle.get(run_id) is waiting:
                del self._idle[run_id]

    def _viewer_idle(self, run_id: str) -> None:
        waiting = self._idle.get(run_id)
        if waiting and not self.busy(run_id):
            for idle in waiting:
                idle.set()

    def publish(self, run_id: str, event: HubEvent, wait: bool = True) -> None:
        """Hand `event` to every viewer of the run.

        With `wait`, a full viewer makes the caller wait (backpressure on the
        script) up to `stall_timeout_s`; a viewer still full then is dropped.
        Status and end events are small and are always queued (`wait=False`).
        """
        viewers = self._viewers.get(run_id)
        if not viewers:
            return
        slow: list[Viewer] = []
        output = event.kind == "output"
        for viewer in list(viewers):
            if output and not viewer.outputs:
                continue
            if not viewer.offer(event, force=not wait):
                slow.append(viewer)
        for viewer in slow:
            deadline = time.monotonic() + self.stall_timeout_s
            while not viewer.closed and not viewer.ended:
                if viewer.offer(event):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not viewer.wait_for_room(remaining):
                    log.info("viewer of run %s too slow; disconnecting it", run_id)
                    viewer.overflow()
                    break

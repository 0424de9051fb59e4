"""A run's output as Server-Sent Events: replay, then live, then `end`.

A stream is: a `status` event with the run as it is now; every stored chunk
after Last-Event-ID (replay from the database); the chunks that are written but
not yet persisted (the viewer's seed); then live events from the output hub.
Every output event's `id:` is the chunk's sequence number and the stream sends
each sequence number at most once and in order, so a client that reconnects
with Last-Event-ID gets neither gaps nor repeats. When the run is finished the
stream sends `end` with the final run document and closes.

Runs executed by another process have no live events here; for those the
stream reads the database when the change feed pokes it (a `changed` event:
chunks of the run were stored or its status changed, engine/wakeups.py), and
every `remote_safety_poll_s` in case a poke was lost. Without change streams
it reads the database every `remote_poll_s`, as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.hub import HubEvent, Viewer
from ..engine.wakeups import CHANGED
from ..sse_wire import HEARTBEAT, OutputFrame, Scatter, block, frame, joinable, output_frame, output_parts
from ..store.records import Chunk
from ..vocabulary import FINISHED_STATUSES

REPLAY_BATCH = 64  # frames per write while replaying
JOIN_BYTES = 1024 * 1024  # escaped text per live event joined from queued pieces


@dataclass(frozen=True)
class RunStreamSource:
    """What a stream needs from the rest of the app."""

    get_run: Callable[[str], dict[str, Any] | None]
    chunks_after: Callable[[str, int], Iterator[Chunk]]
    subscribe: Callable[[str], Viewer]
    unsubscribe: Callable[[Viewer], None]
    is_local: Callable[[str], bool]
    present: Callable[[dict[str, Any]], dict[str, Any]]
    # Whether news of runs executed elsewhere are pushed now (change streams live).
    pushed: Callable[[], bool] = lambda: False
    # The run from memory when this process executes it and every stored chunk
    # after the given seq is still in memory (Engine.local_run); None: database.
    local_run: Callable[[str, int], dict[str, Any] | None] = lambda run_id, after_seq: None


def chunk_frame(chunk: Chunk) -> bytes:
    """The `output` event of a stored chunk."""
    return output_frame(chunk.seq, chunk.stream, chunk.data, chunk.system, chunk.at)


class RunStream:
    """The SSE byte blocks of one run's stream; iterate it once.

    Each yielded block holds everything that was waiting, so a busy run costs
    one socket write per wake-up, not one per event.
    """

    def __init__(self, source: RunStreamSource, run_id: str, last_event_id: int | None,
                 heartbeat_s: float = 15.0, remote_poll_s: float = 0.5,
                 remote_safety_poll_s: float = 5.0, scatter: bool = False) -> None:
        self.source = source
        self.scatter = scatter  # big blocks may be yielded as a sse_wire.Scatter (the server takes them)
        self.run_id = run_id
        self.last = -1 if last_event_id is None else last_event_id
        self.heartbeat_s = heartbeat_s
        self.remote_poll_s = remote_poll_s
        self.remote_safety_poll_s = remote_safety_poll_s
        self.status: str | None = None

    def __iter__(self) -> Iterator[bytes | Scatter]:
        # Subscribe before reading the database: nothing published in between is missed.
        viewer = self.source.subscribe(self.run_id)
        try:
            yield from self._stream(viewer)
        finally:
            self.source.unsubscribe(viewer)

    def _stream(self, viewer: Viewer) -> Iterator[bytes | Scatter]:
        # A run executing here whose output since `last` is all still in
        # memory (the viewer's seed) starts without waiting for the database.
        doc = self.source.local_run(self.run_id, self.last)
        from_memory = doc is not None
        if doc is None:
            doc = self.source.get_run(self.run_id)
        if doc is None:
            return
        self.status = doc["status"]
        out: list[bytes | memoryview] = [frame("status", self.source.present(doc))]
        # Replay what is stored. Chunks flushed after the viewer subscribed may
        # also sit in its queue; the seq check drops the duplicates.
        for chunk_bytes in () if from_memory else self._stored_iter():
            out.append(chunk_bytes)
            if len(out) >= REPLAY_BATCH:
                yield b"".join(out)
                out = []
        if self.status in FINISHED_STATUSES:
            if from_memory:  # ended here moments ago: its output is the viewer's seed
                out += self._live(viewer.take(0))[0]
            out.append(frame("end", self.source.present(doc)))
            yield b"".join(out)
            return
        if out:
            yield b"".join(out)
        yield from self._follow(viewer)

    def _follow(self, viewer: Viewer) -> Iterator[bytes | Scatter]:
        last_write = time.monotonic()
        while True:
            local = self.source.is_local(self.run_id)
            timeout = self.heartbeat_s if local else min(self.heartbeat_s, self._remote_wait())
            events = viewer.take(max(0.0, min(timeout, self.heartbeat_s - (time.monotonic() - last_write))))
            out, ended = self._live(events)
            if ended is None and viewer.ended:
                # Too slow for the producer, or the server is stopping: close;
                # the client reconnects with Last-Event-ID and replays from the database.
                if out:
                    yield block(out, self.scatter)
                return
            if ended is None and not local and (not events or any(ev.kind == CHANGED for ev in events)):
                # Executed elsewhere (or not started yet): read the database.
                polled, ended, gone = self._poll()
                out += polled
                if gone:
                    if out:
                        yield block(out, self.scatter)
                    return
            if ended is not None:
                # Anything persisted but not seen live (browser results, remote
                # executors) comes from the database before `end`.
                out += self._stored()
                out.append(frame("end", self.source.present(ended)))
                yield block(out, self.scatter)
                return
            if not out and time.monotonic() - last_write >= self.heartbeat_s:
                out.append(HEARTBEAT)
            if out:
                yield block(out, self.scatter)
                last_write = time.monotonic()

    def _remote_wait(self) -> float:
        return self.remote_safety_poll_s if self.source.pushed() else self.remote_poll_s

    def _live(self, events: list[HubEvent]) -> tuple[list[bytes | memoryview], dict[str, Any] | None]:
        """Frames of live events not sent yet, and the finished run if `end` came.

        Output that queued up while the previous write was in flight goes out
        as few events: consecutive pieces of one stream become one event
        (id: the last piece's seq), up to JOIN_BYTES of text each.
        """
        out: list[bytes | memoryview] = []
        run: list[OutputFrame] = []
        size = 0
        for ev in events:
            if ev.kind == "output":
                if ev.seq is not None and ev.seq <= self.last:
                    continue
                self.last = ev.seq if ev.seq is not None else self.last
                piece = ev.piece
                if not isinstance(piece, OutputFrame):
                    out.append(ev.wire())
                    continue
                if run and (not joinable(run[-1], piece) or size >= JOIN_BYTES):
                    out += output_parts(run)
                    run, size = [], 0
                run.append(piece)
                size += piece.text_size
                continue
            if run:
                out += output_parts(run)
                run, size = [], 0
            if ev.kind == "status" and ev.doc is not None:
                out.append(frame("status", self.source.present(ev.doc)))
            elif ev.kind == "end":
                return out, ev.doc
        if run:
            out += output_parts(run)
        return out, None

    def _poll(self) -> tuple[list[bytes], dict[str, Any] | None, bool]:
        """New stored chunks, the run if it has finished, and whether it is gone."""
        out = self._stored()
        doc = self.source.get_run(self.run_id)
        if doc is None:
            return out, None, True
        if doc["status"] != self.status:
            self.status = doc["status"]
            if self.status not in FINISHED_STATUSES:
                out.append(frame("status", self.source.present(doc)))
        return out, (doc if self.status in FINISHED_STATUSES else None), False

    def _stored(self) -> list[bytes]:
        return list(self._stored_iter())

    def _stored_iter(self) -> Iterator[bytes]:
        """Frames of stored chunks after the last one sent (read page by page)."""
        for chunk in self.source.chunks_after(self.run_id, self.last):
            self.last = chunk.seq
            yield chunk_frame(chunk)

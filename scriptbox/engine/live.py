"""Live output of runs: new outputs, viewers, and the status/end events they see.

Joins the output hub (viewers' queues) and the chunk writer (persistence) so a
viewer that subscribes sees every chunk exactly once: from the database, from
the writer's not-yet-stored chunks (its seed), or live.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..store.records import Chunk
from .hub import HubEvent, OutputHub, Viewer
from .output import ChunkWriter, RunOutput, TailBuffer

# The hub key whose viewers get the status and end events of every run (no
# output): the UI's feed of run events (scriptbox/api/run_events.py).
ALL_RUNS = "*"
# Runs that ended here with their whole output in memory (RunOutput.history)
# are kept this long, at most this many, for viewers who come just after the end.
RECENT_S = 10.0
RECENT_RUNS = 64


@dataclass
class EndedRun:
    """A run that ended here moments ago, with every stored piece of its output."""

    history: list[HubEvent]
    doc: dict[str, Any] | None = None  # the finished run, once its end is recorded
    ended_at: float = 0.0


class LiveOutput:
    def __init__(self, add_chunks: Callable[[list[Chunk]], None], *, max_log_bytes: int, tail_bytes: int,
                 flush_every_s: float, on_flushed: Callable[[], None] | None = None,
                 on_output_bytes: Callable[[int], None] | None = None, takes_open_groups: bool = True) -> None:
        self.on_output_bytes = on_output_bytes  # told of every byte of output received (metrics)
        self.max_log_bytes = max_log_bytes
        self.tail_bytes = tail_bytes
        self.hub = OutputHub()
        self.writer = ChunkWriter(add_chunks, interval_s=flush_every_s, on_flushed=on_flushed,
                                  takes_open_groups=takes_open_groups)
        self._outputs: dict[str, RunOutput] = {}  # runs with output not handed to the writer yet
        self._recent: OrderedDict[str, EndedRun] = OrderedDict()  # oldest first

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()
        # The runs of this process have ended and told their viewers: streams
        # still open (the run-events feed, runs executed elsewhere) end now,
        # before the database closes, and their clients reconnect.
        self.hub.hang_up_all()

    def new_output(self, run_id: str) -> RunOutput:
        """The output bookkeeping of a run starting now (known here until it is closed)."""
        output = RunOutput(run_id=run_id, max_log_bytes=self.max_log_bytes, tail=TailBuffer(self.tail_bytes),
                           writer=self.writer, hub=self.hub, on_bytes=self.on_output_bytes,
                           on_close=lambda: self._forget(run_id, output))
        self._outputs[run_id] = output
        return output

    def _forget(self, run_id: str, output: RunOutput) -> None:
        if self._outputs.get(run_id) is output:
            del self._outputs[run_id]
            if output.history is not None:
                self._recent[run_id] = EndedRun(output.history)
                self._trim_recent()

    def _trim_recent(self) -> None:
        now = time.monotonic()
        while self._recent:
            run_id, oldest = next(iter(self._recent.items()))
            expired = oldest.doc is not None and now - oldest.ended_at > RECENT_S
            if len(self._recent) <= RECENT_RUNS and not expired:
                break
            del self._recent[run_id]

    def history(self, run_id: str) -> list[HubEvent] | None:
        """Every stored piece of the run, when this process has them all in memory (else None)."""
        kept = self._kept(run_id)
        return list(kept) if kept is not None else None

    def keeps_all(self, run_id: str) -> bool:
        """Whether every stored piece of the run is in memory here (see history)."""
        return self._kept(run_id) is not None

    def _kept(self, run_id: str) -> list[HubEvent] | None:
        output = self._outputs.get(run_id)
        if output is not None:
            return output.history
        ended = self._recent.get(run_id)
        return ended.history if ended is not None else None

    def ended_run(self, run_id: str) -> dict[str, Any] | None:
        """The finished run, when it ended here moments ago with all its output in memory."""
        self._trim_recent()
        ended = self._recent.get(run_id)
        return ended.doc if ended is not None else None

    def forget_ended(self, run_ids: list[str]) -> None:
        """These runs were deleted: nobody is served them from memory any more."""
        for run_id in run_ids:
            self._recent.pop(run_id, None)

    def flush_now(self) -> bool:
        """Wait until every chunk written so far is stored (False: not within the writer's timeout)."""
        return self.writer.flush_now()

    def subscribe(self, run_id: str, *, outputs: bool = True) -> Viewer:
        """A live viewer of a run, seeded with the pieces not yet in the database
        (without `outputs`: of its status and end only, see hub.Viewer).

        Those are in the writer's chunks (each lists its pieces) and in the
        run's open group, in that order; nothing yields in between. A run
        with a small log seeds every stored piece instead (its history), so
        the viewer needs nothing from the database; the seq check of
        api/stream.py drops what it has already sent.
        """
        if not outputs:
            return self.hub.subscribe(run_id, outputs=False)
        history = self.history(run_id)
        return self.hub.subscribe(run_id, seed=history if history is not None else self._in_memory(run_id))

    def _in_memory(self, run_id: str) -> list[HubEvent]:
        seed = [part for event in self.writer.unflushed(run_id) for part in (event.parts or (event,))]
        output = self._outputs.get(run_id)
        if output is not None:
            seed += output.unstored()
        return seed

    def oldest_in_memory(self, run_id: str) -> int | None:
        """The seq of the run's oldest stored piece not yet in the database (None: there is none).

        Pieces are persisted in order, so every stored piece from there on is in
        a viewer's seed (Engine.local_run)."""
        return next((event.seq for event in self._in_memory(run_id) if event.seq is not None), None)

    def unsubscribe(self, viewer: Viewer) -> None:
        self.hub.unsubscribe(viewer)

    def publish_status(self, doc: dict[str, Any]) -> None:
        event = HubEvent("status", doc=doc)
        self.hub.publish(str(doc["_id"]), event, wait=False)
        self.hub.publish(ALL_RUNS, event, wait=False)

    def publish_end(self, doc: dict[str, Any]) -> None:
        """Tell the run's viewers it is over (`doc` is the finished run)."""
        event = HubEvent("end", doc=doc)
        ended = self._recent.get(str(doc["_id"]))
        if ended is not None:
            ended.doc, ended.ended_at = doc, time.monotonic()
        self.hub.publish(str(doc["_id"]), event, wait=False)
        self.hub.publish(ALL_RUNS, event, wait=False)

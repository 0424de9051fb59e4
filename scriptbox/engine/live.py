"""Live output of runs: new outputs, viewers, and the status/end events they see.

Joins the output hub (viewers' queues) and the chunk writer (persistence) so a
viewer that subscribes sees every chunk exactly once: from the database, from
the writer's not-yet-stored chunks (its seed), or live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..store.records import Chunk
from .hub import HubEvent, OutputHub, Viewer
from .output import ChunkWriter, RunOutput, TailBuffer

# The hub key whose viewers get the status and end events of every run (no
# output): the UI's feed of run events (scriptbox/api/run_events.py).
ALL_RUNS = "*"


class LiveOutput:
    def __init__(self, add_chunks: Callable[[list[Chunk]], None], *, max_log_bytes: int, tail_bytes: int,
                 flush_every_s: float, on_flushed: Callable[[], None] | None = None,
                 on_output_bytes: Callable[[int], None] | None = None) -> None:
        self.on_output_bytes = on_output_bytes  # told of every byte of output received (metrics)
        self.max_log_bytes = max_log_bytes
        self.tail_bytes = tail_bytes
        self.hub = OutputHub()
        self.writer = ChunkWriter(add_chunks, interval_s=flush_every_s, on_flushed=on_flushed)
        self._outputs: dict[str, RunOutput] = {}  # runs with output not handed to the writer yet

    def start(self) -> None:
        self.writer.start()

    def stop(self) -> None:
        self.writer.stop()

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

    def flush_now(self) -> bool:
        """Wait until every chunk written so far is stored (False: not within the writer's timeout)."""
        return self.writer.flush_now()

    def subscribe(self, run_id: str) -> Viewer:
        """A live viewer of a run, seeded with the pieces not yet in the database.

        Those are in the writer's chunks (each lists its pieces) and in the
        run's open group, in that order; nothing yields in between.
        """
        return self.hub.subscribe(run_id, seed=self._in_memory(run_id))

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
        self.hub.publish(str(doc["_id"]), event, wait=False)
        self.hub.publish(ALL_RUNS, event, wait=False)

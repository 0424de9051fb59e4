"""What the change feed (store/changes.py) tells this process's engine.

A run queued by another process wakes the dispatcher at once; a cancel
request stops the run at once when this process executes it; news of a run
executed elsewhere (stored chunks, a status change) pokes this process's
viewers of that run, which then read the database (api/stream.py). When the
feed is not live, every consumer keeps its old poll (`pushed()` is False).
"""

from __future__ import annotations

from ..store.changes import ChangeFeed, ChangeListener
from .dispatcher import Dispatcher
from .hub import HubEvent, OutputHub
from .outcome import CANCEL

# The hub event that tells a viewer of a run executed elsewhere to read the
# database now; it carries nothing and the stream sends nothing for it.
CHANGED = "changed"


class Wakeups:
    def __init__(self, feed: ChangeFeed, dispatcher: Dispatcher, hub: OutputHub, execute: bool) -> None:
        self.feed = feed
        self.dispatcher = dispatcher
        self.hub = hub
        self.execute = execute
        self.cancel_check_due = False  # set on resync: the watchdog reads cancel flags at its next tick
        feed.listen(ChangeListener(run_queued=self.run_queued, cancel_requested=self.cancel_requested,
                                   run_changed=self.run_news, chunks_added=self.run_news, resync=self.resync))

    def runs_pushed(self) -> bool:
        """Whether queued runs and cancels arrive pushed now (else: poll as before)."""
        return self.feed.runs_live

    def chunks_pushed(self) -> bool:
        """Whether a remote run's news arrive pushed now; asks for chunk news on first use."""
        self.feed.want_chunks()
        return self.feed.chunks_live

    def run_queued(self) -> None:
        if self.execute:
            self.dispatcher.wake()

    def cancel_requested(self, run_id: str) -> None:
        execution = self.dispatcher.get(run_id)
        if execution is not None:
            execution.request_stop(CANCEL)

    def run_news(self, run_id: str) -> None:
        # A run executed here publishes its own events live; only viewers of
        # runs executed elsewhere (or not yet claimed) need a poke.
        if self.dispatcher.get(run_id) is None:
            self.hub.publish(run_id, HubEvent(CHANGED), wait=False)

    def resync(self) -> None:
        """News may have been missed: look for queued runs, cancels and remote output now."""
        self.run_queued()
        self.cancel_check_due = True
        for run_id in self.hub.run_ids():
            self.run_news(run_id)

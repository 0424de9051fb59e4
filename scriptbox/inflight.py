"""Writes a process makes after it has answered, and waiting for them.

A request may answer before everything it caused is stored: the `run.start`
audit entry and the last-run summary of a run started at once
(docs/engine.md, "The start path"). Readers in the same process `settle()`
first, so they still read their own writes, and shutdown settles before it
closes the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import gevent
import gevent.event

T = TypeVar("T")

# How long a reader waits, at most, for the writes under way when it asks.
SETTLE_S = 5.0


class InFlight:
    """The writes under way now, each a greenlet of its own (`spawn`) or a
    block of the caller's (`writing`)."""

    def __init__(self, settle_s: float = SETTLE_S) -> None:
        self.settle_s = settle_s
        self._pending: set[gevent.event.Event] = set()

    def spawn(self, write: Callable[..., T], *args: Any) -> gevent.Greenlet:
        """`write(*args)` in a greenlet; counted from now, not from when it first runs."""
        done = self._begin()

        def run() -> T:
            try:
                return write(*args)
            finally:
                self._end(done)

        return gevent.spawn(run)

    @contextmanager
    def writing(self) -> Iterator[None]:
        done = self._begin()
        try:
            yield
        finally:
            self._end(done)

    def settle(self) -> None:
        """Wait until the writes under way now are done, at most `settle_s` in all."""
        deadline = time.monotonic() + self.settle_s
        for done in list(self._pending):
            done.wait(max(0.0, deadline - time.monotonic()))

    def _begin(self) -> gevent.event.Event:
        done = gevent.event.Event()
        self._pending.add(done)
        return done

    def _end(self, done: gevent.event.Event) -> None:
        self._pending.discard(done)
        done.set()

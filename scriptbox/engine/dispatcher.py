"""The dispatcher: claims queued runs while there is a free slot and starts a
`RunExecution` for each; knows which runs this process executes.

A run submitted here may skip the queue (`reserve_slot` / `start_claimed`):
when this process has a free slot and its last look found nothing queued, the
run is inserted already claimed and started at once, without a claim round
trip (docs/engine.md, "The start path").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from .. import proctree
from ..allocator import IdleRelease
from ..errors import DatabaseUnavailable
from ..store.records import OutputTotals
from .context import EngineContext
from .execution import RunExecution
from .outcome import SHUTDOWN

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it


class Dispatcher:
    def __init__(self, ctx: EngineContext, max_concurrent_runs: int, alone: bool = False) -> None:
        self.ctx = ctx
        self.max_concurrent_runs = max_concurrent_runs
        self.active: dict[str, RunExecution] = {}
        self._wake = gevent.event.Event()
        self._loop: gevent.Greenlet | None = None
        self._stopping = False
        self._last_progress = 0.0
        # True while queued runs of other processes are pushed (engine/wakeups.py):
        # then the poll is only a safety net.
        self.pushed: Callable[[], bool] = lambda: False
        # Slots promised to runs being inserted already claimed (reserve_slot).
        self._reserved = 0
        # The last claim found no queued run, and none was queued here since:
        # a new run may then start at once without overtaking a queued one.
        self._queue_empty = False
        # Only this process can queue runs (the embedded database: its
        # credential is private), so every queued run woke this dispatcher.
        self.alone = alone
        # The set of runs changed since the last heartbeat: the watchdog sends the
        # next one within a tick, so the executors list shows runs as they start and end.
        self.runs_changed = False
        # Once no run is left for a while, the memory a burst of output left
        # free goes back to the kernel (scriptbox/allocator.py).
        self.idle_release = IdleRelease()

    def start(self) -> None:
        self._loop = gevent.spawn(self._run)

    def wake(self) -> None:
        """Look for queued runs now (a run was submitted or a slot freed)."""
        self._queue_empty = False
        self._wake.set()

    def reserve_slot(self) -> bool:
        """Promise a slot to a run about to be inserted already claimed; False
        when it must queue instead (not executing, no free slot, or runs are
        queued here that it would overtake). Follow with start_claimed or release_slot."""
        if self._loop is None or self._stopping or not self._queue_empty:
            return False
        if self.ctx.cluster_slots is not None:
            return False  # SCRIPTBOX_CLUSTER_MAX_RUNS: a run takes a cluster slot through the queue's claim
        if len(self.active) + self._reserved >= self.max_concurrent_runs:
            return False
        self._reserved += 1
        return True

    def release_slot(self) -> None:
        """The reserved slot is not used (the insert failed)."""
        self._reserved -= 1

    def start_claimed(self, doc: dict[str, Any], definition: dict[str, Any]) -> RunExecution:
        """Execute a run inserted already claimed by this process, in the slot
        reserve_slot promised; `definition` is the one it was created from."""
        self._reserved -= 1
        execution = self._start(doc, definition, None)
        if self._stopping:
            # Stopped while it was being inserted: it ends "server shut down" without starting.
            execution.request_stop(SHUTDOWN)
        return execution

    def get(self, run_id: str) -> RunExecution | None:
        return self.active.get(run_id)

    def stop(self, join_timeout: float) -> None:
        """Stop claiming; running runs are stopped and end `failed` ("server shut down")."""
        self._stopping = True
        self._wake.set()
        self.idle_release.cancel()
        if self._loop is not None:
            self._loop.kill(block=False)
        executions = list(self.active.values())
        for execution in executions:
            execution.request_stop(SHUTDOWN)
        gevent.joinall([e.greenlet for e in executions if e.greenlet is not None], timeout=join_timeout)

    def _run(self) -> None:
        while not self._stopping:
            try:
                self.claim_available()
            except DatabaseUnavailable:
                log.warning("cannot claim runs: the database is unreachable")
            except Exception:  # noqa: BLE001 - the dispatcher must survive anything
                log.exception("dispatcher error")
            options = self.ctx.options
            self._wake.wait(options.queue_safety_poll_s if self.pushed() else options.queue_poll_s)
            self._wake.clear()

    def claim_available(self) -> list[RunExecution]:
        """Claim queued runs (oldest first) until the slots are full; returns the started ones."""
        started = []
        while not self._stopping and len(self.active) + self._reserved < self.max_concurrent_runs:
            self._queue_empty = False
            slot = None
            slots = self.ctx.cluster_slots
            if slots is not None:
                slot = slots.acquire(self.ctx.executor.id)
                if slot is None:
                    break  # SCRIPTBOX_CLUSTER_MAX_RUNS runs are running across the cluster
            doc = self._claim(slot)
            if doc is None:
                self._queue_empty = True
                break
            started.append(self._start(doc, None, slot))
        return started

    def _start(self, doc: dict[str, Any], definition: dict[str, Any] | None, slot: int | None) -> RunExecution:
        execution = RunExecution(self.ctx, doc, self.other_runs(str(doc["_id"])), definition)
        execution.cluster_slot = slot
        self.active[execution.run_id] = execution
        self.runs_changed = True
        execution.greenlet = gevent.spawn(self._execute, execution)
        return execution

    def _claim(self, slot: int | None) -> dict[str, Any] | None:
        """Claim the oldest queued run, holding `slot` (a cluster slot) for it."""
        slots = self.ctx.cluster_slots
        try:
            doc = self.ctx.runs.claim_next(self.ctx.executor, self.ctx.options.lease_s)
        except BaseException:
            if slot is not None and slots is not None:
                self._release_slot(slot, None)
            raise
        if slot is not None and slots is not None:
            if doc is None:
                self._release_slot(slot, None)
            else:
                # Not bound (an outage here): heal() frees it a lease after it was taken.
                slots.bind(slot, self.ctx.executor.id, str(doc["_id"]))
        return doc

    def _release_slot(self, slot: int, run_id: str | None) -> None:
        assert self.ctx.cluster_slots is not None
        try:
            self.ctx.cluster_slots.release(slot, self.ctx.executor.id, run_id)
        except DatabaseUnavailable:
            log.warning("cluster slot %d not released (database unreachable); it is healed later", slot)

    def other_runs(self, run_id: str | None) -> proctree.Excluder:
        """The proven processes of this process's runs other than `run_id`:
        a run's kill excludes them before it expands anything."""
        def excluded(table: dict[int, proctree.ProcInfo]) -> set[int]:
            pids: set[int] = set()
            for other in list(self.active.values()):
                if other.run_id != run_id and other.procs is not None:
                    pids |= other.procs.members(table)
            return pids

        return excluded

    def _execute(self, execution: RunExecution) -> None:
        try:
            execution.run()
        finally:
            self.active.pop(execution.run_id, None)
            self.runs_changed = True
            if execution.cluster_slot is not None:
                self._release_slot(execution.cluster_slot, execution.run_id)
            # A freed slot may take a queued run. Alone on the database, with
            # nothing claimable at the last look and none released by this end,
            # there is none: one database write less per run.
            if not (self.alone and self._queue_empty and execution.released_waiting == 0):
                self._wake.set()
            if self._idle():
                self.idle_release.became_idle(self._idle)

    def _idle(self) -> bool:
        return not self.active and not self._reserved and not self._stopping

    def write_progress(self) -> None:
        """Store the tail and byte counts of running runs (at most every progress_every_s)."""
        now = time.monotonic()
        if now - self._last_progress < self.ctx.options.progress_every_s:
            return
        self._last_progress = now
        updates: dict[str, OutputTotals] = {}
        for execution in list(self.active.values()):
            if execution.output.dirty:
                execution.output.dirty = False
                updates[execution.run_id] = execution.output.totals()
        try:
            self.ctx.runs.update_progress(updates)
        except DatabaseUnavailable:
            # Written again next time (the final status carries them anyway); one line, no traceback.
            for run_id in updates:
                still = self.active.get(run_id)
                if still is not None:
                    still.output.dirty = True
            log.warning("progress of %d runs not stored (database unreachable); retrying", len(updates))

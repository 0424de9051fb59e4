"""The watchdog: cancel flags, lease renewal, process sampling, and the runs
whose executor is gone (lapsed leases, overdue browser runs, recovery at start)."""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from .. import proctree
from ..errors import DatabaseUnavailable
from ..store import utcnow
from ..store.records import RunEnd
from .browser import is_browser_run, overdue_end
from .context import EngineContext
from .dispatcher import Dispatcher
from .execution import executor_alive
from .outcome import CANCEL
from .wakeups import Wakeups

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it


class Watchdog:
    def __init__(self, ctx: EngineContext, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self._loop: gevent.Greenlet | None = None
        self._last_renew = 0.0
        self._last_reap = 0.0
        self._last_cancels = 0.0
        self.wakeups: Wakeups | None = None  # set when change streams push cancels

    def start(self) -> None:
        self._loop = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)

    def _run(self) -> None:
        while True:
            gevent.sleep(self.ctx.options.control_every_s)
            try:
                self.tick(time.monotonic())
            except DatabaseUnavailable:
                log.warning("watchdog: the database is unreachable")
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("watchdog error")

    def tick(self, now: float) -> None:
        """One round: cancel flags, lease renewal and process sampling of our
        runs; reaping when it is due."""
        options = self.ctx.options
        active = self.dispatcher.active
        if active:
            ids = list(active)
            if self._cancels_due(now):
                for run_id in self.ctx.runs.cancel_requested(ids):
                    execution = active.get(run_id)
                    if execution is not None:
                        execution.request_stop(CANCEL)
            if now - self._last_renew >= options.renew_every_s:
                self.ctx.runs.renew_leases(ids, self.ctx.executor.id, options.lease_s)
                self._last_renew = now
            table = proctree.scan()
            for execution in list(active.values()):
                if execution.procs is not None:
                    execution.procs.observe(table)
        if now - self._last_reap >= options.reap_every_s:
            self.reap_lapsed()
            self._last_reap = now

    def _cancels_due(self, now: float) -> bool:
        """Read cancel flags every tick, unless change streams push them (then
        only after a resync and every cancel_safety_s, as a safety net)."""
        wakeups = self.wakeups
        pushed = wakeups is not None and wakeups.runs_pushed() and not wakeups.cancel_check_due
        if pushed and now - self._last_cancels < self.ctx.options.cancel_safety_s:
            return False
        if wakeups is not None:
            wakeups.cancel_check_due = False
        self._last_cancels = now
        return True

    def reap_lapsed(self) -> None:
        """End runs whose executor stopped renewing, and overdue browser runs."""
        now = utcnow()
        for doc in self.ctx.runs.lapsed(now):
            run_id = str(doc["_id"])
            if is_browser_run(doc):
                end = overdue_end(doc, self.ctx.options.browser_grace_s)
                done = self.ctx.runs.expire_lapsed(run_id, None, now, end)
            else:
                executor = doc.get("executor") or {}
                if executor.get("id") == self.ctx.executor.id and run_id in self.dispatcher.active:
                    continue  # ours and alive; the renewal was merely late
                if executor.get("host") == self.ctx.executor.host:
                    if executor.get("id") != self.ctx.executor.id and executor_alive(executor):
                        # Another live process on this host (it only missed
                        # renewals, e.g. a database outage): its runs are its own.
                        continue
                    self._kill_leftovers(doc)
                done = self.ctx.runs.expire_lapsed(run_id, executor.get("id"), now,
                                                   RunEnd("failed", error="executor lost: its lease expired"))
            if done is not None:
                log.warning("run %s ended by the watchdog: %s", run_id, done.get("meta", {}).get("error"))
                self.ctx.live.publish_end(done)

    def recover_this_host(self) -> None:
        """At start: end the runs a previous server on this host left running."""
        for doc in self.ctx.runs.running_on_host(self.ctx.executor.host):
            executor = doc.get("executor") or {}
            if executor.get("id") == self.ctx.executor.id:
                continue
            if executor_alive(executor):
                continue  # that executor is alive (another process sharing the database)
            killed = self._kill_leftovers(doc)
            done = self.ctx.runs.finish_held(str(doc["_id"]), executor.get("id"),
                                             RunEnd("failed", error="executor lost: server restarted"))
            if done is not None:
                log.warning("run %s ended: its executor is gone (%d leftover processes killed)", doc["_id"], killed)

    def _kill_leftovers(self, doc: dict[str, Any]) -> int:
        meta = doc.get("meta") or {}
        pid = meta.get("pid")
        start = doc.get("procStart")
        # This engine's own runs and the embedded database are excluded first.
        return proctree.kill_orphaned_run(str(doc["_id"]), pid if isinstance(pid, int) else None,
                                          start if isinstance(start, int) else None, self.ctx.options.kill_grace_s,
                                          sleep=gevent.sleep, exclude=self.dispatcher.other_runs(None),
                                          protected=self.ctx.protected_pids)

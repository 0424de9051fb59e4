"""The watchdog: cancel flags, lease renewal, process sampling, and the runs
whose executor is gone (lapsed leases, overdue browser runs, recovery at start)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
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
from .outcome import CANCEL, LOST

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it


class Reachability:
    """Whether this process has reached the database long enough to judge others.

    A reaper that was cut off itself cannot tell a dead executor from one that
    was cut off too: every heartbeat looks stale after an outage. So after any
    failure (and at start) it reaps only once the database has answered it for
    a whole lease, which gives every live executor a renewal of its own first.
    """

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.back_since: float | None = None

    def failed(self) -> None:
        if self.back_since is not None:
            log.warning("the database is unreachable; reaping of lapsed runs is paused")
        self.back_since = None

    def answered(self, now: float) -> None:
        if self.back_since is None:
            self.back_since = now

    def may_reap(self, now: float) -> bool:
        return self.back_since is not None and now - self.back_since >= self.window_s


class Watchdog:
    def __init__(self, ctx: EngineContext, dispatcher: Dispatcher) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self._loop: gevent.Greenlet | None = None
        self._last_renew = float("-inf")
        self._last_reap = 0.0
        self.reachability = Reachability(ctx.options.lease_s)

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
                self.reachability.failed()
                log.warning("watchdog: the database is unreachable")
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("watchdog error")

    def tick(self, now: float) -> None:
        """One round: cancel flags, lease renewal with the heartbeat, process
        sampling of our runs; reaping when it is due."""
        options = self.ctx.options
        active = self.dispatcher.active
        if active:
            for run_id in self.ctx.runs.cancel_requested(list(active)):
                execution = active.get(run_id)
                if execution is not None:
                    execution.request_stop(CANCEL)
        since = now - self._last_renew
        if since >= options.renew_every_s or (self.dispatcher.runs_changed and since >= options.control_every_s):
            self.dispatcher.runs_changed = False
            if self.renew():
                self.reachability.answered(now)
            self._last_renew = now
        if active:
            table = proctree.scan()
            for execution in list(active.values()):
                if execution.procs is not None:
                    execution.procs.observe(table)
        if now - self._last_reap >= options.reap_every_s:
            self._last_reap = now
            self.reap_lapsed(judge_executors=self.reachability.may_reap(now))
            self.reachability.answered(now)  # its query answered (else it raised)

    def renew(self) -> bool:
        """Renew our runs' leases and our heartbeat; stop runs taken away from us.
        Returns whether it wrote to the database (raises DatabaseUnavailable)."""
        ids = list(self.dispatcher.active)
        executor = self.ctx.executor
        if ids:
            self.ctx.runs.renew_leases(ids, executor.id, self.ctx.options.lease_s)
            for run_id in self.ctx.runs.taken_away(ids, executor.id):
                execution = self.dispatcher.active.get(run_id)
                if execution is not None and execution.stop_reason != LOST:
                    log.warning("run %s was ended elsewhere while it ran here; stopping its process", run_id)
                    execution.request_stop(LOST)
        executors, role = self.ctx.executors, self.ctx.role
        if role is not None and executors is not None:
            if not executors.heartbeat(executor.id, ids):
                log.warning("this executor was not in the executors list (start during an outage, or pruned); "
                            "registering it")
                executors.register(executor, role, self.dispatcher.max_concurrent_runs)
            return True
        return bool(ids)

    def reap_lapsed(self, judge_executors: bool = True) -> None:
        """End overdue browser runs (their deadline is the page's, not an
        executor's) and, when `judge_executors`, runs whose executor stopped
        renewing (False during the renewal window after reaching the database)."""
        now = utcnow()
        lapsed = self.ctx.runs.lapsed(now)
        fresh = self._fresh_executors(lapsed, now) if judge_executors else set()
        for doc in lapsed:
            run_id = str(doc["_id"])
            if is_browser_run(doc):
                end = overdue_end(doc, self.ctx.options.browser_grace_s)
                done = self.ctx.runs.expire_lapsed(run_id, None, now, end)
            elif not judge_executors:
                continue
            else:
                executor = doc.get("executor") or {}
                if executor.get("id") == self.ctx.executor.id and run_id in self.dispatcher.active:
                    continue  # ours and alive; the renewal was merely late
                if executor.get("id") != self.ctx.executor.id and executor.get("id") in fresh:
                    continue  # its executor heartbeats: alive, it will renew (never signal its processes)
                if executor.get("host") == self.ctx.executor.host:
                    if executor.get("id") != self.ctx.executor.id and executor_alive(executor):
                        # Another live process on this host that cannot reach the
                        # database: its runs are its own.
                        continue
                    self._kill_leftovers(doc)
                done = self.ctx.runs.expire_lapsed(run_id, executor.get("id"), now,
                                                   RunEnd("failed", error="executor lost: its lease expired"))
            if done is not None:
                log.warning("run %s ended by the watchdog: %s", run_id, done.get("meta", {}).get("error"))
                if self.ctx.cluster_slots is not None:
                    self.ctx.cluster_slots.release_run(run_id)
                self.ctx.live.publish_end(done)
        if judge_executors:
            self._tidy(now)

    def _fresh_executors(self, lapsed: list[dict[str, Any]], now: datetime) -> set[str]:
        """The executors of these runs whose heartbeat is younger than a lease."""
        executors = self.ctx.executors
        if executors is None:
            return set()
        ids = sorted({str((d.get("executor") or {}).get("id")) for d in lapsed if d.get("executor")})
        since = now - timedelta(seconds=self.ctx.options.lease_s)
        return executors.fresh(ids, since)

    def _tidy(self, now: datetime) -> None:
        """Forget executors long gone; free cluster slots whose run is over."""
        lease = timedelta(seconds=self.ctx.options.lease_s)
        if self.ctx.executors is not None:
            self.ctx.executors.prune(now - lease * self.ctx.options.forget_after_leases)
        if self.ctx.cluster_slots is not None:
            freed = self.ctx.cluster_slots.heal(now - lease)
            if freed:
                log.warning("freed %d cluster run slots whose run had ended", freed)

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

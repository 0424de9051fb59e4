"""The scheduler of a `serve` process: starts runs of scheduled scripts (SPEC §8.1).

One greenlet sleeps until the earliest due time of all scheduled scripts (no
polling of the database between due times) and is woken early when a
definition changes in this process. Definitions changed by other processes
are picked up by re-reading them every `refresh_s` seconds, and each due time
re-reads its one definition before acting, so a script disabled anywhere
never fires.

Every process that shares the database schedules; each due time is acted on
exactly once because acting on it starts with inserting its key
(scriptId, scheduledFor) under a unique index (store/schedules.py). The
process whose insert succeeds fires the run, skips it (overlap) or records it
missed; the others move on.

Missed due times: those that passed while no server ran (found at start from
the definition's last handled due time) and those this process reaches more
than `late_limit_s` late (e.g. after a database outage). `catchUp: none`
records them as missed; `latest` fires the latest one once and records the
rest as missed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.pool

from .audit import AuditLog
from .engine import Engine
from .errors import Conflict, DatabaseUnavailable, NotFound, ValidationFailed
from .metrics import Metrics
from .schedule import ScheduleError, expand_cron, iso_z, iter_due_times, time_zone
from .store import Database
from .store.schedules import FIRED, MISSED, SKIPPED, ScheduleStore, ScriptKey

log = logging.getLogger(__name__)

REFRESH_S = 15.0  # definitions changed by other processes
CLOCK_SKEW = timedelta(seconds=60)  # updatedAt comes from the saving process's clock
LATE_LIMIT_S = 60.0  # a due time reached later than this is "missed", not fired late
MAX_MISSED_COUNTED = 10_000  # due times counted per catch-up (an every-second cron down for days)
START_SLACK_S = 2.0  # at start, due times this recent are fired late rather than counted missed
RETRY_S = 2.0
FIRE_CONCURRENCY = 64  # after a database error

# submit(script_id, trigger, requested_by, meta=..., waits_for=..., params=...) -> run document
Submit = Callable[..., dict[str, Any]]


@dataclass
class Entry:
    """One scheduled script as this process knows it."""

    script_id: ScriptKey
    fingerprint: tuple[Any, ...]
    cron: str
    timezone: str
    next_due: datetime | None
    lock: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)


def _fingerprint(definition: dict[str, Any]) -> tuple[Any, ...]:
    schedule = definition.get("schedule") or {}
    return (repr(sorted(schedule.items())), definition.get("enabled", True), definition.get("updatedAt"))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class Scheduler:
    """Fires due times of scheduled scripts; see the module docstring."""

    def __init__(self, store: ScheduleStore, submit: Submit, executor_id: str, *,
                 refresh_s: float = REFRESH_S, late_limit_s: float = LATE_LIMIT_S,
                 start_slack_s: float = START_SLACK_S,
                 clock: Callable[[], datetime] = _now,
                 on_outcome: Callable[[str, int], None] = lambda result, count: None,
                 audit: AuditLog | None = None) -> None:
        self.store = store
        self.submit = submit
        self.executor_id = executor_id
        self.refresh_s = refresh_s
        self.late_limit = timedelta(seconds=late_limit_s)
        self.start_slack = timedelta(seconds=start_slack_s)
        self.clock = clock
        self.on_outcome = on_outcome  # metrics: (fired|skipped|missed, how many due times)
        self.audit = audit  # schedule.skipped / schedule.missed entries, actor "scheduler"
        self._entries: dict[ScriptKey, Entry] = {}
        self._wake = gevent.event.Event()
        # Due times are handled concurrently: each costs a few database round
        # trips (writes wait for the embedded database's sync on commit), and
        # 1,000 staggered schedules bring ~17 due times a second.
        self._pool = gevent.pool.Pool(FIRE_CONCURRENCY)
        # Definitions to re-read at the next wake.
        self._changed: set[ScriptKey] = set()
        self._seen_until: datetime | None = None  # the newest updatedAt read so far
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self.store.ensure_indexes()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
        # Due times being fired finish first: one cut between its run's insert and
        # its count would leave a run that firedCount never counts.
        self._pool.join(timeout=5)
        self._pool.kill(block=True, timeout=5)

    def wake(self, script_id: str | None = None) -> None:
        """A definition changed in this process: re-read it (or, without an id, all) now."""
        if script_id is None:
            self._seen_until = None  # the next look reads everything
        else:
            self._changed.add(ScriptKey(script_id))
        self._wake.set()

    # -- the loop -----------------------------------------------------------

    def _loop(self) -> None:
        last_refresh = float("-inf")
        initial = True
        while not self._stopping:
            timeout = RETRY_S
            try:
                self._wake.clear()
                if initial or self._seen_until is None or time.monotonic() - last_refresh >= self.refresh_s:
                    self._changed.clear()
                    self._refresh(initial)
                    initial = False
                    last_refresh = time.monotonic()
                elif self._changed:
                    changed, self._changed = self._changed, set()
                    for script_id in changed:
                        self._refresh_one(script_id)
                self._fire_due()
                timeout = self._sleep_for(last_refresh)
            except DatabaseUnavailable:
                log.warning("scheduler: the database is unreachable")
            except Exception:  # noqa: BLE001 - the scheduler must survive anything
                log.exception("scheduler error")
            self._wake.wait(timeout)

    def _sleep_for(self, last_refresh: float) -> float:
        until_refresh = self.refresh_s - (time.monotonic() - last_refresh)
        dues = [e.next_due for e in self._entries.values() if e.next_due is not None]
        if not dues:
            return max(0.0, until_refresh)
        until_due = (min(dues) - self.clock()).total_seconds()
        return max(0.0, min(until_refresh, until_due))

    def _refresh(self, initial: bool = False) -> None:
        """Re-read definitions: all at start, later only those saved since the last look.

        Definitions deleted or disabled elsewhere are also noticed when one of
        their due times comes (`_current`), so the periodic look stays cheap
        with thousands of schedules.
        """
        now = self.clock()
        if initial or self._seen_until is None:
            definitions = self.store.scheduled_definitions()
            scheduled = {d["_id"] for d in definitions}
            self._entries = {k: v for k, v in self._entries.items() if k in scheduled}
        else:
            definitions = self.store.changed_since(self._seen_until - CLOCK_SKEW)
        for definition in definitions:
            self._apply(definition, now, initial)
            saved = _aware(definition.get("updatedAt"))
            if saved is not None and (self._seen_until is None or saved > self._seen_until):
                self._seen_until = saved
        if self._seen_until is None:
            self._seen_until = now

    def _refresh_one(self, script_id: ScriptKey) -> None:
        self._apply(self.store.definition(script_id), self.clock(), False, script_id)

    def _apply(self, definition: dict[str, Any] | None, now: datetime, initial: bool,
               script_id: ScriptKey | None = None) -> None:
        """Track a definition if it is scheduled and enabled; forget it otherwise."""
        schedule = (definition or {}).get("schedule") or {}
        if definition is None or not definition.get("enabled", True) or not schedule.get("enabled", False):
            key = definition["_id"] if definition is not None else script_id
            if key is not None:
                self._entries.pop(key, None)
            return
        self._update_entry(definition, now, initial)

    def _update_entry(self, definition: dict[str, Any], now: datetime, initial: bool) -> None:
        script_id = definition["_id"]
        fingerprint = _fingerprint(definition)
        entry = self._entries.get(script_id)
        if entry is not None and entry.fingerprint == fingerprint:
            return
        schedule = definition["schedule"]
        try:
            cron = expand_cron(schedule["cron"])
            time_zone(schedule.get("timezone", "UTC"))
        except ScheduleError:
            log.warning("scheduler: script %s has an unusable schedule; it does not fire", script_id)
            self._entries.pop(script_id, None)
            return
        new = Entry(script_id, fingerprint, cron, schedule.get("timezone", "UTC"), None)
        self._entries[script_id] = new
        start = now
        if initial:
            # At start: due times since the last one any process handled
            # (or since the schedule was saved) were missed, except the
            # last few seconds', which another running process may be
            # firing right now; those are fired (once) like any other.
            start = now - self.start_slack
            self._catch_up(new, definition, start)
        new.next_due = self._next_after(new, start)

    def _next_after(self, entry: Entry, after: datetime) -> datetime | None:
        return next(iter_due_times(entry.cron, time_zone(entry.timezone), after), None)

    def _fire_due(self) -> None:
        """Hand every due entry to the pool; the loop itself never waits for the database."""
        for entry in list(self._entries.values()):
            now = self.clock()
            if entry.next_due is None or entry.next_due > now:
                continue
            due = entry.next_due
            if now - due > self.late_limit:
                entry.next_due = self._next_after(entry, now)
                self._pool.spawn(self._guarded, entry, self._miss_late, entry, due, now)
            else:
                entry.next_due = self._next_after(entry, due)
                self._pool.spawn(self._guarded, entry, self._fire, entry, due)

    def _guarded(self, entry: Entry, action: Callable[..., None], *args: Any) -> None:
        """Run one due time's work: one at a time per script (overlap checks stay exact), never raising."""
        try:
            with entry.lock:
                action(*args)
        except DatabaseUnavailable:
            log.warning("scheduler: the database is unreachable; due time of %s not handled", entry.script_id)
        except Exception:  # noqa: BLE001 - one script's failure must not stop the others
            log.exception("scheduler error for script %s", entry.script_id)

    def _miss_late(self, entry: Entry, due: datetime, now: datetime) -> None:
        definition = self.store.definition(entry.script_id)
        if definition is not None:
            self._record_missed(entry, definition, due - timedelta(microseconds=1), now)

    # -- one due time -------------------------------------------------------

    def _current(self, entry: Entry) -> dict[str, Any] | None:
        """The definition if it still fires as this entry says; else None (and re-read soon)."""
        definition = self.store.definition(entry.script_id)
        if definition is None or _fingerprint(definition) != entry.fingerprint:
            self.wake(str(entry.script_id))  # changed by another process since our last look
        if definition is None:
            return None
        schedule = definition.get("schedule") or {}
        if not definition.get("enabled", True) or not schedule.get("enabled", False):
            return None
        try:
            same = (expand_cron(schedule["cron"]), schedule.get("timezone", "UTC")) == (entry.cron, entry.timezone)
        except (KeyError, ScheduleError):
            same = False
        # Another edit (its body, its name) leaves this due time as it was.
        return definition if same else None

    def _fire(self, entry: Entry, due: datetime, missed_before: int = 0, catch_up: bool = False) -> None:
        definition = self._current(entry)
        if definition is None:
            return
        firing = self.store.claim(entry.script_id, due, FIRED, self.executor_id, count=1 + missed_before)
        if firing is None:
            return  # another process has this due time
        if missed_before:
            self._note(entry.script_id, MISSED, due, count=missed_before)
        overlap = definition["schedule"].get("overlap", "skip")
        active = None if overlap == "allow" else self.store.newest_active_run(entry.script_id)
        if active is not None and overlap == "skip":
            self.store.set_outcome(firing, SKIPPED, reason=f"run {active} was still active")
            self._note(entry.script_id, SKIPPED, due)
            log.info("schedule of %s: skipped %s (run %s still active)", entry.script_id, iso_z(due), active)
            return
        try:
            meta: dict[str, Any] = {"scheduledFor": iso_z(due)}
            if catch_up:
                meta["catchUp"] = True
            run = self.submit(str(entry.script_id), "schedule", "scheduler", meta=meta,
                              waits_for=None if active is None else str(active),
                              params=definition["schedule"].get("params") or {})
        except (Conflict, NotFound, ValidationFailed) as exc:
            # ValidationFailed: the schedule's params no longer fit (checked on save, so only
            # a definition stored by an older version); skipped with the reason, never retried.
            self.store.set_outcome(firing, SKIPPED, reason=exc.message)
            self._note(entry.script_id, SKIPPED, due)
            return
        if active is not None and not self.store.is_active(active):
            # It ended between our look and our insert: nobody will release us.
            self.store.release(run["_id"], active)
        # The claim already says "fired"; the run names its due time (meta.scheduledFor).
        self._note(entry.script_id, FIRED, due)

    def _note(self, script_id: ScriptKey, result: str, due: datetime, count: int = 1) -> None:
        self.store.note(script_id, result, due, count=count)
        self.on_outcome(result, count)
        if result in (SKIPPED, MISSED) and self.audit is not None:
            why = "a run was still active" if result == SKIPPED else "no server was running"
            self.audit.record("scheduler", f"schedule.{result}", "script", str(script_id),
                              f"{count} due time(s) {result} ({why}), the latest {iso_z(due)}",
                              {"scheduledFor": iso_z(due), "count": count}, script_id=str(script_id))

    # -- missed due times ---------------------------------------------------

    def _catch_up(self, entry: Entry, definition: dict[str, Any], now: datetime) -> None:
        state = definition.get("scheduleState") or {}
        anchors = [_aware(state.get("lastScheduledFor")), _aware(definition.get("updatedAt")),
                   _aware(definition.get("createdAt"))]
        since = max((a for a in anchors if a is not None), default=None)
        if since is not None and since < now:
            self._record_missed(entry, definition, since, now)

    def _record_missed(self, entry: Entry, definition: dict[str, Any], since: datetime, now: datetime) -> None:
        """Due times in (since, now]: missed, or the latest fired once (catchUp latest)."""
        latest: datetime | None = None
        count = 0
        for due in iter_due_times(entry.cron, time_zone(entry.timezone), since):
            if due > now or count >= MAX_MISSED_COUNTED:
                break
            latest = due
            count += 1
        if latest is None:
            return
        schedule = definition.get("schedule") or {}
        if schedule.get("catchUp", "none") == "latest":
            log.info("schedule of %s: %d due time(s) missed; running the latest (%s)", entry.script_id, count,
                     iso_z(latest))
            self._fire(entry, latest, missed_before=count - 1, catch_up=True)
            return
        if self.store.claim(entry.script_id, latest, MISSED, self.executor_id, count=count) is not None:
            self._note(entry.script_id, MISSED, latest, count=count)
            log.info("schedule of %s: %d due time(s) missed, the latest %s", entry.script_id, count, iso_z(latest))


def build_scheduler(database: Database, engine: Engine, metrics: Metrics, audit: AuditLog | None = None) -> Scheduler:
    """The scheduler of a `serve` process, wired to its engine and metrics; start() starts it.

    Each due time is claimed once in the database (store/schedules.py), so
    every serve process sharing it may schedule.
    """
    return Scheduler(ScheduleStore(database), engine.submit, engine.executor_id,
                     on_outcome=metrics.schedule_firing, audit=audit)

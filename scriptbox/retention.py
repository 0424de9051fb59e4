"""The pruner of a `serve` process: deletes old finished runs and their output (SPEC §8.6).

At start and then every `every_s` (an hour) it applies each script's rule
(scriptbox/retention_rule.py): finished runs that ended more than `days` ago
go, with their stored output, except the newest `keepRuns` finished runs of
the script. Scripts without a rule of their own, deleted scripts included,
follow ``SCRIPTBOX_RETENTION_DAYS``. Queued and running runs are never
touched: they have no ``finishedAt``, and every delete is conditional on a
finished status (which a run never leaves).

Work is bounded: finished runs are read by age in small time windows
(``next_window``), at most `page` at a time, because the embedded database
reads every index key of a range before it applies a limit; each page is
deleted in groups (``FinishedRuns.delete_finished``). After each page the pruner
rests for `throttle` times as long as the page took, so the API's queries
get the database in between.

Several processes: one prunes at a time, holding the lease "retention"
(store/leases.py), renewed after every page; another process finds it held
and waits for its next turn. Deletes are idempotent anyway, so a holder that
stalled past its lease and a newcomer can overlap without harm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import gevent
import gevent.event

from .audit import AuditLog
from .errors import DatabaseUnavailable
from .retention_rule import FIRST_SPAN, Rule, Window, has_override, next_window, rule_for
from .store import utcnow
from .store.definitions import DefinitionStore
from .store.finished_runs import FinishedRuns
from .store.leases import LeaseStore
from .vocabulary import FINISHED_STATUSES

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
RETRY_S = 60.0  # after a database outage
PAGE = 500
THROTTLE = 0.5  # rest half as long as a page took: at most 2/3 of the database's time
LEASE = "retention"
LEASE_S = 300.0
EARLIEST = datetime(1970, 1, 1)
# A first pass over a long history takes minutes to hours (docs/retention.md):
# say how far it got, so an operator watching the log knows it is working.
PROGRESS_EVERY_S = 60.0


class LeaseLost(Exception):
    """Another process holds the retention lease now (ours lapsed)."""


@dataclass
class PruneReport:
    """What one pass deleted."""

    runs: int = 0
    chunks: int = 0
    versions: int = 0
    duration_s: float = 0.0
    began: float = field(default_factory=time.monotonic)
    logged_at: float = field(default_factory=time.monotonic)

    def log_progress(self, every_s: float = PROGRESS_EVERY_S) -> None:
        """Log the runs and chunks deleted so far, at most every `every_s`."""
        now = time.monotonic()
        if now - self.logged_at >= every_s:
            self.logged_at = now
            log.info("retention: %d runs and %d output chunks deleted so far (%.0f s)",
                     self.runs, self.chunks, now - self.began)


class Pruner:
    """Deletes finished runs past their script's rule; see the module docstring."""

    def __init__(self, runs: FinishedRuns, definitions: DefinitionStore, leases: LeaseStore, audit: AuditLog | None,
                 default_days: int, holder: str, *, keep_versions: int = 50, every_s: float = PRUNE_EVERY_S,
                 page: int = PAGE, progress_every_s: float = PROGRESS_EVERY_S,
                 throttle: float = THROTTLE, clock: Callable[[], datetime] = utcnow) -> None:
        self.runs = runs
        self.definitions = definitions
        self.leases = leases
        self.audit = audit
        self.default_days = default_days
        self.keep_versions = keep_versions
        self.holder = holder
        self.every_s = every_s
        self.page = page
        self.progress_every_s = progress_every_s
        self.throttle = throttle
        self.clock = clock
        self._stop = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.every_s
            try:
                self.prune()
            except DatabaseUnavailable:
                log.warning("retention: the database is unreachable; trying again in %.0f s", RETRY_S)
                wait = min(wait, RETRY_S)
            except Exception:  # noqa: BLE001 - the pruner must outlive one bad pass
                log.exception("retention: pruning failed")
            self._stop.wait(wait)

    # -- one pass -----------------------------------------------------------

    def prune(self) -> PruneReport | None:
        """One pass over every script's runs; None when another process is pruning.

        Writes `retention.pruned` to the audit log when it deleted anything.
        Raises DatabaseUnavailable.
        """
        if not self.leases.claim(LEASE, self.holder, LEASE_S):
            return None
        report = PruneReport()
        try:
            now = self.clock().replace(tzinfo=None)
            settings = self.definitions.retention_settings()
            overrides = {sid: rule_for(self.default_days, retention)
                         for sid, retention in settings.items() if has_override(retention)}
            default = Rule(self.default_days, 0)
            if not default.forever:
                self._walk(default.cutoff(now), None, set(overrides), report)
            for script_id, rule in overrides.items():
                self._prune_script(script_id, rule, now, report)
            self._prune_versions(now, self.definitions.ids(), overrides, report)
        except LeaseLost:
            log.info("retention: another process took over pruning")
        finally:
            self.leases.release(LEASE, self.holder)
        report.duration_s = time.monotonic() - report.began
        if report.runs or report.versions:
            log.info("retention: deleted %d runs, %d output chunks and %d script versions in %.1f s",
                     report.runs, report.chunks, report.versions, report.duration_s)
            self._record(report)
        return report

    def _prune_script(self, script_id: str, rule: Rule, now: datetime, report: PruneReport) -> None:
        if rule.forever or self._stop.is_set():
            return
        stop = rule.cutoff(now)
        if rule.keep_runs:
            # Runs that ended before the keep_runs-th newest are the older ones
            # (ties with it stay too: keep at least that many).
            newest_kept = self.runs.newest_finished_at(script_id, rule.keep_runs)
            if newest_kept is None:
                return  # fewer finished runs than it keeps
            stop = min(stop, newest_kept)
        self._walk(stop, script_id, set(), report)

    def _prune_versions(self, now: datetime, defined: set[str], overrides: dict[str, Rule],
                        report: PruneReport) -> None:
        """Versions share their script's rule: older ones go unless a kept run ran them
        or they are among the newest `keep_versions`. A deleted script keeps its
        versions while any of its runs is stored, and loses them with its last run."""
        versions = self.definitions.versions
        for script_id in versions.script_ids():
            if self._stop.is_set():
                return
            if script_id not in defined:
                if not self.runs.has_runs(script_id):
                    report.versions += versions.prune_versions(script_id, 0, set())
                continue
            referenced = versions.referenced_versions(script_id)
            rule = overrides.get(script_id, Rule(self.default_days, 0))
            if not rule.forever:
                report.versions += versions.prune_versions(script_id, self.keep_versions, referenced,
                                                           older_than=rule.cutoff(now))

    def _walk(self, stop: datetime, script_id: str | None, skip: set[str], report: PruneReport) -> None:
        """Delete finished runs that ended before `stop` (of `script_id`, or of any script not in `skip`)."""
        window: Window | None = Window(EARLIEST, min(stop, EARLIEST + FIRST_SPAN))
        while window is not None and not self._stop.is_set():
            found = self.runs.runs_finished_between(window.start, window.end, 0 if window.whole else self.page,
                                                    script_id)
            due = [r.id for r in found if r.status in FINISHED_STATUSES and r.script_id not in skip]
            deleted = 0
            if due:
                began = time.monotonic()
                deleted, chunks = self.runs.delete_finished(due)
                report.runs += deleted
                report.chunks += chunks
                report.log_progress(self.progress_every_s)
                if not self.leases.claim(LEASE, self.holder, LEASE_S):
                    raise LeaseLost()
                # Let the API's queries have the database for a while.
                self._stop.wait((time.monotonic() - began) * self.throttle)
            window = next_window(window, stop, len(found), deleted, self.page)

    def _record(self, report: PruneReport) -> None:
        if self.audit is None:
            return
        self.audit.record("scheduler", "retention.pruned", "retention", None,
                          f"deleted {report.runs} finished runs, {report.chunks} output chunks "
                          f"and {report.versions} script versions",
                          {"runs": report.runs, "chunks": report.chunks, "versions": report.versions,
                           "durationMs": round(report.duration_s * 1000), "defaultDays": self.default_days})


"""The audit log of who did what (who: admin, token:<name>, desktop, scheduler).

Each action writes its entry on its own code path, right after the change it
records succeeded (not reconstructed later from other collections). Entries
name what changed, never a secret value. Failed sign-ins are recorded too, but
throttled: at most one entry per client address per ``AUTH_FAILED_WINDOW_S``,
carrying how many failures it stands for, so a guessing flood cannot flood the
log.

A run's `run.start` entry is the one written just after the answer
(`record_soon`): its time and its place in the log are fixed when the run is
stored, the write is retried through a database outage, and this process's
readers wait for it (`settle`), so a client that starts a run and then reads
the log finds the entry.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .engine.retry import retry_db
from .errors import DatabaseUnavailable
from .inflight import InFlight
from .store.audit import AuditStore

log = logging.getLogger("scriptbox.audit")

# notifier: background delivery of notifications (its failures).
ACTORS_FIXED = ("admin", "desktop", "scheduler", "notifier")
ACTIONS = (
    "script.create", "script.update", "script.delete", "script.restore",
    "run.start", "run.cancel", "run.delete",
    "token.create", "token.revoke",
    "notification.create", "notification.update", "notification.delete", "notification.failed",
    "schedule.skipped", "schedule.missed",
    "retention.pruned",
    "auth.failed",
)
AUTH_FAILED_WINDOW_S = 60.0
MAX_TRACKED_ADDRESSES = 10_000
# record_soon: retries with doubling waits, for about ten minutes in all.
SOON_FIRST_RETRY_S = 0.2
SOON_MAX_RETRY_S = 30.0
SOON_GIVE_UP_S = 600.0


def _entry(actor: str, action: str, target_type: str, target_id: str | None, summary: str,
           details: dict[str, Any] | None, remote_addr: str | None, script_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"actor": actor, "action": action, "targetType": target_type, "targetId": target_id,
                             "summary": summary, "details": details or {}, "remoteAddr": remote_addr}
    if script_id is not None:
        entry["scriptId"] = script_id
    return entry


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Names of the fields whose values differ (sorted); only names, so no secret value ever leaks."""
    return sorted(name for name in after if before.get(name) != after[name])


class AuditLog:
    """Writes audit entries; the reading side is the store's ``page``."""

    def __init__(self, store: AuditStore, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        # address -> (time of the last written entry, failures not yet written)
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self.in_flight = InFlight()  # record_soon writes under way

    @property
    def store(self) -> AuditStore:
        return self._store

    def record(self, actor: str, action: str, target_type: str, target_id: str | None, summary: str,
               details: dict[str, Any] | None = None, remote_addr: str | None = None,
               script_id: str | None = None) -> None:
        """Append one entry. `script_id` lets the log be filtered by script for run entries too."""
        self._store.append(_entry(actor, action, target_type, target_id, summary, details, remote_addr, script_id))

    def record_soon(self, actor: str, action: str, target_type: str, target_id: str | None, summary: str,
                    details: dict[str, Any] | None = None, remote_addr: str | None = None,
                    script_id: str | None = None) -> None:
        """record(), written in the background (see the module's docstring)."""
        # Its place in the log is now, whenever it lands.
        entry = self._store.stamped(_entry(actor, action, target_type, target_id, summary, details, remote_addr,
                                           script_id))
        self.in_flight.spawn(self._append_retrying, entry)

    def settle(self) -> None:
        """Wait (a few seconds at most) for the entries record_soon is still writing."""
        self.in_flight.settle()

    def _append_retrying(self, entry: dict[str, Any]) -> None:
        what = f"audit entry {entry['action']} {entry['targetId']}"
        try:
            retry_db(what, lambda: self._store.append(entry), first_s=SOON_FIRST_RETRY_S, max_s=SOON_MAX_RETRY_S,
                     until=time.monotonic() + SOON_GIVE_UP_S)
        except Exception as exc:  # noqa: BLE001 - nobody waits to be told: say it in the log
            log.error("%s lost (%s): by %s at %s", what, exc, entry["actor"], entry["at"].isoformat(),
                      exc_info=not isinstance(exc, DatabaseUnavailable))

    def auth_failed(self, remote_addr: str, reason: str, count: int = 1) -> bool:
        """Count `count` failed sign-ins from `remote_addr`; write an entry at most once per window.

        Returns True when an entry was written.
        """
        now = self._clock()
        last, pending = self._failures.get(remote_addr, (float("-inf"), 0))
        pending += count
        if now - last < AUTH_FAILED_WINDOW_S:
            self._remember(remote_addr, last, pending)
            return False
        self._remember(remote_addr, now, 0)
        self.record("anonymous", "auth.failed", "auth", None,
                    f"{pending} failed sign-in{'s' if pending != 1 else ''} from {remote_addr}",
                    {"failures": pending, "reason": reason}, remote_addr)
        return True

    def _remember(self, address: str, last: float, pending: int) -> None:
        self._failures[address] = (last, pending)
        self._failures.move_to_end(address)
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)

"""Timings and limits of the engine; the defaults are what a server uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineOptions:
    kill_grace_s: float = 5.0  # SIGTERM -> SIGKILL
    lease_s: float = 30.0  # a run whose lease lapses this long is "executor lost"
    renew_every_s: float = 10.0
    control_every_s: float = 1.0  # cancel flags from the database, process sampling
    reap_every_s: float = 5.0  # lapsed leases and browser deadlines
    queue_poll_s: float = 2.0  # queued runs inserted by other processes, without change streams
    queue_safety_poll_s: float = 10.0  # the same while change streams push them (a safety net)
    cancel_safety_s: float = 10.0  # cancel flags read while change streams push them
    progress_every_s: float = 1.0  # outputTail / outputBytes while running
    # Batched chunk persistence: at most one bulk insert per this. 50 ms keeps a
    # chatty run at ~20 stored documents/s per stream (each costs the database
    # about 1 ms to insert and again to prune) while another process's viewer
    # still gets a line well within 100 ms (docs/engine.md, "Batched persistence").
    flush_every_s: float = 0.05
    reader_drain_s: float = 2.0  # after the tree is dead, wait this long for EOF
    browser_grace_s: float = 30.0  # a browser run's page may report this long after its timeout
    heartbeat_s: float = 15.0  # SSE keepalive
    # An executor that has not heartbeaten for this many leases is deleted from
    # the executors list (before that it is shown as gone).
    forget_after_leases: float = 10.0
    # Backoff of the retries of the claim/start/finish path while the database is unreachable.
    retry_first_s: float = 0.5
    retry_max_s: float = 5.0

    @classmethod
    def for_lease(cls, lease_s: float) -> EngineOptions:
        """The defaults with a lease of `lease_s` (SCRIPTBOX_LEASE_SECONDS): renewed
        every third of it, so two renewals may be missed before it lapses."""
        return cls(lease_s=lease_s, renew_every_s=lease_s / 3, reap_every_s=min(5.0, lease_s / 6),
                   control_every_s=min(1.0, lease_s / 6))

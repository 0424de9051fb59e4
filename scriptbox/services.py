"""The collaborators one Scriptbox process is made of.

`build_services` builds every part before anything uses it; `serve` and
`worker` both get a `Services`, the worker without `access` (it serves no
HTTP). Routes receive it through the closure made in ``create_app`` (never as
attributes bolted onto the Bottle app or module globals), so tests and other
entry points can assemble their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import AuditLog
from .auth import CredentialChecker, DesktopSessions, LoginThrottle
from .config import Settings
from .engine import Engine, EngineOptions, build_engine
from .guards import HostGuard
from .metrics import Metrics
from .notify import Notifier, NotifierOptions
from .retention import Pruner
from .scheduler import Scheduler, build_scheduler
from .secretbox import SecretBox, load_secret_box
from .store import Database
from .store.audit import AuditStore
from .store.changes import ChangeFeed
from .store.definitions import DefinitionStore
from .store.executors import ClusterSlots, ExecutorStore
from .store.finished_runs import FinishedRuns
from .store.leases import LeaseStore
from .store.notifications import NotificationStore
from .store.runs import RunStore
from .store.tokens import TokenStore
from .store.versions import VersionStore
from .tokens import TokenAuthority


@dataclass(frozen=True)
class Access:
    """Who may ask, and the page they are served: the HTTP side of `serve`."""

    credentials: CredentialChecker
    host_guard: HostGuard
    desktop_sessions: DesktopSessions
    throttle: LoginThrottle
    ui_dir: Path


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: Database
    definitions: DefinitionStore
    runs: RunStore
    # Deleting finished runs with their output: the pruner and DELETE of one run.
    finished_runs: FinishedRuns
    # Without a worker (serve --no-worker) the engine still submits, cancels
    # and streams runs; it just executes nothing.
    engine: Engine
    metrics: Metrics
    # API tokens and the audit log (tokens.py, audit.py): the scheduler and
    # the worker write audit entries too, so they are not part of `access`.
    tokens: TokenAuthority
    audit: AuditLog
    # Seals secret env values and parameters (secretbox.py); the engine opens them to run.
    secrets: SecretBox
    # Every process that records run ends notifies of them (scriptbox/notify/).
    notifier: Notifier
    notifications: NotificationStore
    # The processes executing runs (GET /api/admin/executors); the engine registers this one.
    executors: ExecutorStore | None = None
    access: Access | None = None
    # Only `serve` schedules (scriptbox/scheduler.py); a worker has none.
    scheduler: Scheduler | None = None
    # Only `serve` prunes old runs (scriptbox/retention.py), one process at a time.
    pruner: Pruner | None = None
    # Other processes' queued runs, cancels and output, pushed (store/changes.py);
    # started by Engine.start(push=True) in serve/worker, so an in-process app polls as before.
    changes: ChangeFeed | None = None

    def definitions_changed(self, definition_id: str) -> None:
        """A definition was created, changed or deleted here: the scheduler looks again now."""
        if self.scheduler is not None:
            self.scheduler.wake(definition_id)

    def settle_writes(self) -> None:
        """Wait (a few seconds at most) for what is written after an answer: run.start
        audit entries and last-run summaries."""
        self.audit.settle()
        self.runs.last.in_flight.settle()

    def require_access(self) -> Access:
        """The HTTP side; raises ValueError for services built without it (a worker)."""
        if self.access is None:
            raise ValueError("these services serve no HTTP (built without access)")
        return self.access


def build_services(settings: Settings, database: Database, access: Access | None = None,
                   engine_options: EngineOptions | None = None,
                   notifier_options: NotifierOptions | None = None) -> Services:
    """Every part of a Scriptbox process over `database`, ready to start.

    Raises SecretKeyError when the secret key (setting or key file) cannot be used.
    """
    metrics = Metrics()
    secrets = load_secret_box(settings.secret_key, settings.data_dir)
    definitions = DefinitionStore(database, VersionStore(database), settings.keep_versions)
    audit = AuditLog(AuditStore(database))
    notifications = NotificationStore(database)
    notifier = Notifier(notifications, audit, secrets, on_result=metrics.notification, options=notifier_options,
                        base_url=settings.public_url)

    def run_finished(doc: dict[str, Any]) -> None:
        # The one place every run's end passes, once (the conditional update that ended it).
        metrics.run_finished(doc)
        notifier.run_finished(doc)

    runs = RunStore(database, on_claimed=metrics.run_claimed, on_finished=run_finished)
    executors = ExecutorStore(database)
    slots = ClusterSlots(database, settings.cluster_max_runs) if settings.cluster_max_runs > 0 else None
    changes = ChangeFeed(database, settings.change_streams, embedded=settings.mongodb_uri is None)
    engine = build_engine(settings, runs, definitions.get, engine_options, on_output_bytes=metrics.output_bytes,
                          secrets=secrets, executors=executors, cluster_slots=slots,
                          role="worker" if access is None else "serve", changes=changes)
    metrics.bind(runs.count_active, engine.active_count)
    # The serve process (the one with HTTP) schedules, --no-worker too: it only queues runs.
    scheduler = None if access is None else build_scheduler(database, engine, metrics, audit)
    finished_runs = FinishedRuns(database)
    pruner = None if access is None else Pruner(finished_runs, definitions, LeaseStore(database), audit,
                                                settings.retention_days, engine.executor_id,
                                                keep_versions=settings.keep_versions)
    return Services(settings=settings, database=database, definitions=definitions, runs=runs,
                    finished_runs=finished_runs, engine=engine,
                    metrics=metrics, tokens=TokenAuthority(TokenStore(database)),
                    audit=audit, secrets=secrets, notifier=notifier, notifications=notifications, executors=executors,
                    access=access,
                    scheduler=scheduler, pruner=pruner, changes=changes)

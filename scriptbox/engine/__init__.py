"""The run engine: queue, claim, spawn, watch, time out, cancel, finish, recover.

Lifecycle (docs/engine.md has the long version):

    submit ──insert──▶ queued ──claim──▶ running
    running ──main process exits──▶ succeeded | failed
    running ──deadline──▶ timed_out        running ──cancel──▶ canceled
    queued ──cancel──▶ canceled            running ──shutdown / lost──▶ failed

Every transition is a conditional update whose result is checked. A running
run is finished only by the executor that holds it or, once that executor is
gone, by the watchdog. The parts, each in its own module:

    commands    submit, cancel               browser     browser runs' rules and results
    dispatcher  claims runs into free slots  execution   one class per executing run
    outcome     how a run ended -> status    watchdog    leases, reaping, recovery
    live        viewers and the run's events hub/output  the hub, pipe reading, persistence

`Engine` is the facade the rest of Scriptbox uses. It must run in a
gevent-patched process: every wait is cooperative.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from typing import Any

from .. import proctree
from ..config import Settings
from ..errors import DatabaseUnavailable
from ..secretbox import SecretBox
from ..store.changes import ChangeFeed
from ..store.executors import ClusterSlots, ExecutorStore
from ..store.records import Executor
from ..store.runs import RunListener, RunStore
from . import launch
from .browser import record_result
from .commands import cancel, submit
from .context import EngineContext
from .dispatcher import Dispatcher
from .execution import proc_start
from .hub import Viewer
from .live import LiveOutput
from .options import EngineOptions
from .spawn import env_with_chdir
from .wakeups import Wakeups
from .watchdog import Watchdog

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it


def this_executor(host: str | None = None) -> Executor:
    """The identity of this process as an executor of runs."""
    host = host or socket.gethostname()
    pid = os.getpid()
    return Executor(id=f"{host}/{pid}/{secrets.token_hex(4)}", host=host, pid=pid, start=proc_start(pid))


class Engine:
    """Executes runs of one Scriptbox process (unless `execute` is off) and
    serves every run's commands and live output."""

    def __init__(
        self,
        runs: RunStore,
        get_definition: Callable[[str], dict[str, Any]],
        *,
        data_dir: str,
        max_concurrent_runs: int = 4,
        max_log_bytes: int = 10 * 1024 * 1024,
        tail_bytes: int = 16 * 1024,
        execute: bool = True,
        options: EngineOptions | None = None,
        host: str | None = None,
        vm2_user: str | None = "nobody",
        on_output_bytes: Callable[[int], None] | None = None,
        secrets: SecretBox | None = None,
        vm2_pool: int = 0,
        executors: ExecutorStore | None = None,
        cluster_slots: ClusterSlots | None = None,
        role: str = "serve",
        changes: ChangeFeed | None = None,
        alone_on_database: bool = False,
    ) -> None:
        self.options = options or EngineOptions()
        self.execute = execute
        live = LiveOutput(runs.add_chunks, max_log_bytes=max_log_bytes, tail_bytes=tail_bytes,
                          flush_every_s=self.options.flush_every_s, on_flushed=self._write_progress,
                          on_output_bytes=on_output_bytes, takes_open_groups=not alone_on_database)
        self.ctx = EngineContext(runs=runs, live=live, options=self.options, executor=this_executor(host),
                                 get_definition=get_definition, data_dir=data_dir, vm2_user=vm2_user,
                                 secrets=secrets, executors=executors, cluster_slots=cluster_slots,
                                 role=role, vm2_pool=launch.vm2_pool(vm2_pool, vm2_user) if execute else None)
        # Without a worker it claims nothing: listed as an executor with 0 slots.
        self.dispatcher = Dispatcher(self.ctx, max_concurrent_runs if execute else 0, alone=alone_on_database)
        self.watchdog = Watchdog(self.ctx, self.dispatcher)
        # Change streams: other processes' queued runs, cancels and output, pushed.
        self.changes = changes
        self.wakeups = None if changes is None else Wakeups(changes, self.dispatcher, live.hub, execute)
        if self.wakeups is not None:
            self.dispatcher.pushed = self.wakeups.runs_pushed
            self.watchdog.wakeups = self.wakeups

    @property
    def executor_id(self) -> str:
        return self.ctx.executor.id

    def start(self, push: bool = False) -> None:
        """Recover runs of a dead executor on this host, then start the loops;
        with `push`, the change streams too (only in a gevent-patched process:
        their greenlets block in pymongo otherwise)."""
        self.ctx.runs.ensure_indexes()
        me = os.getpid()
        self.ctx.protected_pids.update(info.pid for info in proctree.scan().values() if info.ppid == me)
        self.ctx.live.start()
        self._register()
        if self.execute:
            # Orphans of runs reparent to us (and are reaped by gevent) instead
            # of becoming unreapable zombies under a container's pid 1.
            proctree.become_subreaper()
            env_with_chdir()  # asked now, so the first run does not wait for the answer
            try:
                self.watchdog.recover_this_host()
            except DatabaseUnavailable:
                log.error("recovery skipped: the database is unreachable")
            if self.ctx.vm2_pool is not None:
                # After protected_pids was taken: pooled processes are run processes, never protected.
                self.ctx.vm2_pool.start()
            self.dispatcher.start()
        self.watchdog.start()
        if push and self.changes is not None:
            self.changes.start()

    def stop(self) -> None:
        """Graceful stop: running runs are terminated and end `failed`
        ("server shut down"); queued runs stay queued for the next start."""
        if self.changes is not None:
            self.changes.stop()
        self.watchdog.stop()
        self.dispatcher.stop(join_timeout=self.options.kill_grace_s + self.options.reader_drain_s + 10)
        if self.ctx.vm2_pool is not None:
            self.ctx.vm2_pool.stop()
        self.ctx.live.stop()
        if self.ctx.role is not None and self.ctx.executors is not None:
            try:
                self.ctx.executors.remove(self.executor_id)
            except DatabaseUnavailable:
                log.warning("could not remove this executor from the executors list (database unreachable)")

    def _register(self) -> None:
        """Enter this process in the executors list (and make the cluster's run slots)."""
        try:
            if self.ctx.executors is not None and self.ctx.role is not None:
                self.ctx.executors.register(self.ctx.executor, self.ctx.role, self.dispatcher.max_concurrent_runs)
            if self.ctx.cluster_slots is not None:
                self.ctx.cluster_slots.ensure()
        except DatabaseUnavailable:
            # The watchdog's heartbeat registers it once the database answers.
            log.error("could not register this executor yet: the database is unreachable")

    def _write_progress(self) -> None:
        self.dispatcher.write_progress()

    # -- requests from the API ----------------------------------------------

    def submit(self, script_id: str, trigger: str, requested_by: str | None, *,
               meta: Mapping[str, Any] | None = None, waits_for: str | None = None,
               params: Any = None, on_created: RunListener | None = None) -> dict[str, Any]:
        """Create a run; raises NotFound (unknown script), Conflict (disabled),
        ValidationFailed (params).

        `meta` and `waits_for` come from the scheduler, `on_created` from the
        API (see commands.submit)."""
        return submit(self.ctx, self.dispatcher, script_id, trigger, requested_by, meta, waits_for, params,
                      on_created)

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; raises NotFound, Conflict (finished)."""
        return cancel(self.ctx, self.dispatcher, run_id)

    def browser_result(self, run_id: str, body: Any) -> dict[str, Any]:
        """Record a browser run's result; raises ValidationFailed, NotFound, Conflict."""
        return record_result(self.ctx, run_id, body)

    # -- live output --------------------------------------------------------

    def subscribe(self, run_id: str, *, outputs: bool = True) -> Viewer:
        """Live events of a run (without `outputs`: its status changes and end only)."""
        return self.ctx.live.subscribe(run_id, outputs=outputs)

    def unsubscribe(self, viewer: Viewer) -> None:
        self.ctx.live.unsubscribe(viewer)

    def active_count(self) -> int:
        """How many runs this process is executing now (a run whose end is recorded is not,
        though its execution still writes what follows the end)."""
        return sum(1 for execution in list(self.dispatcher.active.values()) if not execution.ended)

    def remote_pushed(self) -> bool:
        """Whether news of runs executed elsewhere arrive pushed (then viewers poll only as a safety net)."""
        return self.wakeups is not None and self.wakeups.chunks_pushed()

    def is_local(self, run_id: str) -> bool:
        """Whether this process executes the run (its output arrives live here)."""
        return self.dispatcher.get(run_id) is not None

    def knows(self, run_id: str) -> bool:
        """Whether the run exists without asking the database: executing here, or ended here moments ago."""
        return self.is_local(run_id) or self.ctx.live.ended_run(run_id) is not None

    def forget(self, run_ids: list[str]) -> None:
        """These runs were deleted: serve them from memory no more."""
        self.ctx.live.forget_ended(run_ids)

    def local_run(self, run_id: str, after_seq: int) -> dict[str, Any] | None:
        """The run's document, from memory, when this process executes it (or
        ended it moments ago) and every stored chunk after `after_seq` is still
        in memory (so a viewer subscribed now gets them all in its seed); else
        None: read the database.

        Output is persisted in order, so nothing after `after_seq` is only in
        the database when the run has published nothing after it, or when its
        oldest piece not yet persisted comes right after it.
        """
        execution = self.dispatcher.get(run_id)
        if execution is None or execution.ended:
            # Ended here moments ago with all its output in memory: from there.
            return self.ctx.live.ended_run(run_id)
        if self.ctx.live.keeps_all(run_id):
            return execution.doc  # every stored piece is in the viewer's seed
        after = max(after_seq, 0)
        if execution.output.seq <= after:
            return execution.doc
        first = self.ctx.live.oldest_in_memory(run_id)
        return execution.doc if first is not None and first <= after + 1 else None


def build_engine(settings: Settings, runs: RunStore, get_definition: Callable[[str], dict[str, Any]],
                 options: EngineOptions | None = None,
                 on_output_bytes: Callable[[int], None] | None = None,
                 secrets: SecretBox | None = None, executors: ExecutorStore | None = None,
                 cluster_slots: ClusterSlots | None = None, role: str = "serve",
                 changes: ChangeFeed | None = None) -> Engine:
    """The engine of a server or worker process, from its settings.

    Without `options`, the timings follow SCRIPTBOX_LEASE_SECONDS."""
    return Engine(
        runs,
        get_definition,
        data_dir=str(settings.data_dir),
        max_concurrent_runs=settings.max_concurrent_runs,
        max_log_bytes=settings.max_log_bytes,
        tail_bytes=settings.tail_bytes,
        execute=settings.run_worker,
        vm2_user=settings.vm2_user,
        vm2_pool=settings.vm2_pool,
        options=options or EngineOptions.for_lease(settings.lease_seconds),
        on_output_bytes=on_output_bytes,
        secrets=secrets,
        executors=executors,
        cluster_slots=cluster_slots,
        role=role,
        changes=changes,
        alone_on_database=settings.mongodb_uri is None,  # the embedded database (docs/engine.md)
    )


__all__ = ["Engine", "EngineOptions", "build_engine", "this_executor"]

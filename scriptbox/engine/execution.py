"""One executing run: prepare, spawn, supervise, finish.

Each claimed run gets a `RunExecution` with its own greenlet. It ends the run
whatever happens: a run that cannot start ends `failed` with the reason in its
output and `meta.error`; an error inside the engine ends it `failed` too.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from .. import proctree
from ..errors import DatabaseUnavailable, NotFound
from ..logs import bind_run
from ..masking import SecretMasker
from ..runners.base import LaunchSpec, RunnerUnavailable
from ..store.records import RunEnd, Snapshot
from ..vocabulary import DEFAULT_TIMEOUT_MS
from .context import EngineContext
from .inputs import open_inputs
from .launch import launch_spec, snapshot_of
from .outcome import CANCEL, TIMEOUT, outcome, stopped_before_start
from .output import read_stream
from .retry import retry_db
from .spawn import ChildProcess, start_process
from .vm2pool import PooledProcess

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it
# How long the engine waits past the timeout of a runner that ends its own run then.
SELF_TIMEOUT_GRACE_S = 1.0


def proc_start(pid: int) -> int | None:
    """The start time of a live process (its identity with the pid), or None."""
    info = proctree.read_proc(pid)
    return info.start if info else None


def executor_alive(executor: dict[str, Any]) -> bool:
    """True if the executor process recorded on a run (same host) still exists."""
    pid, start = executor.get("pid"), executor.get("start")
    return isinstance(pid, int) and start is not None and proc_start(pid) == start


class RunExecution:
    """A run this process is executing."""

    def __init__(self, ctx: EngineContext, doc: dict[str, Any], others: proctree.Excluder,
                 definition: dict[str, Any] | None = None) -> None:
        self.ctx = ctx
        self.others = others  # the proven processes of this process's other runs: never ours to kill
        self.doc = doc
        # The definition the run was created from when it started at once (then
        # it is not read again); None: read it when preparing (a claimed queued run).
        self.definition = definition
        # Set right before `end` is published: a viewer subscribing later must read the database.
        self.ended = False
        # How many runs queued behind this one its end released (the dispatcher looks for them).
        self.released_waiting = 0
        self.run_id = str(doc["_id"])
        self.output = ctx.live.new_output(self.run_id)
        self.stop_event = gevent.event.Event()
        self.stop_reason: str | None = None  # CANCEL | SHUTDOWN
        self.procs: proctree.RunProcesses | None = None
        self.greenlet: gevent.Greenlet | None = None
        self.cluster_slot: int | None = None  # its SCRIPTBOX_CLUSTER_MAX_RUNS slot, if there is a limit
        # Getting it started may wait for the database this long after the claim
        # (the run's timeout): past that the run could not have run anyway.
        timeout_ms = ((doc.get("meta") or {}).get("snapshot") or {}).get("timeoutMs")
        seconds = (timeout_ms if isinstance(timeout_ms, int) and timeout_ms > 0 else DEFAULT_TIMEOUT_MS) / 1000.0
        self.start_by = time.monotonic() + seconds

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_event.set()

    def run(self) -> None:
        """Execute and end the run (the body of its greenlet)."""
        bind_run(self.run_id)  # log records of this greenlet carry runId; its context ends with it
        try:
            self._execute()
        except Exception as exc:  # noqa: BLE001 - a run must always end
            log.exception("run %s failed inside the engine", self.run_id)
            try:
                self.finish(RunEnd("failed", error=f"internal error: {exc}"))
            except Exception:  # noqa: BLE001 - the watchdog will end it later
                log.exception("could not record the failure of run %s", self.run_id)

    # -- the steps ----------------------------------------------------------

    def _execute(self) -> None:
        self.ctx.live.publish_status(self.doc)
        prepared = self._prepare()
        if prepared is None:
            return
        spec, snapshot = prepared
        if self.stop_event.is_set():
            self.finish(stopped_before_start(self.stop_reason))
            _cleanup(spec)
            return
        spec, pooled = self._from_pool(spec, snapshot.timeout_ms)
        if pooled is not None:
            snapshot = dataclasses.replace(snapshot, working_directory=spec.cwd)
        spawned = self._spawn(spec, snapshot, pooled)
        if spawned is None:
            return
        # The timeout counts from the spawn, not from after the bookkeeping
        # below: under load that took seconds, and the script ran on meanwhile.
        deadline = time.monotonic() + snapshot.timeout_ms / 1000.0
        if spec.label == "vm2":
            # The vm2 harness times itself out on a clock started with its process and
            # says so on stderr; the engine's kill is the backstop behind it, late enough
            # not to cut that message off (under load the two clocks raced).
            deadline += SELF_TIMEOUT_GRACE_S
        proc, root_start = spawned
        if root_start is None:
            log.error("run %s: the start time of pid %s is unknown; its processes cannot be signalled",
                      self.run_id, proc.pid)
        pipes = [os.fstat(p.fileno()).st_ino for p in (proc.stdout, proc.stderr) if p is not None]
        self.procs = proctree.RunProcesses(self.run_id, proc.pid, root_start, pipe_inodes=pipes,
                                           exclude=self.others, protected=self.ctx.protected_pids)
        try:
            end = self._supervise(proc, spec, snapshot, deadline)
        except BaseException:
            # Whatever went wrong here, the run's processes must not outlive it.
            self.procs.kill(self.ctx.options.kill_grace_s, sleep=gevent.sleep)
            raise
        finally:
            for pipe in (proc.stdout, proc.stderr, proc.stdin):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            _cleanup(spec)
        self.finish(end)
        if pooled is not None and self.ctx.vm2_pool is not None:
            self.ctx.vm2_pool.refill()

    def _prepare(self) -> tuple[LaunchSpec, Snapshot] | None:
        """The definition as it is now and how to start it; None when the run failed to start."""
        script_id = str(self.doc["scriptId"])
        options = self.ctx.options
        try:
            definition = self.definition or retry_db(
                f"run {self.run_id}: read its script", lambda: self.ctx.get_definition(script_id),
                first_s=options.retry_first_s, max_s=options.retry_max_s, until=self.start_by, stop=self.stop_event)
        except NotFound:
            self._fail_to_start("the script was deleted before the run started")
            return None
        except DatabaseUnavailable:
            if self.stop_event.is_set():  # canceled or shut down while it waited
                self.finish(stopped_before_start(self.stop_reason))
            else:
                self._fail_to_start("the database was unreachable until the run's timeout had passed")
            return None
        if not definition.get("enabled", True):
            self._fail_to_start("the script was disabled before the run started")
            return None
        snapshot = snapshot_of(definition)
        try:
            inputs = open_inputs(definition, self.doc, self.ctx.secrets)
            # Before the process exists, so not one byte of its output passes unmasked.
            self.output.mask_secrets(SecretMasker(inputs.secrets))
            spec = launch_spec(definition, self.run_id, script_id, self.ctx.data_dir, self.ctx.vm2_user, inputs)
        except RunnerUnavailable as exc:
            self._note(snapshot)
            self._fail_to_start(str(exc))
            return None
        return spec, dataclasses.replace(snapshot, working_directory=spec.cwd)

    def _from_pool(self, spec: LaunchSpec, timeout_ms: int) -> tuple[LaunchSpec, PooledProcess | None]:
        """A vm2 run takes a sandbox process from the pool when one fits (docs/vm2.md)."""
        pool = self.ctx.vm2_pool
        if pool is None or spec.label != "vm2" or spec.merge_stderr:
            return spec, None  # a pooled process has separate stdout and stderr pipes
        pooled = pool.take(timeout_ms)
        if pooled is None:
            return spec, None
        _cleanup(spec)  # the pooled process has its own private working directory
        return dataclasses.replace(spec, argv=pooled.spec.argv, cwd=pooled.spec.cwd, cleanup=pooled.spec.cleanup,
                                   preexec=None), pooled

    def _spawn(self, spec: LaunchSpec, snapshot: Snapshot,
               pooled: PooledProcess | None) -> tuple[ChildProcess, int | None] | None:
        """The started main process and its start time (None: unknown); None when it could not start."""
        if pooled is not None:
            return pooled.proc, pooled.start
        try:
            return start_process(spec, stdin_pipe=spec.stdin_data is not None)
        except (OSError, ValueError) as exc:
            # ValueError: Popen refuses a NUL byte in argv/env before forking.
            self._note(snapshot)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, OSError) and exc.errno == errno.E2BIG:
                reason += " (the script's env is larger than the system allows for a new process)"
            self._fail_to_start(f"cannot start {spec.argv[0]}: {reason}")
            _cleanup(spec)
            return None

    def _supervise(self, proc: ChildProcess, spec: LaunchSpec, snapshot: Snapshot,
                   deadline: float) -> RunEnd:
        """Watch a started run until its processes are gone; returns how it ended."""
        assert self.procs is not None and proc.stdout is not None
        # In merged mode there is no stderr pipe: stderr is written into the stdout one.
        readers = [
            gevent.spawn(read_stream, pipe.fileno(), stream, self.output.emit,
                         busy=self.output.busy, wait_idle=self.output.wait_idle)
            for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)) if pipe is not None
        ]
        if spec.stdin_data is not None:
            gevent.spawn(_feed_stdin, proc, spec.stdin_data)
        self._note(snapshot, proc.pid, self.procs.root_start)
        reason = self._wait(proc, deadline)
        grace = self.ctx.options.kill_grace_s
        if reason is not None:
            self.procs.kill(grace, sleep=gevent.sleep)
        returncode = proc.wait()
        # The main process is gone; whatever it left behind is killed so it
        # cannot hold the pipes (or the machine) any longer.
        self.procs.kill(grace, sleep=gevent.sleep, include_root=False)
        finished_readers = gevent.joinall(readers, timeout=self.ctx.options.reader_drain_s)
        if len(finished_readers) < len(readers):
            log.warning("run %s: output pipe still open after its processes were killed; closing it", self.run_id)
            gevent.killall(readers, block=True, timeout=1)
        return outcome(returncode, reason, timeout_ms=snapshot.timeout_ms, times_itself_out=spec.label == "vm2")

    def _wait(self, proc: ChildProcess, deadline: float) -> str | None:
        """Wait for the main process to exit until `deadline` (monotonic); the stop
        reason if it had to be stopped first."""
        while proc.returncode is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return TIMEOUT
            gevent.wait([proc.result, self.stop_event], timeout=remaining, count=1)
            if proc.returncode is None and self.stop_event.is_set():
                return self.stop_reason or CANCEL
        return None

    # -- recording ----------------------------------------------------------

    def _note(self, snapshot: Snapshot, pid: int | None = None, root_start: int | None = None) -> None:
        """Record what runs (the outcome matters more: an outage does not hold the run up;
        the record is retried beside it until the run's timeout)."""
        def note() -> bool:
            return self.ctx.runs.note_started(self.run_id, self.ctx.executor.id, snapshot, pid, root_start)

        try:
            note()
        except DatabaseUnavailable:
            options = self.ctx.options
            gevent.spawn(self._note_later, note, options.retry_first_s, options.retry_max_s)

    def _note_later(self, note: Callable[[], bool], first_s: float, max_s: float) -> None:
        try:
            retry_db(f"run {self.run_id}: record its start", note, first_s=first_s, max_s=max_s, until=self.start_by)
        except DatabaseUnavailable:
            log.warning("run %s: its start was not recorded (database unreachable)", self.run_id)

    def _fail_to_start(self, reason: str) -> None:
        self.output.emit("stderr", f"[scriptbox] cannot start the run: {reason}\n", 0, system=True)
        self.finish(RunEnd("failed", error=reason))

    def finish(self, end: RunEnd) -> None:
        """Record the end of the run and tell its viewers.

        Every chunk is stored first, so whoever sees the final status (any process,
        a viewer replaying after an outage) gets the complete log before `end`.
        Through an outage both steps wait for the database: the real outcome is
        recorded once it is back, unless the run was reaped meanwhile (our lease
        keeps being renewed while this waits, so only a long partition does that).
        """
        self.output.close()
        while not self.ctx.live.flush_now():
            log.warning("run %s: its output is not stored yet (database unreachable); waiting", self.run_id)
        end = dataclasses.replace(end, output=self.output.totals())
        options = self.ctx.options
        published: list[dict[str, Any]] = []

        def recorded(doc: dict[str, Any]) -> None:
            # The end is told as soon as it is stored; the script's summary and
            # the release of runs queued behind this one follow.
            self.ended = True
            self.ctx.live.publish_end(doc)
            published.append(doc)

        retry_db(f"run {self.run_id}: record its end ({end.status})",
                 lambda: self.ctx.runs.finish_held(self.run_id, self.ctx.executor.id, end, recorded),
                 first_s=options.retry_first_s, max_s=options.retry_max_s)
        if published:
            log.info("run %s ended %s (exit code %s)", self.run_id, end.status, end.exit_code)
            self.released_waiting = retry_db(f"run {self.run_id}: update what follows its end",
                                             lambda: self.ctx.runs.after_finish(published[0]),
                                             first_s=options.retry_first_s, max_s=options.retry_max_s)
            return
        # Someone else ended it (a reaper, after our lease lapsed); theirs is the record.
        done = self.ctx.runs.get(self.run_id)
        error = (done or {}).get("meta", {}).get("error")
        log.warning("run %s was taken away from this executor (%s); its process was stopped", self.run_id,
                    error or "ended elsewhere")
        self.ended = True
        if done is not None:
            self.ctx.live.publish_end(done)


def _feed_stdin(proc: ChildProcess, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass


def _cleanup(spec: LaunchSpec) -> None:
    if spec.cleanup is not None:
        try:
            spec.cleanup()
        except Exception:  # noqa: BLE001 - cleanup problems must not change the outcome
            log.exception("runner cleanup failed")

"""The run engine: queue, claim, spawn, watch, time out, cancel, finish, recover.

Lifecycle (docs/engine.md has the long version):

    submit ──insert──▶ queued ──claim (find_one_and_update)──▶ running
    running ──main process exits──▶ succeeded | failed
    running ──deadline──▶ timed_out        running ──cancel──▶ canceled
    queued ──cancel──▶ canceled            running ──shutdown / lost──▶ failed

Every transition is a conditional update whose result is checked. A running
run is finished only by the executor that holds it (its `executor.id` is in
the condition) or, once that executor is gone, by recovery. Browser runs are
inserted `running` and finished by the page's result, by cancel, or by the
watchdog (their `leaseUntil` is the deadline).

The engine must run in a gevent-patched process: every wait is cooperative.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import gevent
import gevent.event
import gevent.subprocess
from bson import ObjectId

from scriptbox import proctree, sse
from scriptbox.errors import ApiError, Conflict, DatabaseUnavailable, NotFound, ValidationFailed
from scriptbox.logs import bind_run
from scriptbox.models import DEFAULT_RUNNER
from scriptbox.output import ChunkWriter, HubEvent, OutputHub, RunOutput, TailBuffer, Viewer, read_stream
from scriptbox.runners.base import LaunchSpec, RunnerUnavailable
from scriptbox.runners.host import prepare_host_launch
from scriptbox.store import parse_object_id, utcnow
from scriptbox.store.runs import FINISHED, META_DEFAULTS, RunStore, run_to_json

log = logging.getLogger(__name__)

BROWSER_GRACE_S = 30.0
VM2_TIMEOUT_EXIT = 124  # the vm2 harness exits 124 when its own timeout fires


@dataclass
class EngineOptions:
    """Timings of the engine; the defaults are what a server uses."""

    kill_grace_s: float = 5.0  # SIGTERM -> SIGKILL
    lease_s: float = 30.0  # a run whose lease lapses this long is "executor lost"
    renew_every_s: float = 10.0
    control_every_s: float = 1.0  # cancel flags from the database, process sampling
    reap_every_s: float = 5.0  # lapsed leases and browser deadlines
    queue_poll_s: float = 2.0  # queued runs inserted by other processes (SPEC §9)
    progress_every_s: float = 1.0  # outputTail / outputBytes while running
    flush_every_s: float = 0.2  # batched chunk persistence
    reader_drain_s: float = 2.0  # after the tree is dead, wait this long for EOF
    browser_grace_s: float = BROWSER_GRACE_S
    heartbeat_s: float = 15.0


@dataclass
class ActiveRun:
    """A run this process is executing."""

    oid: ObjectId
    doc: dict[str, Any]
    output: RunOutput
    stop: gevent.event.Event = field(default_factory=gevent.event.Event)
    stop_reason: str | None = None  # "cancel" | "shutdown"
    procs: proctree.RunProcesses | None = None
    greenlet: gevent.Greenlet | None = None

    @property
    def run_id(self) -> str:
        return str(self.oid)

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop.set()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _proc_start(pid: int) -> int | None:
    info = proctree.read_proc(pid)
    return info.start if info else None


def _executor_alive(executor: dict[str, Any]) -> bool:
    """True if the executor process recorded on a run (same host) still exists."""
    pid, start = executor.get("pid"), executor.get("start")
    return isinstance(pid, int) and start is not None and _proc_start(pid) == start


def _other_runs(active: dict[str, ActiveRun], run_id: str | None) -> proctree.Excluder:
    """The proven processes of the runs in `active` other than `run_id`.

    A run's kill excludes them before it expands anything (SPEC §6).
    """
    def excluded(table: dict[int, proctree.ProcInfo]) -> set[int]:
        pids: set[int] = set()
        for other in list(active.values()):
            if other.run_id != run_id and other.procs is not None:
                pids |= other.procs.members(table)
        return pids

    return excluded


class Engine:
    """Executes runs of one Scriptbox process; also serves their live output."""

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
    ) -> None:
        self.runs = runs
        self.vm2_user = vm2_user
        self.get_definition = get_definition
        self.data_dir = data_dir
        self.max_concurrent_runs = max_concurrent_runs
        self.max_log_bytes = max_log_bytes
        self.tail_bytes = tail_bytes
        self.execute = execute
        self.options = options or EngineOptions()
        self.on_output_bytes = on_output_bytes
        self.host = host or socket.gethostname()
        pid = os.getpid()
        self.executor_id = f"{self.host}/{pid}/{secrets.token_hex(4)}"
        self.executor: dict[str, Any] = {
            "id": self.executor_id,
            "host": self.host,
            "pid": pid,
            "start": _proc_start(pid),
        }
        self.hub = OutputHub()
        self.writer = ChunkWriter(self.runs.insert_chunks, interval_s=self.options.flush_every_s,
                                  on_flushed=self._write_progress)
        self._active: dict[str, ActiveRun] = {}
        self._wake = gevent.event.Event()
        self._loops: list[gevent.Greenlet] = []
        self._stopping = False
        self._last_progress = 0.0
        # Never signalled by any run's kill: the children this process had
        # before the engine started (the embedded database), see start().
        self.protected_pids: set[int] = set()

    # -- lifecycle of the engine --------------------------------------------

    def start(self) -> None:
        """Recover runs of a dead executor on this host, then start the loops."""
        self.runs.ensure_indexes()
        me = os.getpid()
        self.protected_pids |= {info.pid for info in proctree.scan().values() if info.ppid == me}
        self.writer.start()
        if self.execute:
            # Orphans of runs reparent to us (and are reaped by gevent) instead
            # of becoming unreapable zombies under a container's pid 1.
            proctree.become_subreaper()
            try:
                self._recover_this_host()
            except DatabaseUnavailable:
                log.error("recovery skipped: the database is unreachable")
            self._loops.append(gevent.spawn(self._dispatch_loop))
        self._loops.append(gevent.spawn(self._control_loop))

    def stop(self) -> None:
        """Graceful stop: running runs are terminated and end `failed`
        ("server shut down"); queued runs stay queued for the next start."""
        self._stopping = True
        self._wake.set()
        for g in self._loops:
            g.kill(block=False)
        active = list(self._active.values())
        for run in active:
            run.request_stop("shutdown")
        greenlets = [r.greenlet for r in active if r.greenlet is not None]
        gevent.joinall(greenlets, timeout=self.options.kill_grace_s + self.options.reader_drain_s + 10)
        self.writer.stop()

    # -- requests from the API ----------------------------------------------

    def submit(self, script_id: str, trigger: str, requested_by: str | None) -> dict[str, Any]:
        """Create a run of a script; returns the stored run document.

        Raises NotFound (unknown script) and Conflict (disabled script).
        """
        definition = self.get_definition(script_id)
        if not definition.get("enabled", True):
            raise Conflict("the script is disabled", code="script_disabled")
        now = utcnow()
        snapshot = self._snapshot(definition)
        doc: dict[str, Any] = {
            "scriptId": definition["_id"],
            "status": "queued",
            "trigger": trigger,
            "createdAt": now,
            "startedAt": None,
            "finishedAt": None,
            "exitCode": None,
            "outputTail": "",
            "meta": {**META_DEFAULTS, "snapshot": snapshot, "requestedBy": requested_by},
        }
        if snapshot["runner"] == "browser":
            # Executed by the admin page, never here; the watchdog ends it if
            # the page never reports (leaseUntil is its deadline).
            doc.update(status="running", startedAt=now)
            doc["meta"]["node"] = "browser"
            doc["leaseUntil"] = now + timedelta(
                milliseconds=snapshot["timeoutMs"], seconds=self.options.browser_grace_s)
        self.runs.insert(doc)
        self._wake.set()
        return doc

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; returns the run document.

        Raises NotFound, or Conflict when the run has already finished.
        """
        oid = parse_object_id(run_id)
        doc = self.runs.get(oid) if oid is not None else None
        if doc is None or oid is None:
            raise NotFound(f"no run with id {run_id!r}")
        for _ in range(3):
            status = doc["status"]
            if status in FINISHED:
                raise Conflict(f"the run has already finished ({status})", code="run_finished")
            if status == "queued":
                done = self.runs.finish(oid, "canceled", {"meta.error": "canceled before it started"},
                                        expect={"status": "queued"})
                if done is not None:
                    self._publish_end(done)
                    return done
            elif doc.get("meta", {}).get("node") == "browser":
                done = self.runs.finish(oid, "canceled", {"meta.error": "canceled"},
                                        expect={"status": "running", "meta.node": "browser",
                                                "browserResult": {"$exists": False}})
                if done is not None:
                    self._publish_end(done)
                    return done
            else:
                flagged = self.runs.request_cancel(oid)
                if flagged is not None:
                    local = self._active.get(run_id)
                    if local is not None:
                        local.request_stop("cancel")
                    return flagged
            # Lost a race with a transition; look again.
            doc = self.runs.get(oid)
            if doc is None:
                raise NotFound(f"no run with id {run_id!r}")
        raise Conflict("the run changed while canceling; try again", code="run_busy")

    def browser_result(self, run_id: str, body: Any) -> dict[str, Any]:
        """Record the outcome of a browser run reported by the admin page.

        Raises ValidationFailed, NotFound, or Conflict (finished / not a
        browser run / result already reported).
        """
        result = validate_browser_result(body)
        oid = parse_object_id(run_id)
        doc = self.runs.get(oid) if oid is not None else None
        if doc is None or oid is None:
            raise NotFound(f"no run with id {run_id!r}")
        if doc.get("meta", {}).get("node") != "browser" or doc.get("executor") is not None:
            raise Conflict("the run is not a browser run", code="not_browser_run")
        if doc["status"] != "running":
            raise Conflict(f"the run has already finished ({doc['status']})", code="run_finished")
        if not self.runs.claim_browser_result(oid):
            raise Conflict("the run has already finished or its result was already reported",
                           code="run_finished")
        output = self._new_output(run_id)
        for item in result["output"]:
            output.emit(item["stream"], item["data"], len(item["data"].encode("utf-8")))
        self.writer.flush_now()
        fields = self._output_fields(output)
        fields["exitCode"] = result["exitCode"]
        fields["meta.error"] = result["error"]
        done = self.runs.finish(oid, result["status"], fields, expect={"status": "running", "meta.node": "browser"})
        if done is None:
            raise Conflict("the run has already finished", code="run_finished")
        self._publish_end(done)
        return done

    def subscribe(self, run_id: str) -> Viewer:
        """A live viewer of a run, seeded with chunks not yet in the database."""
        return self.hub.subscribe(run_id, seed=self.writer.unflushed(run_id))

    def is_local(self, run_id: str) -> bool:
        return run_id in self._active

    def stream_source(self) -> sse.RunStreamSource:
        def get_run(run_id: str) -> dict[str, Any] | None:
            return self.runs.get(run_id)

        def chunks_after(run_id: str, seq: int) -> Any:
            oid = parse_object_id(run_id)
            return iter(()) if oid is None else self.runs.chunks_after(oid, seq)

        return sse.RunStreamSource(get_run, chunks_after, self.subscribe, self.hub, self.is_local, run_to_json)

    def active_count(self) -> int:
        return len(self._active)

    # -- dispatching --------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stopping:
            try:
                self._claim_available()
            except DatabaseUnavailable:
                log.warning("cannot claim runs: the database is unreachable")
            except Exception:  # noqa: BLE001 - the dispatcher must survive anything
                log.exception("dispatcher error")
            self._wake.wait(self.options.queue_poll_s)
            self._wake.clear()

    def _claim_available(self) -> None:
        while not self._stopping and len(self._active) < self.max_concurrent_runs:
            doc = self.runs.claim_next(self.executor, self.options.lease_s)
            if doc is None:
                return
            run = ActiveRun(oid=doc["_id"], doc=doc, output=self._new_output(str(doc["_id"])))
            self._active[run.run_id] = run
            run.greenlet = gevent.spawn(self._execute, run)

    def _new_output(self, run_id: str) -> RunOutput:
        oid = ObjectId(run_id)

        def make_doc(seq: int, stream: str, data: str, system: bool) -> dict[str, Any]:
            doc: dict[str, Any] = {"runId": oid, "seq": seq, "stream": stream, "data": data, "createdAt": utcnow()}
            if system:
                doc["system"] = True
            return doc

        return RunOutput(run_id=run_id, max_log_bytes=self.max_log_bytes, tail=TailBuffer(self.tail_bytes),
                         writer=self.writer, hub=self.hub, make_doc=make_doc, on_bytes=self.on_output_bytes)

    # -- executing one run --------------------------------------------------

    def _execute(self, run: ActiveRun) -> None:
        bind_run(run.run_id)  # log records of this greenlet carry runId; its context ends with it
        try:
            self._execute_run(run)
        except Exception as exc:  # noqa: BLE001 - a run must always end
            log.exception("run %s failed inside the engine", run.run_id)
            try:
                self._finish(run, "failed", exit_code=None, error=f"internal error: {exc}")
            except Exception:  # noqa: BLE001 - recovery will end it later
                log.exception("could not record the failure of run %s", run.run_id)
        finally:
            self._active.pop(run.run_id, None)
            self._wake.set()

    def _execute_run(self, run: ActiveRun) -> None:
        self.hub.publish(run.run_id, HubEvent("status", sse.frame("status", run_to_json(run.doc))), wait=False)
        script_id = str(run.doc["scriptId"])
        try:
            definition = self.get_definition(script_id)
        except NotFound:
            self._fail_to_start(run, "the script was deleted before the run started")
            return
        if not definition.get("enabled", True):
            self._fail_to_start(run, "the script was disabled before the run started")
            return
        snapshot = self._snapshot(definition)
        try:
            spec = self._launch_spec(definition, run.run_id, script_id)
        except RunnerUnavailable as exc:
            self._note(run, {"meta.snapshot": snapshot})
            self._fail_to_start(run, str(exc))
            return
        snapshot["workingDirectory"] = spec.cwd
        if run.stop.is_set():
            self._finish_stopped_before_start(run, spec)
            return
        # The child reports its own start time before exec: read afterwards,
        # an instant script may already be reaped (proctree.StartProbe).
        probe = proctree.StartProbe()
        try:
            proc = gevent.subprocess.Popen(
                spec.argv,
                cwd=spec.cwd,
                env=spec.env,
                stdin=subprocess.PIPE if spec.stdin_data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=probe.preexec(spec.preexec),
                close_fds=True,
            )
            root_start = probe.start_of(proc.pid)
        except (OSError, ValueError) as exc:
            # ValueError: Popen refuses a NUL byte in argv/env before forking.
            self._note(run, {"meta.snapshot": snapshot})
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, OSError) and exc.errno == errno.E2BIG:
                reason += " (the script's env is larger than the system allows for a new process)"
            self._fail_to_start(run, f"cannot start {spec.argv[0]}: {reason}")
            self._cleanup(spec)
            return
        finally:
            probe.close()
        if root_start is None:
            log.error("run %s: the start time of pid %s is unknown; its processes cannot be signalled",
                      run.run_id, proc.pid)
        pipes = [os.fstat(p.fileno()).st_ino for p in (proc.stdout, proc.stderr) if p is not None]
        run.procs = proctree.RunProcesses(run.run_id, proc.pid, root_start, pipe_inodes=pipes,
                                          exclude=_other_runs(self._active, run.run_id), protected=self.protected_pids)
        try:
            status, exit_code, error, sig = self._supervise(run, proc, spec, snapshot)
        except BaseException:
            # Whatever went wrong here, the run's processes must not outlive it.
            run.procs.kill(self.options.kill_grace_s, sleep=gevent.sleep)
            raise
        finally:
            for pipe in (proc.stdout, proc.stderr, proc.stdin):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass
            self._cleanup(spec)
        self._finish(run, status, exit_code=exit_code, error=error, sig=sig)

    def _supervise(self, run: ActiveRun, proc: gevent.subprocess.Popen, spec: LaunchSpec,
                   snapshot: dict[str, Any]) -> tuple[str, int | None, str | None, str | None]:
        """Watch a started run until its processes are gone; returns its outcome.

        Returns (status, exitCode, error, signal name).
        """
        assert run.procs is not None and proc.stdout is not None and proc.stderr is not None
        readers = [
            gevent.spawn(read_stream, proc.stdout.fileno(), "stdout", run.output.emit),
            gevent.spawn(read_stream, proc.stderr.fileno(), "stderr", run.output.emit),
        ]
        if spec.stdin_data is not None:
            gevent.spawn(self._feed_stdin, proc, spec.stdin_data)
        self._note(run, {"meta.snapshot": snapshot, "meta.pid": proc.pid, "procStart": run.procs.root_start})

        timeout_s = snapshot["timeoutMs"] / 1000.0
        deadline = time.monotonic() + timeout_s
        reason: str | None = None
        while proc.returncode is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = "timeout"
                break
            gevent.wait([proc.result, run.stop], timeout=remaining, count=1)
            if proc.returncode is None and run.stop.is_set():
                reason = run.stop_reason or "cancel"
                break
        if reason is not None:
            run.procs.kill(self.options.kill_grace_s, sleep=gevent.sleep)
        returncode = proc.wait()
        # The main process is gone; whatever it left behind is killed so it
        # cannot hold the pipes (or the machine) any longer.
        run.procs.kill(self.options.kill_grace_s, sleep=gevent.sleep, include_root=False)
        finished_readers = gevent.joinall(readers, timeout=self.options.reader_drain_s)
        if len(finished_readers) < len(readers):
            log.warning("run %s: output pipe still open after its processes were killed; closing it", run.run_id)
            gevent.killall(readers, block=True, timeout=1)

        exit_code = returncode if returncode >= 0 else None
        sig = _signal_name(-returncode) if returncode < 0 else None
        timed_out = f"timed out after {snapshot['timeoutMs']} ms"
        if reason == "timeout":
            return "timed_out", exit_code, timed_out, sig
        if reason == "cancel":
            return "canceled", exit_code, "canceled", sig
        if reason == "shutdown":
            return "failed", exit_code, "server shut down", sig
        if spec.label == "vm2" and returncode == VM2_TIMEOUT_EXIT:
            return "timed_out", exit_code, timed_out, sig
        if returncode == 0:
            return "succeeded", 0, None, None
        if sig is not None:
            return "failed", None, f"killed by {sig}", sig
        return "failed", exit_code, None, None

    def _note(self, run: ActiveRun, fields: dict[str, Any]) -> None:
        """Record details of a running run; best effort (the outcome matters more)."""
        try:
            self.runs.update_running(run.oid, self.executor_id, fields)
        except DatabaseUnavailable:
            log.warning("run %s: could not record %s (database unreachable)", run.run_id, sorted(fields))

    def _feed_stdin(self, proc: gevent.subprocess.Popen, data: bytes) -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def _fail_to_start(self, run: ActiveRun, reason: str) -> None:
        run.output.emit("stderr", f"[scriptbox] cannot start the run: {reason}\n", 0, system=True)
        self._finish(run, "failed", exit_code=None, error=reason)

    def _finish_stopped_before_start(self, run: ActiveRun, spec: LaunchSpec) -> None:
        if run.stop_reason == "shutdown":
            self._finish(run, "failed", exit_code=None, error="server shut down")
        else:
            self._finish(run, "canceled", exit_code=None, error="canceled")
        self._cleanup(spec)

    def _cleanup(self, spec: LaunchSpec) -> None:
        if spec.cleanup is not None:
            try:
                spec.cleanup()
            except Exception:  # noqa: BLE001 - cleanup problems must not change the outcome
                log.exception("runner cleanup failed")

    def _output_fields(self, output: RunOutput) -> dict[str, Any]:
        return {
            "outputTail": output.tail.text(),
            "meta.outputBytes": output.output_bytes,
            "meta.logTruncated": output.truncated,
        }

    def _finish(self, run: ActiveRun, status: str, *, exit_code: int | None, error: str | None,
                sig: str | None = None) -> None:
        # Every chunk is stored before the run is final, so whoever sees the
        # final status (any process) can replay the complete log.
        self.writer.flush_now()
        fields = self._output_fields(run.output)
        fields.update({"exitCode": exit_code, "meta.error": error, "meta.signal": sig})
        delay = 0.5
        while True:
            try:
                done = self.runs.finish(run.oid, status, fields,
                                        expect={"status": "running", "executor.id": self.executor_id})
                break
            except DatabaseUnavailable:
                # Keep trying while the lease would still be ours; after that
                # the reaper of any process ends the run as "executor lost".
                if delay > self.options.lease_s:
                    raise
                log.warning("run %s: cannot record its end yet (database unreachable); retrying", run.run_id)
                gevent.sleep(delay)
                delay *= 2
        if done is not None:
            log.info("run %s ended %s (exit code %s)", run.run_id, status, exit_code)
        if done is None:
            # Someone else ended it (recovery after our lease lapsed); keep theirs.
            done = self.runs.get(run.oid)
            log.warning("run %s was already finished elsewhere", run.run_id)
        if done is not None:
            self._publish_end(done)

    def _publish_end(self, doc: dict[str, Any]) -> None:
        body = run_to_json(doc)
        self.hub.publish(str(doc["_id"]), HubEvent("end", sse.frame("end", body), doc=body), wait=False)

    # -- runners ------------------------------------------------------------

    def _snapshot(self, definition: dict[str, Any]) -> dict[str, Any]:
        kind = definition.get("type")
        return {
            "name": definition.get("name"),
            "codeIdentifier": definition.get("codeIdentifier"),
            "type": kind,
            "runner": definition.get("runner") or DEFAULT_RUNNER.get(str(kind), "host"),
            "timeoutMs": int(definition.get("timeoutMs") or 300_000),
            "workingDirectory": definition.get("defaultWorkingDirectory") or "",
        }

    def _launch_spec(self, definition: dict[str, Any], run_id: str, script_id: str) -> LaunchSpec:
        runner = definition.get("runner") or DEFAULT_RUNNER.get(str(definition.get("type")), "host")
        if runner == "host":
            return prepare_host_launch(definition, run_id=run_id, script_id=script_id, data_dir=self.data_dir)
        if runner == "vm2":
            try:
                from scriptbox.runners import vm2_runner
            except ImportError as exc:
                raise RunnerUnavailable("the vm2 runner is not available in this build") from exc
            env = {str(e["key"]): str(e["value"]) for e in definition.get("env") or []}
            spec: LaunchSpec = vm2_runner.prepare_vm2_launch(
                str(definition.get("script") or ""), env, int(definition.get("timeoutMs") or 300_000),
                run_as=self.vm2_user)
            spec.env = {**spec.env, "SCRIPTBOX_RUN_ID": run_id, "SCRIPTBOX_SCRIPT_ID": script_id}
            if not spec.label:
                spec.label = "vm2"
            return spec
        raise RunnerUnavailable(f"runner {runner!r} does not execute on the server")

    # -- background control -------------------------------------------------

    def _control_loop(self) -> None:
        """Cancel flags, lease renewal, process sampling, reaping."""
        last_renew = last_reap = 0.0
        while not self._stopping:
            gevent.sleep(self.options.control_every_s)
            now = time.monotonic()
            try:
                if self._active:
                    ids = [r.oid for r in self._active.values()]
                    for oid in self.runs.cancel_requested(ids):
                        run = self._active.get(str(oid))
                        if run is not None:
                            run.request_stop("cancel")
                    if now - last_renew >= self.options.renew_every_s:
                        self.runs.renew_leases(ids, self.executor_id, self.options.lease_s)
                        last_renew = now
                    table = proctree.scan()
                    for run in list(self._active.values()):
                        if run.procs is not None:
                            run.procs.observe(table)
                if now - last_reap >= self.options.reap_every_s:
                    self._reap_lapsed()
                    last_reap = now
            except DatabaseUnavailable:
                log.warning("control loop: the database is unreachable")
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("control loop error")

    def _write_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < self.options.progress_every_s:
            return
        self._last_progress = now
        updates = {}
        for run in list(self._active.values()):
            if run.output.dirty:
                run.output.dirty = False
                updates[run.oid] = self._output_fields(run.output)
        self.runs.update_progress(updates)

    def _reap_lapsed(self) -> None:
        """End runs whose executor stopped renewing, and overdue browser runs."""
        now = utcnow()
        for doc in self.runs.lapsed(now):
            oid = doc["_id"]
            if doc.get("meta", {}).get("node") == "browser":
                timeout_ms = doc.get("meta", {}).get("snapshot", {}).get("timeoutMs")
                done = self.runs.finish(oid, "timed_out", {
                    "meta.error": f"the browser did not report a result within the timeout ({timeout_ms} ms) "
                                  f"plus {int(self.options.browser_grace_s)} s"},
                    expect={"status": "running", "meta.node": "browser", "browserResult": {"$exists": False},
                            "leaseUntil": {"$lt": now}})
            else:
                executor = doc.get("executor") or {}
                if executor.get("id") == self.executor_id and str(oid) in self._active:
                    continue  # ours and alive; the renewal was merely late
                if executor.get("host") == self.host:
                    if executor.get("id") != self.executor_id and _executor_alive(executor):
                        # Another live process on this host (it only missed
                        # renewals, e.g. a database outage): its runs are its own.
                        continue
                    self._kill_leftovers(doc)
                done = self.runs.finish(oid, "failed", {"meta.error": "executor lost: its lease expired"},
                                        expect={"status": "running", "executor.id": executor.get("id"),
                                                "leaseUntil": {"$lt": now}})
            if done is not None:
                log.warning("run %s ended by the watchdog: %s", oid, done.get("meta", {}).get("error"))
                self._publish_end(done)

    def _recover_this_host(self) -> None:
        """At start: end runs of a previous server on this host (SPEC §6)."""
        for doc in self.runs.running_on_host(self.host):
            executor = doc.get("executor") or {}
            if executor.get("id") == self.executor_id:
                continue
            if _executor_alive(executor):
                continue  # that executor is alive (another process sharing the database)
            killed = self._kill_leftovers(doc)
            done = self.runs.finish(doc["_id"], "failed", {"meta.error": "executor lost: server restarted"},
                                    expect={"status": "running", "executor.id": executor.get("id")})
            if done is not None:
                log.warning("run %s ended: its executor is gone (%d leftover processes killed)", doc["_id"], killed)

    def _kill_leftovers(self, doc: dict[str, Any]) -> int:
        meta = doc.get("meta") or {}
        pid = meta.get("pid")
        start = doc.get("procStart")
        # This engine's own runs and the embedded database are excluded first.
        return proctree.kill_orphaned_run(str(doc["_id"]), pid if isinstance(pid, int) else None,
                                          start if isinstance(start, int) else None, self.options.kill_grace_s,
                                          sleep=gevent.sleep, exclude=_other_runs(self._active, None),
                                          protected=self.protected_pids)


_RESULT_KEYS = {"status", "exitCode", "output", "error"}
_RESULT_STATUSES = ("succeeded", "failed", "timed_out", "canceled")


def validate_browser_result(body: Any) -> dict[str, Any]:
    """Check a browser-result body; raises ValidationFailed naming bad fields."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    fields: dict[str, str] = {}
    for key in body:
        if key not in _RESULT_KEYS:
            fields[str(key)] = "unknown field"
    status = body.get("status")
    if status not in _RESULT_STATUSES:
        fields["status"] = "must be one of " + ", ".join(_RESULT_STATUSES)
    exit_code = body.get("exitCode")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)
                                  or not -(2**31) <= exit_code < 2**31):
        fields["exitCode"] = "must be an integer or null"
    output = body.get("output", [])
    if not isinstance(output, list):
        fields["output"] = "must be an array of {stream, data}"
    else:
        for i, item in enumerate(output):
            if (not isinstance(item, dict) or set(item) - {"stream", "data"}
                    or item.get("stream") not in ("stdout", "stderr") or not isinstance(item.get("data"), str)):
                fields[f"output.{i}"] = 'must be {"stream": "stdout"|"stderr", "data": string}'
                break
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        fields["error"] = "must be a string"
    if fields:
        raise ValidationFailed("the browser result is invalid", fields=fields)
    return {"status": status, "exitCode": exit_code, "output": output or [],
            "error": (error[:2000] if isinstance(error, str) else None)}


def build_engine(services: Any) -> Engine:
    """The engine of a server/worker process, wired to its services.

    Also sets `services.runs` and `services.engine` for the routes.
    """
    settings = services.settings
    metrics = services.metrics
    runs = RunStore(services.database, on_claimed=metrics.run_claimed, on_finished=metrics.run_finished)
    engine = Engine(
        runs,
        services.definitions.get,
        data_dir=str(settings.data_dir),
        max_concurrent_runs=settings.max_concurrent_runs,
        max_log_bytes=settings.max_log_bytes,
        tail_bytes=settings.tail_bytes,
        execute=getattr(settings, "run_worker", True),
        vm2_user=settings.vm2_user,
        on_output_bytes=metrics.output_bytes,
    )
    metrics.bind(runs.count_active, engine.active_count)
    services.runs = runs
    services.engine = engine
    return engine


__all__ = ["ActiveRun", "Engine", "EngineOptions", "build_engine", "validate_browser_result", "ApiError"]

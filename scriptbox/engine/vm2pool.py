"""The vm2 sandbox pool: harness processes started ahead of their runs.

A vm2 run otherwise pays node's start-up and the loading of vm2 (most of its
time for a short script). The pool keeps `size` harness processes started with
`--pooled`: each has loaded vm2, prepared its VM and waits on stdin for one
run's input. A run takes one (`take`), writes its input and from then on it is
that run's main process, supervised, timed out and killed like a process
started for the run; it is never given back. The pool refills in the
background once that run has ended (`refill`, or REFILL_AFTER_S after the
take for a run that lasts), not at the take: starting node takes ~70 ms of a
core and the fork stalls the event loop for 15-25 ms, which a run started
from the pool would otherwise pay in full on a 2-core machine. It replaces a
process that dies while waiting, retires one that waited longer than
`max_idle_s`, and kills the waiting ones when the engine stops (and the kernel
kills them if the server dies: PR_SET_PDEATHSIG).

A pooled process carries nothing of any run: it is started with an empty
environment, its own private working directory and no input, and serves one
run only. Its SIGALRM backstop is armed at its start for `alarm_s`, since its
run's timeout is not known yet; `take` hands out only a process whose alarm
leaves the run's whole timeout plus the usual grace (docs/vm2.md).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gevent
import gevent.event

from ..childproc import die_with_parent
from ..runners.base import LaunchSpec, RunnerUnavailable
from .spawn import ChildProcess, start_process

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it

# The backstop alarm of a pooled process (it cannot know its run's timeout when it starts).
POOL_ALARM_S = 3600
# A process that waited this long is replaced, so runs with timeouts up to
# POOL_ALARM_S - MAX_IDLE_S - grace always find one that fits.
MAX_IDLE_S = 600.0
# After a pooled process died while waiting, wait this long (doubling, up to
# MAX_RETRY_S) before starting the next one: a broken node or harness must not
# become a fork loop.
RETRY_S = 1.0
MAX_RETRY_S = 60.0
# A taken process is replaced once its run has ended and been recorded, plus
# REFILL_SETTLE_S so the run's answer and end events go out before the fork
# stalls the loop; a run that lasts longer than REFILL_AFTER_S does not keep
# the pool short until its end.
REFILL_SETTLE_S = 0.1
REFILL_AFTER_S = 1.0


@dataclass
class PooledProcess:
    """A started harness process waiting for its run."""

    proc: ChildProcess
    start: int | None  # its start time (clock ticks): its identity with the pid
    spec: LaunchSpec  # how it was started: argv, working directory, cleanup
    started_at: float  # time.monotonic() at its start
    watcher: gevent.Greenlet | None = None

    def alarm_left(self, alarm_s: float, now: float) -> float:
        return alarm_s - (now - self.started_at)


class Vm2Pool:
    """Up to `size` waiting harness processes; `make_spec(alarm_s)` describes one
    (vm2_runner.prepare_vm2_process with pooled=True; raises RunnerUnavailable)."""

    def __init__(self, size: int, make_spec: Callable[[int], LaunchSpec], *, alarm_s: int = POOL_ALARM_S,
                 max_idle_s: float = MAX_IDLE_S, grace_s: float = 0.0) -> None:
        self.size = size
        self.make_spec = make_spec
        self.alarm_s = alarm_s
        self.max_idle_s = max_idle_s
        self.grace_s = grace_s  # beyond a run's timeout, the time its alarm must leave
        self._idle: deque[PooledProcess] = deque()
        self._need = gevent.event.Event()
        self._loop: gevent.Greenlet | None = None
        self._stopping = False
        self._retry_s = RETRY_S
        self.started = 0  # processes started (tests and metrics)
        self.replaced = 0  # processes that died while waiting

    def start(self) -> None:
        if self.size > 0 and self._loop is None:
            self._loop = gevent.spawn(self._run)

    def idle_count(self) -> int:
        return len(self._idle)

    def idle_pids(self) -> list[int]:
        return [p.proc.pid for p in self._idle]

    def take(self, timeout_ms: int) -> PooledProcess | None:
        """A waiting process for a run with this timeout, now the caller's; None
        when none is ready or none leaves the run's timeout to its alarm."""
        now = time.monotonic()
        needed = timeout_ms / 1000.0 + self.grace_s
        taken = None
        for pooled in list(self._idle):
            if pooled.proc.returncode is None and pooled.alarm_left(self.alarm_s, now) >= needed:
                taken = pooled
                break
        if taken is not None:
            self._idle.remove(taken)
            if taken.watcher is not None:
                taken.watcher.kill(block=False)
            gevent.spawn_later(REFILL_AFTER_S, self._need.set)
        return taken

    def refill(self) -> None:
        """The run of a taken process has ended: start its replacement shortly."""
        gevent.spawn_later(REFILL_SETTLE_S, self._need.set)

    def stop(self) -> None:
        """Stop refilling and kill the waiting processes."""
        self._stopping = True
        self._need.set()
        if self._loop is not None:
            # Let a start under way finish (killed inside Popen, its process would be lost).
            self._loop.join(timeout=5)
            self._loop.kill(block=False)
            self._loop = None
        while self._idle:
            self._discard(self._idle.popleft())

    def _run(self) -> None:
        while not self._stopping:
            self._retire_old()
            while len(self._idle) < self.size and not self._stopping:
                if not self._start_one():
                    break
            self._need.wait(self.max_idle_s / 4)
            self._need.clear()
            if self._retry_s > RETRY_S:
                gevent.sleep(self._retry_s)

    def _start_one(self) -> bool:
        try:
            spec = self.make_spec(self.alarm_s)
        except RunnerUnavailable as exc:
            log.info("vm2 pool: no sandbox process started (%s); runs start their own", exc)
            self._backoff()
            return False
        previous = spec.preexec
        dies_with_us = die_with_parent(os.getpid())

        def preexec() -> None:
            if previous is not None:
                previous()
            # After the runner's switch of user, which clears the parent-death signal.
            if dies_with_us is not None:
                dies_with_us()

        spec.preexec = preexec
        try:
            proc, start = start_process(spec, stdin_pipe=True)
        except (OSError, ValueError) as exc:
            log.warning("vm2 pool: cannot start a sandbox process: %s", exc)
            if spec.cleanup is not None:
                spec.cleanup()
            self._backoff()
            return False
        pooled = PooledProcess(proc, start, spec, time.monotonic())
        pooled.watcher = gevent.spawn(self._watch, pooled)
        self._idle.append(pooled)
        self.started += 1
        return True

    def _watch(self, pooled: PooledProcess) -> None:
        """A process that exits while it waits is removed and replaced."""
        code = pooled.proc.wait()
        if pooled in self._idle:
            self._idle.remove(pooled)
            self.replaced += 1
            log.warning("vm2 pool: a waiting sandbox process (pid %s) exited with %s; replacing it",
                        pooled.proc.pid, code)
            pooled.watcher = None
            self._discard(pooled)
            self._backoff()
            self._need.set()

    def _backoff(self) -> None:
        self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)

    def _retire_old(self) -> None:
        now = time.monotonic()
        for pooled in [p for p in self._idle if now - p.started_at > self.max_idle_s]:
            self._idle.remove(pooled)
            self._discard(pooled)
        if self._idle:
            self._retry_s = RETRY_S  # the last ones started fine

    def _discard(self, pooled: PooledProcess) -> None:
        if pooled.watcher is not None:
            pooled.watcher.kill(block=False)
        # Signalled only while not reaped (returncode None), so never a reused pid.
        if pooled.proc.returncode is None:
            pooled.proc.kill()
        for pipe in (pooled.proc.stdin, pooled.proc.stdout, pooled.proc.stderr):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        if pooled.spec.cleanup is not None:
            pooled.spec.cleanup()

"""Small helpers for child processes Scriptbox starts (database, desktop server):
free ports and retrying on another, die-with-parent, terminate-with-grace.

Imports nothing heavy: the desktop launcher uses it and must stay free of
gevent (and needs no database driver).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import psutil

T = TypeVar("T")

# From <linux/prctl.h>: deliver a signal to this process when its parent thread exits.
_PR_SET_PDEATHSIG = 1


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (callers retry if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn making the child get SIGTERM when `parent_pid` dies; None off Linux.

    The kernel (PR_SET_PDEATHSIG) tells the child even when the parent is
    SIGKILLed; if the parent already died between fork and prctl, the child
    ends itself, since nobody would tell it any more.
    """
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def port_is_taken(port: int) -> bool:
    """Whether something listens on (or holds) this loopback port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def on_free_loopback_port(start: Callable[[int], T], attempts: int,
                          should_retry: Callable[[int, Exception], bool]) -> T:
    """`start(port)` on a free loopback port, again on a fresh port when it fails
    and `should_retry(port, error)` says so (a free port can be taken between the
    probe and the child's bind). Raises the last failure."""
    for attempt in range(1, attempts + 1):
        port = free_loopback_port()
        try:
            return start(port)
        except Exception as exc:  # noqa: BLE001 - re-raised unless the caller wants another port
            if attempt >= attempts or not should_retry(port, exc):
                raise
    raise AssertionError("unreachable")


class _Stoppable(Protocol):
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> Any: ...


class ForeignProcess:
    """A process that is not our child, stoppable by terminate_with_grace.

    psutil's wait() on a process that is not our child returns only once its
    pid is gone. One whose parent never reaps it (a container's pid 1, or a
    parent that is a subreaper itself, as a test process running an engine
    is) stays a zombie forever, and a start that stopped it would wait
    forever. A zombie has exited and holds nothing (no port, no file lock):
    it counts as gone.
    """

    def __init__(self, proc: psutil.Process, poll_s: float = 0.05) -> None:
        self.proc = proc
        self.poll_s = poll_s

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        self.proc.kill()

    def wait(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if self.proc.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise psutil.TimeoutExpired(timeout, self.proc.pid)
            time.sleep(self.poll_s)


def terminate_with_grace(proc: _Stoppable, grace: float, on_kill: Callable[[], None] | None = None) -> Any:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL and wait; returns what
    `wait()` returns (the exit status of a subprocess.Popen). Works for
    subprocess.Popen and psutil.Process; a process that is already gone is fine."""
    try:
        proc.terminate()
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass
    try:
        return proc.wait(timeout=grace)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        if on_kill is not None:
            on_kill()
        try:
            proc.kill()
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        return proc.wait(timeout=None)
    except psutil.NoSuchProcess:
        return None

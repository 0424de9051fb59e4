"""Small helpers for child processes Scriptbox starts (database, desktop server).

Imports nothing heavy: the desktop launcher uses it and must stay free of
gevent (and needs no database driver).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable

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

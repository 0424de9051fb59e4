"""How the C allocator of a serving process treats large buffers (glibc only).

A flood of output passes through buffers of 64 KiB to a few MiB: pipe reads,
decoded text, orjson's escaped copies, joined events. glibc's defaults treat
them badly for a server. A buffer over the mmap threshold (128 KiB at first)
gets fresh pages from the kernel and gives them back when freed, and the
threshold only follows the largest block freed so far. Free memory at the top
of the heap over twice that threshold goes back to the kernel on every free.
Each time, the next buffer's pages are faulted in and zeroed again. A 200 MB
flood to one viewer cost the server 9-33 thousand page faults and ~12 % of its
CPU (bench/throughput.py, docs/engine.md).

`tune_for_serving()` fixes both thresholds at the top of glibc's own dynamic
range: buffers up to 4 MiB come from the heap and are reused, and up to 64 MiB
of free heap stays mapped for the next burst (glibc's dynamic trim threshold
may grow as far). The cost is memory held while runs keep coming: the server's
RSS stays near its working size instead of falling back between bursts.

Called by `serve` and `worker`, never at import time: the desktop launcher and
the CLI keep glibc's defaults. What a burst left free is given back once the
process has had no run for `IDLE_RELEASE_S` (`IdleRelease`, used by the run
engine's dispatcher), so a server that flooded once does not hold the memory
for the rest of its life.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable

import gevent

log = logging.getLogger("scriptbox")

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
# How long a process has run nothing before its free heap goes back to the
# kernel: long enough that a CI pipeline's next run finds it still there.
IDLE_RELEASE_S = 10.0


def glibc_version() -> str | None:
    """"glibc 2.36" and the like, or None when the C library is not glibc."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name
        return None
    return version or None


def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of the C library when it is glibc, else None."""
    if glibc_version() is None:
        return None
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


def tune_for_serving() -> bool:
    """Set the thresholds above; False (nothing changed) off glibc or when mallopt refuses."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    # mallopt returns 1 on success, 0 on error.
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD_BYTES))
    if not done:
        log.warning("could not set the allocator's thresholds (mallopt refused); output floods will cost more CPU")
    return done


def release_free_memory() -> bool:
    """Give the free memory of the heap back to the kernel (malloc_trim(3)); False off glibc."""
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


class IdleRelease:
    """Calls `release` once the process has stayed idle for `after_s` seconds.

    `became_idle(still_idle)` is called when the last run ends; a run starting
    meanwhile makes `still_idle()` false, and the next end starts the wait again.
    """

    def __init__(self, after_s: float = IDLE_RELEASE_S, release: Callable[[], bool] = release_free_memory) -> None:
        self.after_s = after_s
        self._release = release
        self._pending: gevent.Greenlet | None = None

    def became_idle(self, still_idle: Callable[[], bool]) -> None:
        self.cancel()
        self._pending = gevent.spawn_later(self.after_s, self._release_if, still_idle)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.kill(block=False)
            self._pending = None

    def _release_if(self, still_idle: Callable[[], bool]) -> None:
        self._pending = None
        if still_idle():
            self._release()

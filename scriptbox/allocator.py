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
may grow as far). The cost is memory held after a burst: the server's RSS stays
near its peak instead of falling back.

Called by `serve` and `worker`, never at import time: the desktop launcher and
the CLI keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("scriptbox")

# mallopt(3) parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def glibc_version() -> str | None:
    """"glibc 2.36" and the like, or None when the C library is not glibc."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name
        return None
    return version or None


def tune_for_serving() -> bool:
    """Set the thresholds above; False (nothing changed) off glibc or when mallopt refuses."""
    if glibc_version() is None:
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 on error.
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                  TRIM_THRESHOLD_BYTES))
    if not done:
        log.warning("could not set the allocator's thresholds (mallopt refused); output floods will cost more CPU")
    return done

"""The serving process's allocator keeps large output buffers for reuse
(scriptbox/allocator.py): a flood's buffers are not faulted in afresh for every
read. Each check runs in a fresh interpreter, whose thresholds nothing has
moved yet, and reads glibc's own statistics (mallinfo2)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support._path import REPO

# Allocates and frees a 3 MiB buffer, as a joined SSE event or an orjson copy
# of a flood's text is, and reports where glibc put it and what it kept.
PROBE = """
import ctypes, json, sys
from scriptbox.allocator import tune_for_serving

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
tuned = tune_for_serving() if sys.argv[1] == "tuned" else None
before = libc.mallinfo2().hblks
buffer = bytearray(3 * 1024 * 1024)
during = libc.mallinfo2().hblks
del buffer
print(json.dumps({"tuned": tuned, "mmapped": during - before, "kept": libc.mallinfo2().keepcost}))
"""


def probe(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


def test_a_tuned_process_takes_large_buffers_from_its_heap_and_keeps_them() -> None:
    tuned = probe("tuned")
    assert tuned["tuned"] is True  # CI and the supported servers run glibc
    assert tuned["mmapped"] == 0  # not fresh pages from the kernel
    assert tuned["kept"] >= 3 * 1024 * 1024  # still mapped for the next buffer, not given back


def test_glibc_defaults_map_and_unmap_such_a_buffer() -> None:
    # The probe can tell the difference: without the tuning the same buffer
    # is mapped from the kernel and given back when freed.
    default = probe("default")
    assert default["mmapped"] == 1
    assert default["kept"] < 3 * 1024 * 1024

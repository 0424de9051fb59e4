"""The serving process's allocator keeps large output buffers for reuse
(scriptbox/allocator.py): a flood's buffers are not faulted in afresh for every
read, and what a burst left free goes back to the kernel once no run is left.
The threshold checks run in a fresh interpreter, whose thresholds nothing has
moved yet, and read glibc's own statistics (mallinfo2)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import gevent

from scriptbox.allocator import IDLE_RELEASE_S, IdleRelease
from support import REPO, ScriptboxServer, SseStream, eventually, rss_bytes, start_run, wait_status

MIB = 1024 * 1024

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


class Releases:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> bool:
        self.count += 1
        return True


def test_memory_is_released_once_after_the_process_stays_idle() -> None:
    releases = Releases()
    idle = IdleRelease(after_s=0.05, release=releases)
    idle.became_idle(lambda: True)
    idle.became_idle(lambda: True)  # a second run ended meanwhile: the wait starts again, one release
    gevent.sleep(0.2)
    assert releases.count == 1


def test_memory_is_not_released_while_a_run_started_meanwhile_is_running() -> None:
    releases = Releases()
    idle = IdleRelease(after_s=0.05, release=releases)
    idle.became_idle(lambda: False)
    gevent.sleep(0.2)
    assert releases.count == 0
    idle.became_idle(lambda: True)
    idle.cancel()  # the engine stops
    gevent.sleep(0.2)
    assert releases.count == 0


def test_after_output_floods_the_servers_memory_returns_once_it_is_idle(  # type: ignore[no-untyped-def]
        server_factory) -> None:
    # Two 30 MB floods, one watched live, leave freed buffers the tuned
    # allocator keeps for the next burst; with no run left they go back.
    server: ScriptboxServer = server_factory().start()
    api = server.api()
    assert server.process is not None
    pid = server.process.pid
    flood = api.create_script(script=f"head -c {30 * MIB} /dev/zero | tr '\\0' x")
    warm = start_run(api, api.create_script(script="echo warm")["id"])
    SseStream(api, warm).until_end()
    time.sleep(0.3)
    idle = rss_bytes(pid)
    watched = start_run(api, flood["id"])
    received = sum(len(e.data["data"]) for e in SseStream(api, watched, timeout=120).until_end()
                   if e.event == "output" and not e.data.get("system"))
    unwatched = start_run(api, flood["id"])
    assert wait_status(api, watched)["status"] == wait_status(api, unwatched)["status"] == "succeeded"
    assert received == 30 * MIB
    eventually(lambda: rss_bytes(pid) - idle < 12 * MIB, timeout=IDLE_RELEASE_S + 20, interval=0.5,
               message="the server's RSS back within 12 MiB of idle")

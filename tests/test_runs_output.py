"""Large output: the stored log is capped and marked, the tail is bounded, live
viewers get everything, and the server's memory stays flat."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from support import ScriptboxServer, SseStream, rss_bytes, start_run, wait_status

MIB = 1024 * 1024
# 30 MiB of 100-byte lines (the last one cut short).
LINE = "0123456789" * 9 + "012345678\n"
SCRIPT_30MB = f"yes '{LINE[:-1]}' | head -c {30 * MIB}"


def test_30mb_of_output_is_capped_in_the_log_live_for_viewers_and_memory_stays_bounded(  # type: ignore[no-untyped-def]
        server_factory, tmp_path: Path) -> None:
    server: ScriptboxServer = server_factory(env={"SCRIPTBOX_MAX_LOG_BYTES": str(4 * MIB),
                                                   "SCRIPTBOX_TAIL_BYTES": "4096"}).start()
    api = server.api()
    assert server.process is not None
    # The script waits for its viewer: output past the cap goes only to the
    # viewers connected then (a run starts in a few ms, and 30 MB can be
    # through before a viewer that connects after POST /run has answered).
    gate = tmp_path / "viewer-connected"
    definition = api.create_script(script=f"while [ ! -e {gate} ]; do sleep 0.01; done; {SCRIPT_30MB}")
    # Warm up (first run, first SSE stream) before measuring the idle baseline.
    warm = start_run(api, api.create_script(script="echo warm")["id"])
    SseStream(api, warm).until_end()
    time.sleep(0.3)
    idle = rss_bytes(server.process.pid)
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_bytes(server.process.pid))  # type: ignore[union-attr]
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    run_id = start_run(api, definition["id"])
    received = 0
    events = 0
    try:
        stream = SseStream(api, run_id, timeout=120)
        for event in stream.events():
            if event.event == "status":
                gate.touch()
            if event.event == "output" and not event.data.get("system"):
                received += len(event.data["data"])
                events += 1
            if event.event == "end":
                break
    finally:
        done.set()
        sampler.join()

    run = wait_status(api, run_id)
    assert run["status"] == "succeeded"
    assert received == 30 * MIB  # the live viewer got every byte
    assert run["meta"]["outputBytes"] == 30 * MIB
    assert run["meta"]["logTruncated"] is True
    assert len(run["outputTail"].encode()) <= 4096
    expected_end = (LINE * (30 * MIB // len(LINE) + 1))[: 30 * MIB]
    assert expected_end.endswith(run["outputTail"])
    assert len(run["outputTail"]) > 4000

    log = api.get(f"/api/admin/scripts/runs/{run_id}/log").content
    marker = b"[scriptbox] stored log limit of 4194304 bytes reached"
    assert marker in log
    stored = log[: log.index(b"\n[scriptbox] stored log limit")]
    assert len(stored) == 4 * MIB
    assert len(log) < 4 * MIB + 200

    # A late viewer replays the capped log plus the marker, then the end.
    replay = SseStream(api, run_id).until_end()
    assert any(e.event == "output" and e.data.get("system") for e in replay)
    assert replay[-1].event == "end"

    growth = peak - idle
    assert growth < 60 * MIB, f"server RSS grew by {growth / MIB:.1f} MiB (idle {idle / MIB:.1f} MiB)"


def test_a_viewer_that_stops_reading_does_not_stall_the_run_forever(server_factory) -> None:  # type: ignore[no-untyped-def]
    # A viewer that never reads holds the script back for a while (backpressure)
    # and is then disconnected; the run itself completes.
    server: ScriptboxServer = server_factory().start()
    api = server.api()
    definition = api.create_script(script="head -c 20000000 /dev/zero | tr '\\0' x", timeoutMs=120_000)
    run_id = start_run(api, definition["id"])
    stuck = api.get(f"/api/admin/scripts/runs/{run_id}/stream", stream=True)
    assert stuck.status_code == 200
    run = wait_status(api, run_id, timeout=60)
    stuck.close()
    assert run["status"] == "succeeded"
    assert run["meta"]["outputBytes"] == 20_000_000

"""Live output is immediate when idle and fast in bulk (issue 16): guards against gross regressions only.

The margins are wide on purpose (the suite shares two cores with other work):
the old delivery held output for a 100 ms batch (median lag ~50 ms for lines
10-30 ms apart) and this asserts a median well under that; the throughput check
fails only if delivery to one SSE client falls to a small fraction of what a
plain pipe reader gets on the same machine at the same moment.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from datetime import datetime

from support import Api, SseStream, get_run, output_text, start_run, wait_status

LINES = 40


def _lags(api: Api, script_id: str) -> tuple[list[float], list[float], list[str]]:
    """For the lines printed once the viewer was subscribed: (printed -> parsed here, for every
    line; printed -> handed to the viewers, the event's `at`, for the first line of each event),
    and every line in order."""
    run_id = start_run(api, script_id)
    stream = SseStream(api, run_id)
    subscribed = float("inf")
    lags: list[float] = []
    handed: list[float] = []
    lines: list[str] = []
    pending = ""
    for event in stream.events():
        arrived = time.time()
        subscribed = min(subscribed, arrived)  # the first event (status) comes once the viewer is subscribed
        if event.event == "output":
            starts_a_line = not pending
            pending += event.data["data"]
            *complete, pending = pending.split("\n")
            for i, line in enumerate(complete):
                lines.append(line)
                printed = float(line.split(" ")[1])
                if printed >= subscribed:
                    lags.append(arrived - printed)
                    if i == 0 and starts_a_line:
                        at = datetime.fromisoformat(event.data["at"].replace("Z", "+00:00")).timestamp()
                        handed.append(at - printed)
        elif event.event == "end":
            break
    stream.close()
    return lags, handed, lines


def test_a_line_printed_by_an_idle_run_reaches_a_connected_viewer_well_within_the_old_batch(api: Api) -> None:
    # A line every 20 ms. The old reader held each line that followed another
    # within 100 ms until that batch was due: the first line of each event had
    # waited 80-100 ms in the server, and lines reached the viewer ~50 ms late
    # on average (measured: 56 ms; ~90 ms with the machine under load).
    script = f'sleep 0.5; for i in $(seq 1 {LINES}); do echo "$i $EPOCHREALTIME"; sleep 0.02; done'
    definition = api.create_script(script=script)
    lags, handed, lines = _lags(api, definition["id"])
    assert [int(line.split(" ")[0]) for line in lines] == list(range(1, LINES + 1))  # none lost, in order
    assert len(lags) >= LINES // 2, f"the viewer subscribed too late to measure: {len(lags)} live lines"
    # In the server (printed -> handed to the viewers): ~1 ms idle, ~10 ms on a loaded machine.
    assert statistics.median(handed) < 0.05, f"printed -> handed on: {sorted(handed)}"
    # End to end (with the delivery to this client, which load slows most): a gross-regression guard.
    assert statistics.median(lags) < 0.1, f"printed -> parsed here: {sorted(lags)}"


def test_the_stored_log_groups_lines_but_a_viewer_resuming_anywhere_misses_nothing(api: Api) -> None:
    # 60 lines 10 ms apart go out one by one live, but are stored grouped (~100 ms per chunk).
    script = 'for i in $(seq 1 60); do echo "line-$i"; sleep 0.01; done'
    definition = api.create_script(script=script)
    run_id = start_run(api, definition["id"])
    live = SseStream(api, run_id).until_end()
    outputs = [e for e in live if e.event == "output"]
    expected = "".join(f"line-{i}\n" for i in range(1, 61))
    assert output_text(outputs) == expected
    run = wait_status(api, run_id)
    assert run["status"] == "succeeded"
    stored = api.get(f"/api/admin/scripts/runs/{run_id}/chunks", params={"limit": 1000}).json()["chunks"]
    assert "".join(c["data"] for c in stored) == expected
    assert len(stored) < 40, f"{len(stored)} stored chunks for 60 lines over ~0.6 s"
    # Resuming after any live id (inside a stored chunk or at its end) replays exactly the rest.
    for event in outputs[:: max(1, len(outputs) // 8)]:
        rest = SseStream(api, run_id, last_event_id=event.id).until_end()
        before = output_text([e for e in outputs if e.id is not None and e.id <= (event.id or 0)])
        assert before + output_text(rest) == expected, f"resumed after {event.id}"
        ids = [e.id for e in rest if e.event == "output"]
        assert ids == sorted(set(ids)) and all(i is not None and i > (event.id or 0) for i in ids)
        page = api.get(f"/api/admin/scripts/runs/{run_id}/chunks", params={"after": event.id}).json()["chunks"]
        assert before + "".join(c["data"] for c in page) == expected


def _pipe_rate(command: str, total: int) -> float:
    """MB/s of the command's output read through a pipe by this process (64 KiB reads)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    received = 0
    while chunk := os.read(proc.stdout.fileno(), 65536):
        received += len(chunk)
    proc.wait()
    proc.stdout.close()
    assert received == total
    return total / (time.perf_counter() - t0) / 1e6


def _sse_rate(api: Api, script_id: str, total: int) -> float:
    """MB/s from POST /run to `end` for one SSE client, every byte checked."""
    t0 = time.perf_counter()
    run_id = start_run(api, script_id)
    received = sum(len(e.data["data"]) for e in SseStream(api, run_id, timeout=120).until_end()
                   if e.event == "output" and not e.data.get("system"))
    elapsed = time.perf_counter() - t0
    assert received == total
    assert get_run(api, run_id)["status"] == "succeeded"
    return total / elapsed / 1e6


def test_output_reaches_one_sse_client_at_a_sizeable_fraction_of_a_plain_pipe_reader(api: Api) -> None:
    total = 10_000_000
    command = f"yes '{'x' * 99}' | head -c {total}"
    definition = api.create_script(script=command, timeoutMs=300_000)
    # Best of two each, interleaved, so both sides see the same machine load.
    pipe, sse = [], []
    for _ in range(2):
        pipe.append(_pipe_rate(command, total))
        sse.append(_sse_rate(api, definition["id"], total))
    ratio = max(sse) / max(pipe)
    # ~25-40 % on an idle 2-core machine, ~5 % with the load of a parallel test run;
    # a regression to per-line events or per-byte Python work falls far below this.
    assert ratio > 0.025, f"SSE {sse} MB/s vs pipe {pipe} MB/s"

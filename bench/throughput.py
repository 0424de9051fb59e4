"""Benchmark 2: output throughput.

A script writes 200 MB to stdout; one live SSE client receives it. Reports the
delivered MB/s, next to the raw rate of the same command into /dev/null, and
the server's RSS (idle, and its peak: VmHWM).

    .venv/bin/python bench/throughput.py [--mb 200]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from _harness import BenchServer, mib, sse_events

LINE = "x" * 99


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    total = args.mb * 1_000_000
    command = f"yes '{LINE}' | head -c {total}"

    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", command + " > /dev/null"], check=True)
    raw = time.perf_counter() - t0

    server = BenchServer()
    try:
        script_id = server.create_script(script=command, timeoutMs=600_000)
        warm = server.start_run(server.create_script(script="echo warm"))
        with server.session.get(server.base + f"/api/admin/scripts/runs/{warm}/stream", stream=True) as r:
            for name, _, _ in sse_events(r):
                if name == "end":
                    break
        time.sleep(0.5)
        idle = server.rss()
        server.reset_peak_rss()
        cpu0 = server.cpu_seconds()
        received = 0
        events = 0
        t0 = time.perf_counter()
        run_id = server.start_run(script_id)
        with server.session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True) as r:
            for name, _, data in sse_events(r):
                if name == "output" and not data.get("system"):
                    received += len(data["data"])
                    events += 1
                elif name == "end":
                    break
        elapsed = time.perf_counter() - t0
        cpu = server.cpu_seconds() - cpu0
        peak = server.rss("VmHWM")
        run = server.run(run_id)
        assert received == total, (received, total)
        assert run["status"] == "succeeded", run["status"]
        print(f"raw pipe into /dev/null:     {total / raw / 1e6:8.1f} MB/s ({raw:.2f} s)")
        print(f"delivered to one SSE client: {total / elapsed / 1e6:8.1f} MB/s ({elapsed:.2f} s, {events} events)")
        print(f"server CPU during the run:   {cpu:.2f} s")
        print(f"server RSS: idle {mib(idle)}, peak during the run {mib(peak)} (+{mib(peak - idle)})")
        print(f"stored log: truncated={run['meta']['logTruncated']}, outputBytes={run['meta']['outputBytes']}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

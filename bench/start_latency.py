"""Benchmark 1: start latency.

POST /run -> first output byte at an SSE client, for `echo hi`, 200 runs one
after another; next to a bare `bash -lc 'echo hi'` spawn (Popen -> first
stdout byte) measured in this same process, interleaved with the runs. Both
sides get the same environment, by default with an empty HOME so that neither
reads this user's shell profile.

    .venv/bin/python bench/start_latency.py [--runs 200] [--home empty|user]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

import requests
from _harness import BenchServer, bench_home, sse_events, summary


def bare_spawn(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "-lc", "echo hi"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    proc.stdout.read(1)
    elapsed = time.perf_counter() - t0
    proc.stdout.read()
    proc.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--home", choices=("user", "empty"), default="empty",
                        help="HOME for bash -l: this user's (its profile scripts may be slow) or an empty directory")
    args = parser.parse_args()
    with bench_home(args.home) as env:
        measure(args.runs, env, args.home)


def measure(runs: int, env: dict[str, str], home: str) -> None:
    server = BenchServer(env=env)
    try:
        script_id = server.create_script(script="echo hi")
        post_session = requests.Session()
        post_session.auth = server.session.auth
        stream_session = requests.Session()
        stream_session.auth = server.session.auth
        for _ in range(5):  # warm up connections and code paths
            bare_spawn(env)
            run_id = server.start_run(script_id, post_session)
            with stream_session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True) as r:
                for name, _, _ in sse_events(r):
                    if name == "end":
                        break
        latencies, bare = [], []
        for _ in range(runs):
            # Interleaved, so both see the same machine load.
            bare.append(bare_spawn(env))
            t0 = time.perf_counter()
            run_id = server.start_run(script_id, post_session)
            with stream_session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True) as r:
                first = None
                for name, _, data in sse_events(r):
                    if name == "output" and first is None:
                        first = time.perf_counter() - t0
                        assert data["data"] == "hi\n", data
                    if name == "end":
                        break
            assert first is not None
            latencies.append(first)
        print(f"{runs} runs one after another, HOME {home} on both sides")
        print(f"POST run -> first SSE output byte:       {summary(latencies)}")
        print(f"bare `bash -lc 'echo hi'` -> first byte: {summary(bare)}")
        print(f"difference of medians: {(statistics.median(latencies) - statistics.median(bare)) * 1000:.1f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Benchmark 4: soak at volume.

The workload of tests/test_soak.py (instant, chatty, long, failing, timing-out
and cancelled bash runs from keep-alive clients that follow each run over SSE,
plus viewers that connect to random runs and drop mid-stream) for a chosen
duration against a real server with its embedded database. Prints runs/s
completed, POST -> first SSE output latency (p50/p99; the `long` script, which
prints after 2 s, is left out) beside a raw `bash -lc 'echo hi'` spawn sampled
in this process during the soak, server and database RSS over time, and the
checks of the test: exact end states and logs, no run process left.

    .venv/bin/python bench/soak.py [--seconds 120] [--clients 8] [--viewers 4] [--slots 8]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from datetime import datetime

from _harness import AUTH, BenchServer, bench_home, mib, rss, summary
from start_latency import bare_spawn

from tests.support.client import Api
from tests.support.soak import Workload, check_runs, live_run_ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=8, help="SCRIPTBOX_MAX_CONCURRENT_RUNS")
    parser.add_argument("--sample-every", type=float, default=10.0)
    args = parser.parse_args()
    with bench_home() as env:
        env = {**env, "SCRIPTBOX_MAX_CONCURRENT_RUNS": str(args.slots)}
        measure(args, env)


def queue_waits(workload: Workload) -> list[float]:
    """startedAt - createdAt of every run that started, from the run documents."""
    waits = []
    for item in workload.started:
        run = workload.api.get(f"/api/admin/scripts/runs/{item.run_id}").json()
        if run["startedAt"]:
            started, created = (datetime.fromisoformat(run[k].rstrip("Z")) for k in ("startedAt", "createdAt"))
            waits.append((started - created).total_seconds())
    return waits


def measure(args: argparse.Namespace, env: dict[str, str]) -> None:
    server = BenchServer(env=env)
    try:
        db_pid = server.db_pid()
        assert db_pid is not None
        workload = Workload.create(Api(server.base, auth=AUTH), clients=args.clients, viewers=args.viewers)
        workload.run_for(5.0)  # warm-up
        warm = len(workload.started)
        samples: list[tuple[float, int, int, int]] = []
        bare: list[float] = []
        t0 = time.monotonic()
        stop = threading.Event()

        def sampler() -> None:
            next_sample = 0.0
            while not stop.is_set():
                now = time.monotonic() - t0
                if now >= next_sample:
                    done = sum(1 for s in workload.started[warm:] if s.ended_at is not None)
                    samples.append((now, done, rss(server.proc.pid), rss(db_pid)))
                    next_sample += args.sample_every
                bare.append(bare_spawn(env))  # the raw baseline, under the same load
                stop.wait(0.5)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        workload.run_for(args.seconds)
        elapsed = time.monotonic() - t0
        stop.set()
        thread.join()
        measured = workload.started[warm:]
        done = [s for s in measured if s.ended_at is not None and s.ended_at - t0 <= elapsed]
        latencies = [s.first_event_at - s.requested_at for s in measured
                     if s.first_event_at is not None and s.kind.name != "long"]
        by_kind: dict[str, int] = {}
        for s in measured:
            by_kind[s.kind.name] = by_kind.get(s.kind.name, 0) + 1
        print(f"load average at the end (1/5/15 min): {os.getloadavg()}")
        print(f"{args.seconds:.0f} s soak, {args.clients} clients following over SSE, {args.viewers} dropping "
              f"viewers, {args.slots} slots; {len(measured)} runs started {by_kind}")
        print(f"completed: {len(done)} runs, {len(done) / elapsed:.1f} runs/s")
        print(f"POST run -> first SSE output:            {summary(latencies)}")
        print(f"createdAt -> startedAt (queue + claim):  {summary(queue_waits(workload))}")
        print(f"raw `bash -lc 'echo hi'` -> first byte:  {summary(bare)}")
        print("t (s)   runs done   server RSS   database RSS")
        for at, count, server_rss, db_rss in samples:
            print(f"{at:6.0f}  {count:10d}   {mib(server_rss):>10}   {mib(db_rss):>12}")
        print(f"end     {len(done):10d}   {mib(rss(server.proc.pid)):>10}   {mib(rss(db_pid)):>12}")
        time.sleep(2.0)  # the last runs record their end
        problems = check_runs(workload.api, workload.started)
        leftovers = live_run_ids() & {s.run_id for s in workload.started}
        print(f"client errors: {len(workload.errors)}; runs not as scripted: {len(problems)}; "
              f"runs with processes left: {len(leftovers)}; server alive: {server.proc.poll() is None}")
        for line in (workload.errors + problems)[:10]:
            print("  ", line)
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Benchmark 4: the interfaces for tools (OpenAPI document, metrics).

Latency of GET /metrics (a scrape: process metrics, counters, and one
aggregation over script_runs for the queued/running gauges) and of
GET /api/openapi.json (built on first use, then cached), interleaved with
GET /healthz (auth-free, one database ping) on the same server as the raw
baseline, all through one keep-alive session.

    .venv/bin/python bench/tools.py [--requests 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import requests
from _harness import AUTH, BenchServer, bench_home, summary


def timed(session: requests.Session, url: str) -> float:
    t0 = time.perf_counter()
    response = session.get(url, timeout=30)
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with bench_home() as env:
        server = BenchServer(env=env)
        try:
            session = requests.Session()
            session.auth = AUTH
            script_id = server.create_script(script="true")
            for _ in range(50):  # a run history for the gauges' aggregation over script_runs
                server.start_run(script_id, session)
            first_doc = timed(session, server.base + "/api/openapi.json")
            results: dict[str, list[float]] = {"healthz": [], "metrics": [], "openapi": []}
            for _ in range(args.requests):
                results["healthz"].append(timed(session, server.base + "/healthz"))
                results["metrics"].append(timed(session, server.base + "/metrics"))
                results["openapi"].append(timed(session, server.base + "/api/openapi.json"))
            size = len(session.get(server.base + "/metrics", timeout=30).content)
            print(f"{args.requests} requests each, interleaved, one keep-alive session")
            print(f"GET /healthz (baseline):       {summary(results['healthz'])}")
            print(f"GET /metrics ({size} bytes):  {summary(results['metrics'])}")
            print(f"GET /api/openapi.json:         {summary(results['openapi'])} (first, building it: "
                  f"{first_doc * 1000:.1f} ms)")
            base = statistics.median(results["healthz"])
            print(f"scrape - baseline, medians: {(statistics.median(results['metrics']) - base) * 1000:.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

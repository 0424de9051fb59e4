"""Benchmark: what API tokens and run-and-wait cost.

1. GET /api/admin/scripts/runs/:id with Basic auth (the verified password is
   cached), with an admin token and with a run token limited to the script (one
   token lookup, plus the run lookup for the scope check), interleaved, next to
   GET /healthz (no auth) on the same server as the raw baseline.
2. `echo hi` to its finished run: POST ?wait=30 (one request) against POST
   then the SSE stream until `end` (what a client did before), interleaved.

    .venv/bin/python bench/tokens.py [--requests 300] [--runs 40]
"""

from __future__ import annotations

import argparse
import time

import requests
from _harness import BenchServer, bench_home, sse_events, summary


def timed_get(session: requests.Session, url: str) -> float:
    t0 = time.perf_counter()
    answer = session.get(url, timeout=30)
    elapsed = time.perf_counter() - t0
    assert answer.status_code == 200, answer.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    with bench_home("empty") as env:
        server = BenchServer(env=env)
        try:
            script_id = server.create_script(script="echo hi")
            run_id = server.start_run(script_id)
            tokens = {}
            for scope, ids in (("admin", []), ("run", [script_id])):
                answer = server.session.post(server.base + "/api/admin/tokens", timeout=30,
                                             json={"name": f"bench-{scope}", "scope": scope, "scriptIds": ids})
                answer.raise_for_status()
                tokens[scope] = requests.Session()
                tokens[scope].headers["Authorization"] = f"Bearer {answer.json()['token']}"
            bare = requests.Session()
            run_url = server.base + f"/api/admin/scripts/runs/{run_id}"
            samples: dict[str, list[float]] = {"healthz": [], "basic": [], "admin": [], "run": []}
            for _ in range(10):  # warm-up (connections, the password cache)
                timed_get(server.session, run_url)
                timed_get(tokens["run"], run_url)
            for _ in range(args.requests):
                samples["healthz"].append(timed_get(bare, server.base + "/healthz"))
                samples["basic"].append(timed_get(server.session, run_url))
                samples["admin"].append(timed_get(tokens["admin"], run_url))
                samples["run"].append(timed_get(tokens["run"], run_url))

            waited: list[float] = []
            streamed: list[float] = []
            run_path = server.base + f"/api/admin/scripts/{script_id}/run"
            for _ in range(args.runs):
                t0 = time.perf_counter()
                answer = tokens["run"].post(run_path + "?wait=30", timeout=60)
                waited.append(time.perf_counter() - t0)
                assert answer.status_code == 200 and answer.json()["status"] == "succeeded", answer.text
                t0 = time.perf_counter()
                new_run = server.start_run(script_id, tokens["run"])
                with tokens["run"].get(server.base + f"/api/admin/scripts/runs/{new_run}/stream", stream=True,
                                       timeout=60) as stream:
                    for name, _, _ in sse_events(stream):
                        if name == "end":
                            break
                streamed.append(time.perf_counter() - t0)
        finally:
            server.stop()

    print(f"GET one run, {args.requests} requests each, interleaved")
    print(f"raw: GET /healthz (no auth):     {summary(samples['healthz'])}")
    print(f"Basic auth (cached password):    {summary(samples['basic'])}")
    print(f"admin token:                     {summary(samples['admin'])}")
    print(f"run token (scope check):         {summary(samples['run'])}")
    print(f"`echo hi` to its finished run, {args.runs} runs each, interleaved")
    print(f"POST ?wait=30 (one request):     {summary(waited)}")
    print(f"raw: POST + SSE until `end`:     {summary(streamed)}")


if __name__ == "__main__":
    main()

"""Benchmark: several processes on one database (`serve --no-worker` + workers).

With change streams (SCRIPTBOX_CHANGE_STREAMS=auto) and, as the baseline in
this same process, the polling fallback (=off), on one embedded SecantusDB:

- runs/s completed with 1, 2 and 3 workers (4 slots each) for an instant
  script (`true`) and a 100 ms one (`sleep 0.1`): --runs runs submitted by 4
  client threads through the no-worker server, first POST to last end;
- pickup latency of an idle worker: createdAt -> startedAt of runs submitted
  one at a time (p50/p99);
- cross-process line lag: a script on a worker prints its clock every 100 ms,
  a viewer of the no-worker server notes the arrival (p50/p99);
- output persistence: 10 chatty runs (a line every 10 ms for 3 s): chunk
  documents/s stored and bulk inserts/s (the database's `top` counters).

Every figure is repeated --reps times; prints median and spread. The 2 cores
of the development VM are shared: expect noise.

    .venv/bin/python bench/cluster.py [--runs 60] [--reps 3] [--modes auto,off] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from _harness import bench_home, spread
from pymongo import MongoClient

from scriptbox.embedded_db import EmbeddedDatabase
from tests.support.client import Api
from tests.support.cluster import RUNS_STREAM_OPEN, Cluster
from tests.support.sse import SseStream

CHATTY = "for i in $(seq 300); do echo line $i; sleep 0.01; done"
TICKER = "sleep 0.3; for i in $(seq {lines}); do date +%s.%N; sleep 0.1; done"


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_idle(api: Api, script_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = api.get(f"/api/admin/scripts/runs?scriptId={script_id}&status=queued,running&limit=1").json()
        if not page["runs"]:
            return
        time.sleep(0.05)
    raise RuntimeError("runs did not finish")


def runs_per_second(cluster: Cluster, script: str, runs: int) -> float:
    api = cluster.server.api()
    script_id = api.create_script(script=script)["id"]
    started = time.perf_counter()

    def submit(_: int) -> None:
        response = cluster.server.api().post(f"/api/admin/scripts/{script_id}/run")
        assert response.status_code == 202, response.text

    with ThreadPoolExecutor(4) as clients:
        list(clients.map(submit, range(runs)))
    wait_idle(api, script_id)
    return runs / (time.perf_counter() - started)


def pickup_latencies(cluster: Cluster, count: int) -> list[float]:
    api = cluster.server.api()
    script_id = api.create_script(script="true")["id"]
    out = []
    for _ in range(count):
        run_id = api.post(f"/api/admin/scripts/{script_id}/run").json()["runId"]
        while True:
            run = api.get(f"/api/admin/scripts/runs/{run_id}").json()
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(0.02)
        out.append(_at(run["startedAt"]) - _at(run["createdAt"]))
        time.sleep(0.05)
    return out


def line_lags(cluster: Cluster, lines: int) -> list[float]:
    api = cluster.server.api()
    script_id = api.create_script(script=TICKER.format(lines=lines))["id"]
    run_id = api.post(f"/api/admin/scripts/{script_id}/run").json()["runId"]
    stream = SseStream(api, run_id, timeout=120)
    lags = stream.clock_lags()
    stream.close()
    return lags


def chatty_writes(cluster: Cluster, database: MongoClient[dict[str, Any]], runs: int = 10) -> tuple[float, float]:
    """(chunk documents/s, bulk inserts/s) while `runs` chatty runs execute."""
    api = cluster.server.api()
    script_id = api.create_script(script=CHATTY)["id"]
    ns = f"{cluster.db_name}.script_run_output"

    def inserts() -> int:
        totals = database.admin.command("top")["totals"].get(ns) or {}
        return int((totals.get("insert") or {}).get("count", 0))

    docs0, ops0 = database[cluster.db_name].script_run_output.count_documents({}), inserts()
    started = time.perf_counter()
    for _ in range(runs):
        assert api.post(f"/api/admin/scripts/{script_id}/run").status_code == 202
    wait_idle(api, script_id)
    elapsed = time.perf_counter() - started
    docs = database[cluster.db_name].script_run_output.count_documents({}) - docs0
    return docs / elapsed, (inserts() - ops0) / elapsed


def measure_mode(mode: str, uri: str, env: dict[str, str], args: argparse.Namespace,
                 client: MongoClient[dict[str, Any]]) -> dict[str, list[float]]:
    root = Path(tempfile.mkdtemp(prefix=f"scriptbox-bench-cluster-{mode}-"))
    cluster = Cluster(root, uri, workers=3, env={**env, "SCRIPTBOX_CHANGE_STREAMS": mode})
    wait_for = RUNS_STREAM_OPEN if mode == "auto" else None
    results: dict[str, list[float]] = {}
    only = set(args.only.split(",")) if args.only else None

    def record(name: str, fn: Callable[[], Any]) -> None:
        if only is not None and name.split(" ")[0] not in only:
            return
        for _ in range(args.reps):
            value = fn()
            results.setdefault(name, []).extend(value if isinstance(value, list) else [value])

    cluster.server.start()
    try:
        for n, worker in enumerate(cluster.workers, start=1):
            worker.start()
            cluster.start_wait(wait_for)
            record(f"runs/s {n}w true", lambda: runs_per_second(cluster, "true", args.runs))
            record(f"runs/s {n}w sleep0.1", lambda: runs_per_second(cluster, "sleep 0.1", args.runs))
        record("pickup", lambda: pickup_latencies(cluster, 20))
        lag_p50: list[float] = []
        lag_p99: list[float] = []

        def lags() -> list[float]:
            got = line_lags(cluster, 30)
            lag_p50.append(statistics.median(got))
            lag_p99.append(pct(got, 0.99))
            return got

        record("lag", lags)
        if lag_p50:
            results["lag p50 per rep"], results["lag p99 per rep"] = lag_p50, lag_p99
        writes: list[tuple[float, float]] = []
        record("chatty", lambda: writes.append(chatty_writes(cluster, client)) or [])
        if writes:
            results["chatty docs/s"] = [w[0] for w in writes]
            results["chatty inserts/s"] = [w[1] for w in writes]
    except BaseException:
        # Keep what the processes said for the post-mortem.
        (root / "server.log").write_text(cluster.server.text)
        for i, worker in enumerate(cluster.workers):
            (root / f"worker{i}.log").write_text(worker.text)
        print(f"logs kept in {root}", flush=True)
        raise
    finally:
        cluster.stop()
    return results


def report(mode: str, results: dict[str, list[float]]) -> None:
    print(f"\n== SCRIPTBOX_CHANGE_STREAMS={mode}")
    for name, values in results.items():
        if not values:
            continue
        if name in ("pickup", "lag"):
            print(f"{name:>22}: p50 {statistics.median(values) * 1000:.1f} ms, p99 {pct(values, 0.99) * 1000:.1f} ms "
                  f"(n={len(values)}, min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")
        elif name.startswith("lag "):
            print(f"{name:>22}: {spread(values, ' ms', scale=1000)}")
        else:
            print(f"{name:>22}: {spread(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--modes", default="auto,off")
    parser.add_argument("--only", default="", help="runs/s,pickup,lag,chatty (default: all)")
    args = parser.parse_args()
    database = EmbeddedDatabase(Path(tempfile.mkdtemp(prefix="scriptbox-bench-db-")))
    uri = database.start()
    assert database.credential is not None
    uri = database.credential.uri(uri)
    client: MongoClient[dict[str, Any]] = MongoClient(uri)
    try:
        with bench_home() as env:
            for mode in args.modes.split(","):
                report(mode, measure_mode(mode, uri, env, args, client))
    finally:
        client.close()
        database.stop()


if __name__ == "__main__":
    main()

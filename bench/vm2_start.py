"""Benchmark: a vm2 run of `console.log(1)`, POST /run -> end, with the sandbox pool on and off.

Two servers (SCRIPTBOX_VM2_POOL at its default, and 0), measured interleaved
with a bare `node -e "console.log(1)"` spawn in this same process (Popen ->
exit), so all three see the same machine load. POST uses `?wait=60`, which
answers when the run has ended: one request from POST to end.

    .venv/bin/python bench/vm2_start.py [--runs 40] [--pool 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time

import requests
from _harness import BenchServer, bench_home, summary


def bare_node(node: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([node, "-e", "console.log(1)"], stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
                   check=True)
    return time.perf_counter() - t0


def timed_run(server: BenchServer, script_id: str, session: requests.Session) -> float:
    t0 = time.perf_counter()
    r = session.post(server.base + f"/api/admin/scripts/{script_id}/run?wait=60", timeout=90)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    run = r.json()
    assert r.status_code == 200 and run["status"] == "succeeded", run
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--pool", type=int, default=2, help="SCRIPTBOX_VM2_POOL of the pooled server")
    args = parser.parse_args()
    node = shutil.which("node")
    assert node is not None, "node is not on PATH"
    with bench_home() as env:
        pooled = BenchServer(env={**env, "SCRIPTBOX_VM2_POOL": str(args.pool)})
        unpooled = BenchServer(env={**env, "SCRIPTBOX_VM2_POOL": "0"})
        try:
            measure(args.runs, node, env, pooled, unpooled, args.pool)
        finally:
            pooled.stop()
            unpooled.stop()


def measure(runs: int, node: str, env: dict[str, str], pooled: BenchServer, unpooled: BenchServer,
            pool: int) -> None:
    sides = []
    for server in (pooled, unpooled):
        session = requests.Session()
        session.auth = server.session.auth
        script_id = server.create_script(type="node", runner="vm2", script="console.log(1)")
        sides.append((server, script_id, session))
    for _ in range(3):  # warm up connections, code paths and the pool
        bare_node(node, env)
        for server, script_id, session in sides:
            timed_run(server, script_id, session)
    on: list[float] = []
    off: list[float] = []
    bare: list[float] = []
    for _ in range(runs):
        # Interleaved, so all three see the same machine load.
        bare.append(bare_node(node, env))
        on.append(timed_run(sides[0][0], sides[0][1], sides[0][2]))
        off.append(timed_run(sides[1][0], sides[1][1], sides[1][2]))
    print(f"vm2 `console.log(1)`, {runs} runs one after another, POST ?wait=60 -> end")
    print(f"pool on (SCRIPTBOX_VM2_POOL={pool}):      {summary(on)}")
    print(f"pool off (SCRIPTBOX_VM2_POOL=0):     {summary(off)}")
    print(f"bare `node -e console.log(1)` spawn: {summary(bare)}")
    print(f"pool on / pool off, medians: {statistics.median(on) / statistics.median(off):.2f}")


if __name__ == "__main__":
    main()

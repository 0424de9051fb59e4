"""Benchmark 3: fan-out.

20 concurrent runs, each printing a line every 10 ms for 10 s, watched by 100
SSE viewers (5 per run). Checks that every viewer receives every line of its
run, in order; reports server CPU, RSS, events and database documents.

    .venv/bin/python bench/fanout.py [--runs 20] [--viewers 100] [--seconds 10]
"""

from __future__ import annotations

import argparse
import threading
import time

import requests
from _harness import AUTH, BenchServer, mib, sse_events

NODE_SCRIPT = """
const total = Number(process.env.LINES);
let i = 0;
const timer = setInterval(() => {
  i += 1;
  process.stdout.write(`line ${i}\\n`);
  if (i >= total) clearInterval(timer);
}, 10);
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    lines = int(args.seconds * 100)

    server = BenchServer(env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": str(args.runs)})
    try:
        script_id = server.create_script(type="node", script=NODE_SCRIPT, env=[{"key": "LINES", "value": str(lines)}])
        run_ids = [server.start_run(script_id) for _ in range(args.runs)]
        results: dict[int, tuple[bool, int, int]] = {}
        ready = threading.Barrier(args.viewers + 1)

        def view(index: int) -> None:
            run_id = run_ids[index % len(run_ids)]
            session = requests.Session()
            session.auth = AUTH
            expected = 1
            ok = True
            events = 0
            pending = ""
            ready.wait()
            with session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True,
                             timeout=120) as r:
                for name, _, data in sse_events(r):
                    if name == "output":
                        events += 1
                        pending += data["data"]
                        *complete, pending = pending.split("\n")
                        for line in complete:
                            ok = ok and line == f"line {expected}"
                            expected += 1
                    elif name == "end":
                        break
            results[index] = (ok and pending == "", expected - 1, events)

        threads = [threading.Thread(target=view, args=(i,)) for i in range(args.viewers)]
        for t in threads:
            t.start()
        server.reset_peak_rss()
        idle = server.rss()
        cpu0 = server.cpu_seconds()
        t0 = time.perf_counter()
        ready.wait()
        for t in threads:
            t.join(300)
        elapsed = time.perf_counter() - t0
        cpu = server.cpu_seconds() - cpu0
        peak = server.rss("VmHWM")
        complete = sum(1 for ok, n, _ in results.values() if ok and n == lines)
        events = sum(e for _, _, e in results.values())
        statuses = {server.run(r)["status"] for r in run_ids}
        stored_lines = sum(len(server.session.get(server.base + f"/api/admin/scripts/runs/{r}/log").text.splitlines())
                           for r in run_ids)
        print(f"{args.runs} runs x {lines} lines, {args.viewers} viewers: "
              f"{complete}/{args.viewers} viewers got every line in order; run statuses {sorted(statuses)}")
        print(f"wall {elapsed:.1f} s; server CPU {cpu:.2f} s ({cpu / elapsed * 100:.0f}% of one core)")
        print(f"SSE output events delivered: {events} ({events / elapsed:.0f}/s) for "
              f"{args.viewers * lines} lines ({args.viewers * lines / elapsed:.0f} lines/s)")
        print(f"server RSS: idle {mib(idle)}, peak {mib(peak)} (+{mib(peak - idle)})")
        # Each viewer sees one output event per stored chunk of its run.
        chunk_docs = round(events * args.runs / args.viewers)
        print(f"stored log lines across runs: {stored_lines}; about {chunk_docs} chunk documents "
              f"({chunk_docs / elapsed:.0f}/s, written in one bulk insert per 200 ms)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""Benchmark 3: fan-out and live line lag.

20 concurrent node runs, each printing a line every 10 ms for 10 s, watched by
1 and by 5 SSE viewers per run (20 and 100 viewers). Checks that every viewer
receives every line of its run, in order, and that the stored logs hold every
line; reports the per-line lag (each line carries the wall-clock time the
script printed it; lag = when a viewer parsed it minus that), wall time, CPU
(server, its embedded database), RSS growth and the stored chunk documents
per run.

Raw baseline, in this same process and interleaved with the Scriptbox
repetitions: the same 20 scripts run directly as subprocesses, their stdout
pipes read by this process (one thread, a selector, lines checked in order);
its wall time, the CPU of that reading and its per-line lag. The scripts' own CPU is shown for
both sides (the server's reaped children; this process's), so the two sides
are seen to do the same work.

Repeated --reps times (default 3); prints median and spread.

    .venv/bin/python bench/fanout.py [--runs 20] [--per-run 1,5] [--seconds 10] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests
from _harness import AUTH, BenchServer, bench_home, cpu_seconds, mib, reset_peak_rss, rss, spread, sse_events, summary

# Each line: its number and the wall-clock time (epoch seconds, ms) it was printed.
# The first comes after 0.5 s, so the viewers are connected for most of them.
NODE_SCRIPT = """
const total = Number(process.env.LINES);
let i = 0;
setTimeout(() => {
  const timer = setInterval(() => {
    i += 1;
    process.stdout.write(`line ${i} ${(Date.now() / 1000).toFixed(3)}\\n`);
    if (i >= total) clearInterval(timer);
  }, 10);
}, 500);
"""


def check_line(line: str, expected: int, arrived: float, lags: list[float], since: float = 0.0) -> bool:
    """Whether `line` is line number `expected`; its lag goes to `lags` if printed after `since`
    (a line printed before the viewer was subscribed is replayed, not live)."""
    word, number, printed = (line.split(" ") + ["", ""])[:3]
    try:
        if float(printed) >= since:
            lags.append(arrived - float(printed))
    except ValueError:
        return False
    return word == "line" and number == str(expected)


def own_cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Baseline:
    wall: float
    reader_cpu: float
    scripts_cpu: float
    complete: int  # scripts whose every line arrived in order
    lags: list[float] = field(default_factory=list)


def raw_fanout(runs: int, lines: int, env: dict[str, str]) -> Baseline:
    """The same scripts as direct subprocesses, their pipes read here."""
    script_env = {**env, "LINES": str(lines)}
    cpu0, children0 = own_cpu(), own_cpu(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["node", "-e", NODE_SCRIPT], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              env=script_env) for _ in range(runs)]
    selector = selectors.DefaultSelector()
    state: dict[int, list] = {}  # fd -> [next expected line, pending text, in order so far]
    lags: list[float] = []
    for proc in procs:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        selector.register(fd, selectors.EVENT_READ)
        state[fd] = [1, b"", True]
    open_fds = len(procs)
    while open_fds:
        for key, _ in selector.select():
            fd = int(key.fd)
            chunk = os.read(fd, 65536)
            if not chunk:
                selector.unregister(fd)
                open_fds -= 1
                continue
            arrived = time.time()
            entry = state[fd]
            *complete, entry[1] = (entry[1] + chunk).split(b"\n")
            for line in complete:
                entry[2] = check_line(line.decode(), entry[0], arrived, lags) and entry[2]
                entry[0] += 1
    for proc in procs:
        proc.wait()
    wall = time.perf_counter() - t0
    reader_cpu = own_cpu() - cpu0
    selector.close()
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()
    complete = sum(1 for expected, pending, ok in state.values() if ok and pending == b"" and expected - 1 == lines)
    return Baseline(wall, reader_cpu, own_cpu(resource.RUSAGE_CHILDREN) - children0, complete, lags)


@dataclass
class Watched:
    wall: float
    server_cpu: float
    db_cpu: float
    scripts_cpu: float
    viewers_cpu: float
    idle: int
    growth: int
    db_idle: int
    db_growth: int
    complete: int  # viewers that received every line of their run in order
    events: int
    stored_lines: int
    statuses: set[str]
    lags: list[float]
    chunk_docs: int  # stored output documents, all runs
    read_lags: list[float]  # printed -> read by the server, first line of each event


def watched_fanout(server: BenchServer, script_id: str, runs: int, viewers: int, lines: int) -> Watched:
    """`runs` runs through Scriptbox, each watched by viewers // runs SSE clients."""
    db = server.db_pid()
    results: dict[int, tuple[bool, int, int]] = {}
    lags: list[list[float]] = [[] for _ in range(viewers)]
    # printed -> read by the server (the event's `at`, ms): where the rest of the lag is spent.
    read_lags: list[list[float]] = [[] for _ in range(viewers)]
    started = [threading.Event() for _ in range(runs)]
    run_ids: list[str] = [""] * runs

    def view(index: int) -> None:
        session = requests.Session()
        session.auth = AUTH
        started[index % runs].wait()
        run_id = run_ids[index % runs]
        expected = 1
        ok = True
        events = 0
        pending = ""
        subscribed = float("inf")
        with session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True, timeout=120) as r:
            for name, _, data in sse_events(r):
                # The first event (status) comes once the stream is subscribed to the run's live output.
                subscribed = min(subscribed, time.time())
                if name == "output":
                    arrived = time.time()
                    events += 1
                    if not pending and data.get("at"):
                        first = data["data"].split(" ", 2)
                        read_at = datetime.fromisoformat(data["at"].replace("Z", "+00:00")).timestamp()
                        if len(first) == 3 and float(first[2].split("\n")[0]) >= subscribed:
                            read_lags[index].append(read_at - float(first[2].split("\n")[0]))
                    pending += data["data"]
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        ok = check_line(line, expected, arrived, lags[index], subscribed) and ok
                        expected += 1
                elif name == "end":
                    break
        results[index] = (ok and pending == "", expected - 1, events)

    threads = [threading.Thread(target=view, args=(i,)) for i in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    idle, db_idle = server.rss(), rss(db) if db else 0
    server.reset_peak_rss()
    if db:
        reset_peak_rss(db)
    cpu0, db0, scripts0, viewers0 = (server.cpu_seconds(), cpu_seconds(db) if db else 0.0,
                                     server.children_cpu_seconds(), own_cpu())
    t0 = time.perf_counter()
    for i in range(runs):
        run_ids[i] = server.start_run(script_id)
        started[i].set()
    for t in threads:
        t.join(300)
    wall = time.perf_counter() - t0
    server_cpu = server.cpu_seconds() - cpu0
    db_cpu = (cpu_seconds(db) - db0) if db else 0.0
    viewers_cpu = own_cpu() - viewers0
    growth = server.rss("VmHWM") - idle
    db_growth = (rss(db, "VmHWM") - db_idle) if db else 0
    statuses = {server.run(r)["status"] for r in run_ids}
    # Runs are reaped (and their CPU counted) once their status is final.
    scripts_cpu = server.children_cpu_seconds() - scripts0
    stored_lines = sum(len(server.session.get(server.base + f"/api/admin/scripts/runs/{r}/log", timeout=30)
                           .text.splitlines()) for r in run_ids)
    chunk_docs = sum(stored_chunks(server, r) for r in run_ids)
    return Watched(
        wall=wall, server_cpu=server_cpu, db_cpu=db_cpu, scripts_cpu=scripts_cpu, viewers_cpu=viewers_cpu,
        idle=idle, growth=growth, db_idle=db_idle, db_growth=db_growth,
        complete=sum(1 for ok, n, _ in results.values() if ok and n == lines),
        events=sum(e for _, _, e in results.values()), stored_lines=stored_lines, statuses=statuses,
        lags=[lag for viewer in lags for lag in viewer], chunk_docs=chunk_docs,
        read_lags=[lag for viewer in read_lags for lag in viewer])


def stored_chunks(server: BenchServer, run_id: str) -> int:
    """How many output documents the run has in the database (pages of GET /chunks)."""
    count, after = 0, -1
    while True:
        page = server.session.get(server.base + f"/api/admin/scripts/runs/{run_id}/chunks",
                                  params={"after": after, "limit": 1000}, timeout=30).json()
        count += len(page["chunks"])
        if page["next"] is None:
            return count
        after = page["next"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--per-run", default="1,5", help="viewers per run, one measurement each (comma-separated)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with bench_home() as env:
        measure(args.runs, [int(n) for n in args.per_run.split(",")], int(args.seconds * 100), args.reps, env)


def lag_line(lags: list[float], per_rep: list[list[float]]) -> str:
    medians = [statistics.median(r) * 1000 for r in per_rep if r]
    return f"{summary(lags)}; medians per repetition {spread(medians, ' ms')}"


def measure(runs: int, per_run: list[int], lines: int, reps: int, env: dict[str, str]) -> None:
    server = BenchServer(env={**env, "SCRIPTBOX_MAX_CONCURRENT_RUNS": str(runs)})
    try:
        script_id = server.create_script(type="node", script=NODE_SCRIPT, env=[{"key": "LINES", "value": str(lines)}])
        raw_fanout(2, 10, env)  # warm up node's code cache and this process
        raw: list[Baseline] = []
        watched: dict[int, list[Watched]] = {n: [] for n in per_run}
        for _ in range(reps):
            raw.append(raw_fanout(runs, lines, env))
            for n in per_run:
                time.sleep(0.5)
                watched[n].append(watched_fanout(server, script_id, runs, runs * n, lines))
            time.sleep(0.5)
        print(f"{runs} runs x {lines} lines (one per 10 ms), {reps} repetitions")
        for n in per_run:
            report(watched[n], runs, runs * n, lines)
        report_raw(raw, runs)
    finally:
        server.stop()


def pct(cpu: list[float], wall: list[float]) -> list[float]:
    return [c / w * 100 for c, w in zip(cpu, wall, strict=True)]


def report(watched: list[Watched], runs: int, viewers: int, lines: int) -> None:
    w_wall = [w.wall for w in watched]
    print(f"Scriptbox, {viewers} SSE viewers ({viewers // runs} per run):")
    print(f"  live line lag (printed -> parsed by a viewer; lines printed once it was subscribed, "
          f"{sum(len(w.lags) for w in watched)} of {len(watched) * viewers * lines}): "
          f"{lag_line([x for w in watched for x in w.lags], [w.lags for w in watched])}")
    print(f"  of which printed -> read by the server (`at`, ms precision, first line of each event): "
          f"{summary([x for w in watched for x in w.read_lags])}")
    print(f"  viewers that got every line in order: {[w.complete for w in watched]} of {viewers}; "
          f"run statuses {sorted(set().union(*(w.statuses for w in watched)))}; "
          f"stored log lines {[w.stored_lines for w in watched]} of {runs * lines}")
    print(f"  stored chunk documents per run: {spread([w.chunk_docs / runs for w in watched], '', digits=0)} "
          f"for {lines} lines")
    print(f"  wall (POST of the first run -> last viewer's `end`): {spread(w_wall, ' s', digits=2)}")
    print(f"  server CPU:   {spread(pct([w.server_cpu for w in watched], w_wall), '% of one core')}")
    print(f"  database CPU: {spread(pct([w.db_cpu for w in watched], w_wall), '% of one core')}")
    print(f"  server + database CPU: "
          f"{spread(pct([w.server_cpu + w.db_cpu for w in watched], w_wall), '% of one core')}")
    print(f"  server RSS growth (peak - idle): {spread([w.growth for w in watched], ' MiB', 1 / 2**20)}; "
          f"idle before each repetition {', '.join(mib(w.idle) for w in watched)}")
    print(f"  database RSS growth:             {spread([w.db_growth for w in watched], ' MiB', 1 / 2**20)}; "
          f"idle before each repetition {', '.join(mib(w.db_idle) for w in watched)}")
    print(f"  SSE output events delivered per repetition: {spread([w.events for w in watched], '', digits=0)} "
          f"for {viewers * lines} lines")
    print(f"  the {viewers} viewers' CPU (this process): "
          f"{spread(pct([w.viewers_cpu for w in watched], w_wall), '% of one core')}")
    print(f"  the scripts' own CPU: {spread([w.scripts_cpu for w in watched], ' s', digits=2)}")


def report_raw(raw: list[Baseline], runs: int) -> None:
    r_wall = [r.wall for r in raw]
    print("raw baseline (same scripts as subprocesses, pipes read by one selector thread here):")
    print(f"  line lag (printed -> read here): {lag_line([x for r in raw for x in r.lags], [r.lags for r in raw])}")
    print(f"  scripts that delivered every line in order: {[r.complete for r in raw]} of {runs}")
    print(f"  wall (first spawn -> last EOF): {spread(r_wall, ' s', digits=2)}")
    print(f"  reader CPU:   {spread(pct([r.reader_cpu for r in raw], r_wall), '% of one core')}")
    print(f"  the scripts' own CPU: {spread([r.scripts_cpu for r in raw], ' s', digits=2)}")


if __name__ == "__main__":
    main()

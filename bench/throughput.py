"""Benchmark 2: output throughput.

A bash script writes --mb MB (default 200) to stdout and one live SSE client
receives all of it, timed from POST /run to the `end` event; the same run with
nobody watching (POST /run?wait until its answer) shows the server's own cost.
Repeated --reps times (default 5), each repetition interleaved with three
baselines of the same command, run with the same environment:
  - into /dev/null (`bash -lc '<command> > /dev/null'`): the producer's own rate;
  - through a pipe read by this process in 64 KiB reads: the rate of the
    simplest possible reader, which is what Scriptbox replaces;
  - through the simplest SSE server of it (bench/sse_relay.py: Scriptbox's
    read loop and wire format on gevent's pywsgi, no database, one request),
    read by the same SSE client, before Scriptbox's run in one repetition and
    after it in the next: what the approach itself costs (a Python server,
    JSON-escaped events, a Python client, on the same cores).
Prints median and spread of MB/s for all of them, CPU per run (server, its
embedded database, this SSE client, the relay), and the server's RSS: idle,
and the peak (VmHWM) over all repetitions.

With --secrets N (default 20), each repetition also runs the same command as a
script with N secret env entries (random 22-character values, none printed), so
every byte goes through the secret masker; both rates and their ratio are
printed (SPEC §8.3: masking must not slow output noticeably).

    .venv/bin/python bench/throughput.py [--mb 200] [--reps 5] [--secrets 20] [--home empty|user]
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from _harness import BenchServer, bench_home, cpu_seconds, drain_output, mib, reset_peak_rss, rss, spread

LINE = "x" * 99
CHUNK = 64 * 1024


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_of(pid: int | None) -> float:
    return cpu_seconds(pid) if pid else 0.0


def raw_devnull(command: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(["bash", "-lc", command + " > /dev/null"], check=True, env=env, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def raw_pipe(command: str, env: dict[str, str], total: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "-lc", command], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    received = 0
    while chunk := os.read(fd, CHUNK):
        received += len(chunk)
    proc.wait()
    elapsed = time.perf_counter() - t0
    proc.stdout.close()
    assert received == total and proc.returncode == 0, (received, total, proc.returncode)
    return elapsed


@contextmanager
def sse_relay(command: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """bench/sse_relay.py serving `command` on a loopback port: (process, its URL)."""
    relay = subprocess.Popen([sys.executable, str(Path(__file__).with_name("sse_relay.py")), command],
                             env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert relay.stdout is not None
        port = relay.stdout.readline().strip()  # printed once it listens
        if not port.isdigit():
            raise RuntimeError(f"bench/sse_relay.py did not start (exit {relay.poll()})")
        yield relay, f"http://127.0.0.1:{port}/"
    finally:
        relay.terminate()
        relay.wait()
        if relay.stdout is not None:
            relay.stdout.close()


def relay_run(session: requests.Session, url: str, total: int) -> float:
    """Seconds from the GET to the relay's `end`, every byte received."""
    t0 = time.perf_counter()
    with session.get(url, stream=True) as r:
        received = drain_output(r)[0]
    elapsed = time.perf_counter() - t0
    assert received == total, (received, total)
    return elapsed


class LateViewer(Exception):
    """The stream was opened after the run had printed past the stored log's
    limit (10 MiB): what it printed between that limit and the moment the
    viewer subscribed is stored nowhere, by design, so this viewer cannot get
    it. Rare (the run is started by POST and viewed by a second request, and
    a flood prints 10 MiB in ~5-20 ms), and no measurement: repeated."""


def stream_run(server: BenchServer, script_id: str, total: int) -> tuple[float, int, str]:
    """(seconds from POST /run to `end`, output events, run id)."""
    t0 = time.perf_counter()
    run_id = server.start_run(script_id)
    with server.session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True) as r:
        received, events, limit_reached = drain_output(r)
    elapsed = time.perf_counter() - t0
    if received < total and limit_reached:
        raise LateViewer(f"{total - received} bytes printed before the viewer subscribed were past the limit")
    assert received == total, (received, total)
    return elapsed, events, run_id


def run_unwatched(server: BenchServer, script_id: str) -> float:
    """Seconds from POST /run?wait to its answer: the same run with nobody watching its output."""
    t0 = time.perf_counter()
    r = server.session.post(server.base + f"/api/admin/scripts/{script_id}/run?wait=300", timeout=330)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
    return elapsed


def stream_run_seen_whole(server: BenchServer, script_id: str, total: int,
                          repeated: list[str]) -> tuple[float, int, str]:
    """stream_run, repeated (3 tries in all) when its viewer came too late to see everything."""
    for _ in range(2):
        try:
            return stream_run(server, script_id, total)
        except LateViewer as exc:
            repeated.append(str(exc))
    return stream_run(server, script_id, total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200, help="megabytes (10^6 bytes) the script prints")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--secrets", type=int, default=20, help="secret env entries of the masked variant (0: none)")
    parser.add_argument("--home", choices=("user", "empty"), default="empty",
                        help="HOME for bash -l, on both sides: this user's or an empty directory")
    args = parser.parse_args()
    with bench_home(args.home) as env:
        measure(args.mb * 1_000_000, args.reps, env, args.home, args.secrets)


def measure(total: int, reps: int, env: dict[str, str], home: str, n_secrets: int = 20) -> None:
    command = f"yes '{LINE}' | head -c {total}"
    server = BenchServer(env=env)
    try:
        with sse_relay(command, env) as (relay, relay_url):
            script_id = server.create_script(script=command, timeoutMs=3_600_000)
            masked_id = server.create_script(script=command, timeoutMs=3_600_000, env=[
                {"key": f"SECRET_{i}", "value": secrets.token_urlsafe(16), "secret": True} for i in range(n_secrets)])
            warm = server.start_run(server.create_script(script="echo warm"))
            with server.session.get(server.base + f"/api/admin/scripts/runs/{warm}/stream", stream=True) as r:
                drain_output(r)
            raw_devnull(command, env)
            relay_session = requests.Session()
            relay_run(relay_session, relay_url, total)
            time.sleep(0.5)
            db = server.db_pid()
            idle = server.rss()
            db_idle = rss(db) if db else 0
            server.reset_peak_rss()
            if db:
                reset_peak_rss(db)
            series: dict[str, list[float]] = {}
            run_ids: list[str] = []
            repeated: list[str] = []

            def add(name: str, value: float) -> None:
                series.setdefault(name, []).append(value)

            for rep in range(reps):
                add("devnull_s", raw_devnull(command, env))
                add("pipe_s", raw_pipe(command, env, total))
                time.sleep(0.2)
                add("idle", server.rss())
                add("db_idle", rss(db) if db else 0)
                # The relay goes before Scriptbox in one repetition, after it in the next.
                if rep % 2 == 0:
                    measure_relay(relay, relay_session, relay_url, total, add)
                cpu0, db0, own0 = server.cpu_seconds(), cpu_of(db), own_cpu_seconds()
                elapsed, n_events, run_id = stream_run_seen_whole(server, script_id, total, repeated)
                add("server_cpu", server.cpu_seconds() - cpu0)
                add("db_cpu", cpu_of(db) - db0)
                add("client_cpu", own_cpu_seconds() - own0)
                add("sse_s", elapsed)
                add("events", n_events)
                run_ids.append(run_id)
                if rep % 2 == 1:
                    measure_relay(relay, relay_session, relay_url, total, add)
                cpu0 = server.cpu_seconds()
                add("unwatched_s", run_unwatched(server, script_id))
                add("unwatched_cpu", server.cpu_seconds() - cpu0)
                if n_secrets:
                    cpu0 = server.cpu_seconds()
                    add("masked_s", stream_run_seen_whole(server, masked_id, total, repeated)[0])
                    add("masked_cpu", server.cpu_seconds() - cpu0)
        peak = server.rss("VmHWM")
        db_peak = rss(db, "VmHWM") if db else 0
        runs = [server.run(r) for r in run_ids]
        assert all(r["status"] == "succeeded" for r in runs), [r["status"] for r in runs]
        print(f"{total / 1e6:.0f} MB printed by one bash script, {reps} repetitions, HOME {home} on both sides")
        report_rates(total, series, n_secrets)
        report_costs(series, n_secrets, db is not None)
        print(f"server RSS: idle {mib(idle)}, before each run {mib(min(series['idle']))} to "
              f"{mib(max(series['idle']))}, peak over all runs {mib(peak)} (+{mib(peak - idle)} above idle), "
              f"after the last {mib(server.rss())}")
        if db:
            print(f"database RSS: idle {mib(db_idle)}, before each run {mib(min(series['db_idle']))} to "
                  f"{mib(max(series['db_idle']))}, peak over all runs {mib(db_peak)} (+{mib(db_peak - db_idle)}), "
                  f"after the last {mib(rss(db))}")
        meta = runs[-1]["meta"]
        print(f"stored log per run: truncated={meta['logTruncated']}, outputBytes={meta['outputBytes']}")
        if repeated:
            print(f"runs repeated because their viewer subscribed after the stored log's limit was printed: "
                  f"{len(repeated)} ({'; '.join(repeated)}); the CPU figures of their repetitions include the repeat")
    finally:
        server.stop()


def measure_relay(relay: subprocess.Popen[str], session: requests.Session, url: str, total: int,
                  add: Callable[[str, float], None]) -> None:
    cpu0, own0 = cpu_of(relay.pid), own_cpu_seconds()
    add("relay_s", relay_run(session, url, total))
    add("relay_cpu", cpu_of(relay.pid) - cpu0)
    add("relay_client_cpu", own_cpu_seconds() - own0)


def report_rates(total: int, series: dict[str, list[float]], n_secrets: int) -> None:
    def rate(name: str) -> list[float]:
        return [total / s / 1e6 for s in series[name]]

    def per_repetition(name: str, over: str) -> list[float]:
        """Each repetition's time of `over` / that of `name`: how its rate compares (same machine load)."""
        return [o / s * 100 for s, o in zip(series[name], series[over], strict=True)]

    print(f"delivered to one SSE client:     {spread(rate('sse_s'), ' MB/s')}")
    if n_secrets:
        ratio = statistics.median(rate("masked_s")) / statistics.median(rate("sse_s"))
        print(f"  the same with {n_secrets} secrets:     {spread(rate('masked_s'), ' MB/s')} "
              f"({ratio:.1%} of the rate without secrets, medians)")
    print(f"  the same, nobody watching (POST ?wait): {spread(rate('unwatched_s'), ' MB/s')}; "
          f"server CPU {spread(series['unwatched_cpu'], ' s', digits=2)}")
    print(f"raw: read through a pipe here:   {spread(rate('pipe_s'), ' MB/s')}")
    # Each repetition's SSE rate over the pipe rate measured just before it.
    print(f"SSE client / pipe (per repetition): {spread(per_repetition('sse_s', 'pipe_s'), ' %')}")
    print(f"raw: into /dev/null:             {spread(rate('devnull_s'), ' MB/s')}")
    print(f"baseline: the simplest SSE server of the same command (bench/sse_relay.py, no database), "
          f"same client: {spread(rate('relay_s'), ' MB/s')}")
    print(f"  relay / pipe (per repetition): {spread(per_repetition('relay_s', 'pipe_s'), ' %')}")
    print(f"  Scriptbox / relay (per repetition): {spread(per_repetition('sse_s', 'relay_s'), ' %')}")


def report_costs(series: dict[str, list[float]], n_secrets: int, embedded_db: bool) -> None:
    print(f"SSE delivery time per run:       {spread(series['sse_s'], ' s', digits=2)}; "
          f"output events per run {sorted(set(int(n) for n in series['events']))}")
    print(f"CPU per run: server {spread(series['server_cpu'], ' s', digits=2)}")
    if n_secrets:
        print(f"             server, with {n_secrets} secrets {spread(series['masked_cpu'], ' s', digits=2)}")
    print(f"             database {spread(series['db_cpu'], ' s', digits=2) if embedded_db else 'n/a (external)'}")
    print(f"             this SSE client {spread(series['client_cpu'], ' s', digits=2)}")
    print(f"             the relay {spread(series['relay_cpu'], ' s', digits=2)}, this SSE client of it "
          f"{spread(series['relay_client_cpu'], ' s', digits=2)}")


if __name__ == "__main__":
    main()

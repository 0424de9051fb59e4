"""Benchmark: the scheduler under 1,000 schedules.

--scripts (default 1000) bash scripts (`true`), each scheduled every minute
with a 6-field cron whose seconds field is its index modulo 60 (staggered:
~17 due times every second), overlap `allow`. After all are created, the
benchmark watches --minutes (default 2) and then reads every scheduled run.
By default the server runs with --no-worker (runs are queued, not executed),
so the scheduler is measured alone; --execute also runs them.

Prints the firing delay (run createdAt - meta.scheduledFor) as median, p99
and spread, the start delay (startedAt - scheduledFor), due times without a
run, and the CPU of the server and of its embedded database over the window
(percent of one core). The raw baseline, measured in this same process at the
same time, is the plainest possible timer: a thread sleeping until each
whole second and measuring how late it wakes.

    .venv/bin/python bench/schedules.py [--scripts 1000] [--minutes 2] [--execute]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from _harness import BenchServer, bench_home, cpu_seconds, summary


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def scheduled_runs(server: BenchServer) -> Iterator[dict[str, Any]]:
    """Every run with trigger schedule, newest first, page by page."""
    before = None
    while True:
        page = server.session.get(server.base + "/api/admin/scripts/runs", timeout=120, params={
            "trigger": "schedule", "limit": 500, **({"before": before} if before else {})}).json()
        yield from page["runs"]
        before = page["nextBefore"]
        if not before:
            return


def raw_timer(stop: threading.Event, lateness: list[float]) -> None:
    """Sleep until each whole second; record how late each wake-up is."""
    while not stop.is_set():
        now = time.time()
        due = int(now) + 1
        time.sleep(due - now)
        lateness.append(time.time() - due)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scripts", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--execute", action="store_true",
                        help="also execute the runs (default: serve --no-worker, so the scheduler is measured "
                             "alone; with --execute ~17 runs/s share the embedded database with it)")
    args = parser.parse_args()

    with bench_home() as env:
        server = BenchServer(env={"HOME": env["HOME"]}, extra_args=[] if args.execute else ["--no-worker"])
        try:
            t0 = time.monotonic()
            ids = [server.create_script(script="true", schedule={
                "cron": f"{i % 60} * * * * *", "timezone": "UTC", "overlap": "allow"}) for i in range(args.scripts)]
            print(f"created {len(ids)} scheduled scripts in {time.monotonic() - t0:.1f} s")
            # Measure from the next whole second on: every schedule is known by then.
            time.sleep(2 - time.time() % 1)
            window_start = datetime.now(UTC)
            cpu0, db_pid = server.cpu_seconds(), server.db_pid()
            db0 = cpu_seconds(db_pid) if db_pid else 0.0
            stop, lateness = threading.Event(), []
            timer = threading.Thread(target=raw_timer, args=(stop, lateness), daemon=True)
            timer.start()
            time.sleep(args.minutes * 60)
            window_end = datetime.now(UTC)
            cpu1 = server.cpu_seconds()
            db1 = cpu_seconds(db_pid) if db_pid else 0.0
            stop.set()
            timer.join()
            time.sleep(3)  # let the last runs be recorded

            created: list[float] = []
            started: list[float] = []
            dues: set[tuple[str, datetime]] = set()
            duplicates = 0
            for run in scheduled_runs(server):
                due = parse_iso(run["meta"]["scheduledFor"])
                if not window_start <= due <= window_end:
                    continue
                key = (run["scriptId"], due)
                if key in dues:
                    duplicates += 1
                dues.add(key)
                created.append((parse_iso(run["createdAt"]) - due).total_seconds())
                if run["startedAt"]:
                    started.append((parse_iso(run["startedAt"]) - due).total_seconds())
            expected = 0
            for i in range(args.scripts):
                second = i % 60
                t = window_start.replace(second=second, microsecond=0)
                while t < window_start:
                    t += timedelta(minutes=1)
                while t <= window_end:
                    expected += 1
                    t += timedelta(minutes=1)
            seconds = (window_end - window_start).total_seconds()
            print(f"window {seconds:.0f} s, {expected} due times, {len(dues)} fired, "
                  f"{expected - len(dues)} without a run, {duplicates} fired twice")
            print(f"firing delay (createdAt - scheduledFor): {summary(created)}")
            if started:
                print(f"start delay (startedAt - scheduledFor): {summary(started)}")
            print(f"raw baseline (a thread sleeping to each whole second): {summary(lateness)}")
            print(f"server CPU {100 * (cpu1 - cpu0) / seconds:.1f}% of one core, "
                  f"embedded database CPU {100 * (db1 - db0) / seconds:.1f}%")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

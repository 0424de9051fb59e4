"""Benchmark: the admin's requests while 100 clients guess passwords in parallel (issue 20, items 2-3).

1. Baseline, no flood: the signed-in admin's GET /api/admin/scripts and GET
   /healthz, one after another.
2. The same while 100 threads send wrong passwords as fast as they are
   answered, for --seconds: median/p99 of the admin's requests and of /healthz,
   answers per second to the guessers, and how many guesses were actually
   checked (401) versus refused unread (429).
3. Timing of a right password with a wrong user name versus a wrong password
   (each from its own forwarded address, so the throttle does not interfere),
   and of the remembered right pair.

    .venv/bin/python bench/auth_flood.py [--seconds 10] [--guessers 100]
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from collections import Counter
from typing import Any

import requests
from _harness import AUTH, PASSWORD, BenchServer, summary


def timed(session: requests.Session, url: str, **kwargs: object) -> float:
    t0 = time.perf_counter()
    response = session.get(url, timeout=60, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    assert response.status_code in (200, 401, 429), response.text
    return elapsed


def admin_and_health(server: BenchServer, seconds: float) -> tuple[list[float], list[float]]:
    admin, health = [], []
    health_session = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        admin.append(timed(server.session, server.base + "/api/admin/scripts"))
        health.append(timed(health_session, server.base + "/healthz"))
        time.sleep(0.05)
    return admin, health


def _guessers(base: str, guessers: int, stop: Any, answers: Any) -> None:
    """In a process of its own: `guessers` threads sending wrong passwords until `stop` is set."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def guess(n: int) -> None:
        session = requests.Session()
        session.auth = ("admin", f"wrong-{n}")
        while not stop.is_set():
            status = session.get(base + "/api/admin/scripts", timeout=60).status_code
            with lock:
                statuses[status] += 1

    threads = [threading.Thread(target=guess, args=(n,), daemon=True) for n in range(guessers)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(60)
    answers.put(dict(statuses))


def flood(server: BenchServer, guessers: int) -> tuple[Any, Any, Any]:
    """Start the guessers in another process, so that 100 busy threads there do
    not starve this process's measuring thread of the GIL."""
    ctx = multiprocessing.get_context("spawn")
    stop, answers = ctx.Event(), ctx.Queue()
    process = ctx.Process(target=_guessers, args=(server.base, guessers, stop, answers), daemon=True)
    process.start()
    return process, stop, answers


def timing_oracle(server: BenchServer, samples: int) -> dict[str, list[float]]:
    session = requests.Session()
    results: dict[str, list[float]] = {"right pair (remembered)": [], "right password, wrong user": [],
                                       "wrong password": []}
    for i in range(samples):
        results["right pair (remembered)"].append(timed(session, server.base + "/api/admin/scripts", auth=AUTH))
        for n, (label, auth) in enumerate([("right password, wrong user", ("root", PASSWORD)),
                                           ("wrong password", ("admin", "not-it"))]):
            headers = {"X-Forwarded-For": f"198.51.{n}.{i + 1}"}
            results[label].append(timed(session, server.base + "/api/admin/scripts", auth=auth, headers=headers))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--guessers", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    server = BenchServer(env={"SCRIPTBOX_TRUSTED_PROXIES": "127.0.0.1/32"})
    try:
        server.session.get(server.base + "/api/admin/scripts", timeout=60).raise_for_status()  # sign in once
        oracle = timing_oracle(server, args.samples)
        base_admin, base_health = admin_and_health(server, min(args.seconds, 5.0))

        process, stop, answers = flood(server, args.guessers)
        time.sleep(2.0)  # let every guesser get going
        t0 = time.monotonic()
        flood_admin, flood_health = admin_and_health(server, args.seconds)
        stop.set()
        statuses: Counter[int] = Counter(answers.get(timeout=120))
        elapsed = time.monotonic() - t0 + 2.0
        answered = sum(statuses.values())
        process.join(30)

        print(f"auth flood: {args.guessers} parallel wrong-password clients, {args.seconds:.0f} s")
        print(f"  admin GET /api/admin/scripts, no flood:   {summary(base_admin)}")
        print(f"  admin GET /api/admin/scripts, flood:      {summary(flood_admin)}")
        print(f"  GET /healthz, no flood:                   {summary(base_health)}")
        print(f"  GET /healthz, flood:                      {summary(flood_health)}")
        print(f"  guesses answered: {answered / elapsed:.0f}/s over the whole flood; "
              f"{statuses[401]} checked (401), {statuses[429]} refused unread (429)")
        print("timing of a sign-in attempt (each from its own forwarded address):")
        for label, values in oracle.items():
            print(f"  {label:28s} {summary(values)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

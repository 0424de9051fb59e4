"""Benchmark 4: the command-line client.

1. Throughput of `scriptbox run X --follow`: a bash script prints --mb MB
   (default 30) to stdout; the client (a subprocess, as automation runs it)
   writes it to a pipe this process reads; timed from the client's start to its
   exit. Interleaved, in the same process and environment, with the raw
   baseline it replaces: the same run started with POST /run and its SSE
   stream read here with requests (the benchmark harness's reader).
2. Start-up cost of one short command: `python app.py list --json` against
   `python -c pass` (the interpreter alone).

Prints median and spread of each, --reps times (default 5).

    .venv/bin/python bench/cli.py [--mb 50] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from _harness import PASSWORD, REPO, BenchServer, bench_home, drain_output, spread

LINE = "x" * 99


def client_env(server: BenchServer, env: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in env.items() if not k.startswith("SCRIPTBOX_")}
    return {**clean, "SCRIPTBOX_URL": server.base, "SCRIPTBOX_ADMIN_PASSWORD": PASSWORD}


def cli_follow(server: BenchServer, code: str, env: dict[str, str], total: int) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "run", code, "--follow"], env=env,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # the stored-log-limit notice, stored on stderr
    assert proc.stdout is not None
    received = 0
    while chunk := os.read(proc.stdout.fileno(), 65536):
        received += len(chunk)
    proc.wait()
    elapsed = time.perf_counter() - t0
    proc.stdout.close()
    assert received == total and proc.returncode == 0, (received, total, proc.returncode)
    return elapsed


def raw_stream(server: BenchServer, script_id: str, total: int) -> float:
    t0 = time.perf_counter()
    run_id = server.start_run(script_id)
    with server.session.get(server.base + f"/api/admin/scripts/runs/{run_id}/stream", stream=True) as r:
        received = drain_output(r)[0]
    elapsed = time.perf_counter() - t0
    assert received == total, (received, total)
    return elapsed


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=30, help="megabytes (10^6 bytes) the script prints")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    total = args.mb * 1_000_000
    with bench_home("empty") as env:
        server = BenchServer(env=env)
        try:
            script_id = server.create_script(script=f"yes '{LINE}' | head -c {total}", timeoutMs=3_600_000)
            code = server.session.get(server.base + f"/api/admin/scripts/{script_id}").json()["codeIdentifier"]
            cenv = client_env(server, env)
            raw_stream(server, script_id, total)  # warm-up
            follow_s: list[float] = []
            raw_s: list[float] = []
            list_s: list[float] = []
            bare_s: list[float] = []
            for _ in range(args.reps):
                raw_s.append(raw_stream(server, script_id, total))
                follow_s.append(cli_follow(server, code, cenv, total))
                bare_s.append(timed([sys.executable, "-c", "pass"], cenv))
                list_s.append(timed([sys.executable, str(REPO / "app.py"), "list", "--json"], cenv))
        finally:
            server.stop()

    def rate(seconds: list[float]) -> list[float]:
        return [total / s / 1e6 for s in seconds]

    print(f"{total / 1e6:.0f} MB printed by one bash script, {args.reps} repetitions")
    print(f"scriptbox run --follow (subprocess, to a pipe): {spread(rate(follow_s), ' MB/s')}")
    print(f"raw: POST /run + SSE read here (requests):      {spread(rate(raw_s), ' MB/s')}")
    print(f"`app.py list --json` wall time:  {spread(list_s, ' ms', scale=1000)}")
    print(f"raw: `python -c pass` wall time: {spread(bare_s, ' ms', scale=1000)}")


if __name__ == "__main__":
    main()

"""Benchmark: the pruner deleting 100,000 finished runs with 10 output chunks each.

Seeds an embedded SecantusDB (its own data dir) with --scripts scripts,
--runs finished runs that ended 100-400 days ago (a tenth of them of a deleted
script, which the global rule covers too), --chunks stored output chunks per
run, and --recent runs that ended yesterday and must stay; all inserted with
insert_many in the documents' stored shape (tests/support/backdated.py).

Then, against that database:
1. baseline: a real `serve` with SCRIPTBOX_RETENTION_DAYS=0 (keeps everything)
   answers GET /api/admin/scripts and GET of one run by id, each once a second
   (or as soon as its previous answer came) in its own thread, for --seconds;
2. prune: a real `serve` with SCRIPTBOX_RETENTION_DAYS=30 prunes at start;
   the same requests run until its `retention.pruned` audit entry appears.
   Prints the prune time (wall, and durationMs of the entry), the CPU time of
   the database process (psutil) over the prune, and the latency figures
   of both phases (median, p99, spread), then checks what is left.

    .venv/bin/python bench/retention.py [--runs 100000] [--chunks 10] [--seconds 30]
    .venv/bin/python bench/retention.py --data DIR --prepare-only   # seed DIR once ...
    .venv/bin/python bench/retention.py --data DIR                  # ... measure on it (the prune empties it)

Seeding costs about as much as pruning: both write (or delete) every document.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from _harness import PASSWORD, summary
from bson import ObjectId

from scriptbox.embedded_db import EmbeddedDatabase
from scriptbox.models import validate_new_definition
from scriptbox.store import Database
from scriptbox.store.definitions import DefinitionStore
from scriptbox.store.runs import RunStore
from tests.support.backdated import chunk_docs, finished_run_doc
from tests.support.server import ScriptboxServer

DB_NAME = "scriptbox_bench"
MARKER = "seeded.json"
RUN_BATCH = 5000
CHUNK_BATCH = 10_000


def seed(database: Database, scripts: int, runs: int, chunks: int, recent: int) -> dict[str, Any]:
    """Insert the data set; returns its counts."""
    database.ensure_indexes()
    store = RunStore(database)
    store.ensure_indexes()
    definitions = DefinitionStore(database)
    ids = [str(definitions.create(validate_new_definition(
        {"name": f"bench {n}", "codeIdentifier": f"bench-{n}", "type": "bash", "script": "true"}))["_id"])
        for n in range(scripts)]
    deleted_script = str(ObjectId())
    now = datetime.utcnow().replace(microsecond=0)
    began = time.monotonic()
    inserted = 0
    for at in range(0, runs + recent, RUN_BATCH):
        docs = []
        for n in range(at, min(at + RUN_BATCH, runs + recent)):
            script = deleted_script if n % 10 == 9 else ids[n % scripts]
            age = timedelta(days=1) if n >= runs else timedelta(days=100, seconds=(n * 263) % (300 * 86400))
            docs.append(finished_run_doc(script, now - age, status="succeeded" if n % 7 else "failed"))
        store.runs.insert_many(docs, ordered=False)
        run_ids = [d["_id"] for d in docs]
        for c in range(0, len(run_ids), CHUNK_BATCH // max(1, chunks)):
            store.chunks.insert_many(chunk_docs(run_ids[c:c + CHUNK_BATCH // max(1, chunks)], chunks, now),
                                     ordered=False)
        inserted += len(docs)
        rate = inserted * (1 + chunks) / (time.monotonic() - began)
        print(f"  seeded {inserted}/{runs + recent} runs ({rate:.0f} documents/s)", flush=True)
    return {"runs": runs, "recent": recent, "chunks": chunks, "scripts": scripts,
            "seedSeconds": round(time.monotonic() - began, 1)}


# What is requested in both phases: the scripts list (its lastRun aggregate
# reads every run of the listed scripts, so it is slow on a large history by
# itself) and one run by id (a key lookup: what the database's contention
# alone costs). Each starts at most every PROBE_EVERY_S, like a page being
# used, not back to back: the scripts list alone would keep the database busy.
PROBES = ("/api/admin/scripts", "/api/admin/scripts/runs/{run}")
PROBE_EVERY_S = 1.0


def hammer(url: str, stop: threading.Event, out: list[float], errors: list[str]) -> None:
    """GET `url` every PROBE_EVERY_S (or as soon as the previous answer came) until `stop`; latencies (s) into `out`."""
    session = requests.Session()
    session.auth = ("admin", PASSWORD)
    try:
        session.get(url, timeout=300)  # not counted: the first sign-in pays for Argon2
    except requests.RequestException as exc:
        errors.append(type(exc).__name__)
    while not stop.is_set():
        began = time.perf_counter()
        try:
            answer = session.get(url, timeout=300)
            if answer.status_code != 200:
                errors.append(str(answer.status_code))
        except requests.RequestException as exc:
            errors.append(type(exc).__name__)
        out.append(time.perf_counter() - began)
        stop.wait(max(0.0, PROBE_EVERY_S - (time.perf_counter() - began)))


def serve(uri: str, work: Path, days: int, name: str) -> ScriptboxServer:
    return ScriptboxServer(work / name, mongodb_uri=uri, db_name=DB_NAME, password=PASSWORD,
                           env={"SCRIPTBOX_RETENTION_DAYS": str(days)}).start()


class Probes:
    """One thread per probe, each requesting it back to back until stop()."""

    def __init__(self, base: str, run_id: str) -> None:
        self.stop_event = threading.Event()
        self.latencies: dict[str, list[float]] = {p: [] for p in PROBES}
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=hammer, args=(base + p.format(run=run_id), self.stop_event,
                                                              self.latencies[p], self.errors)) for p in PROBES]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()

    def print(self) -> None:
        for probe, values in self.latencies.items():
            print(f"  GET {probe}: {summary(values) if values else 'no answer'}")
        if self.errors:
            print(f"  errors: {self.errors[:5]} ({len(self.errors)})")


def baseline(uri: str, work: Path, seconds: float, run_id: str) -> Probes:
    server = serve(uri, work, 0, "baseline")
    try:
        probes = Probes(server.base_url, run_id)
        time.sleep(seconds)
        probes.stop()
        return probes
    finally:
        server.stop()


def pruned_entry(database: Database, since: datetime) -> dict[str, Any] | None:
    return database.db.audit_log.find_one({"action": "retention.pruned", "at": {"$gte": since}})


def print_progress(server: ScriptboxServer, seen: int, began: float, db_cpu: float, probes: Probes) -> int:
    """Echo the pruner's progress lines that came since `seen` with the database CPU and latencies so far,
    so that a prune stopped by --timeout still gives the cost per deleted document."""
    lines = server.output[seen:]
    for line in lines:
        if "deleted so far" in line:
            print(f"  [{time.monotonic() - began:.0f} s] {line.strip().split('retention: ', 1)[-1]}; "
                  f"database CPU {db_cpu:.0f} s", flush=True)
            values = probes.latencies[PROBES[0]]
            if values:
                print(f"    GET {PROBES[0]} so far: {summary(values)}", flush=True)
    return seen + len(lines)


def measure_prune(uri: str, work: Path, database: Database, db_pid: int, timeout_s: float,
                  run_id: str) -> dict[str, Any]:
    """Start a pruning server; the latencies, times and database CPU until its audit entry appears."""
    db_process = psutil.Process(db_pid)
    since = datetime.utcnow() - timedelta(seconds=1)
    cpu_before = sum(db_process.cpu_times()[:2])
    began = time.monotonic()
    server = serve(uri, work, 30, "prune")
    probes = Probes(server.base_url, run_id)
    try:
        entry = None
        seen = 0
        while entry is None and time.monotonic() - began < timeout_s:
            time.sleep(1)
            entry = pruned_entry(database, since)
            seen = print_progress(server, seen, began, sum(db_process.cpu_times()[:2]) - cpu_before, probes)
        wall = time.monotonic() - began
        cpu = sum(db_process.cpu_times()[:2]) - cpu_before
    finally:
        probes.stop()
        server.stop()
    return {"entry": entry, "wall": wall, "dbCpu": cpu, "probes": probes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--scripts", type=int, default=20)
    parser.add_argument("--recent", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the baseline")
    parser.add_argument("--timeout", type=float, default=7200.0, help="give the prune this long")
    parser.add_argument("--data", type=Path, help="the database's data dir (kept); default: a temporary one")
    parser.add_argument("--prepare-only", action="store_true", help="seed --data and stop")
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="scriptbox-bench-retention-"))
    data.mkdir(parents=True, exist_ok=True)
    embedded = EmbeddedDatabase(data)
    uri = embedded.start()
    assert embedded.credential is not None and embedded.process is not None
    uri = embedded.credential.uri(uri)
    database = Database(uri, DB_NAME)
    try:
        marker = data / MARKER
        if marker.exists():
            counts = json.loads(marker.read_text())
            print(f"using the data set in {data}: {counts}", flush=True)
        else:
            print(f"seeding {args.runs} runs x {args.chunks} chunks (+{args.recent} recent) into {data} ...")
            counts = seed(database, args.scripts, args.runs, args.chunks, args.recent)
            marker.write_text(json.dumps(counts))
            print(f"seeded in {counts['seedSeconds']} s")
        if args.prepare_only:
            return
        work = Path(tempfile.mkdtemp(prefix="scriptbox-bench-retention-work-"))
        # A run that stays (it ended yesterday): the point-read probe.
        kept = database.db.script_runs.find_one({"finishedAt": {"$gte": datetime.utcnow() - timedelta(days=2)}})
        assert kept is not None
        print(f"baseline: {', '.join(PROBES)} for {args.seconds:.0f} s, nothing pruned ...", flush=True)
        baseline(uri, work, args.seconds, str(kept["_id"])).print()
        print("prune: a server with SCRIPTBOX_RETENTION_DAYS=30, the same requests meanwhile ...", flush=True)
        result = measure_prune(uri, work, database, embedded.process.pid, args.timeout, str(kept["_id"]))
        entry = result["entry"]
        if entry is None:
            print(f"  no retention.pruned entry after {result['wall']:.0f} s")
            return
        details = entry["details"]
        print(f"  pruned {details['runs']} runs and {details['chunks']} chunks in {details['durationMs'] / 1000:.1f} s "
              f"(wall from server start {result['wall']:.1f} s); database CPU {result['dbCpu']:.1f} s")
        print("  during the prune:")
        result["probes"].print()
        left_runs = database.db.script_runs.count_documents({})
        left_chunks = database.db.script_run_output.count_documents({})
        print(f"  left: {left_runs} runs (expected {counts['recent']}), {left_chunks} chunks "
              f"(expected {counts['recent'] * counts['chunks']})")
        marker.unlink()  # the data set is gone
    finally:
        database.close()
        embedded.stop()


if __name__ == "__main__":
    main()

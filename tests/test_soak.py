"""A bounded soak: the mixed workload of a user's automation for a fixed time, then
everything is checked — server and database alive, each run's end state and
stored log exactly what its script did, no process of any run left, the
server's RSS and open fds back where they were. Also: a viewer that never
reads does not hurt the others. (Higher volume: bench/soak.py.)
"""

from __future__ import annotations

import base64
import json
import socket

import requests

from support import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    SseStream,
    eventually,
    output_text,
    pid_alive,
    rss_bytes,
    start_run,
    wait_status,
)
from support.soak import KINDS, Workload, check_runs, fd_count, live_run_ids

WARMUP_S = 8.0
SOAK_S = 40.0
RSS_SLACK = 8 * 1024 * 1024


def _settled_fds(pid: int, db_port: int, target: int, timeout: float = 30.0) -> int:
    """The fd count once closed connections are gone (or the last one seen)."""
    try:
        eventually(lambda: fd_count(pid, db_port) <= target, timeout, interval=0.2)
    except AssertionError:
        pass
    return fd_count(pid, db_port)


def test_soak_mixed_runs_with_viewers_leaves_everything_as_it_was(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(mongodb_uri=None, env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": "6"}).start()
    api = server.api()
    db = json.loads((server.data_dir / "db.pid").read_text())
    pid = server.process.pid
    workload = Workload.create(api, clients=4, viewers=2)

    workload.run_for(WARMUP_S)  # pools, caches and the allocator reach their working size
    warm = len(workload.started)
    fds_before = _settled_fds(pid, db["port"], 0, timeout=3)
    rss_before = rss_bytes(pid)

    workload.run_for(SOAK_S)
    assert workload.errors == []
    soaked = [item.kind.name for item in workload.started[warm:]]
    assert all(soaked.count(kind.name) >= 3 for kind in KINDS), f"too little to prove anything: {soaked}"
    for item in workload.started:
        wait_status(api, item.run_id, timeout=60)
    assert check_runs(api, workload.started) == []
    assert not live_run_ids() & {item.run_id for item in workload.started}
    assert server.process.poll() is None and pid_alive(db["pid"])
    assert requests.get(f"{server.base_url}/healthz", timeout=10).json() == {"status": "ok", "db": "ok"}
    fds_after = _settled_fds(pid, db["port"], fds_before)
    assert fds_after <= fds_before, (fds_before, fds_after)
    rss_after = rss_bytes(pid)
    assert rss_after - rss_before < RSS_SLACK, (rss_before, rss_after)
    assert "Traceback" not in server.text


def test_a_viewer_that_never_reads_does_not_hold_up_the_others(server) -> None:  # type: ignore[no-untyped-def]
    api = server.api()
    # 8 MB: far past the per-viewer 1 MiB queue and the socket buffers, under the stored-log cap.
    definition = api.create_script(script="sleep 1; yes 0123456789abcdef0123456789abcdef | head -c 8000000")
    run_id = start_run(api, definition["id"])
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    auth = "Basic " + base64.b64encode(f"{ADMIN_USER}:{ADMIN_PASSWORD}".encode()).decode()
    stalled.sendall(f"GET /api/admin/scripts/runs/{run_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: {auth}\r\n\r\n".encode())
    dropped = SseStream(api, run_id, timeout=60)  # reads a little, then goes away mid-stream
    next(dropped.events())
    dropped.close()
    reader = SseStream(api, run_id, timeout=60)
    events = reader.until_end()
    reader.close()
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    assert len(output_text(events)) == 8_000_000
    assert wait_status(api, run_id)["status"] == "succeeded"
    stalled.close()

"""Starting, stopping and crashing: the embedded database, the data dir, a lost database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pymongo
import pytest
import requests

from scriptbox.childproc import free_loopback_port
from scriptbox.dblaunch import StopSignalsOnce, guard_stop_signals, wake_accept
from scriptbox.embedded_db import DbCredential, EmbeddedDatabase, launch, secantus_argv
from support import REPO, ScriptboxServer, eventually
from support.receiver import Receiver
from support.runs import run_script


def database_processes(data_dir: Path) -> list[psutil.Process]:
    """SecantusDB processes serving `data_dir`."""
    storage = str(data_dir / "db")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if storage in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def wait_until(predicate: Any, timeout: float = 15.0) -> bool:
    try:
        return bool(eventually(predicate, timeout, interval=0.1))
    except AssertionError:
        return False


def test_the_embedded_database_keeps_data_across_a_clean_restart(server_factory: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir, mongodb_uri=None).start()
    assert "Starting the embedded database" in first.text
    assert len(database_processes(data_dir)) == 1
    doc = first.api().create_script(name="Kept")
    assert first.stop() == 0
    assert database_processes(data_dir) == []

    second = server_factory(data_dir=data_dir, mongodb_uri=None, db_name=first.db_name).start()
    assert second.api().get(f"/api/admin/scripts/{doc['id']}").json()["name"] == "Kept"
    assert second.stop() == 0
    assert database_processes(data_dir) == []


def embedded_hello(data_dir: Path) -> dict[str, Any]:
    """The embedded database's `hello` answer (a handshake: no credential needed)."""
    port = json.loads((data_dir / "db.pid").read_text())["port"]
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=10_000)
    try:
        return dict(client.admin.command("hello"))
    finally:
        client.close()


def test_the_private_embedded_database_keeps_an_oplog_only_for_change_streams(server_factory: Any,
                                                                               tmp_path: Path) -> None:
    # Alone on it, the server follows no change stream, so the database runs
    # standalone and writes no oplog entry per document.
    alone = server_factory(data_dir=tmp_path / "alone", mongodb_uri=None).start()
    assert "setName" not in embedded_hello(tmp_path / "alone")
    run, log = run_script(alone.api(), "echo kept")
    assert (run["status"], log) == ("succeeded", "kept\n")
    assert alone.stop() == 0
    # Asked for, change streams work on the embedded database too.
    streams = server_factory(data_dir=tmp_path / "streams", mongodb_uri=None,
                             env={"SCRIPTBOX_CHANGE_STREAMS": "on"}).start()
    assert embedded_hello(tmp_path / "streams").get("setName") == "secantus"
    assert wait_until(lambda: "change stream on script_runs open" in streams.text), streams.text
    assert "change streams unavailable" not in streams.text


def test_a_standalone_start_drops_the_oplog_a_replica_set_start_left(tmp_path: Path) -> None:
    # A server alone on its embedded database starts it standalone, which
    # never prunes an oplog: what an older version left would stay on disk.
    data_dir = tmp_path / "data"

    @contextmanager
    def started(replica_set: bool) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
        database = EmbeddedDatabase(data_dir, replica_set=replica_set)
        uri = database.start()
        assert database.credential is not None
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(uri, **database.credential.client_options())
        try:
            yield client
        finally:
            client.close()
            database.stop()

    with started(replica_set=True) as client:
        client.sbx.things.insert_many([{"n": n} for n in range(300)])
        assert client.local["oplog.rs"].count_documents({}) >= 300
    with started(replica_set=False) as client:
        assert client.sbx.things.count_documents({}) == 300
    with started(replica_set=True) as client:
        assert client.sbx.things.count_documents({}) == 300
        assert client.local["oplog.rs"].count_documents({}) < 10  # the start's own entries only


def test_a_sigkilled_server_leaves_nothing_that_blocks_the_next_start(server_factory: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir, mongodb_uri=None).start()
    doc = first.api().create_script(name="Survives a crash")
    first.kill()
    # The database child dies with its parent.
    assert wait_until(lambda: database_processes(data_dir) == []), database_processes(data_dir)

    second = server_factory(data_dir=data_dir, mongodb_uri=None, db_name=first.db_name).start()
    assert second.api().get(f"/api/admin/scripts/{doc['id']}").status_code == 200
    assert second.stop() == 0


def test_the_databases_stop_handler_runs_once_when_a_second_signal_comes_during_it() -> None:
    # SecantusDB stops from inside its SIGTERM handler; a second SIGTERM then
    # re-entered it and deadlocked, leaving a database that ignored SIGTERM.
    # scriptbox/dblaunch.py has SecantusDB install its handler through the guard.
    import secantus.cli

    guard_stop_signals()
    try:
        assert isinstance(secantus.cli.signal, StopSignalsOnce)
    finally:
        secantus.cli.signal = signal
    calls: list[int] = []

    def stop_handler(signum: int, _frame: object) -> None:
        calls.append(signum)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while this one runs
            time.sleep(0.05)  # Python runs the pending handler in here

    previous = StopSignalsOnce(signal).signal(signal.SIGTERM, stop_handler)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert calls == [signal.SIGTERM]


def test_waking_the_accept_loop_ends_a_thread_blocked_on_a_closed_listening_socket() -> None:
    # What SecantusDB's stop does: close the listening socket, then wait for the
    # thread blocked in accept() on it, which the close does not wake (Linux).
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stopping = threading.Event()

    def accept_loop() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    time.sleep(0.05)
    stopping.set()
    listener.close()
    assert wake_accept("127.0.0.1", port)  # True: nothing listens any more
    thread.join(1)
    assert not thread.is_alive()


def test_the_embedded_database_stops_without_waiting_out_its_accept_thread(tmp_path: Path) -> None:
    # Gross regressions only: without the wake-up a stop takes at least the 2 s
    # SecantusDB waits for its accept thread; with it, ~0.1 s.
    database = EmbeddedDatabase(tmp_path, replica_set=False)
    database.start()
    began = time.monotonic()
    database.stop()
    assert time.monotonic() - began < 1.5


def test_a_leftover_database_process_is_stopped_on_the_next_start(server_factory: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir, mongodb_uri=None).start()
    (db_process,) = database_processes(data_dir)
    # Simulate a database that missed its parent's death: keep it alive by
    # stopping the server with SIGKILL while the database ignores nothing.
    db_process.send_signal(signal.SIGSTOP)  # frozen: it cannot act on PDEATHSIG yet
    first.kill()
    try:
        second = server_factory(data_dir=data_dir, mongodb_uri=None)
        db_process.send_signal(signal.SIGCONT)
        second.start()
        assert second.api().get("/api/admin/scripts").status_code == 200
    finally:
        if db_process.is_running():
            db_process.send_signal(signal.SIGCONT)
    assert not db_process.is_running() or db_process.status() == psutil.STATUS_ZOMBIE
    assert second.stop() == 0
    assert database_processes(data_dir) == []


def test_a_second_server_on_the_same_data_dir_is_refused(server_factory: Any, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = server_factory(data_dir=data_dir).start()
    second = server_factory(data_dir=data_dir).start(wait=False)
    assert second.process is not None
    assert second.process.wait(30) == 2
    time.sleep(0.2)
    assert "already using the data dir" in second.text and str(first.process.pid) in second.text  # type: ignore
    assert first.api().get("/api/admin/scripts").status_code == 200


@pytest.mark.parametrize(("args", "env", "named"), [
    (["--port", "70000"], {}, "--port"),
    ([], {"SCRIPTBOX_PORT": "http"}, "SCRIPTBOX_PORT"),
    ([], {"SCRIPTBOX_MAX_CONCURRENT_RUNS": "0"}, "SCRIPTBOX_MAX_CONCURRENT_RUNS"),
    ([], {"SCRIPTBOX_MAX_LOG_BYTES": "lots"}, "SCRIPTBOX_MAX_LOG_BYTES"),
    ([], {"SCRIPTBOX_TAIL_BYTES": "-1"}, "SCRIPTBOX_TAIL_BYTES"),
    ([], {"SCRIPTBOX_DB_NAME": "a/b"}, "SCRIPTBOX_DB_NAME"),
    ([], {"SCRIPTBOX_ADMIN_USER": ""}, "SCRIPTBOX_ADMIN_USER"),
    ([], {"SCRIPTBOX_TLS_CERT": "/nonexistent.pem", "SCRIPTBOX_TLS_KEY": "/nonexistent.key"}, "SCRIPTBOX_TLS_CERT"),
    (["--mongodb-uri", "http://db:27017"], {}, "--mongodb-uri"),
])
def test_bad_settings_are_refused_at_start_naming_the_setting(tmp_path: Path, args: list[str], env: dict[str, str],
                                                              named: str) -> None:
    import os

    result = subprocess.run([sys.executable, str(REPO / "app.py"), "serve", "--data-dir", str(tmp_path), *args],
                            env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr


def test_flags_win_over_environment(server_factory: Any) -> None:
    port = free_loopback_port()
    instance = server_factory(env={"SCRIPTBOX_PORT": "1"}, port=port).start()
    assert f"127.0.0.1:{port}" in instance.text


def test_a_busy_port_is_reported_clearly(server_factory: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        instance = server_factory(port=taken.getsockname()[1]).start(wait=False)
        assert instance.process is not None
        assert instance.process.wait(30) == 1
        eventually(lambda: "cannot listen" in instance.text, timeout=5, message="the reason is printed")
        assert "cannot listen" in instance.text and "Traceback" not in instance.text


def test_a_lost_database_gives_503_and_the_server_recovers(server_factory: Any, tmp_path: Path) -> None:
    port = free_loopback_port()
    argv = secantus_argv() + ["--host", "127.0.0.1", "--port", str(port), "--storage-path", str(tmp_path / "db"),
                             "--sync-on-commit"]

    credential = DbCredential("scriptbox", "lost-db-test-secret")

    def start_db() -> subprocess.Popen[bytes]:
        proc = launch(argv, credential, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_until(lambda: _port_open(port), 60)
        return proc

    db = start_db()
    try:
        instance: ScriptboxServer = server_factory(
            mongodb_uri=credential.uri(f"mongodb://127.0.0.1:{port}/?directConnection=true"))
        instance.start()
        api = instance.api()
        doc = api.create_script(name="Before the outage")

        db.kill()
        db.wait()
        for method, path, body in [("GET", "/api/admin/scripts", None),
                                   ("GET", f"/api/admin/scripts/{doc['id']}", None),
                                   ("POST", "/api/admin/scripts", {"name": "x", "codeIdentifier": "during",
                                                                   "type": "bash"})]:
            response = api.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "database_unavailable"
        health = requests.get(instance.base_url + "/healthz", timeout=30)
        assert health.status_code == 503 and health.json()["db"] == "unreachable"
        assert instance.process is not None and instance.process.poll() is None

        db = start_db()
        assert wait_until(lambda: requests.get(instance.base_url + "/healthz", timeout=30).status_code == 200, 30)
        after = api.get(f"/api/admin/scripts/{doc['id']}")
        assert after.status_code == 200, (after.text, api.get("/api/admin/scripts").text)
        assert after.json()["name"] == "Before the outage"
    finally:
        db.kill()
        db.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_stop_does_not_wait_for_notifications_stuck_in_flight(server_factory: Any) -> None:
    # Eight run-end messages to a receiver that never answers: four sends in
    # the notifier's threads, four queued behind them. A stop gives them its
    # grace, then leaves them: it used to wait for every one of them to time out.
    receiver = Receiver(hang_s=120)
    try:
        server = server_factory().start()
        api = server.api()
        script = api.create_script(script="echo done")
        for n in range(8):
            answer = api.post("/api/admin/notifications", json={
                "name": f"stuck-{n}-{script['id']}", "url": receiver.url(f"hang/{n}"), "scriptIds": [script["id"]],
                "events": ["succeeded"]})
            assert answer.status_code == 201, answer.text
        assert api.post(f"/api/admin/scripts/{script['id']}/run?wait=30").json()["status"] == "succeeded"
        assert wait_until(lambda: len(receiver.hits) >= 4, 30), receiver.hits
        started = time.monotonic()
        assert server.stop() == 0
        took = time.monotonic() - started
        assert took < 20, f"the stop took {took:.1f} s"
        assert "shutdown: still stopping the notifier" in server.text
    finally:
        receiver.close()

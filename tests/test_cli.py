"""The command-line client (scriptbox/cli) and the by-code routes, against a real server.

The client runs as a real subprocess (`python app.py run ...`); a tiny TCP proxy
in front of the server records what the client sends and can cut its stream
connection once, mid-run.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scriptbox.cli.commands import parse_params
from scriptbox.cli.credentials import load_connection
from scriptbox.cli.errors import CliError
from scriptbox.cli.events import EventParser
from scriptbox.cli.outcome import exit_code_for, outcome_message
from support import (
    ADMIN_PASSWORD,
    REPO,
    Api,
    ScriptboxServer,
    SseStream,
    eventually,
    get_run,
    make_token,
    output_text,
    start_run,
    wait_status,
)
from test_error_shape import BAD_BODIES, assert_error_shape

CLI_TIMEOUT_S = 90


# -- helpers ---------------------------------------------------------------

def cli_env(url: str, **overrides: str | None) -> dict[str, str]:
    """The client's environment: none of this machine's SCRIPTBOX_* variables, then `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIPTBOX_")}
    env.update({"SCRIPTBOX_URL": url, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD})
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def cli(url: str, *args: str, **env: str | None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(REPO / "app.py"), *args], env=cli_env(url, **env), cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=CLI_TIMEOUT_S, check=False)


class Pipe:
    """Collects everything a child writes to one pipe, from a thread."""

    def __init__(self, fd: int) -> None:
        self.data = bytearray()
        self._fd = fd
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while chunk := os.read(self._fd, 65536):
            self.data += chunk

    def wait_for(self, needle: bytes, timeout: float = 30.0) -> None:
        def seen() -> bool:
            assert needle in self.data, f"got {bytes(self.data)!r}"
            return True

        eventually(seen, timeout, interval=0.02, message=f"{needle!r} in the output")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """A client process whose stdout and stderr are read while it runs."""

    def __init__(self, url: str, *args: str, stdin: int = subprocess.DEVNULL) -> None:
        # SIGINT back to its default: a test run started in the background (`make test &`) inherits it
        # ignored, and Python then never turns Ctrl-C into KeyboardInterrupt.
        self.process = subprocess.Popen([sys.executable, str(REPO / "app.py"), *args], env=cli_env(url), cwd=REPO,
                                        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        preexec_fn=_default_sigint)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = Pipe(self.process.stdout.fileno())
        self.stderr = Pipe(self.process.stderr.fileno())

    def wait(self) -> int:
        code = self.process.wait(CLI_TIMEOUT_S)
        time.sleep(0.1)  # let the reader threads take the last bytes
        return code


class Proxy:
    """A TCP proxy to the server on its own loopback port.

    It records the bytes each client connection sends. With `cut_first_stream`,
    the first SSE stream response is cut right after its first complete
    `output` event plus a few bytes of what follows (so mid-chunk), once.
    """

    def __init__(self, upstream_port: int, cut_first_stream: bool = False) -> None:
        self.upstream_port = upstream_port
        self.requests: list[bytearray] = []
        self.cuts = 0
        self.delivered_before_cut = b""
        self._armed = cut_first_stream
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            sent = bytearray()
            self.requests.append(sent)
            threading.Thread(target=self._upstream_pump, args=(client, upstream, sent), daemon=True).start()
            threading.Thread(target=self._downstream_pump, args=(upstream, client, sent), daemon=True).start()

    def _upstream_pump(self, client: socket.socket, upstream: socket.socket, sent: bytearray) -> None:
        try:
            while data := client.recv(65536):
                sent += data
                upstream.sendall(data)
        except OSError:
            pass

    def _downstream_pump(self, upstream: socket.socket, client: socket.socket, sent: bytearray) -> None:
        held = b""
        try:
            while data := upstream.recv(65536):
                if self._armed and b"/stream" in sent:
                    held += data
                    start = held.find(b"event: output")
                    end = held.find(b"\n\n", start) if start >= 0 else -1
                    if end < 0:
                        continue  # hold everything until the first output event is complete
                    with self._lock:
                        if self._armed:
                            self._armed = False
                            self.cuts += 1
                            self.delivered_before_cut = held[:end + 2 + 5]
                            client.sendall(self.delivered_before_cut)
                            for sock in (client, upstream):
                                sock.shutdown(socket.SHUT_RDWR)
                                sock.close()
                            return
                    data, held = held, b""
                client.sendall(data)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture()
def url(server: ScriptboxServer) -> str:
    return server.base_url


def runs_of(api: Api, script_id: str) -> list[dict[str, Any]]:
    response = api.get("/api/admin/scripts/runs", params={"scriptId": script_id})
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def the_run_of(api: Api, script_id: str, timeout: float = 30.0) -> dict[str, Any]:
    runs = eventually(lambda: runs_of(api, script_id), timeout, message="a run was started")
    assert len(runs) == 1
    return runs[0]


def stored_output(api: Api, run_id: str) -> tuple[bytes, bytes]:
    """stdout and stderr as the server stored them, replayed through its SSE stream."""
    stream = SseStream(api, run_id)
    events = stream.until_end()
    stream.close()
    return output_text(events, "stdout").encode(), output_text(events, "stderr").encode()


# -- the by-code routes ------------------------------------------------------

def test_by_code_routes_answer_like_the_id_routes(api: Api, server: ScriptboxServer) -> None:
    doc = api.create_script(script="echo by code")
    code = doc["codeIdentifier"]
    by_code = api.get(f"/api/admin/scripts/by-code/{code}")
    assert by_code.status_code == 200
    assert by_code.json() == api.get(f"/api/admin/scripts/{doc['id']}").json() == doc

    started = api.post(f"/api/admin/scripts/by-code/{code}/run")
    assert started.status_code == 202, started.text
    run_id = started.json()["runId"]
    assert started.headers["Location"] == f"/api/admin/scripts/runs/{run_id}"
    run = wait_status(api, run_id)
    assert (run["scriptId"], run["trigger"], run["status"]) == (doc["id"], "api", "succeeded")
    manual = api.post(f"/api/admin/scripts/by-code/{code}/run", json={"trigger": "manual"})
    assert get_run(api, manual.json()["runId"])["trigger"] == "manual"

    # Same validation and errors as the id route, body first.
    bodies = (({"trigger": "schedule"}, "trigger"), ({"params": {"a": "1"}}, "params.a"), ({"params": [1]}, "params"))
    for body, field in bodies:
        for path in (f"/api/admin/scripts/by-code/{code}/run", f"/api/admin/scripts/{doc['id']}/run"):
            answer = api.post(path, json=body)
            assert answer.status_code == 400 and field in answer.json()["error"]["fields"], answer.text
    for missing in ("no-such-script", "UPPER", "a%20b", "x" * 65):
        for path in (f"/api/admin/scripts/by-code/{missing}", f"/api/admin/scripts/by-code/{missing}/run"):
            answer = api.post(path) if path.endswith("/run") else api.get(path)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", (path, answer.text)
    api.put(f"/api/admin/scripts/{doc['id']}", json={"enabled": False})
    disabled = api.post(f"/api/admin/scripts/by-code/{code}/run")
    assert disabled.status_code == 409 and disabled.json()["error"]["code"] == "script_disabled"
    assert api.put(f"/api/admin/scripts/by-code/{code}", json={}).status_code == 405
    anonymous = server.api(auth=None)
    assert anonymous.get(f"/api/admin/scripts/by-code/{code}").status_code == 401
    assert anonymous.post(f"/api/admin/scripts/by-code/{code}/run").status_code == 401
    form = api.post(f"/api/admin/scripts/by-code/{code}/run", data="trigger=api",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 403


def test_by_code_run_answers_every_malformed_body_like_the_id_route(api: Api) -> None:
    doc = api.create_script(script="true")
    json_type = {"Content-Type": "application/json"}
    for case, body in BAD_BODIES:
        by_id = api.post(f"/api/admin/scripts/{doc['id']}/run", data=body, headers=json_type)
        by_code = api.post(f"/api/admin/scripts/by-code/{doc['codeIdentifier']}/run", data=body, headers=json_type)
        assert by_code.status_code == by_id.status_code, case
        if by_id.status_code >= 400:
            assert assert_error_shape(by_code)["code"] == assert_error_shape(by_id)["code"], case
    assert len(runs_of(api, doc["id"])) == 2  # only the `null` body ("no options") started a run, once per route


def test_by_code_is_never_taken_for_an_id_and_the_client_prefers_an_existing_id(api: Api, url: str) -> None:
    first = api.create_script(name="First")
    # A codeIdentifier may look exactly like an id (24 lowercase hex digits), even another script's.
    shadow = api.create_script(name="Shadow", codeIdentifier=first["id"])
    assert api.get(f"/api/admin/scripts/by-code/{first['id']}").json()["id"] == shadow["id"]
    assert api.get(f"/api/admin/scripts/{first['id']}").json()["id"] == first["id"]
    assert api.get("/api/admin/scripts/by-code").status_code == 404
    named = api.create_script(codeIdentifier="by-code")
    assert api.get("/api/admin/scripts/by-code/by-code").json()["id"] == named["id"]
    api.delete(f"/api/admin/scripts/{named['id']}")

    shown = cli(url, "show", first["id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == first["id"]
    hex_code = os.urandom(12).hex()
    hexed = api.create_script(codeIdentifier=hex_code)
    shown = cli(url, "show", hex_code, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == hexed["id"]


# -- run --follow ------------------------------------------------------------

def test_follow_writes_stdout_and_stderr_apart_byte_exactly_and_exits_0(api: Api, url: str) -> None:
    script = ("printf 'out 1\\n\\033[1mbold\\033[0m\\r\\nout 2 partial'; "
              "printf 'err \\xff\\xfe replaced\\nerr partial' >&2")
    doc = api.create_script(script=script)
    result = cli(url, "run", doc["codeIdentifier"], "--follow")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out 1\n\x1b[1mbold\x1b[0m\r\nout 2 partial"
    assert result.stderr == "err \ufffd\ufffd replaced\nerr partial".encode()
    run = the_run_of(api, doc["id"])
    assert (result.stdout, result.stderr) == stored_output(api, run["id"])


def test_follow_exits_with_the_scripts_exit_code_and_leaves_its_stderr_alone(api: Api, url: str) -> None:
    doc = api.create_script(script="echo to out; echo to err >&2; exit 7")
    result = cli(url, "run", doc["id"], "--follow")
    assert (result.returncode, result.stdout, result.stderr) == (7, b"to out\n", b"to err\n")


@pytest.mark.parametrize(("fields", "code", "says"), [
    ({"script": "printf 'begun'; sleep 30", "timeoutMs": 500}, 124, "timed out (timed out after 500 ms)"),
    ({"defaultWorkingDirectory": "/no/such/scriptbox/dir"}, 1,
     "could not start: working directory /no/such/scriptbox/dir does not exist"),
    ({"script": "kill -9 $$"}, 137, "failed without an exit code: killed by SIGKILL"),
])
def test_follow_exit_codes_of_runs_that_did_not_exit_by_themselves(api: Api, url: str, fields: dict[str, Any],
                                                                   code: int, says: str) -> None:
    doc = api.create_script(**fields)
    result = cli(url, "run", doc["codeIdentifier"], "--follow")
    run = the_run_of(api, doc["id"])
    assert result.returncode == code == exit_code_for(run), result.stderr
    stdout, stderr = stored_output(api, run["id"])
    assert result.stdout == stdout
    # The run's stderr exactly, then one line of ours (on a line of its own) saying what happened.
    assert result.stderr.startswith(stderr)
    ours = result.stderr[len(stderr):].decode()
    assert ours == ("" if stderr.endswith(b"\n") or not stderr else "\n") + f"scriptbox: run {run['id']} {says}\n"


def test_follow_exits_130_when_the_run_is_canceled(api: Api, url: str) -> None:
    doc = api.create_script(script="echo started; sleep 30")
    child = Child(url, "run", doc["codeIdentifier"], "--follow")
    child.stdout.wait_for(b"started\n")
    run = the_run_of(api, doc["id"])
    assert api.post(f"/api/admin/scripts/runs/{run['id']}/cancel").status_code == 202
    assert child.wait() == 130
    assert bytes(child.stdout.data) == b"started\n"
    assert bytes(child.stderr.data) == f"scriptbox: run {run['id']} was canceled\n".encode()


def test_follow_resumes_with_last_event_id_after_its_connection_is_cut(api: Api, server: ScriptboxServer) -> None:
    lines = 40
    doc = api.create_script(script=f"for i in $(seq 1 {lines}); do echo \"line $i\"; sleep 0.05; done; "
                                   "printf 'tail without newline' >&2")
    proxy = Proxy(server.port, cut_first_stream=True)
    try:
        result = cli(proxy.url, "run", doc["codeIdentifier"], "--follow")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert proxy.cuts == 1
    assert result.stdout == "".join(f"line {i}\n" for i in range(1, lines + 1)).encode()
    assert result.stderr == b"tail without newline"
    streams = [bytes(r) for r in proxy.requests if b"/stream" in r]
    assert len(streams) >= 2 and b"last-event-id:" not in streams[0].lower()
    # It resumes after the one complete output event it got before the cut.
    delivered = re.search(rb"event: output\nid: (\d+)\n", proxy.delivered_before_cut)
    assert delivered is not None
    assert f"\r\nlast-event-id: {int(delivered[1])}\r\n".encode() in streams[1].lower()
    run = the_run_of(api, doc["id"])
    assert (result.stdout, result.stderr) == stored_output(api, run["id"])


def test_follow_reconnects_across_a_server_crash_and_reports_how_the_run_ended(server_factory: Any) -> None:
    server = server_factory().start()
    api = server.api()
    doc = api.create_script(script="echo before; sleep 60")
    child = Child(server.base_url, "run", doc["codeIdentifier"], "--follow")
    child.stdout.wait_for(b"before\n")
    run_id = the_run_of(api, doc["id"])["id"]
    server.kill()
    server.start()  # same port and database: recovery ends the orphaned run
    assert child.wait() == 1
    assert bytes(child.stdout.data) == b"before\n"
    run = get_run(server.api(), run_id)
    assert bytes(child.stderr.data).endswith(
        f"scriptbox: run {run_id} failed without an exit code: {run['meta']['error']}\n".encode())
    assert run["meta"]["error"].startswith("executor lost")


def test_ctrl_c_without_a_terminal_detaches_and_the_run_goes_on(api: Api, url: str) -> None:
    doc = api.create_script(script="echo started; sleep 30")
    child = Child(url, "run", doc["codeIdentifier"], "--follow")
    child.stdout.wait_for(b"started\n")
    child.process.send_signal(signal.SIGINT)
    assert child.wait() == 130
    run = the_run_of(api, doc["id"])
    assert bytes(child.stderr.data) == (f"scriptbox: detached; run {run['id']} keeps running (scriptbox log "
                                        f"{run['id']} --follow, scriptbox cancel {run['id']})\n").encode()
    assert get_run(api, run["id"])["status"] == "running"
    api.post(f"/api/admin/scripts/runs/{run['id']}/cancel")
    wait_status(api, run["id"])


def test_ctrl_c_at_a_terminal_asks_and_can_cancel_the_run(api: Api, url: str) -> None:
    doc = api.create_script(script="echo started; sleep 30")
    terminal, tty = pty.openpty()
    try:
        child = Child(url, "run", doc["codeIdentifier"], "--follow", stdin=tty)
        child.stdout.wait_for(b"started\n")
        child.process.send_signal(signal.SIGINT)
        child.stderr.wait_for(b"[c]ancel / [d]etach")
        os.write(terminal, b"c\n")
        assert child.wait() == 130
    finally:
        os.close(terminal)
        os.close(tty)
    run = the_run_of(api, doc["id"])
    assert run["status"] == "canceled"
    assert bytes(child.stderr.data).endswith(f"scriptbox: run {run['id']} was canceled\n".encode())
    assert bytes(child.stdout.data) == b"started\n"


def test_follow_exits_141_without_a_traceback_when_its_reader_goes_away(api: Api, url: str) -> None:
    # Output keeps coming for seconds, so a write after our close is certain even on a slow machine.
    doc = api.create_script(script="echo first; for i in 1 2 3 4 5 6; do sleep 0.5; echo more; done")
    process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "run", doc["codeIdentifier"], "--follow"],
                               env=cli_env(url), cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(6) == b"first\n"
    process.stdout.close()  # like `| head -1`
    assert process.wait(CLI_TIMEOUT_S) == 141
    assert process.stderr.read() == b""
    process.stderr.close()
    assert wait_status(api, the_run_of(api, doc["id"])["id"])["status"] == "succeeded"


# -- run without --follow, --wait, --param ------------------------------------

def test_run_prints_the_run_id_alone_or_json(api: Api, url: str) -> None:
    doc = api.create_script(script="echo quick")
    plain = cli(url, "run", doc["codeIdentifier"])
    assert plain.returncode == 0 and plain.stderr == b""
    run_id = plain.stdout.decode().strip()
    assert plain.stdout == f"{run_id}\n".encode() and get_run(api, run_id)["scriptId"] == doc["id"]
    as_json = cli(url, "run", doc["id"], "--json")
    started = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and set(started) == {"runId", "status", "params"}
    assert get_run(api, started["runId"])["scriptId"] == doc["id"]


def test_wait_prints_the_result_and_exits_with_its_code_or_3_while_still_running(api: Api, url: str) -> None:
    failing = api.create_script(script="echo waited; exit 5")
    done = cli(url, "run", failing["codeIdentifier"], "--wait", "60", "--json")
    assert done.returncode == 5, done.stderr
    run = json.loads(done.stdout)
    assert (run["status"], run["exitCode"], run["outputTail"]) == ("failed", 5, "waited\n")
    people = cli(url, "run", failing["codeIdentifier"], "--wait", "60")
    assert people.returncode == 5 and b"status:" in people.stdout and b"waited\n" in people.stdout

    slow = api.create_script(script="sleep 30")
    waiting = cli(url, "run", slow["codeIdentifier"], "--wait", "0.5", "--json")
    assert waiting.returncode == 3, waiting.stderr
    run = json.loads(waiting.stdout)
    assert run["status"] in ("queued", "running")
    assert f"run {run['id']} is still {run['status']} after 0.5 s".encode() in waiting.stderr
    api.post(f"/api/admin/scripts/runs/{run['id']}/cancel")
    wait_status(api, run["id"])


def test_params_are_sent_only_when_given_and_the_servers_refusal_is_shown(api: Api, server: ScriptboxServer) -> None:
    doc = api.create_script(script="echo p", params=[{"name": "other", "type": "string"}, {"name": "n", "type": "int"}])
    proxy = Proxy(server.port)
    try:
        refused = cli(proxy.url, "run", doc["codeIdentifier"], "--param", "NAME=a=b", "--param", "other=")
        plain = cli(proxy.url, "run", doc["codeIdentifier"])
    finally:
        proxy.close()
    assert refused.returncode == 2
    assert b"(400 validation_failed)" in refused.stderr and b"params.NAME: unknown parameter" in refused.stderr
    first, second = (bytes(r) for r in proxy.requests if b"/run " in r)
    assert json.loads(first.split(b"\r\n\r\n", 1)[1]) == {"params": {"NAME": "a=b", "other": ""}}
    assert second.endswith(b"\r\n\r\n") and b"content-type" not in second.lower()
    assert plain.returncode == 0
    for bad in (["--param", "novalue"], ["--param", "1x=2"], ["--param", "a=1", "--param", "a=2"]):
        result = cli(server.base_url, "run", doc["codeIdentifier"], *bad)
        assert result.returncode == 2 and b"--param" in result.stderr, result.stderr
    # Values come as strings and are coerced to the declared type by the server.
    typed = cli(server.base_url, "run", doc["codeIdentifier"], "--param", "n=5", "--param", "other=x", "--json")
    assert typed.returncode == 0, typed.stderr
    assert get_run(api, json.loads(typed.stdout)["runId"])["params"] == {"n": 5, "other": "x"}
    not_int = cli(server.base_url, "run", doc["codeIdentifier"], "--param", "n=five")
    assert not_int.returncode == 2 and b"params.n: must be a whole number" in not_int.stderr
    assert len(runs_of(api, doc["id"])) == 2  # only `plain` and `typed` started one


# -- list, runs, show, log, cancel --------------------------------------------

def test_list_runs_show_log_and_cancel_print_tables_for_people_and_json_for_machines(api: Api, url: str) -> None:
    doc = api.create_script(name="Disk usage", script="echo one; echo two >&2",
                            env=[{"key": "REGION", "value": "secret-ish"}])
    code = doc["codeIdentifier"]
    run_id = start_run(api, doc["id"])
    wait_status(api, run_id)

    listed = cli(url, "list", "--json")
    assert listed.returncode == 0 and doc["id"] in [s["id"] for s in json.loads(listed.stdout)["scripts"]]
    table = cli(url, "list", "-q", code).stdout.decode().splitlines()
    assert table[0].split() == ["CODE", "NAME", "TYPE", "ENABLED", "LAST", "RUN", "AT", "ID"]
    row = table[1].split()
    assert row[:6] == [code, "Disk", "usage", "bash/host", "yes", "succeeded"] and row[-1] == doc["id"]
    assert len(table) == 2

    runs = cli(url, "runs", code, "--status", "succeeded", "--limit", "5", "--json")
    assert runs.returncode == 0 and [r["id"] for r in json.loads(runs.stdout)["runs"]] == [run_id]
    runs_table = cli(url, "runs", "--limit", "500").stdout.decode()
    assert any(line.split()[:4] == [run_id, code, "succeeded", "0"] for line in runs_table.splitlines())
    bad_status = cli(url, "runs", "--status", "sleeping")
    assert bad_status.returncode == 2 and b"status:" in bad_status.stderr
    assert cli(url, "runs", "--limit", "501").returncode == 2

    shown = cli(url, "show", code)
    assert shown.returncode == 0
    assert b"REGION" in shown.stdout and b"secret-ish" not in shown.stdout
    assert shown.stdout.endswith(b"--- script ---\necho one; echo two >&2\n")
    assert json.loads(cli(url, "show", code, "--json").stdout) == api.get(f"/api/admin/scripts/{doc['id']}").json()

    log = cli(url, "log", run_id)
    assert (log.returncode, log.stdout) == (0, api.get(f"/api/admin/scripts/runs/{run_id}/log").content)
    logged = json.loads(cli(url, "log", run_id, "--json").stdout)
    assert logged["run"]["id"] == run_id and logged["log"] == log.stdout.decode()
    followed = cli(url, "log", run_id, "--follow")
    assert (followed.returncode, followed.stdout, followed.stderr) == (0, b"one\n", b"two\n")

    finished = cli(url, "cancel", run_id)
    assert finished.returncode == 1 and b"(409 run_finished)" in finished.stderr
    slow = api.create_script(script="sleep 30")
    slow_run = start_run(api, slow["id"])
    canceled = cli(url, "cancel", slow_run, "--json")
    assert canceled.returncode == 0 and json.loads(canceled.stdout)["id"] == slow_run
    assert wait_status(api, slow_run)["status"] == "canceled"
    for missing in (["show", "no-such-script"], ["log", "0" * 24], ["cancel", "0" * 24], ["runs", "nope"]):
        result = cli(url, *missing)
        assert result.returncode == 1 and b"(404 not_found)" in result.stderr, (missing, result.stderr)


def test_help_on_every_command(url: str) -> None:
    for command in ("run", "list", "runs", "log", "cancel", "show"):
        result = cli(url, command, "--help")
        assert result.returncode == 0 and result.stdout.startswith(f"usage: scriptbox {command}".encode())
        assert b"SCRIPTBOX_ADMIN_PASSWORD" in result.stdout
    assert cli(url, "run").returncode == 2
    assert cli(url, "run", "x", "--follow", "--wait", "3").returncode == 2
    assert cli(url, "run", "x", "--follow", "--json").returncode == 2


# -- credentials --------------------------------------------------------------

def test_missing_or_refused_credentials_exit_2_with_a_clear_message(api: Api, server: ScriptboxServer,
                                                                    tmp_path: Path) -> None:
    url = server.base_url
    missing = cli(url, "list", SCRIPTBOX_ADMIN_PASSWORD=None)
    assert missing.returncode == 2 and missing.stdout == b""
    assert b"no credentials: set SCRIPTBOX_ADMIN_PASSWORD" in missing.stderr and b"never from the command line" \
        in missing.stderr
    unreadable = cli(url, "list", SCRIPTBOX_ADMIN_PASSWORD=None, SCRIPTBOX_ADMIN_PASSWORD_FILE=str(tmp_path / "nope"))
    assert unreadable.returncode == 2 and b"SCRIPTBOX_ADMIN_PASSWORD_FILE: cannot read" in unreadable.stderr
    secret = tmp_path / "password"
    secret.write_text(ADMIN_PASSWORD + "\n")
    from_file = cli(url, "list", "--json", SCRIPTBOX_ADMIN_PASSWORD=None, SCRIPTBOX_ADMIN_PASSWORD_FILE=str(secret))
    assert from_file.returncode == 0 and "scripts" in json.loads(from_file.stdout)
    wrong = cli(url, "list", SCRIPTBOX_ADMIN_PASSWORD="not-it")
    assert wrong.returncode == 2 and b"(401 unauthorized)" in wrong.stderr and b"SCRIPTBOX_ADMIN_USER" in wrong.stderr
    assert cli(url, "list", SCRIPTBOX_URL="ftp://example.com").returncode == 2
    assert cli(url, "list", "--url", "http://user:pw@127.0.0.1:1").returncode == 2
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    unreachable = cli(url, "list", "--url", f"http://127.0.0.1:{port}")
    assert unreachable.returncode == 1 and b"cannot reach the server" in unreachable.stderr

    proxy = Proxy(server.port)
    try:
        token = cli(proxy.url, "list", SCRIPTBOX_TOKEN="tok-123")
    finally:
        proxy.close()
    assert b"\r\nAuthorization: Bearer tok-123\r\n" in proxy.requests[0]
    assert b"Basic" not in proxy.requests[0]
    # The server does not know it; the message says what to do.
    assert token.returncode == 2 and b"Bearer token and refused" in token.stderr


def test_the_client_works_with_a_real_api_token_within_its_scope(api: Api, url: str) -> None:
    script = api.create_script(script="echo via token; exit 4")
    other = api.create_script()
    secret = make_token(api, scriptIds=[script["id"]])["token"]
    as_token = {"SCRIPTBOX_TOKEN": secret, "SCRIPTBOX_ADMIN_PASSWORD": None}
    followed = cli(url, "run", script["codeIdentifier"], "--follow", **as_token)
    assert (followed.returncode, followed.stdout) == (4, b"via token\n"), followed.stderr
    waited = cli(url, "run", script["id"], "--wait", "30", "--json", **as_token)
    assert waited.returncode == 4 and json.loads(waited.stdout)["meta"]["requestedBy"].startswith("token:ci ")
    log = cli(url, "log", json.loads(waited.stdout)["id"], **as_token)
    assert (log.returncode, log.stdout) == (0, b"via token\n")
    # Outside its scope: the server's 403 is a credential problem (exit 2), with a hint about the token.
    refused = cli(url, "run", other["codeIdentifier"], **as_token)
    assert refused.returncode == 2 and b"403" in refused.stderr and b"its scope under Tokens" in refused.stderr
    assert cli(url, "list", **as_token).returncode == 2


def test_connection_settings_come_from_the_environment_with_tokens_first(tmp_path: Path) -> None:
    basic = load_connection({"SCRIPTBOX_ADMIN_PASSWORD": "pw", "SCRIPTBOX_ADMIN_USER": "ops"})
    assert (basic.base_url, basic.scheme, basic.authorization) == ("http://127.0.0.1:8765", "basic", "Basic b3BzOnB3")
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    bearer = load_connection({"SCRIPTBOX_TOKEN_FILE": str(token_file), "SCRIPTBOX_ADMIN_PASSWORD": "pw",
                              "SCRIPTBOX_URL": "https://h.example/sbx/"})
    assert (bearer.base_url, bearer.authorization) == ("https://h.example/sbx", "Bearer abc")
    assert "abc" not in repr(bearer) and "pw" not in repr(basic)
    assert load_connection({"SCRIPTBOX_ADMIN_PASSWORD": "pw"}, "http://[::1]:9/").base_url == "http://[::1]:9"
    for environ in ({}, {"SCRIPTBOX_TOKEN": ""}, {"SCRIPTBOX_ADMIN_PASSWORD": "pw", "SCRIPTBOX_URL": "127.0.0.1"}):
        with pytest.raises(CliError) as caught:
            load_connection(environ)
        assert caught.value.exit_code == 2


# -- pure rules -----------------------------------------------------------------

def test_exit_codes_of_finished_runs() -> None:
    def run(status: str, code: int | None = None, **meta: Any) -> dict[str, Any]:
        return {"id": "r1", "status": status, "exitCode": code, "meta": meta}

    cases: list[tuple[dict[str, Any], int]] = [
        (run("succeeded", 0), 0), (run("failed", 3), 3), (run("failed", 255), 255),
        (run("timed_out", None), 124), (run("timed_out", 143), 124), (run("canceled"), 130),
        (run("failed", None, error="cannot start"), 1), (run("failed", None, error="killed by SIGKILL",
                                                               signal="SIGKILL"), 137),
        (run("failed", 0), 1), (run("failed", 300), 1), (run("failed", -2), 1),
        (run("failed", None, error="executor lost: server restarted"), 1),
    ]
    for doc, expected in cases:
        assert exit_code_for(doc) == expected, doc
    assert outcome_message(run("failed", 3)) is None and outcome_message(run("succeeded", 0)) is None
    assert outcome_message(run("failed", None, error="x")) == "run r1 could not start: x"
    assert outcome_message(run("failed", None, error="lost", pid=12)) == "run r1 failed without an exit code: lost"


def test_params_parse_name_value_pairs() -> None:
    assert parse_params(["a=1", "B_2==x", "empty="]) == {"a": "1", "B_2": "=x", "empty": ""}
    for bad in (["a"], ["=1"], ["a-b=1"], ["a=1", "a=2"]):
        with pytest.raises(CliError):
            parse_params(bad)


def test_events_complete_only_at_a_blank_line() -> None:
    parser = EventParser()
    fed = [parser.feed(line) for line in ("event: output", "id: 7", 'data: {"stream":"stdout","data":"x"}')]
    assert fed == [None, None, None]
    event = parser.feed("")
    assert event is not None and (event.name, event.id, event.data["data"]) == ("output", 7, "x")
    assert parser.feed(": keepalive") is None and parser.feed("") is None


# -- packaging ------------------------------------------------------------------

def _run_python(code: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=cli_env(url), cwd=REPO, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S, check=False)


def test_the_client_commands_never_import_gevent_or_pymongo(url: str) -> None:
    result = _run_python("import sys, app\n"
                         "code = app.main(['list', '--json'])\n"
                         "print(code, sorted(m for m in ('gevent', 'pymongo', 'bottle') if m in sys.modules),"
                         " file=sys.stderr)", url)
    assert result.stderr.strip() == "0 []", result.stderr
    assert "scripts" in json.loads(result.stdout)


def _copy_sources(target: Path) -> None:
    for name in ("pyproject.toml", "README.md", "requirements.txt", "app.py"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "scriptbox", target / "scriptbox",
                    ignore=shutil.ignore_patterns("node_modules", "__pycache__"))


def test_pip_install_gives_a_scriptbox_command_whose_client_needs_only_the_standard_library(
        api: Api, url: str, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    _copy_sources(source)  # a copy: building writes build/ and *.egg-info next to the sources
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, timeout=300, capture_output=True)
    # A bare venv: no site-packages of ours, so nothing but the standard library is importable.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True, timeout=120)
    wheel = next((tmp_path / "dist").glob("scriptbox-*.whl"))
    subprocess.run([*pip, "--python", str(tmp_path / "venv" / "bin" / "python"), "install", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300, capture_output=True)
    doc = api.create_script(script="echo installed; exit 4")
    command = str(tmp_path / "venv" / "bin" / "scriptbox")
    result = subprocess.run([command, "run", doc["codeIdentifier"], "--follow"], env=cli_env(url),
                            capture_output=True, timeout=CLI_TIMEOUT_S, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (4, b"installed\n", b"")
    served = subprocess.run([command, "serve", "--port", "0"], env=cli_env(url), capture_output=True, text=True,
                            timeout=CLI_TIMEOUT_S, check=False)
    # The server commands are there too; without --no-deps they would have their dependencies.
    assert served.returncode != 0 and "gevent" in served.stderr

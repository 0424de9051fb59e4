"""outputMode of a definition (issue 21 item 11, the merged-order view).

"separate" keeps stdout and stderr on two pipes: told apart, interleaved in the
order the server read them. "merged" puts stderr on the stdout pipe at the
spawn (2>&1): everything is stdout, in exactly the order it was written.
Validation, answers, versions and audit in-process on the real database; the
order of real runs through one real server (gevent-patched, as in production).
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from support import Api, AppClient, ScriptboxServer, unique_name
from support.inprocess import InProcessApp
from support.runs import start_run, wait_status

LINES = 300
# Written as fast as the shell can: within one read of a pipe, or between two.
FAST_BASH = f'for i in $(seq 1 {LINES}); do echo "out $i"; echo "err $i" >&2; done'
FAST_VM2 = f'for (let i = 1; i <= {LINES}; i++) {{ console.log("out " + i); console.error("err " + i); }}'
EXPECTED_FAST = "".join(f"out {i}\nerr {i}\n" for i in range(1, LINES + 1))
# Separate mode orders by reading. The paced script writes a line and waits until
# the server has read it (FIONREAD on its end of the pipe: nothing left in it)
# before it writes the next, on the other stream. Readers hand on what they read at
# once (they hold output back only for busy viewers, and there are none here), so
# the stored order must be the printed order exactly. (With the readers' former
# 0.1 s per-stream hold this failed 10 times out of 10.)
SLOW_LINES = 20
PACED = f"""
import array, fcntl, os, termios, time
def drained(fd):
    pending = array.array("i", [0])
    for _ in range(4000):
        fcntl.ioctl(fd, termios.FIONREAD, pending)
        if pending[0] == 0:
            return
        time.sleep(0.005)
for i in range(1, {SLOW_LINES} + 1):
    for fd, name in ((1, "out"), (2, "err")):
        os.write(fd, f"{{name}} {{i}}\\n".encode())
        drained(fd)
"""


def body(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "Order", "codeIdentifier": unique_name("ord"), "type": "bash", "script": "true"}
    doc.update(changes)
    return doc


# -- validation, answers, versions, audit (in-process) ------------------------


def test_output_mode_defaults_to_separate_and_merged_is_kept(client: AppClient) -> None:
    plain = client.post("/api/admin/scripts", json=body())
    assert plain.status_code == 201, plain.text
    assert plain.json()["outputMode"] == "separate"
    for kind, runner in (("bash", "host"), ("node", "host"), ("node", "vm2")):
        made = client.post("/api/admin/scripts", json=body(type=kind, runner=runner, outputMode="merged"))
        assert made.status_code == 201, made.text
        assert client.get(f"/api/admin/scripts/{made.json()['id']}").json()["outputMode"] == "merged"
    # A partial update that does not name it keeps it.
    sid = made.json()["id"]
    assert client.put(f"/api/admin/scripts/{sid}", json={"name": "Renamed"}).json()["outputMode"] == "merged"


def test_bad_output_modes_are_refused_naming_the_field(client: AppClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"outputMode": "interleaved"}, "must be one of separate, merged"),
        ({"outputMode": ""}, "must be one of separate, merged"),
        ({"outputMode": None}, "must be text (a JSON string)"),
        ({"outputMode": 1}, "must be text (a JSON string)"),
        ({"type": "browser", "outputMode": "merged"},
         "browser runs keep stdout and stderr in the order they were written; merged applies to the host and "
         "vm2 runners"),
    ]
    for changes, message in cases:
        answer = client.post("/api/admin/scripts", json=body(**changes))
        assert answer.status_code == 400, (changes, answer.text)
        assert answer.json()["error"]["fields"] == {"outputMode": message}, changes
    browser = client.post("/api/admin/scripts", json=body(type="browser", outputMode="separate"))
    assert browser.status_code == 201, browser.text


def test_changing_the_type_to_browser_resets_a_merged_mode_unless_it_is_sent(client: AppClient) -> None:
    sid = client.post("/api/admin/scripts", json=body(type="node", outputMode="merged")).json()["id"]
    refused = client.put(f"/api/admin/scripts/{sid}", json={"type": "browser", "outputMode": "merged"})
    assert refused.status_code == 400 and list(refused.json()["error"]["fields"]) == ["outputMode"]
    moved = client.put(f"/api/admin/scripts/{sid}", json={"type": "browser"})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["runner"], moved.json()["outputMode"]) == ("browser", "separate")


def test_a_change_of_mode_is_a_version_and_an_audited_field(client: AppClient) -> None:
    sid = client.post("/api/admin/scripts", json=body()).json()["id"]
    saved = client.put(f"/api/admin/scripts/{sid}", json={"outputMode": "merged"}).json()
    assert saved["version"] == 2
    entry = client.get(f"/api/admin/audit?targetId={sid}&action=script.update").json()["entries"][0]
    assert entry["details"]["fields"] == ["outputMode"]
    assert client.put(f"/api/admin/scripts/{sid}", json={"outputMode": "merged"}).json()["version"] == 2
    versions = {n: client.get(f"/api/admin/scripts/{sid}/versions/{n}").json()["definition"]["outputMode"]
                for n in (1, 2)}
    assert versions == {1: "separate", 2: "merged"}


def test_a_definition_stored_before_output_modes_shows_and_runs_separate(app: InProcessApp,
                                                                         client: AppClient) -> None:
    legacy = app.services.definitions.create(
        {"name": "Old", "codeIdentifier": unique_name("old"), "type": "bash", "script": "echo hi"})
    assert "outputMode" not in legacy
    assert client.get(f"/api/admin/scripts/{legacy['_id']}").json()["outputMode"] == "separate"
    run = app.engine.submit(str(legacy["_id"]), "api", None)
    assert run["meta"]["snapshot"]["outputMode"] == "separate"


# -- the order of real runs (one real server) ---------------------------------


def _run(api: Api, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create and run a script; the finished run and its stored chunks in seq order."""
    definition = api.create_script(name=unique_name("order"), **fields)
    run = wait_status(api, start_run(api, definition["id"]), timeout=60)
    chunks: list[dict[str, Any]] = []
    after = -1
    while True:
        page = api.get(f"/api/admin/scripts/runs/{run['id']}/chunks", params={"after": after}).json()
        chunks += page["chunks"]
        if page["next"] is None:
            return run, chunks
        after = page["next"]


def _lines(chunks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(stream, line) in stored order; a line belongs to the stream it was written on."""
    return [(c["stream"], line) for c in chunks for line in c["data"].splitlines()]


def test_merged_mode_stores_fast_interleaved_bash_output_in_exactly_the_written_order(
        server: ScriptboxServer) -> None:
    run, chunks = _run(server.api(), type="bash", script=FAST_BASH, outputMode="merged")
    assert run["status"] == "succeeded", run
    assert run["meta"]["snapshot"]["outputMode"] == "merged"
    assert {c["stream"] for c in chunks} == {"stdout"}
    assert "".join(c["data"] for c in chunks) == EXPECTED_FAST


def test_merged_mode_keeps_the_order_of_vm2_console_log_and_error(server: ScriptboxServer) -> None:
    run, chunks = _run(server.api(), type="node", runner="vm2", script=FAST_VM2, outputMode="merged")
    assert run["status"] == "succeeded", run
    assert {c["stream"] for c in chunks} == {"stdout"}
    assert "".join(c["data"] for c in chunks) == EXPECTED_FAST


def test_separate_mode_tells_the_streams_apart_each_in_its_own_order(server: ScriptboxServer) -> None:
    run, chunks = _run(server.api(), type="bash", script=FAST_BASH)
    assert run["status"] == "succeeded" and run["meta"]["snapshot"]["outputMode"] == "separate"
    lines = _lines(chunks)
    assert [text for stream, text in lines if stream == "stdout"] == [f"out {i}" for i in range(1, LINES + 1)]
    assert [text for stream, text in lines if stream == "stderr"] == [f"err {i}" for i in range(1, LINES + 1)]


def test_separate_mode_stores_lines_in_the_order_printed_when_each_was_read_before_the_next(
        server: ScriptboxServer) -> None:
    run, chunks = _run(server.api(), type="bash", script=f"exec {shlex.quote(sys.executable)} -c {shlex.quote(PACED)}")
    assert run["status"] == "succeeded", run
    expected = [pair for i in range(1, SLOW_LINES + 1) for pair in (("stdout", f"out {i}"), ("stderr", f"err {i}"))]
    assert _lines(chunks) == expected, [(c["stream"], c["data"], c["at"]) for c in chunks]

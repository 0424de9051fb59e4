"""The stored log for reading tools: download as a file, plain text without escapes, and the
chunks with their times (GET …/runs/:runId/log?download=1&plain=1, …/chunks). In-process, real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scriptbox.api.logtext import EscapeStripper, strip_escapes
from scriptbox.store.records import Chunk
from support import AppClient
from support.inprocess import InProcessApp

COLOURED = ["\x1b[31mred\x1b[0m line\n", "err \x1b[1", ";33mbold yellow\x1b[0m\n", "\x1b]0;title\x07after title\n"]


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("run-log"))  # no worker: runs stay queued
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def run_id(inproc: InProcessApp) -> str:
    script_id = str(inproc.services.definitions.create(
        {"name": "Log", "codeIdentifier": "log-me", "type": "bash", "script": "echo hi"})["_id"])
    rid = str(inproc.engine.submit(script_id, "api", None)["_id"])
    streams = ["stdout", "stderr", "stderr", "stdout"]
    inproc.services.runs.add_chunks([Chunk(rid, seq, streams[seq], text) for seq, text in enumerate(COLOURED)])
    return rid


def test_escapes_are_removed_even_when_split_across_pieces() -> None:
    assert strip_escapes("\x1b[31mred\x1b[0m \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end") == "red link end"
    stripper = EscapeStripper()
    assert "".join(stripper.feed(p) for p in ["a\x1b[3", "1mb\x1b", "[0mc"]) + stripper.end() == "abc"


def test_the_log_downloads_as_a_file_with_or_without_colours(inproc: InProcessApp, run_id: str) -> None:
    client: AppClient = inproc.client()
    raw = client.get(f"/api/admin/scripts/runs/{run_id}/log")
    assert raw.text == "".join(COLOURED) and "Content-Disposition" not in raw.headers
    download = client.get(f"/api/admin/scripts/runs/{run_id}/log?download=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="log-me-{run_id}.log"'
    assert download.text == raw.text
    plain = client.get(f"/api/admin/scripts/runs/{run_id}/log?download=1&plain=1")
    assert plain.text == "red line\nerr bold yellow\nafter title\n"
    assert plain.headers["Content-Type"].startswith("text/plain")
    for bad in ("download=yes", "plain=2"):
        answer = client.get(f"/api/admin/scripts/runs/{run_id}/log?{bad}")
        assert answer.status_code == 400 and bad.split("=")[0] in answer.json()["error"]["fields"]


def test_chunks_come_in_production_order_with_their_times_page_by_page(inproc: InProcessApp, run_id: str) -> None:
    client: AppClient = inproc.client()
    first = client.get(f"/api/admin/scripts/runs/{run_id}/chunks?limit=3").json()
    assert [c["seq"] for c in first["chunks"]] == [0, 1, 2] and first["next"] == 2
    assert [c["stream"] for c in first["chunks"]] == ["stdout", "stderr", "stderr"]
    assert all(c["at"].endswith("Z") for c in first["chunks"])
    rest = client.get(f"/api/admin/scripts/runs/{run_id}/chunks?after=2&limit=3").json()
    assert [c["data"] for c in rest["chunks"]] == [COLOURED[3]] and rest["next"] is None
    for bad in ("after=x", "after=-2", "limit=0", "limit=2001"):
        answer = client.get(f"/api/admin/scripts/runs/{run_id}/chunks?{bad}")
        assert answer.status_code == 400 and bad.split("=")[0] in answer.json()["error"]["fields"]
    assert client.get("/api/admin/scripts/runs/ffffffffffffffffffffffff/chunks").status_code == 404

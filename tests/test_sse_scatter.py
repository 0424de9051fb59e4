"""Big blocks of live output are written as the buffers they are made of
(sse_wire.Scatter, one sendmsg), never joined: they must arrive whole and in
order for HTTP/1.1 (chunked) and HTTP/1.0 (until close) clients alike, and a
server that does not say it takes them gets bytes."""

from __future__ import annotations

import base64
import json
import socket
import tracemalloc
from datetime import UTC, datetime

import pytest

from scriptbox.sse_wire import Scatter, block, join_output, output_parts, output_piece
from support import Api, ScriptboxServer, SseStream, output_text, start_run
from support.client import ADMIN
from support.sse import SseParser

LINE = "scatter " + "x" * 91 + "\n"  # 100 bytes
# The viewer connects during the sleep, so the flood reaches it live, in blocks of up to ~1 MB.
FLOOD = f"sleep 0.5; yes '{LINE[:-1]}' | head -c 3000000"


def test_the_parts_of_an_event_are_its_bytes_and_a_big_block_is_scattered_only_when_the_server_takes_it() -> None:
    pieces = [output_piece(seq, "stdout", f"line {seq} \"quoted\"\n" * 2000) for seq in (7, 8, 9)]
    parts = output_parts(pieces)
    event = join_output(pieces)
    assert b"".join(parts) == event
    head, data = event.split(b"\ndata: ")
    assert head == b"event: output\nid: 9"  # the last piece's seq
    assert json.loads(data)["data"] == "".join(f"line {seq} \"quoted\"\n" * 2000 for seq in (7, 8, 9))
    scattered = block(parts)
    assert isinstance(scattered, Scatter) and b"".join(scattered) == event and scattered.size == len(event)
    joined = block(parts, scatter=False)
    assert type(joined) is bytes and joined == event
    for kept in ([False, False, False], [True, False, False], [False, True, False], [False, False, True]):
        # Kept pieces are one built frame, live-only ones separate buffers: joined alike.
        mixed = [output_piece(seq, "stdout", f"line {seq} \"quoted\"\n" * 2000, kept=k)
                 for seq, k in zip((7, 8, 9), kept, strict=True)]
        assert b"".join(output_parts(mixed)) == event and [p.frame for p in mixed] == [p.frame for p in pieces]
    small = output_parts([output_piece(1, "stdout", "hi\n")])
    assert type(block(small)) is bytes  # a few hundred bytes: one join costs less than a scatter write


def test_a_piece_of_output_holds_about_its_own_size() -> None:
    # Pieces are kept (a run's history, viewers' queues): 20 chatty runs once
    # kept 75 MiB because each short line held orjson's 4 KiB buffer.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pieces = [output_piece(seq, "stdout", "a line\n", at=datetime.now(UTC)) for seq in range(2000)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(pieces) == 2000 and held < 2000 * 600, held


def _http10_body(server: ScriptboxServer, run_id: str) -> bytes:
    """The whole answer of an HTTP/1.0 GET of the run's stream (no chunked encoding: it ends at close)."""
    auth = base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"GET /api/admin/scripts/runs/{run_id}/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Basic {auth}\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head[:200]
    assert b"chunked" not in head.lower()
    return body


@pytest.mark.parametrize("http", ["1.1", "1.0"])
def test_a_flood_reaches_a_live_viewer_whole_over_http(http: str, api: Api, server: ScriptboxServer) -> None:
    definition = api.create_script(script=FLOOD)
    run_id = start_run(api, definition["id"])
    if http == "1.1":
        events = SseStream(api, run_id).until_end()
    else:
        events = list(SseParser().feed([_http10_body(server, run_id)]))
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    text = output_text(events, "stdout")
    assert len(text) == 3_000_000 and text == (LINE * 30_000)[:3_000_000]
    ids = [e.id for e in events if e.event == "output"]
    assert ids == sorted(set(ids))

"""A baseline for bench/throughput.py: the simplest SSE server of a script's output.

    python bench/sse_relay.py PORT COMMAND

Each `GET /` runs `bash -lc COMMAND` and streams its stdout as Server-Sent
Events in Scriptbox's wire format (`event: output`, an id, `data:
{"stream":"stdout","data":"..."}`, then `event: end`), read the way Scriptbox
reads a pipe: non-blocking reads into one 256 KiB buffer, handed on as one
event each time the pipe is drained, decoded as UTF-8 and escaped by orjson,
served by gevent's pywsgi. Nothing else: no database (Scriptbox stores the
first 10 MiB of every run and records its start and end), no run document, no
second request to start the run, no authentication, no viewers' queues.

What it measures is the cost of the approach itself (a Python server, JSON-
escaped SSE, a Python client, on the same cores), so Scriptbox's throughput
can be read against it as well as against the raw pipe.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import gevent.socket
import gevent.subprocess
import orjson
from gevent.pywsgi import WSGIServer

READ_SIZE = 256 * 1024  # scriptbox/engine/output.py READ_SIZE


def output_event(seq: int, text: str) -> bytes:
    return b'event: output\nid: %d\ndata: {"stream":"stdout","data":%s}\n\n' % (seq, orjson.dumps(text))


def relay(command: str) -> Iterator[bytes]:
    """The SSE stream of one run of `command`."""
    proc = gevent.subprocess.Popen(["bash", "-lc", command], stdout=gevent.subprocess.PIPE,
                                   stdin=gevent.subprocess.DEVNULL)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    buffer = bytearray(READ_SIZE)
    size = fresh = seq = 0  # bytes in the buffer; of which read since the last event
    yield b": open\n\n"  # the stream's first block: headers out at once, as Scriptbox does
    while True:
        try:
            count = os.readv(fd, (memoryview(buffer)[size:],))
        except BlockingIOError:
            if not fresh:
                gevent.socket.wait_read(fd)
                continue
            count = -1  # drained: hand on what was read
        if count == 0:
            break
        if count > 0:
            size += count
            fresh += count
            if size < READ_SIZE:
                continue
        # Up to 3 bytes of a character split across reads stay for the next event.
        text, used = codecs.utf_8_decode(memoryview(buffer)[:size], "replace", False)
        buffer[:size - used] = buffer[used:size]
        size -= used
        fresh = 0
        seq += 1
        yield output_event(seq, text)
    if size:
        seq += 1
        yield output_event(seq, codecs.utf_8_decode(memoryview(buffer)[:size], "replace", True)[0])
    proc.stdout.close()
    yield b'event: end\ndata: {"exitCode":%d}\n\n' % proc.wait()


def app(command: str) -> Callable[[dict[str, Any], Callable[..., Any]], Iterator[bytes]]:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        return relay(command)

    return serve


def main(argv: list[str]) -> None:
    port, command = int(argv[0]), argv[1]
    WSGIServer(("127.0.0.1", port), app(command), log=None).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

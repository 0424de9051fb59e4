"""A baseline for bench/throughput.py: the simplest SSE server of a script's output.

    python bench/sse_relay.py COMMAND

Prints the port it listens on (127.0.0.1), one line. Each `GET /` runs
`bash -lc COMMAND` and streams its stdout as Server-Sent Events: read by
Scriptbox's own pipe reader (`engine.output.read_stream`: a piece each time the
pipe is drained, at most 256 KiB), framed by Scriptbox's own
`sse_wire.output_frame`, written by gevent's pywsgi, then `event: end`.
Nothing else: no database (Scriptbox stores the first 10 MiB of every run and
records its start and end), no run document, no second request to start the
run, no authentication, no hub or viewers' queues.

What it measures is the cost of the approach itself (a Python server, JSON-
escaped SSE, a Python client, on the same cores), so Scriptbox's throughput
can be read against it as well as against the raw pipe.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent.subprocess
from gevent.pywsgi import WSGIServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scriptbox.engine.output import read_stream  # noqa: E402
from scriptbox.sse_wire import output_frame  # noqa: E402


def app(command: str) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Streams one run of `command` through WSGI's write(), in this greenlet:
        while a piece is being written nothing is read, so the script fills its
        pipe meanwhile and a slow client holds it back."""
        write = start_response("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
        write(b": open\n\n")  # headers out at once, as Scriptbox does
        proc = gevent.subprocess.Popen(["bash", "-lc", command], stdout=gevent.subprocess.PIPE,
                                       stdin=gevent.subprocess.DEVNULL)
        assert proc.stdout is not None
        seq = 0

        def send(_stream: str, text: str, _raw: int) -> None:
            nonlocal seq
            seq += 1
            write(output_frame(seq, "stdout", text))

        read_stream(proc.stdout.fileno(), "stdout", send)
        proc.stdout.close()
        return [b'event: end\ndata: {"exitCode":%d}\n\n' % proc.wait()]

    return serve


def main(argv: list[str]) -> None:
    server = WSGIServer(("127.0.0.1", 0), app(argv[0]), log=None)
    server.start()
    print(server.address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])

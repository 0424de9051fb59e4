"""A real HTTP receiver on 127.0.0.1 for notification tests: Apprise's `json://` posts to it.

The first path segment says how it answers: `/ok/...` 200, `/fail/...` 500,
`/hang/...` answers 200 only after `hang_s` (longer than the sender waits).
Every request is recorded, with its headers and JSON body.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic()


class Receiver:
    def __init__(self, hang_s: float = 5.0) -> None:
        self.hits: list[Hit] = []
        self.hang_s = hang_s
        self._lock = threading.Lock()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode("utf-8", "replace")}
                with receiver._lock:
                    receiver.hits.append(Hit(self.path, dict(self.headers), body, time.monotonic()))
                kind = self.path.strip("/").split("/", 1)[0]
                if kind == "hang":
                    receiver._closing.wait(receiver.hang_s)
                status = 500 if kind == "fail" else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if status == 500 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str, scheme: str = "json", auth: str = "") -> str:
        """An Apprise URL posting to `path` here (`auth`: "user:password@")."""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/{path.lstrip('/')}"

    def hits_to(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path.split("?", 1)[0] == "/" + path.strip("/")]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

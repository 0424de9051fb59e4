"""The HTTP server: gevent's pywsgi with guards against slow and hostile clients.

* Idle timeout: a connection waiting for its next request (or stalling a body
  read or a write) longer than SCRIPTBOX_IDLE_TIMEOUT is closed (socket timeout).
* Header timeout: once the first byte of a request arrived, its request line and
  headers must be complete within SCRIPTBOX_HEADER_TIMEOUT (a deadline for the
  whole header, so a slowloris sending one byte at a time gains nothing).
* Connection cap: at SCRIPTBOX_MAX_CONNECTIONS, a new connection first evicts the
  connection that has waited longest without a complete request (idle
  keep-alive or half-sent); when every connection is busy (live streams, running
  requests) the newcomer gets a JSON 503 and is closed. So half-sent requests can
  never lock out real ones, and the process never runs out of file descriptors.
* Every answer gevent writes itself (400, 408, 414, 500, 503) is the JSON error
  shape with the security headers.
* Stopping: `close` takes no new connection, and no new request on a kept-alive
  one (idle ones are closed at once); `stop(timeout)` then waits for the
  requests under way, up to `timeout`, and cuts what is left. Open streams end
  when the run engine hangs up their viewers (engine/hub.py), before the
  database closes.

The handler hooks are gevent internals (pinned with gevent in requirements.txt),
covered by tests/test_error_shape.py and tests/test_security_attacks.py.
"""

from __future__ import annotations

import json
import logging
import resource
import socket
from collections import OrderedDict
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from .errors import STATUS_CODES, error_body
from .sse_wire import SCATTER_ENVIRON, SCATTER_MIN_BYTES, Scatter
from .web import SECURITY_HEADERS

log = logging.getLogger(__name__)

HTTP_REASONS = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
                500: "Internal Server Error", 503: "Service Unavailable"}
# Buffers per sendmsg (Linux's IOV_MAX is 1024).
IOV_MAX = 1024
# File descriptors kept free of HTTP connections: database connections, run
# pipes, log files, the listening socket.
FD_RESERVE = 256


def _error_headers(length: int) -> list[tuple[str, str]]:
    return [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(length)),
            ("Connection", "close"), *SECURITY_HEADERS.items()]


def _error_json(status: int, message: str, code: str | None = None) -> bytes:
    return json.dumps(error_body(code or STATUS_CODES.get(status, "error"), message)).encode()


def raw_json_error(status: int, message: str, code: str | None = None) -> bytes:
    """A complete HTTP error response with the JSON error body, for the socket."""
    body = _error_json(status, message, code)
    head = f"HTTP/1.1 {status} {HTTP_REASONS.get(status, 'Error')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in _error_headers(len(body)))
    return (head + "\r\n").encode("latin-1") + body


_PROTOCOL_ERRORS = {
    "400": raw_json_error(400, "the request is not valid HTTP"),
    "414": raw_json_error(414, "the request line is too long"),
}
_HEADER_TIMEOUT_ANSWER = raw_json_error(408, "the request headers took too long", code="request_timeout")
_BUSY_ANSWER = raw_json_error(503, "the server has too many open connections; try again shortly",
                              code="too_many_connections")


class HeaderTimeout(gevent.Timeout):
    """The request line and headers did not arrive in time."""


def _end_waiting(sock: socket.socket) -> None:
    """Shut a connection that waits for a request: wakes the handler blocked
    reading it, which then ends the connection."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ConnectionTracker:
    """Counts open connections and knows which ones wait for a request (evictable)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._waiting: OrderedDict[int, socket.socket] = OrderedDict()
        self._evicted: set[int] = set()  # counted out already; their handlers are still ending
        self.evicted = 0
        self.refused = 0

    def admit(self) -> bool:
        """Make room for one more connection; False when every connection is busy."""
        while self.open >= self.limit and self._waiting:
            _, victim = self._waiting.popitem(last=False)
            self.evicted += 1
            _end_waiting(victim)
            self.open -= 1  # its handler's closed() will not count it again
            self._evicted.add(id(victim))
        if self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def was_evicted(self, sock: socket.socket) -> bool:
        return id(sock) in self._evicted

    def close_waiting(self) -> None:
        """Close every connection that waits for a request (the server is stopping)."""
        for sock in list(self._waiting.values()):
            _end_waiting(sock)

    def closed(self, sock: socket.socket) -> None:
        self._waiting.pop(id(sock), None)
        if id(sock) in self._evicted:
            self._evicted.discard(id(sock))
        else:
            self.open -= 1

    def waiting(self, sock: socket.socket) -> None:
        self._waiting[id(sock)] = sock
        self._waiting.move_to_end(id(sock))

    def busy(self, sock: socket.socket) -> None:
        self._waiting.pop(id(sock), None)


class GuardedHandler(WSGIHandler):
    """gevent's handler with header/idle timeouts and JSON error answers."""

    server: GuardedWSGIServer
    _header_timer: gevent.Timeout | None = None

    def read_requestline(self) -> str:
        if self.server.stopping:
            return ""  # no new request on a kept-alive connection: it is closed
        tracker = self.server.tracker
        tracker.waiting(self.socket)
        try:
            # Wait (up to the idle timeout, the socket's) for the first byte only;
            # from then on the header deadline runs.
            if not self.rfile.peek(1):
                return ""
        except OSError:
            return ""
        self._header_timer = HeaderTimeout.start_new(self.server.header_timeout)
        return str(super().read_requestline())

    def read_request(self, raw_requestline: str) -> Any:
        try:
            return super().read_request(raw_requestline)
        finally:
            self._cancel_header_timer()
            self.server.tracker.busy(self.socket)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.close()
            self._header_timer = None

    def handle_one_request(self) -> Any:
        try:
            result = super().handle_one_request()
        except HeaderTimeout:
            return ("408", _HEADER_TIMEOUT_ANSWER)
        finally:
            self._cancel_header_timer()
        if isinstance(result, tuple) and self.server.tracker.was_evicted(self.socket):
            return None  # shut down to make room: nobody to answer
        if isinstance(result, tuple) and result[0] in _PROTOCOL_ERRORS:
            return (result[0], _PROTOCOL_ERRORS[result[0]])
        return result

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        environ[SCATTER_ENVIRON] = True  # _write takes a Scatter block
        return environ

    def _write(self, data: bytes | Scatter, _bytearray: Any = bytearray) -> None:
        # A live-output event can be a megabyte. gevent frames a chunk by
        # copying it into a new bytearray between its size line and trailer;
        # here the parts go to the socket as they are, in one sendmsg, and so
        # do the buffers of a Scatter (a stream's block, never joined). The
        # first block of an answer comes here too, after gevent sent the headers.
        if isinstance(data, Scatter) or len(data) >= SCATTER_MIN_BYTES:
            parts: list[bytes | memoryview] = list(data) if isinstance(data, Scatter) else [data]
            size = data.size if isinstance(data, Scatter) else len(data)
            if self.response_use_chunked:
                parts = [b"%x\r\n" % size, *parts, b"\r\n"]
                size += len(parts[0]) + 2
            self._send_parts(parts, size)
        else:
            super()._write(data)

    def _send_parts(self, parts: list[bytes | memoryview], size: int) -> None:
        """pywsgi's _sendall for several buffers (`size` bytes in all), written without joining them."""
        first = 0  # the first buffer not completely sent
        try:
            while first < len(parts):
                sent = self.socket.sendmsg(parts[first:first + IOV_MAX])
                while first < len(parts) and sent >= len(parts[first]):
                    sent -= len(parts[first])
                    first += 1
                if sent:
                    parts[first] = memoryview(parts[first])[sent:]
        except OSError as ex:
            # What pywsgi's _sendall records of a failed write (the access log shows it).
            self.status = f"socket error: {ex}"
            self.code = -abs(self.code)  # type: ignore[has-type]  # gevent's, untyped
            raise
        self.response_length += size

    def _handle_client_error(self, ex: BaseException) -> Any:
        status, _ = super()._handle_client_error(ex)
        return (status, _PROTOCOL_ERRORS.get(status, _PROTOCOL_ERRORS["400"]))

    def _send_error_response_if_possible(self, error_code: int) -> None:
        self.close_connection = True  # the stream is in an unknown state: one answer, then close
        if self.response_length:
            return
        message = "the request is not valid HTTP" if error_code < 500 else "internal error; see the server log"
        body = _error_json(error_code, message)
        try:
            self.start_response(f"{error_code} {HTTP_REASONS.get(error_code, 'Error')}", _error_headers(len(body)))
            self.write(body)
        except OSError:
            pass


class GuardedWSGIServer(WSGIServer):
    """A WSGIServer with TCP_NODELAY, timeouts and a connection cap.

    Without TCP_NODELAY, Nagle's algorithm plus the client's delayed ACK holds
    small SSE events and short JSON answers back by ~40 ms (measured by the
    start-latency benchmark).
    """

    handler_class = GuardedHandler

    def __init__(self, *args: Any, max_connections: int, header_timeout: float, idle_timeout: float,
                 **kwargs: Any) -> None:
        # A pool (unbounded: the tracker caps connections) lets stop() wait for
        # the handlers under way; without one gevent's stop() waits for nothing.
        super().__init__(*args, spawn=Pool(), **kwargs)
        self.tracker = ConnectionTracker(max_connections)
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.stopping = False

    def close(self) -> None:
        """Stop accepting connections and requests; close the idle connections."""
        self.stopping = True
        super().close()
        self.tracker.close_waiting()

    def handle(self, sock: socket.socket, address: Any) -> None:
        if not self.tracker.admit():
            try:
                sock.settimeout(0.5)
                sock.sendall(_BUSY_ANSWER)
                sock.shutdown(socket.SHUT_WR)
                # Read what the client sent: closing with unread data would
                # reset the connection and could destroy the answer in flight.
                sock.recv(65536)
            except OSError:
                pass
            finally:
                sock.close()
            return
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.idle_timeout)
            super().handle(sock, address)
        except OSError:
            pass  # the peer (or an eviction) closed the connection mid-answer: nothing left to do
        finally:
            self.tracker.closed(sock)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.

    systemd's default soft limit (1,024) is far below what a server with
    thousands of idle connections needs; the hard limit is the admin's word.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, target, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, open_file_limit: int) -> int:
    """The connection cap that fits in the open-file limit (with a reserve for everything else)."""
    return max(16, min(configured, open_file_limit - FD_RESERVE))

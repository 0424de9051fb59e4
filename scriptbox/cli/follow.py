"""Following a run's SSE stream to its end, resuming across dropped connections.

The server numbers every output event (`id:`) and resumes after the
`Last-Event-ID` a client sends, with nothing lost or repeated. So after any
break (EOF, reset, a read timeout longer than the 15 s keepalive, a 503) the
follower reconnects with the last id it acted on, backing off, and gives up only
when the server has not answered for GIVE_UP_S.
"""

from __future__ import annotations

import contextlib
import http.client
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, BinaryIO

from .client import ApiClient, path_segment
from .errors import ApiRefused, CliError, Unreachable
from .events import read_events

READ_TIMEOUT_S = 45.0  # three keepalive periods without a byte means the connection is dead
GIVE_UP_S = 120.0
BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class OutputClosed(Exception):
    """Our stdout or stderr was closed by its reader. Not an OSError on purpose: the follower
    retries OSErrors of the connection, and this one no reconnect can fix."""


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C inside the block takes effect when it ends, so an event is written whole or not at all
    (a resume after "cancel" then neither repeats nor skips part of it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


class OutputSink:
    """Writes output events to two binary files, flushing at once so partial lines show."""

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self._files = {"stdout": stdout, "stderr": stderr}
        self.stderr_at_line_start = True  # so our own messages start on a line of their own

    def write(self, stream: str, text: str) -> None:
        if not text:
            return
        target = self._files.get(stream, self._files["stderr"])
        with interrupts_deferred():
            try:
                target.write(text.encode("utf-8", "replace"))
                target.flush()
            except BrokenPipeError:
                raise OutputClosed() from None
        if target is self._files["stderr"]:
            self.stderr_at_line_start = text.endswith("\n")


class Follower:
    """Follows one run; keeps its position between calls so a follow can be interrupted and resumed."""

    def __init__(self, client: ApiClient, run_id: str, on_output: Callable[[str, str], None] | None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.run_id = run_id
        self.on_output = on_output
        self.last_event_id: int | None = None
        self.reconnects = 0
        self.events_seen = 0
        self._clock = clock

    def follow(self, deadline: float | None = None) -> dict[str, Any] | None:
        """The finished run document (the `end` event), or None when `deadline` (clock time) passes first.

        Raises ApiRefused for answers that retrying cannot fix (404, 401, ...), and CliError when
        the server stays unreachable for GIVE_UP_S.
        """
        path = f"/api/admin/scripts/runs/{path_segment(self.run_id)}/stream"
        last_progress = self._clock()
        failures = 0
        while True:
            timeout = READ_TIMEOUT_S
            if deadline is not None:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                timeout = max(0.05, min(timeout, remaining))
            problem = "the stream ended before the run did"
            try:
                response = self.client.open_stream(path, self.last_event_id, timeout)
                with response:
                    seen = self.events_seen
                    try:
                        end = self._consume(response)
                    finally:
                        if self.events_seen > seen:
                            # Only a stream that delivered something counts as progress: a server
                            # that accepts and closes at once is not "answering".
                            last_progress = self._clock()
                            failures = 0
                    if end is not None:
                        return end
            except ApiRefused as exc:
                if exc.status not in (502, 503, 504):
                    raise
                problem = exc.message
            except Unreachable as exc:
                problem = exc.message
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # ValueError: a cut that left an undecodable event. OSError includes read timeouts.
                problem = f"the connection broke: {exc or type(exc).__name__}"
            if self._clock() - last_progress > GIVE_UP_S:
                raise CliError(f"lost the stream of run {self.run_id} ({problem}); the run goes on: "
                               f"see `scriptbox log {self.run_id}`")
            self.reconnects += 1
            pause = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            failures += 1
            if deadline is not None:
                pause = min(pause, max(0.0, deadline - self._clock()))
            time.sleep(pause)

    def _consume(self, response: http.client.HTTPResponse) -> dict[str, Any] | None:
        for event in read_events(response):
            self.events_seen += 1
            if event.name == "output" and isinstance(event.data, dict):
                if event.id is not None and self.last_event_id is not None and event.id <= self.last_event_id:
                    continue  # never write a chunk twice, whatever the server resends
                if self.on_output is not None:
                    self.on_output(str(event.data.get("stream")), str(event.data.get("data", "")))
                if event.id is not None:
                    self.last_event_id = event.id  # only once written: a resume starts after it
            elif event.name == "end" and isinstance(event.data, dict):
                return event.data
        return None

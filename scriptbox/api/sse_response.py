"""The HTTP side of a Server-Sent-Events route: headers, metrics, tokens, outages.

Both event streams (a run's output, the run-events feed) answer the same way:
the stream is counted as a viewer while it is open, a database outage ends it
quietly (EventSource reconnects by itself and resumes by id), and a stream
opened with an API token ends with a `revoked` event when the token is revoked
or expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bottle import HTTPResponse, request

from ..errors import DatabaseUnavailable, error_body
from ..services import Services
from ..sse_wire import Scatter, frame


def token_ended_frame() -> bytes:
    """The last event of a stream whose token was revoked or expired (then it closes)."""
    return frame("revoked", error_body("invalid_token", "the API token was revoked or expired"))


def sse_response(services: Services, events: Iterable[bytes | Scatter]) -> HTTPResponse:
    """A 200 `text/event-stream` response sending `events` (blocks of frames) until they end."""

    def body() -> Iterator[bytes | Scatter]:
        try:
            with services.metrics.viewing():
                yield from events
        except DatabaseUnavailable:
            return

    token = request.environ.get("scriptbox.token")
    blocks = body() if token is None else services.tokens.guard_stream(token, body(), token_ended_frame)
    resp = HTTPResponse(body=blocks, status=200)
    resp.content_type = "text/event-stream; charset=utf-8"
    resp.set_header("Cache-Control", "no-cache")
    resp.set_header("X-Accel-Buffering", "no")
    return resp

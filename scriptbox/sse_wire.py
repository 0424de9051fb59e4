"""The Server-Sent Events wire format: frames, the keepalive, Last-Event-ID.

A leaf module (no Scriptbox imports): the run engine builds output frames with
it once per piece of output, and the HTTP stream in scriptbox/api/stream.py
writes them, joining consecutive output frames of one stream into one event.

JSON text goes through orjson: a run's output is escaped here byte for byte
(200 MB for 200 MB printed), and the standard library's encoder did that at
50-120 MB/s on the development VM, orjson at 1.5-2 GB/s. Both give the same bytes
(compact, non-ASCII as UTF-8); orjson refuses lone surrogates, which the
standard encoder then writes as \\u escapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

HEARTBEAT = b": keepalive\n\n"
_EVENT_ID = re.compile(r"[0-9]{1,18}")
_OUTPUT_HEAD = b"event: output\nid: %d\ndata: "


def _json(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # a lone surrogate (never in decoded pipe output)
        return json.dumps(data, separators=(",", ":")).encode("ascii")


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One SSE message. JSON never contains a raw newline, so one data line."""
    head = f"event: {event}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return b"".join((head.encode(), b"data: ", _json(data), b"\n\n"))


@dataclass(frozen=True)
class OutputFrame:
    """An `output` event, in parts that can be joined with other pieces' text.

    `opening` is the JSON object up to the `data` string (`{"stream":...,"data":`),
    `text` that string with its quotes, `closing` the rest of the object and the
    blank line: frames of one stream are joined into one event without escaping
    their text again (`output_parts`).

    A kept piece (see output_piece) has its whole event in `whole`, built once
    for all its viewers; its parts are then where `body`, `text_at` and
    `text_end` say (no objects of their own: short lines are many). A piece
    that only passes through (a flood's live-only part) is never joined: its
    parts go to the socket as they are.
    """

    seq: int
    stream: str
    system: bool
    opening: bytes = b""
    text: bytes = b""
    closing: bytes = b""
    whole: bytes = b""
    body: int = 0  # in `whole`: where the JSON object starts,
    text_at: int = 0  # where the text's opening quote is,
    text_end: int = 0  # and where its closing quote ends

    @property
    def text_size(self) -> int:
        return (self.text_end - self.text_at if self.whole else len(self.text)) - 2

    @property
    def size(self) -> int:
        return len(self.whole) or len(self.opening) + len(self.text) + len(self.closing) + 24

    @property
    def parts(self) -> list[bytes | memoryview]:
        """The event's buffers."""
        if self.whole:
            return [self.whole]
        return [_OUTPUT_HEAD % self.seq, self.opening, self.text, self.closing]

    @property
    def frame(self) -> bytes:
        """The event's bytes."""
        return self.whole or b"".join(self.parts)

    def up_to_text_end(self) -> list[bytes | memoryview]:
        """The JSON object from its start through the text, without the text's closing quote."""
        if self.whole:
            return [memoryview(self.whole)[self.body:self.text_end - 1]]
        return [self.opening, memoryview(self.text)[:-1]]

    def text_inside(self, closing_quote: bool = False) -> memoryview:
        """The escaped text without its opening quote (and without its closing one unless asked)."""
        stop = 0 if closing_quote else 1
        if self.whole:
            return memoryview(self.whole)[self.text_at + 1:self.text_end - stop]
        return memoryview(self.text)[1:len(self.text) - stop]

    def after_text(self) -> bytes | memoryview:
        """The JSON object after the text's closing quote, and the blank line."""
        return memoryview(self.whole)[self.text_end:] if self.whole else self.closing


def output_piece(seq: int, stream: str, data: str, system: bool = False, at: datetime | None = None,
                 kept: bool = True) -> OutputFrame:
    """An `output` event; `system` marks text written by Scriptbox itself.

    `at` (when the server read the text; naive datetimes are UTC) lets a viewer
    that replays a run show each line's real time rather than when the replay
    reached it. It is an extra field, so clients that predate it ignore it.

    A piece that is `kept` (a run's history, chunks waiting for the database)
    is joined into its event's bytes once, which also frees orjson's buffer:
    orjson's bytes keep the whole buffer it escaped into, 4 KiB for a short
    line, several times the text for a long one (20 chatty runs once held
    75 MiB that way). One that only passes through the viewers' bounded queues
    (past the stored log's limit) is not copied.
    """
    opening = b'{"stream":' + _json(stream) + b',"data":'
    closing = b',"system":true' if system else b""
    if at is not None:
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        closing += b',"at":"' + at.isoformat(timespec="milliseconds").encode() + b'Z"'
    closing += b"}\n\n"
    text = _json(data)
    if not kept:
        return OutputFrame(seq, stream, system, opening, text, closing)
    head = _OUTPUT_HEAD % seq
    text_at = len(head) + len(opening)
    return OutputFrame(seq, stream, system, whole=b"".join((head, opening, text, closing)),
                       body=len(head), text_at=text_at, text_end=text_at + len(text))


def output_frame(seq: int, stream: str, data: str, system: bool = False, at: datetime | None = None) -> bytes:
    """The bytes of `output_piece`."""
    return output_piece(seq, stream, data, system, at).frame


def joinable(a: OutputFrame, b: OutputFrame) -> bool:
    """Whether `b` may follow `a` in one event (same stream, both the script's or both Scriptbox's)."""
    return a.stream == b.stream and a.system == b.system


def output_parts(pieces: Sequence[OutputFrame]) -> list[bytes | memoryview]:
    """The buffers of one `output` event holding the text of `pieces` (joinable, in order).

    Its id is the last piece's seq: a client that resumes after it has seen
    every piece; `at` is the first piece's (when the first of the text was read).
    """
    first, last = pieces[0], pieces[-1]
    if len(pieces) == 1:
        return first.parts
    parts: list[bytes | memoryview] = [_OUTPUT_HEAD % last.seq, *first.up_to_text_end()]
    parts += [p.text_inside() for p in pieces[1:-1]]
    parts += [last.text_inside(closing_quote=True), first.after_text()]
    return parts


def join_output(pieces: Sequence[OutputFrame]) -> bytes:
    """The bytes of `output_parts`."""
    return b"".join(output_parts(pieces))


class Scatter(tuple[bytes | memoryview, ...]):
    """A block of a stream as the buffers it is made of, for the HTTP server to
    write in one sendmsg (httpserver.GuardedHandler) without joining them: a
    flood's output is otherwise copied once more, and its large short-lived
    joins fragmented the heap (the server kept 60-90 MiB more after a 200 MB flood).

    Not WSGI: a stream yields one only when the server says it takes them
    (SCATTER_ENVIRON in the request's environ); any other gets bytes.
    `size` is the sum of the buffers' lengths (the chunk's size line)."""

    size: int

    def __new__(cls, parts: Iterable[bytes | memoryview], size: int) -> Scatter:
        block = super().__new__(cls, parts)
        block.size = size
        return block


# Set (True) in the WSGI environ by a server that writes a Scatter block as it is.
SCATTER_ENVIRON = "scriptbox.scatter"


# Blocks smaller than this are joined: one copy of a few KB costs less than a
# scatter write of many small buffers.
SCATTER_MIN_BYTES = 64 * 1024


def block(parts: list[bytes | memoryview], scatter: bool = True) -> bytes | Scatter:
    """One write of a stream: `parts` joined, or as a Scatter when they are large
    (and `scatter`: the server takes them).

    Never a stream's first block (WSGI frameworks check the type of that one)."""
    if scatter and len(parts) > 1:
        size = sum(len(part) for part in parts)
        if size >= SCATTER_MIN_BYTES:
            return Scatter(parts, size)
    return b"".join(parts)


def parse_last_event_id(header: str | None, query: str | None) -> int | None:
    """Last-Event-ID from the header (preferred) or `?lastEventId=`.

    Anything that is not a non-negative integer is ignored (a fresh start),
    because browsers resend whatever id they last saw. Only ASCII digits count
    (str.isdigit() also accepts "²", which int() refuses), and at most 18 of
    them: a larger number is no sequence of ours and would not fit the
    database's 64-bit integers.
    """
    for raw in (header, query):
        if raw is None:
            continue
        raw = raw.strip()
        if _EVENT_ID.fullmatch(raw):
            return int(raw)
    return None

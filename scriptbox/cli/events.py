"""Parsing a Server-Sent-Events body (the WHATWG rules Scriptbox's stream uses)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class LineSource(Protocol):
    def readline(self, limit: int = -1) -> bytes: ...


@dataclass(frozen=True)
class Event:
    name: str
    data: Any  # the decoded JSON of the data lines
    id: int | None


class EventParser:
    """Feeds lines, yields complete events. An event cut off by a dropped
    connection never completes, so it is never acted on (the resumed stream
    sends it again)."""

    def __init__(self) -> None:
        self._name = "message"
        self._data: list[str] = []
        self._id: int | None = None

    def feed(self, line: str) -> Event | None:
        """One line without its terminator; returns the event a blank line completes."""
        if line == "":
            event = None
            if self._data:
                event = Event(self._name, json.loads("\n".join(self._data)), self._id)
            self._name, self._data, self._id = "message", [], None
            return event
        if line.startswith(":"):
            return None  # a comment: keepalive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        elif field == "id" and value.isascii() and value.isdigit():
            self._id = int(value)
        return None


def read_events(source: LineSource) -> Iterator[Event]:
    """The complete events of a stream until it ends (EOF); raises OSError/HTTPException when it breaks."""
    parser = EventParser()
    while True:
        raw = source.readline()
        if not raw:
            return
        if not raw.endswith(b"\n"):
            return  # cut off mid-line: the connection dropped
        event = parser.feed(raw.decode("utf-8").rstrip("\r\n"))
        if event is not None:
            yield event

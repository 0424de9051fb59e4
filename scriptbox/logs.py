"""Logging of the serve and worker processes: plain text, or one JSON object per line.

``SCRIPTBOX_LOG_FORMAT=json`` writes each record as one line of JSON with
``time`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, ``runId`` when the
record belongs to a run, ``exc_info`` with a traceback, and any ``extra``
fields. python-json-logger does the encoding: it is the maintained formatter
for the standard logging module and handles extras, exceptions and
non-JSON values, which a hand-written formatter would have to relearn.

Which run a record belongs to comes from a context variable that the engine
sets for the greenlet executing a run (``bind_run``) and the web layer sets for
requests on a run's routes (``run_context``); gevent gives every greenlet its
own context.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_current_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("scriptbox_run_id", default=None)


@contextlib.contextmanager
def run_context(run_id: str | None) -> Iterator[None]:
    """Records logged inside the block (in this greenlet) carry `runId`."""
    if run_id is None:
        yield
        return
    token = _current_run.set(run_id)
    try:
        yield
    finally:
        _current_run.reset(token)


def bind_run(run_id: str) -> None:
    """Records logged from now on in this greenlet carry `runId`.

    For a greenlet that exists to execute one run: gevent gives each greenlet
    its own context, which ends with it, so there is nothing to reset.
    """
    _current_run.set(run_id)


class RunIdFilter(logging.Filter):
    """Adds `runId` to a record logged within run_context (unless it has one via `extra`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = _current_run.get()
        if run_id is not None and not hasattr(record, "runId"):
            record.runId = run_id
        return True


def json_formatter() -> logging.Formatter:
    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"}, json_ensure_ascii=False)


def configure_logging(log_format: str = "text") -> None:
    """Send INFO and above to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RunIdFilter())
    handler.setFormatter(json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)

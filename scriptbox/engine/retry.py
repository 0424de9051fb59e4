"""Retrying a database call of the claim/start/finish path through an outage.

A transient failure (DatabaseUnavailable: pymongo's AutoReconnect, server
selection or network timeouts, translated by the store) is retried with
doubling backoff; each retry is one warning line, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import gevent
import gevent.event

from ..errors import DatabaseUnavailable

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it

T = TypeVar("T")


def retry_db(what: str, call: Callable[[], T], *, first_s: float, max_s: float, until: float | None = None,
             stop: gevent.event.Event | None = None) -> T:
    """`call()`, retried while the database is unreachable.

    Gives up (re-raising DatabaseUnavailable) when the next attempt would come
    after `until` (monotonic; None: never) or once `stop` is set. `what` names
    the step in the log line, e.g. "run 65f…: read its script".
    """
    delay = first_s
    attempt = 0
    while True:
        try:
            return call()
        except DatabaseUnavailable:
            if (until is not None and time.monotonic() + delay > until) or (stop is not None and stop.is_set()):
                raise
            attempt += 1
            log.warning("%s: the database is unreachable; retry %d in %.1f s", what, attempt, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                gevent.sleep(delay)
            delay = min(delay * 2, max_s)

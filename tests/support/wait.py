"""One way to wait for a condition: poll it until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05,
               message: str = "condition", sleep: Callable[[float], object] = time.sleep) -> T:
    """Call `check` until it returns a truthy value (which is returned).

    An AssertionError from `check` counts as "not yet". At `timeout` seconds an
    AssertionError names `message` and the last failure. `sleep` is
    gevent.sleep for tests that run the engine in-process.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{message}: not reached within {timeout} s (last: {last!r})")
        sleep(interval)

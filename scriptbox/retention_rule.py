"""Retention rules (SPEC §8.6) as plain values and functions, without I/O.

* ``RetentionInput`` is a definition's ``retention: {days, keepRuns}``; a
  null field (or a null ``retention``) means "use the default".
* ``rule_for`` combines it with ``SCRIPTBOX_RETENTION_DAYS`` into the rule
  the pruner applies to one script's runs.
* ``next_window`` is how the pruner walks finished runs by age in small time
  windows (see scriptbox/retention.py for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_RETENTION_DAYS = 36_500
MAX_KEEP_RUNS = 100_000


class RetentionInput(BaseModel):
    """`retention` of a definition: overrides of the server's default, each null for "the default"."""

    model_config = ConfigDict(extra="forbid")

    days: Annotated[StrictInt | None, Field(ge=0, le=MAX_RETENTION_DAYS, description=(
        "days a finished run is kept; 0 keeps this script's runs for ever; null: SCRIPTBOX_RETENTION_DAYS"))] = None
    keepRuns: Annotated[StrictInt | None, Field(ge=0, le=MAX_KEEP_RUNS, description=(
        "the newest N finished runs are kept whatever their age; null or 0: none kept that way"))] = None


@dataclass(frozen=True)
class Rule:
    """What the pruner keeps of one script's finished runs."""

    days: int  # 0: for ever
    keep_runs: int  # the newest N finished runs are kept anyway

    @property
    def forever(self) -> bool:
        return self.days == 0

    def cutoff(self, now: datetime) -> datetime:
        """Finished runs that ended before this time are due (unless kept by keep_runs)."""
        return now - timedelta(days=self.days)


def has_override(retention: Any) -> bool:
    """Whether a stored `retention` changes anything for its script."""
    return isinstance(retention, dict) and any(retention.get(k) is not None for k in ("days", "keepRuns"))


def rule_for(default_days: int, retention: Any) -> Rule:
    """The rule of a script whose stored `retention` is this (None, or {days, keepRuns})."""
    own = retention if isinstance(retention, dict) else {}
    days = own.get("days")
    keep = own.get("keepRuns")
    return Rule(days=default_days if days is None else int(days), keep_runs=int(keep or 0))


@dataclass(frozen=True)
class Window:
    """The time range [start, end) of finished runs the pruner reads next."""

    start: datetime
    end: datetime
    # Read without a page limit: a millisecond that holds more than a page of runs to keep.
    whole: bool = False

    @property
    def span(self) -> timedelta:
        return self.end - self.start


MIN_SPAN = timedelta(milliseconds=1)  # BSON dates keep milliseconds
FIRST_SPAN = timedelta(hours=1)


def next_window(window: Window, stop: datetime, found: int, deleted: int, limit: int) -> Window | None:
    """Where to read after reading `window` (found `found` runs with a page of `limit`, deleted `deleted`).

    A full page may hide more runs in the window: read its first half next
    (from the same start: the deleted are gone, the rest are read again),
    because the database reads every key of a range before it applies the
    limit. Re-reading the whole window instead costs quadratic time: the first
    window that holds runs has grown over empty decades and may hold the whole
    history (35,000 runs: every page of 500 read all the runs still left).
    Halving also keeps runs that must stay from being read over and over. A
    millisecond still full gets read again while it yields deletes, else read
    whole once. A window with few runs grows (x4), so empty decades cost a few
    reads. Returns None once `stop` is reached.
    """
    if found >= limit and not window.whole:
        if window.span > MIN_SPAN:
            return Window(window.start, window.start + max(MIN_SPAN, window.span / 2))
        if deleted:
            return window
        return Window(window.start, window.end, whole=True)
    if window.end >= stop:
        return None
    span = window.span * 4 if found < max(1, limit // 4) else window.span  # max: a page under 4 grows too
    return Window(window.end, min(stop, window.end + max(span, MIN_SPAN)))

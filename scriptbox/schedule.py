"""Schedules (SPEC §8.1): the `schedule` field's rules and when a cron is due.

Pure functions only (no I/O): the scheduler (scheduler.py), the definition
routes and the preview route call them.

Cron expressions are parsed by cronsim (maintained by the author of
healthchecks.io, 5 and 6 fields, names, ranges, steps, `L`); time zones come
from the standard library's zoneinfo. cronsim is always iterated over *naive
local wall-clock times* and each match is then placed on the UTC time line
here, so that one rule holds for 5- and 6-field expressions alike (cronsim's
own DST handling copies Debian cron, which runs a job of a skipped hour at the
transition and applies only to some 5-field expressions):

- a local time that does not exist (the spring-forward gap) is skipped;
- a local time that occurs twice (the fall-back hour) fires once, at its
  first occurrence.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from cron_descriptor import Options, get_description
from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

# Macros SPEC §8.1 names (plus the two common aliases), as the 5-field
# expressions they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_CRON_LENGTH = 200
PREVIEW_COUNT = 5
OVERLAP_CHOICES = ("skip", "queue", "allow")
CATCH_UP_CHOICES = ("none", "latest")
# What the server adds to `schedule` in its answers; a client may send them
# back (e.g. a document from GET) and they are ignored.
READ_ONLY_SCHEDULE_FIELDS = frozenset({
    "nextRunAt", "lastScheduledFor", "lastFiredAt", "lastSkippedAt", "lastMissedAt",
    "firedCount", "skippedCount", "missedCount",
})


class ScheduleError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


def expand_cron(cron: str) -> str:
    """The 5- or 6-field form of `cron` (macros expanded), validated.

    Raises ScheduleError with a message fit for the field.
    """
    text = cron.strip()
    if not text:
        raise ScheduleError("must not be empty")
    if len(text) > MAX_CRON_LENGTH:
        raise ScheduleError(f"must be at most {MAX_CRON_LENGTH} characters")
    if text.startswith("@"):
        expanded = MACROS.get(text.lower())
        if expanded is None:
            raise ScheduleError("unknown macro; use @hourly, @daily, @weekly, @monthly or @yearly")
        return expanded
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ScheduleError("must have 5 fields (minute hour day-of-month month day-of-week) "
                            "or 6 with seconds first, or be a macro such as @daily")
    normalized = " ".join(fields)
    try:
        CronSim(normalized, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError(f"invalid cron expression: {exc}") from None
    except (ValueError, IndexError, KeyError) as exc:
        # cronsim reports most mistakes as CronSimError; anything else it
        # raised on malformed input is still a bad expression, not a 500.
        raise ScheduleError(f"invalid cron expression: {exc}") from None
    return normalized


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone `name`; raises ScheduleError for anything else.

    Only names from the tz database are accepted (never a file path).
    """
    if name not in _known_zones():
        raise ScheduleError("must be an IANA time zone name such as UTC or Europe/Berlin")
    return zoneinfo.ZoneInfo(name)


def _to_utc(local: datetime, zone: zoneinfo.ZoneInfo) -> datetime | None:
    """The UTC instant of a naive local wall-clock time; None when it does not exist."""
    first = local.replace(tzinfo=zone, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != local:
        return None  # in the spring-forward gap
    # fold=0 is the earlier of two occurrences of a repeated time: fire once, then.
    return as_utc


def iter_due_times(cron: str, zone: zoneinfo.ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Due times strictly after `after` (an aware datetime), ascending, as aware UTC.

    `cron` must already be expanded (expand_cron). Ends when the expression
    matches nothing within cronsim's 50-year horizon.
    """
    after_utc = after.astimezone(UTC)
    # During the second pass of a repeated hour the wall clock shows times
    # whose first occurrence is already past: the comparison below skips them.
    start = after_utc.astimezone(zone).replace(tzinfo=None, microsecond=0)
    for local in CronSim(cron, start):
        instant = _to_utc(local, zone)
        if instant is not None and instant > after_utc:
            yield instant


def next_due_times(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """Up to `count` due times after `after`; raises ScheduleError for a bad cron or zone."""
    zone = time_zone(timezone)
    out: list[datetime] = []
    for instant in iter_due_times(expand_cron(cron), zone, after):
        out.append(instant)
        if len(out) >= count:
            break
    return out


def describe(cron: str) -> str:
    """A human description of a valid cron expression, e.g. "Every 5 seconds"."""
    expanded = expand_cron(cron)
    options = Options()
    options.use_24hour_time_format = True
    try:
        text = str(get_description(expanded, options))
    except Exception:  # noqa: BLE001 - the description is a courtesy; a cron cronsim accepts stays valid
        return ""
    return text


class ScheduleInput(BaseModel):
    """`schedule` of a definition as stored (SPEC §8.1)."""

    model_config = ConfigDict(extra="forbid")

    cron: Annotated[StrictStr, Field(max_length=MAX_CRON_LENGTH)]
    timezone: StrictStr = "UTC"
    enabled: StrictBool = True
    overlap: Literal["skip", "queue", "allow"] = "skip"
    catchUp: Literal["none", "latest"] = "none"
    # Checked against the definition's declared params (definition_secrets.py),
    # which this model does not see; secret parameters cannot be set here.
    params: Annotated[dict[str, Any], Field(json_schema_extra={
        "description": "values for the definition's params (not secret ones) passed to every scheduled run"})] = {}

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        expanded = expand_cron(value)
        # An expression cronsim accepts may still never match (e.g. 31 February).
        if next(iter_due_times(expanded, zoneinfo.ZoneInfo("UTC"), datetime(2000, 1, 1, tzinfo=UTC)), None) is None:
            raise ScheduleError("never matches a date")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        time_zone(value)
        return value



def strip_read_only(schedule: Any) -> Any:
    """`schedule` without the fields the server adds to answers."""
    if isinstance(schedule, dict):
        return {k: v for k, v in schedule.items() if k not in READ_ONLY_SCHEDULE_FIELDS}
    return schedule


def iso_z(value: datetime | None) -> str | None:
    """ISO-8601 UTC with Z at millisecond precision, as the API shows times."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def next_run_at(definition: dict[str, Any], now: datetime) -> datetime | None:
    """When the definition fires next; None when disabled, unscheduled or never due."""
    schedule = definition.get("schedule")
    if not schedule or not schedule.get("enabled", True) or not definition.get("enabled", True):
        return None
    try:
        due = next_due_times(schedule["cron"], schedule.get("timezone", "UTC"), now, 1)
    except ScheduleError:
        return None  # stored before a rule changed; never fires rather than crashing a list
    return due[0] if due else None


_STATE_FIELDS = ("lastScheduledFor", "lastFiredAt", "lastSkippedAt", "lastMissedAt")
_COUNT_FIELDS = ("firedCount", "skippedCount", "missedCount")


def present_schedule(definition: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """The API form of `schedule`: what was set, plus nextRunAt and what happened so far."""
    schedule = definition.get("schedule")
    if not schedule:
        return None
    state = definition.get("scheduleState") or {}
    out = dict(schedule)
    out["nextRunAt"] = iso_z(next_run_at(definition, now))
    for name in _STATE_FIELDS:
        out[name] = iso_z(state.get(name))
    for name in _COUNT_FIELDS:
        out[name] = int(state.get(name, 0))
    return out

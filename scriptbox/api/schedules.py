"""Schedule routes (SPEC §8.1): the editor's preview of a cron expression."""

from __future__ import annotations

from typing import Any

from bottle import Bottle, request

from ..errors import ValidationFailed
from ..schedule import PREVIEW_COUNT, ScheduleError, describe, expand_cron, iso_z, next_due_times, time_zone
from ..services import Services
from ..store import utcnow
from .openapi import Doc, Param, Reply
from .schemas import SchedulePreview


def preview(cron: str | None, timezone: str | None) -> dict[str, Any]:
    """The next due times and a description; raises ValidationFailed naming `cron`/`timezone`."""
    fields: dict[str, str] = {}
    if not cron:
        fields["cron"] = "is required"
    else:
        try:
            expand_cron(cron)
        except ScheduleError as exc:
            fields["cron"] = str(exc)
    zone = timezone or "UTC"
    try:
        time_zone(zone)
    except ScheduleError as exc:
        fields["timezone"] = str(exc)
    if fields:
        raise ValidationFailed("the schedule is invalid", fields=fields)
    assert cron is not None
    due = next_due_times(cron, zone, utcnow(), PREVIEW_COUNT)
    if not due:
        raise ValidationFailed("the schedule is invalid", fields={"cron": "never matches a date"})
    return {"next": [iso_z(d) for d in due], "description": describe(cron), "timezone": zone}


def register(app: Bottle, services: Services) -> None:
    del services  # the preview is pure; the signature matches the other route modules

    @app.get("/api/admin/schedule-preview", openapi=Doc(
        "Preview a schedule: the next five due times and a description", "scripts",
        {200: Reply("The next due times and the expression in words.", SchedulePreview)}, errors=(400,),
        params=(Param("cron", {"type": "string"}, "5 or 6 fields (seconds first) or a macro such as @daily"),
                Param("timezone", {"type": "string"}, "an IANA time zone name; default UTC"))))
    def schedule_preview() -> dict[str, Any]:
        """The next five due times (ISO Z) and a human description of ?cron=&timezone= (default UTC)."""
        return preview(request.query.getunicode("cron"), request.query.getunicode("timezone"))

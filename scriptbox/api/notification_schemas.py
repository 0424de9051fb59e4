"""Pydantic models of the notification routes, for the OpenAPI document.

The requests are validated by ``api/notifications.validate_channel`` (the URL
by Apprise, script ids against the database, which JSON Schema cannot say);
these models state the same shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import IsoTime, ObjectIdHex

Event = Literal["succeeded", "failed", "timed_out", "canceled"]
NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,100}$"
URL_DESCRIPTION = ("an Apprise URL (json://host/path, mailto://user:pass@example.com, slack://…, ntfy://topic, …); "
                   "answers show it with passwords, tokens and header values masked")


def _ignored() -> Any:
    return Field(None, description="read-only: accepted (so a GET answer can be sent back) and ignored")


class NotificationCreate(BaseModel):
    """POST /api/admin/notifications body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="unique; 1-100 characters")
    url: str = Field(min_length=1, max_length=2048, description=URL_DESCRIPTION)
    events: list[Event] = Field(["failed", "timed_out"], min_length=1, max_length=4,
                                description="the run ends to report (each at most once)")
    scriptIds: list[str] = Field([], max_length=500, description="existing script ids; empty: every script")
    enabled: bool = True


class NotificationUpdate(BaseModel):
    """PUT /api/admin/notifications/{channel_id} body: any subset; a `url` equal to the masked one keeps it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=NAME_PATTERN)
    url: str | None = Field(None, min_length=1, max_length=2048,
                            description=URL_DESCRIPTION + "; sending back the masked form keeps the stored URL")
    events: list[Event] | None = Field(None, min_length=1, max_length=4)
    scriptIds: list[str] | None = Field(None, max_length=500)
    enabled: bool | None = None
    id: Any = _ignored()
    service: Any = _ignored()
    createdAt: Any = _ignored()
    updatedAt: Any = _ignored()
    lastSentAt: Any = _ignored()
    lastError: Any = _ignored()
    lastErrorAt: Any = _ignored()


class NotificationChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ObjectIdHex
    name: str
    url: str = Field(description="the URL with its secrets masked (****); never the stored one")
    service: str = Field(description="the service Apprise recognised, e.g. JSON, Slack, Email")
    events: list[Event]
    scriptIds: list[str] = Field(description="empty: every script")
    enabled: bool
    createdAt: str | None = IsoTime
    updatedAt: str | None = IsoTime
    lastSentAt: str | None = Field(description="the last delivery (or test) that succeeded; ISO Z")
    lastError: str | None = Field(description="why the last failed delivery failed (after its retries)")
    lastErrorAt: str | None = Field(description="when it failed; ISO Z")


class NotificationList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notifications: list[NotificationChannel] = Field(description="sorted by name")


class NotificationTestResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="whether the service accepted the test message")
    error: str | None = Field(description="why not (also recorded as lastError and in the audit log)")
    notification: NotificationChannel

"""Pydantic models of the token and audit routes, for the OpenAPI document.

The token request is validated by ``api/tokens.validate_token_request`` (it
also checks that each script exists and that the expiry is in the future,
which JSON Schema cannot say); this model states the same shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .schemas import IsoTime, ObjectIdHex


class TokenRequest(BaseModel):
    """POST /api/admin/tokens body."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
                      description="unique; runs and the audit log name the token as token:<name>")
    scope: Literal["admin", "run"] = Field(
        description="admin: the whole /api/admin API; run: start runs of scriptIds (all when empty) and read them")
    scriptIds: list[str] = Field([], max_length=500, description="run scope only: existing script ids")
    expiresAt: str | None = Field(None, description="ISO-8601 with a timezone, in the future; null: never")


class ApiToken(BaseModel):
    """A token as listed: never its secret."""

    model_config = ConfigDict(extra="forbid")

    id: str = ObjectIdHex
    name: str
    scope: Literal["admin", "run"]
    scriptIds: list[str]
    prefix: str = Field(description="the first characters of the token, to tell tokens apart")
    createdAt: str | None = IsoTime
    expiresAt: str | None = IsoTime
    lastUsedAt: str | None = Field(None, description="ISO-8601 UTC with Z; exact to the minute; null: never used")


class ApiTokenCreated(ApiToken):
    token: str = Field(pattern=r"^sbx_[A-Za-z0-9_-]{43}$", description="the secret, shown this once")


class ApiTokenList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens: list[ApiToken] = Field(description="newest first")


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ObjectIdHex
    at: str | None = IsoTime
    actor: str = Field(description="admin, desktop, token:<name>, scheduler, notifier (failed deliveries), "
                                   "or anonymous (failed sign-ins)")
    action: str = Field(description="e.g. script.update, run.start, token.revoke, notification.failed, auth.failed")
    targetType: str | None
    targetId: str | None
    summary: str
    details: dict[str, Any] = Field(description="what changed (field names, never secret values)")
    remoteAddr: str | None
    scriptId: str | None = Field(None, description="the script a script or run entry concerns")


class AuditPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[AuditEntry] = Field(description="newest first")
    nextBefore: str | None = Field(description="pass as ?before= for the next page; null on the last page")

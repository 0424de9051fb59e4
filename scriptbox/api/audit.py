"""GET /api/admin/audit, and the helper every route uses to write its audit entry."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bottle import Bottle, request

from ..errors import ValidationFailed
from ..guards import client_address
from ..services import Services
from ..store import parse_object_id
from ..store.audit import audit_to_json
from .automation_schemas import AuditPage
from .common import query_limit
from .openapi import Doc, Param, Reply

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# An empty filter is no filter, as on the runs list.
_ID_OR_EMPTY = "^([0-9a-fA-F]{24})?$"
_ACTION = re.compile(r"[a-z]{1,32}(\.[a-z]{1,32})?")


def request_actor() -> str:
    """Who is asking: admin, desktop or token:<name> (set by the request guard)."""
    return str(request.environ.get("scriptbox.actor") or "admin")


def request_address(services: Services) -> str | None:
    """The client's address as the login throttle sees it (behind trusted proxies: X-Forwarded-For)."""
    address = client_address(request.environ, services.settings.trusted_proxies)
    return str(address) if address else None


def audit_request(services: Services, action: str, target_type: str, target_id: str | None, summary: str,
                  details: dict[str, Any] | None = None, script_id: str | None = None) -> None:
    """Record `action`, done by this request's actor from its address."""
    services.audit.record(request_actor(), action, target_type, target_id, summary, details, request_address(services),
                          script_id)


def start_audit(services: Services, trigger: str) -> Callable[[dict[str, Any]], None]:
    """The `run.start` entry of a run this request starts, for Engine.submit's `on_created`.

    Written just after the answer (AuditLog.record_soon). The actor and
    address are read here, in the request's greenlet: bottle's request is not
    visible in another.
    """
    actor, address = request_actor(), request_address(services)

    def begin(run: dict[str, Any]) -> None:
        snapshot = run["meta"]["snapshot"]
        services.audit.record_soon(actor, "run.start", "run", str(run["_id"]),
                                   f"started {snapshot['name']!r} ({trigger})",
                                   {"trigger": trigger, "codeIdentifier": snapshot["codeIdentifier"]}, address,
                                   str(run["scriptId"]))

    return begin


def parse_audit_query(query: Any) -> dict[str, Any]:
    """action, targetId, scriptId, limit, before; raises ValidationFailed naming bad ones."""
    fields: dict[str, str] = {}
    out: dict[str, Any] = {"action": None, "target_id": None, "script_id": None, "limit": DEFAULT_LIMIT,
                           "before": None}
    action = query.getunicode("action")
    if action:
        if not _ACTION.fullmatch(action):
            fields["action"] = "must be an action name such as script.update or run"
        out["action"] = action
    for name, key in (("targetId", "target_id"), ("scriptId", "script_id")):
        value = query.getunicode(name)
        if value:
            if parse_object_id(value) is None:
                fields[name] = "must be an id (24 hex digits)"
            out[key] = value.lower()
    out["limit"] = query_limit(query.getunicode("limit"), DEFAULT_LIMIT, MAX_LIMIT, fields)
    before = query.getunicode("before")
    if before:
        out["before"] = parse_object_id(before)
        if out["before"] is None:
            fields["before"] = "must be a nextBefore value from a previous page"
    if fields:
        raise ValidationFailed("invalid query parameters", fields=fields)
    return out


def register(app: Bottle, services: Services) -> None:
    @app.get("/api/admin/audit", openapi=Doc(
        "Read the audit log, newest first", "audit", {200: Reply("One page of entries.", AuditPage)},
        errors=(400, 503), params=(
            Param("action", {"type": "string", "pattern": f"^({_ACTION.pattern})?$"},
                  "an action (script.update) or a prefix (run: every run.* action)"),
            Param("targetId", {"type": "string", "pattern": _ID_OR_EMPTY}, "entries about this id"),
            Param("scriptId", {"type": "string", "pattern": _ID_OR_EMPTY},
                  "entries about this script or its runs"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                  f"page size, default {DEFAULT_LIMIT}"),
            Param("before", {"type": "string", "pattern": _ID_OR_EMPTY},
                  "the nextBefore of the previous page"))))
    def list_audit() -> dict[str, Any]:
        """Audit entries newest first: {entries, nextBefore}; filters action (a name, or a prefix
        such as `run`), targetId, scriptId."""
        params = parse_audit_query(request.query)
        services.audit.settle()  # this process's entries still being written (a run started just now)
        docs, next_before = services.audit.store.page(action=params["action"], target_id=params["target_id"],
                                                      script_id=params["script_id"], before=params["before"],
                                                      limit=params["limit"])
        return {"entries": [audit_to_json(d) for d in docs], "nextBefore": next_before}

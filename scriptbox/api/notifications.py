"""Notification channel routes: create, list, read, update, delete, send a test."""

from __future__ import annotations

import re
from typing import Any

from bottle import Bottle, HTTPResponse, request, response

from ..audit import changed_fields
from ..errors import ValidationFailed
from ..services import Services
from ..store.notifications import channel_to_json
from ..vocabulary import FINISHED_STATUSES
from .audit import audit_request, request_actor, request_address
from .common import existing_script_ids, read_json_body
from .notification_schemas import (
    NotificationChannel,
    NotificationCreate,
    NotificationList,
    NotificationTestResult,
    NotificationUpdate,
)
from .openapi import Doc, Reply

CHANNEL_ID = "<channel_id:re:[0-9a-fA-F]{24}>"
FIELDS = ("name", "url", "events", "scriptIds", "enabled")
# Sent back from a GET answer; ignored, as for script definitions.
READ_ONLY = frozenset({"id", "service", "createdAt", "updatedAt", "lastSentAt", "lastError", "lastErrorAt"})
DEFAULT_EVENTS = ["failed", "timed_out"]
MAX_NAME = 100
MAX_URL = 2048
MAX_SCRIPT_IDS = 500
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
INVALID = "the notification channel is invalid"


def _check_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME or _CONTROL.search(value):
        return f"is required: 1-{MAX_NAME} characters, no control characters"
    return None


def _check_events(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(v not in FINISHED_STATUSES for v in value):
        return f"must list at least one of {', '.join(FINISHED_STATUSES)}"
    if len(set(value)) != len(value):
        return "lists an event twice"
    return None


def _script_ids(value: Any, services: Services, fields: dict[str, str]) -> list[Any]:
    """The ObjectIds of existing scripts (each once); bad entries are named in `fields`."""
    if not isinstance(value, list) or len(value) > MAX_SCRIPT_IDS:
        fields["scriptIds"] = f"must be a list of at most {MAX_SCRIPT_IDS} script ids (empty: every script)"
        return []
    return existing_script_ids(value, services.definitions.get, fields)


def _url_fields(value: Any, services: Services, fields: dict[str, str]) -> dict[str, Any]:
    """{urlSealed, urlMasked, service} of a URL Apprise can use; else its problem in `fields`.

    The URL is sealed with the installation's key (it often holds a password or
    token); only its masked form is stored in clear, for listing.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_URL or _CONTROL.search(value):
        fields["url"] = f"is required: an Apprise URL of at most {MAX_URL} characters"
        return {}
    url = value.strip()
    if "****" in url:
        fields["url"] = "holds a masked part (****): enter the whole URL again, or send the masked one unchanged"
        return {}
    parsed = services.notifier.parse_url(url)
    if parsed is None:
        fields["url"] = ("Apprise cannot use this URL (unknown service or missing parts; e.g. json://host/path, "
                         "mailto://user:password@example.com, ntfy://topic)")
        return {}
    return {"urlSealed": services.secrets.seal(url), "urlMasked": parsed.masked, "service": parsed.service}


def validate_channel(body: Any, services: Services, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored fields a create (`existing` None) or an update sets; raises ValidationFailed naming bad fields."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    fields = {str(k): "unknown field" for k in body if k not in FIELDS and k not in READ_ONLY}
    if existing is None:
        body = {"events": DEFAULT_EVENTS, "scriptIds": [], "enabled": True, **body}
    out: dict[str, Any] = {}
    if "name" in body or existing is None:
        why = _check_name(body.get("name"))
        if why:
            fields["name"] = why
        else:
            out["name"] = body["name"].strip()
    if "url" in body or existing is None:
        # The masked form sent back (from a GET) keeps the stored URL and its secrets.
        if existing is None or body.get("url") != existing.get("urlMasked"):
            out.update(_url_fields(body.get("url"), services, fields))
    if "events" in body:
        why = _check_events(body["events"])
        if why:
            fields["events"] = why
        else:
            out["events"] = [e for e in FINISHED_STATUSES if e in body["events"]]
    if "scriptIds" in body:
        out["scriptIds"] = _script_ids(body["scriptIds"], services, fields)
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            fields["enabled"] = "must be true or false"
        else:
            out["enabled"] = body["enabled"]
    if fields:
        raise ValidationFailed(INVALID, fields=fields)
    return out


def _audit_details(doc: dict[str, Any]) -> dict[str, Any]:
    """What the audit log keeps of a channel: never the stored URL, only its masked form."""
    return {"name": doc["name"], "url": doc.get("urlMasked"), "service": doc.get("service"),
            "events": list(doc.get("events", [])), "scriptIds": [str(s) for s in doc.get("scriptIds", [])],
            "enabled": doc.get("enabled")}


def register(app: Bottle, services: Services) -> None:
    store = services.notifications

    @app.post("/api/admin/notifications", openapi=Doc(
        "Add a notification channel", "notifications",
        {201: Reply("The channel (its URL masked).", NotificationChannel,
                    headers={"Location": "the new channel's URL"})},
        errors=(409, 503), body=NotificationCreate,
        error_notes={409: "duplicate_channel_name: another channel has this name."}))
    def create_channel() -> dict[str, Any]:
        """Add a channel → 201; the URL is parsed by Apprise (400 naming `url` when it cannot use it)."""
        doc = store.create(validate_channel(read_json_body(request), services))
        audit_request(services, "notification.create", "notification", str(doc["_id"]),
                      f"added notification channel {doc['name']!r} ({doc['service']})", _audit_details(doc))
        response.status = 201
        response.set_header("Location", f"/api/admin/notifications/{doc['_id']}")
        return channel_to_json(doc)

    @app.get("/api/admin/notifications", openapi=Doc(
        "List notification channels", "notifications",
        {200: Reply("Every channel, sorted by name, URLs masked.", NotificationList)}, errors=(503,)))
    def list_channels() -> dict[str, Any]:
        return {"notifications": [channel_to_json(d) for d in store.all()]}

    @app.get(f"/api/admin/notifications/{CHANNEL_ID}", openapi=Doc(
        "Read a notification channel", "notifications", {200: Reply("The channel.", NotificationChannel)},
        errors=(404, 503)))
    def get_channel(channel_id: str) -> dict[str, Any]:
        return channel_to_json(store.get(channel_id))

    @app.put(f"/api/admin/notifications/{CHANNEL_ID}", openapi=Doc(
        "Update a notification channel (partial)", "notifications",
        {200: Reply("The updated channel.", NotificationChannel)}, errors=(404, 409, 503), body=NotificationUpdate,
        description="Fields left out keep their values; a `url` equal to the masked one shown keeps the stored URL.",
        error_notes={409: "duplicate_channel_name: another channel has this name."}))
    def update_channel(channel_id: str) -> dict[str, Any]:
        existing = store.get(channel_id)
        fields = validate_channel(read_json_body(request), services, existing)
        updated = store.update(channel_id, fields) if fields else existing
        # A URL entered again counts as changed: its sealed form has a new nonce each time.
        changed = sorted("url" if name == "urlSealed" else name for name in changed_fields(existing, updated)
                         if name not in ("updatedAt", "urlMasked", "service"))
        audit_request(services, "notification.update", "notification", str(updated["_id"]),
                      f"updated notification channel {updated['name']!r}: {', '.join(changed) or 'no change'}",
                      {"fields": changed, **_audit_details(updated)})
        return channel_to_json(updated)

    @app.delete(f"/api/admin/notifications/{CHANNEL_ID}", openapi=Doc(
        "Delete a notification channel", "notifications", {204: Reply("Deleted.")}, errors=(404, 503)))
    def delete_channel(channel_id: str) -> HTTPResponse:
        doc = store.delete(channel_id)
        audit_request(services, "notification.delete", "notification", str(doc["_id"]),
                      f"deleted notification channel {doc['name']!r}", _audit_details(doc))
        return HTTPResponse(status=204)

    @app.post(f"/api/admin/notifications/{CHANNEL_ID}/test", openapi=Doc(
        "Send a test message to a notification channel", "notifications",
        {200: Reply("Whether it was delivered (one attempt, waited for); a failure is recorded like any other.",
                    NotificationTestResult)},
        errors=(404, 503), body=None))
    def test_channel(channel_id: str) -> dict[str, Any]:
        """Send a test message now, also to a disabled channel; answers once the service answered."""
        channel = store.get(channel_id)
        error = services.notifier.send_test(channel, request_actor(), request_address(services))
        return {"ok": error is None, "error": error, "notification": channel_to_json(store.get(channel_id))}

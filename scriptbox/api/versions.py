"""Version routes: the saved states of a definition, and restoring one (SPEC §8.9)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from bottle import Bottle, request

from ..audit import changed_fields
from ..definition_secrets import seal_definition
from ..errors import ValidationFailed
from ..models import validate_new_definition
from ..secretbox import SecretBox
from ..services import Services
from .audit import audit_request
from .definitions import DEFINITION_ID, UNAUDITED_FIELDS, save_definition
from .openapi import Doc, Param, Reply
from .presenters import definition_fields_to_json, definition_to_json, version_summary_to_json, version_to_json
from .schemas import ScriptDefinition, ScriptVersion, VersionList

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_VERSION = 10**9 - 1
# Version numbers in paths: anything else is not one of these routes (404).
VERSION_N = "<n:re:[0-9]{1,9}>"
_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def parse_versions_query(query: Any) -> tuple[int, int | None]:
    """(limit, before) of GET …/versions; raises ValidationFailed naming bad ones."""
    fields: dict[str, str] = {}
    limit, before = DEFAULT_LIMIT, None
    raw_limit = query.getunicode("limit")
    if raw_limit is not None:
        if not _WHOLE_NUMBER.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            fields["limit"] = f"must be a whole number from 1 to {MAX_LIMIT}"
        else:
            limit = int(raw_limit)
    raw_before = query.getunicode("before")
    if raw_before:
        if not _WHOLE_NUMBER.fullmatch(raw_before) or int(raw_before) < 1:
            fields["before"] = "must be a version number (a nextBefore value from a previous page)"
        else:
            before = int(raw_before)
    if fields:
        raise ValidationFailed("invalid query parameters", fields=fields)
    return limit, before


def restorable_fields(definition: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """A version's stored definition checked by today's rules, as the fields to save.

    It is checked as an answer shows it (secrets as null, "keep the stored
    one"), then sealed with the version's own stored secrets kept: a restore
    puts back the secret values the version had, still encrypted as they were,
    never decrypted. Raises 409 `version_invalid` naming the fields when the
    rules changed since it was saved (the admin edits the script instead).
    """
    try:
        return seal_definition(validate_new_definition(definition_fields_to_json(definition)), definition, box)
    except ValidationFailed as exc:
        raise ValidationFailed("this version does not pass today's checks; edit the script instead",
                               fields=exc.fields, code="version_invalid", status=409) from None


def register(app: Bottle, services: Services) -> None:
    definitions = services.definitions
    versions = definitions.versions

    @app.get(f"/api/admin/scripts/{DEFINITION_ID}/versions", openapi=Doc(
        "List a script's versions, newest first", "versions",
        {200: Reply("One page of versions, without their definitions.", VersionList)},
        errors=(400, 404, 503), params=(
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                  f"page size, default {DEFAULT_LIMIT}"),
            Param("before", {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
                  "the nextBefore of the previous page: versions older than this number")),
        description="Also answers for a deleted script whose versions are kept (its runs still exist).",
        error_notes={404: "No script with that id, and no versions kept of one."}))
    def list_versions(definition_id: str) -> dict[str, Any]:
        limit, before = parse_versions_query(request.query)
        docs, next_before = versions.page(definition_id, limit, before)
        if not docs and before is None:
            definitions.get(definition_id)  # 404 for an unknown script
        return {"versions": [version_summary_to_json(d) for d in docs], "nextBefore": next_before}

    @app.get(f"/api/admin/scripts/{DEFINITION_ID}/versions/{VERSION_N}", openapi=Doc(
        "Read one version of a script", "versions",
        {200: Reply("The definition as it was saved at that version.", ScriptVersion)}, errors=(404, 503),
        description="Also answers for a deleted script whose versions are kept (its runs still exist)."))
    def get_version(definition_id: str, n: str) -> dict[str, Any]:
        return version_to_json(versions.get(definition_id, int(n)))

    @app.post(f"/api/admin/scripts/{DEFINITION_ID}/versions/{VERSION_N}/restore", openapi=Doc(
        "Restore a version: save it as the script's next version", "versions",
        {200: Reply("The definition as restored (version unchanged when it already was that version).",
                    ScriptDefinition)},
        errors=(404, 409, 503), body_required=False,
        description="Makes a new version whose definition equals version n; versions are never changed. "
                    "Audit action script.restore.",
        error_notes={404: "No such script (a deleted script cannot be restored) or no such version.",
                     409: "duplicate_code_identifier (another script took its codeIdentifier since) or "
                          "version_invalid (it does not pass today's checks)."}))
    def restore_version(definition_id: str, n: str) -> dict[str, Any]:
        definitions.get(definition_id)  # a deleted script: 404 before its version is looked at
        version = versions.get(definition_id, int(n))
        fields = restorable_fields(version["definition"], services.secrets)

        def fields_of(_existing: dict[str, Any]) -> tuple[dict[str, Any], datetime | None]:
            return fields, None

        existing, updated, changed = save_definition(services, definition_id, fields_of)
        names = [name for name in changed_fields(existing, updated) if name not in UNAUDITED_FIELDS]
        summary = (f"restored version {version['n']} of script {updated['name']!r} as version {updated['version']}"
                   if changed else f"restored version {version['n']} of script {updated['name']!r}: no change")
        audit_request(services, "script.restore", "script", definition_id.lower(), summary,
                      {"restoredVersion": version["n"], "version": updated["version"], "fields": names})
        services.definitions_changed(definition_id)
        return definition_to_json(updated)


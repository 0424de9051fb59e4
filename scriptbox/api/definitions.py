"""Definition routes: list, create, read, update, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bottle import Bottle, HTTPResponse, request, response

from ..audit import changed_fields
from ..definition_secrets import seal_definition
from ..errors import Conflict, ValidationFailed
from ..models import validate_definition_update, validate_new_definition
from ..services import Services
from ..store import iso
from ..store.definitions import EDIT_CONFLICT_MESSAGE
from .audit import audit_request
from .common import read_json_body
from .openapi import Doc, Param, Reply
from .presenters import definition_to_json, last_run_to_json
from .schemas import ScriptDefinition, ScriptList

# Ids are ObjectId hex; anything else (e.g. "runs", "by-code") never reaches these routes.
DEFINITION_ID = "<definition_id:re:[0-9a-fA-F]{24}>"
# Automation names scripts by codeIdentifier, which is the same on every
# installation (ids are not). Any path segment matches; one that is not a valid
# codeIdentifier is answered 404 like an unknown one.
BY_CODE = "by-code/<code_identifier>"
# Set by the server on every save: not a change anyone made.
UNAUDITED_FIELDS = frozenset({"updatedAt", "version"})


def _is_iso_time(value: Any) -> bool:
    """True for times as this API writes them (ISO-8601 UTC with Z)."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return False
    return True


def register(app: Bottle, services: Services) -> None:
    definitions = services.definitions
    runs = services.runs

    @app.get("/api/admin/scripts", openapi=Doc(
        "List script definitions", "scripts",
        {200: Reply("Definitions sorted by name, each with lastRun.", ScriptList)},
        errors=(503,), params=(Param("q", {"type": "string"}, "filters name/codeIdentifier (substring, any case)"),
                               Param("tag", {"type": "string"}, "only definitions with this tag (any case)"))))
    def list_definitions() -> dict[str, Any]:
        query = request.query.getunicode("q", default="") or ""
        tag = request.query.getunicode("tag", default="") or ""
        docs = definitions.search(query.strip(), tag.strip())
        last_runs = runs.last_runs([str(doc["_id"]) for doc in docs])
        items = []
        for doc in docs:
            item = definition_to_json(doc)
            item["lastRun"] = last_run_to_json(last_runs.get(str(doc["_id"])))
            items.append(item)
        return {"scripts": items}

    @app.post("/api/admin/scripts", openapi=Doc(
        "Create a script definition", "scripts",
        {201: Reply("Created.", ScriptDefinition, headers={"Location": "the new definition's URL"})},
        errors=(409, 503), body="ScriptDefinitionCreate",
        error_notes={409: "duplicate_code_identifier: another script uses that codeIdentifier."}))
    def create_definition() -> dict[str, Any]:
        fields = seal_definition(validate_new_definition(read_json_body(request)), None, services.secrets)
        doc = definitions.create(fields)
        audit_request(services, "script.create", "script", str(doc["_id"]), f"created script {doc['name']!r}",
                      {"codeIdentifier": doc["codeIdentifier"], "name": doc["name"], "type": doc["type"]})
        services.definitions_changed(str(doc["_id"]))
        response.status = 201
        response.set_header("Location", f"/api/admin/scripts/{doc['_id']}")
        return definition_to_json(doc)

    @app.get(f"/api/admin/scripts/{DEFINITION_ID}", openapi=Doc(
        "Read a script definition", "scripts", {200: Reply("The definition.", ScriptDefinition)}, errors=(404, 503)))
    def get_definition(definition_id: str) -> dict[str, Any]:
        """One definition by id; 404 when there is none."""
        return definition_to_json(definitions.get(definition_id))

    @app.get(f"/api/admin/scripts/{BY_CODE}", openapi=Doc(
        "Read a script definition by codeIdentifier", "scripts",
        {200: Reply("The definition (as GET /api/admin/scripts/{definition_id}).", ScriptDefinition)},
        errors=(404, 503)))
    def get_definition_by_code(code_identifier: str) -> dict[str, Any]:
        """One definition by codeIdentifier, the same answer as GET /api/admin/scripts/:id; 404 when there is none."""
        return definition_to_json(definitions.get_by_code(code_identifier))

    @app.put(f"/api/admin/scripts/{DEFINITION_ID}", openapi=Doc(
        "Update a script definition (partial)", "scripts", {200: Reply("The updated definition.", ScriptDefinition)},
        errors=(404, 409, 503), body="ScriptDefinitionUpdate",
        description="When `type` changes without a `runner`, the runner is kept if still allowed, else reset "
                    "to the type's default.",
        error_notes={409: "edit_conflict (saved since the given updatedAt) or duplicate_code_identifier."}))
    def update_definition(definition_id: str) -> dict[str, Any]:
        patch = read_json_body(request)
        existing = definitions.get(definition_id)
        fields = seal_definition(validate_definition_update(existing, patch), existing, services.secrets)
        # A client that sends back the `updatedAt` it loaded (the admin page
        # does) is refused with 409 if someone saved in between, instead of
        # silently overwriting the other admin's change.
        expected = None
        if isinstance(patch, dict) and "updatedAt" in patch:
            if not _is_iso_time(patch["updatedAt"]):
                raise ValidationFailed("the script definition is invalid",
                                       fields={"updatedAt": "must be the updatedAt of a loaded definition"})
            if patch["updatedAt"] != iso(existing["updatedAt"]):
                raise Conflict(EDIT_CONFLICT_MESSAGE, code="edit_conflict")
            expected = existing["updatedAt"]
        updated = definitions.replace_fields(existing["_id"], fields, expected)
        changed = [name for name in changed_fields(existing, updated) if name not in UNAUDITED_FIELDS]
        audit_request(services, "script.update", "script", definition_id.lower(),
                      f"updated script {updated['name']!r}: {', '.join(changed) or 'no change'}", {"fields": changed})
        services.definitions_changed(definition_id)
        return definition_to_json(updated)

    @app.delete(f"/api/admin/scripts/{DEFINITION_ID}", openapi=Doc(
        "Delete a script definition (its run history stays)", "scripts", {204: Reply("Deleted.")},
        errors=(404, 409, 503), error_notes={409: "run_active: a run of it is queued or running."}))
    def delete_definition(definition_id: str) -> HTTPResponse:
        existing = definitions.get(definition_id)  # 404 first
        if runs.has_active_run(definition_id):
            raise Conflict("the script has a queued or running run; cancel it or wait for it to finish",
                           code="run_active")
        definitions.delete(definition_id)
        audit_request(services, "script.delete", "script", definition_id.lower(),
                      f"deleted script {existing['name']!r}", {"codeIdentifier": existing["codeIdentifier"]})
        services.definitions_changed(definition_id)
        return HTTPResponse(status=204)

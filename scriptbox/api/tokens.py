"""Token routes (create, list, revoke) and the Bearer side of the request guard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bottle import Bottle, HTTPResponse, request, response

from ..errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from ..services import Services
from ..store import iso
from ..store.tokens import token_to_json
from ..tokens import NAME_RE, SCOPES, Token, new_secret, parse_expiry, run_target, scope_allows, token_digest
from .audit import audit_request, request_address
from .automation_schemas import ApiTokenCreated, ApiTokenList, TokenRequest
from .common import existing_script_ids, read_json_body
from .openapi import Doc, Reply

TOKEN_ID = "<token_id:re:[0-9a-fA-F]{24}>"
MAX_SCRIPT_IDS = 500
TOKEN_FIELDS = ("name", "scope", "scriptIds", "expiresAt")


def validate_token_request(body: Any, services: Services) -> dict[str, Any]:
    """The stored fields of a new token (without its hash); raises ValidationFailed naming bad fields."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    fields = {str(k): "unknown field" for k in body if k not in TOKEN_FIELDS}
    name = body.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        fields["name"] = "is required: 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit"
    scope = body.get("scope")
    if scope not in SCOPES:
        fields["scope"] = "must be admin or run"
    raw_ids = body.get("scriptIds", [])
    script_ids: list[Any] = []
    if not isinstance(raw_ids, list) or len(raw_ids) > MAX_SCRIPT_IDS:
        fields["scriptIds"] = f"must be a list of at most {MAX_SCRIPT_IDS} script ids"
    elif raw_ids and scope == "admin":
        fields["scriptIds"] = "only a run token is limited to scripts"
    else:
        script_ids = existing_script_ids(raw_ids, services.definitions.get, fields)
    expires_at, why = parse_expiry(body.get("expiresAt"), services.tokens.now())
    if why:
        fields["expiresAt"] = why
    if fields:
        raise ValidationFailed("the token is invalid", fields=fields)
    return {"name": name, "scope": scope, "scriptIds": script_ids, "expiresAt": expires_at}


def _scope_refused(token: Token) -> Forbidden:
    return Forbidden(f"token {token.name!r} ({token.scope} scope) may not do this", code="token_scope")


def _target_script(services: Services, token: Token, method: str, path: str,
                   query: Mapping[str, str]) -> str | None:
    """The script id a run-scoped request acts on ("" when it names nothing a route would find);
    raises Forbidden when a run token may not make this request at all."""
    target = run_target(method, path)
    if target is None:
        raise _scope_refused(token)
    if target.kind == "script":
        return target.ref
    if target.kind == "code":
        try:
            return str(services.definitions.get_by_code(target.ref)["_id"])
        except NotFound:
            return ""
    if target.kind == "run":
        run = services.runs.get(target.ref)
        return "" if run is None else str(run["scriptId"])
    return query.get("scriptId") or None


def authorize_bearer(services: Services, secret: str) -> Token:
    """The token of this request, checked against its scope.

    Tokens are for the API (/api/admin/, and /api/openapi.json and /metrics,
    which need an admin token). Raises Unauthorized for unknown, expired or
    revoked tokens (recorded as auth.failed, throttled) and for UI pages, which
    no token opens; Forbidden outside the token's scope.
    """
    path = request.path
    if path == "/admin" or path.startswith("/admin/"):
        raise Unauthorized("API tokens are not accepted for the admin page; sign in to open it",
                           headers={"WWW-Authenticate": 'Basic realm="scriptbox", charset="UTF-8"'})
    token = services.tokens.authenticate(secret)
    if token is None:
        services.audit.auth_failed(request_address(services) or "", "unknown, expired or revoked API token")
        raise Unauthorized("the API token is unknown, expired or revoked", code="invalid_token",
                           headers={"WWW-Authenticate": 'Bearer realm="scriptbox", error="invalid_token"'})
    if token.scope == "admin":
        return token
    query = {"scriptId": request.query.getunicode("scriptId") or ""}
    script_id = _target_script(services, token, request.method, path, query)
    if script_id == "" and not token.script_ids:
        return token  # the route answers 404 as it would to an admin
    if not scope_allows(token, script_id):
        raise _scope_refused(token)
    return token


def register(app: Bottle, services: Services) -> None:
    tokens = services.tokens

    @app.post("/api/admin/tokens", openapi=Doc(
        "Create an API token", "tokens", {201: Reply("The token, with its secret in `token` (shown this once).",
                                                      ApiTokenCreated)},
        errors=(409, 503), body=TokenRequest,
        error_notes={409: "duplicate_token_name: another token has this name."}))
    def create_token() -> dict[str, Any]:
        """Create a token → 201 with the secret in `token`, shown this once."""
        fields = validate_token_request(read_json_body(request), services)
        secret = new_secret()
        doc = tokens.store.create({**fields, "hash": token_digest(secret), "prefix": secret[:8]})
        summary = f"created {doc['scope']} token {doc['name']!r}"
        audit_request(services, "token.create", "token", str(doc["_id"]), summary, {
            "name": doc["name"], "scope": doc["scope"], "scriptIds": [str(s) for s in doc["scriptIds"]],
            "expiresAt": iso(doc["expiresAt"])})
        response.status = 201
        return {**token_to_json(doc), "token": secret}

    @app.get("/api/admin/tokens", openapi=Doc(
        "List API tokens (without secrets)", "tokens", {200: Reply("Every token.", ApiTokenList)}, errors=(503,)))
    def list_tokens() -> dict[str, Any]:
        """Every token without its secret, newest first, with lastUsedAt and expiresAt."""
        return {"tokens": [token_to_json(d) for d in tokens.store.list()]}

    @app.delete(f"/api/admin/tokens/{TOKEN_ID}", openapi=Doc(
        "Revoke an API token", "tokens", {204: Reply("Revoked: refused from now on; its open streams end.")},
        errors=(404, 503)))
    def revoke_token(token_id: str) -> HTTPResponse:
        """Revoke at once → 204: later requests get 401 and its open streams end."""
        doc = tokens.revoke(token_id)
        audit_request(services, "token.revoke", "token", str(doc["_id"]), f"revoked token {doc['name']!r}",
                      {"name": doc["name"], "scope": doc["scope"]})
        return HTTPResponse(status=204)

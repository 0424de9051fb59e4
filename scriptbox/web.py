"""create_app(): the Bottle application, its guards, error handling and the UI files.

Every response that is not a success is the JSON error shape of SPEC §3,
including Bottle's own 404/405 and any unexpected exception (logged, answered
as a JSON 500, never a traceback page).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import bottle
from bottle import Bottle, HTTPError, HTTPResponse, request, response, static_file

from .api import audit as audit_api
from .api import definitions as definitions_api
from .api import runs as runs_api
from .api import tokens as tokens_api
from .api.common import read_json_body
from .api.tokens import authorize_bearer
from .auth import SESSION_COOKIE, is_loopback, parse_basic_auth
from .errors import STATUS_CODES, ApiError, DatabaseUnavailable, Forbidden, Unauthorized, ValidationFailed, error_body
from .guards import check_same_origin
from .services import Services
from .tokens import bearer_token

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
PROTECTED_PREFIXES = ("/api/admin/", "/admin/")
PROTECTED_EXACT = ("/api/admin", "/admin")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Blob workers run browser scripts; CodeMirror injects <style> elements.
PAGE_CSP = ("default-src 'self'; script-src 'self'; worker-src 'self' blob:; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

PLACEHOLDER_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Scriptbox</title></head><body><main id="scripts-list">
<h1>Scriptbox</h1><p>The admin UI has not been built. Run <code>make run</code>
(or <code>cd ui &amp;&amp; npm ci &amp;&amp; npm run build</code>).</p></main></body></html>"""

DESKTOP_LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Scriptbox</title></head><body style="font-family:sans-serif;padding:2em">
<p>Signing in&hellip;</p></body></html>"""


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    body = json.dumps(payload, ensure_ascii=False)
    resp = HTTPResponse(body=body, status=status, headers=headers or {})
    resp.content_type = JSON_TYPE
    return resp


def api_error_response(error: ApiError) -> HTTPResponse:
    return json_response(error.body(), error.status, error.headers)


class JsonApiPlugin:
    """Turns returned dicts into JSON and raised ApiErrors into JSON errors."""

    name = "scriptbox_json"
    api = 2

    def apply(self, callback: Callable[..., Any], route: bottle.Route) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                result = callback(*args, **kwargs)
            except ApiError as exc:
                raise api_error_response(exc) from None
            if isinstance(result, (dict, list)):
                response.content_type = JSON_TYPE
                return json.dumps(result, ensure_ascii=False)
            return result

        return wrapper


def _is_protected(path: str) -> bool:
    return path in PROTECTED_EXACT or path.startswith(PROTECTED_PREFIXES)


def _authenticate(services: Services) -> str:
    """The actor making this request (desktop or admin); raises Unauthorized (after a throttle delay)."""
    peer = request.environ.get("REMOTE_ADDR", "")
    if is_loopback(peer) and services.desktop_sessions.is_valid(request.get_cookie(SESSION_COOKIE)):
        return "desktop"
    credentials = parse_basic_auth(request.environ.get("HTTP_AUTHORIZATION"))
    if credentials is not None and services.credentials.check(*credentials):
        services.throttle.succeeded(peer)
        return "admin"
    if credentials is not None:
        services.audit.auth_failed(peer, "wrong admin user name or password")
        delay = services.throttle.delay_for(peer)
        if delay:
            log.warning("failed login from %s; answering in %.2f s", peer, delay)
            time.sleep(delay)  # gevent-patched in the server: only this request waits
    raise Unauthorized("authentication required",
                       headers={"WWW-Authenticate": 'Basic realm="scriptbox", charset="UTF-8"'})


def create_app(services: Services) -> Bottle:
    """Build the WSGI app. Registers every route module's routes."""
    app = Bottle(catchall=True, autojson=False)
    app.install(JsonApiPlugin())

    @app.hook("before_request")
    def guard_request() -> None:
        # Runs before routing, so unknown paths and wrong methods are guarded too.
        try:
            services.host_guard.check(request.environ)
            if _is_protected(request.path):
                secret = bearer_token(request.environ.get("HTTP_AUTHORIZATION"))
                if secret is not None:
                    token = authorize_bearer(services, secret)
                    request.environ["scriptbox.token"] = token
                    actor = token.actor
                else:
                    actor = _authenticate(services)
                # The actor (admin, desktop, token:<name>) is what runs record as requestedBy
                # and what the audit log names.
                request.environ["scriptbox.actor"] = actor
                request.environ["scriptbox.user"] = actor
                check_same_origin(request.environ)
        except ApiError as exc:
            raise api_error_response(exc) from None

    @app.hook("after_request")
    def security_headers() -> None:
        for name, value in SECURITY_HEADERS.items():
            response.set_header(name, value)

    def error_handler(error: HTTPError) -> str:
        status = error.status_code
        if status >= 500 and error.exception is not None and not isinstance(error.exception, DatabaseUnavailable):
            log.error("unhandled error on %s %s", request.method, request.path,
                      exc_info=(type(error.exception), error.exception, error.exception.__traceback__))
        response.content_type = JSON_TYPE
        message = str(error.body) if isinstance(error.body, str) and error.body else bottle.HTTP_CODES.get(status, "")
        if status == 404:
            message = f"nothing at {request.path}"
        elif status == 405:
            message = f"{request.method} is not allowed here"
        elif status >= 500:
            message = "internal error; see the server log"
        return json.dumps(error_body(STATUS_CODES.get(status, "error"), message))

    app.default_error_handler = error_handler

    @app.get("/healthz")
    def healthz() -> HTTPResponse:
        try:
            services.database.ping()
        except DatabaseUnavailable as exc:
            return json_response({"status": "unavailable", "db": "unreachable", **exc.body()}, 503)
        return json_response({"status": "ok", "db": "ok"})

    @app.get("/")
    @app.get("/admin")
    @app.get("/admin/")
    def to_admin() -> None:
        bottle.redirect("/admin/scripts", 302)

    def ui_page() -> HTTPResponse:
        index = services.ui_dir / "index.html"
        body = index.read_text(encoding="utf-8") if index.is_file() else PLACEHOLDER_PAGE
        resp = HTTPResponse(body=body, status=200)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Content-Security-Policy", PAGE_CSP)
        resp.set_header("Cache-Control", "no-store")
        return resp

    app.get("/admin/scripts")(ui_page)
    app.get("/admin/scripts/")(ui_page)
    app.get("/admin/scripts/<path:path>")(lambda path: ui_page())

    @app.get("/admin/assets/<path:path>")
    def ui_asset(path: str) -> HTTPResponse:
        result = static_file(path, root=str(services.ui_dir / "assets"))
        if isinstance(result, HTTPError):
            raise result
        return result

    @app.get("/desktop-login")
    def desktop_login_page() -> HTTPResponse:
        if not services.desktop_sessions.enabled or not is_loopback(request.environ.get("REMOTE_ADDR")):
            raise HTTPError(404)
        resp = HTTPResponse(body=DESKTOP_LOGIN_PAGE, status=200)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        return resp

    @app.post("/desktop-login")
    def desktop_login() -> HTTPResponse:
        if not services.desktop_sessions.enabled or not is_loopback(request.environ.get("REMOTE_ADDR")):
            raise HTTPError(404)
        check_same_origin(request.environ)
        body = read_json_body(request)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise ValidationFailed("a token is required", fields={"token": "is required"})
        session = services.desktop_sessions.exchange(token)
        if session is None:
            raise Forbidden("the login token is invalid or was already used", code="bad_login_token")
        resp = HTTPResponse(status=204)
        resp.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/")
        return resp

    definitions_api.register(app, services)
    runs_api.register(app, services)
    tokens_api.register(app, services)
    audit_api.register(app, services)
    return app

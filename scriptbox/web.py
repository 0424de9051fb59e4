"""create_app(): the Bottle application, its guards, error handling and the UI files.

Every response that is not a success is the one JSON error shape (errors.py),
including Bottle's own 404/405 and any unexpected exception (logged, answered
as a JSON 500, never a traceback page).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import bottle
from bottle import Bottle, HTTPError, HTTPResponse, request, response, static_file

from .api import audit as audit_api
from .api import definitions as definitions_api
from .api import executors as executors_api
from .api import notifications as notifications_api
from .api import run_events as run_events_api
from .api import runs as runs_api
from .api import schedules as schedules_api
from .api import tokens as tokens_api
from .api import versions as versions_api
from .api.common import read_json_body
from .api.openapi import Doc, Reply, build_document
from .api.schemas import DesktopLogin, Health
from .api.tokens import authorize_bearer
from .audit import AuditLog
from .auth import SESSION_COOKIE, CredentialChecker, LoginThrottle, parse_basic_auth
from .errors import (
    STATUS_CODES,
    ApiError,
    DatabaseUnavailable,
    Forbidden,
    TooManyAttempts,
    Unauthorized,
    ValidationFailed,
    error_body,
)
from .guards import HostGuard, Network, check_same_origin, client_address
from .logs import run_context
from .loopback import is_loopback
from .metrics import Metrics
from .services import Access, Services
from .tokens import bearer_token

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
PROTECTED_PREFIXES = ("/api/admin/", "/admin/")
# /api/openapi.json and /metrics need the admin too: /healthz alone is open.
PROTECTED_EXACT = ("/api/admin", "/admin", "/api/openapi.json", "/metrics")

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


REDIRECT_DOC = Doc("Redirect to the admin page", "ui",
                   {302: Reply("To /admin/scripts.", headers={"Location": "/admin/scripts"})})
UI_PAGE_DOC = Doc("The admin page (a single-page app; every /admin/scripts path serves it)", "ui",
                  {200: Reply("The page.", media="text/html")})
# Bottle's <path> matches no line break, so such a path is no page of the app (found by the fuzzer).
UI_SUBPAGE_DOC = Doc(UI_PAGE_DOC.summary, "ui", UI_PAGE_DOC.replies, errors=(404,),
                     error_notes={404: "The path holds a line break."})


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
                with run_context(kwargs.get("run_id")):  # log records of a run's routes carry runId
                    result = callback(*args, **kwargs)
            except ApiError as exc:
                raise api_error_response(exc) from None
            if isinstance(result, (dict, list)):
                response.content_type = JSON_TYPE
                return json.dumps(result, ensure_ascii=False)
            return result

        return wrapper


def is_protected(path: str) -> bool:
    """Whether `path` needs the admin's credentials (also what the OpenAPI document says)."""
    return path in PROTECTED_EXACT or path.startswith(PROTECTED_PREFIXES)


def json_error_page(error: HTTPError) -> str:
    """Bottle's own errors (404, 405, uncaught exceptions) as the JSON error shape."""
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


def _authenticate(access: Access, trusted_proxies: tuple[Network, ...], audit: AuditLog) -> str:
    """The actor making this request (desktop or admin); raises Unauthorized, or TooManyAttempts while throttled.

    An exact pair that verified before answers at once. Anything else is
    admitted by the throttle first (a locked-out client gets 429, held for up
    to 10 s, without its password being looked at), then checked with Argon2
    off the event loop.
    """
    peer = request.environ.get("REMOTE_ADDR", "")
    if is_loopback(peer) and access.desktop_sessions.is_valid(request.get_cookie(SESSION_COOKIE)):
        return "desktop"
    _basic_auth(access.credentials, access.throttle, trusted_proxies,
                lambda client, count: audit.auth_failed(client, "wrong admin user name or password", count))
    return "admin"


def _basic_auth(checker: CredentialChecker, throttle: LoginThrottle, trusted_proxies: tuple[Network, ...] = (),
                on_failure: Callable[[str, int], object] | None = None) -> str:
    """The user of a valid Basic Authorization header; raises Unauthorized, or TooManyAttempts while throttled.

    `on_failure(client, count)` records failures (the audit log), as throttled as the server log's lines.
    """
    credentials = parse_basic_auth(request.environ.get("HTTP_AUTHORIZATION"))
    if credentials is not None:
        if checker.is_remembered(*credentials):
            return credentials[0]
        client = client_address(request.environ, trusted_proxies)
        wait = throttle.admit(client)
        if wait:
            held = throttle.tarpit(wait)
            if held:
                try:
                    time.sleep(held)  # gevent-patched in the server: only this request waits
                finally:
                    throttle.tarpit_done()
            retry = max(1, math.ceil(wait - held))
            raise TooManyAttempts(f"too many failed sign-in attempts; try again in {retry} s",
                                  headers={"Retry-After": str(retry)})
        ok = False
        try:
            ok = checker.check(*credentials)
        finally:
            to_log = throttle.finished(client, ok)
        if ok:
            return credentials[0]
        if to_log:
            # Throttled by the login throttle: at most one report per client per minute, with a count.
            log.warning("failed sign-in from %s (%d since the last report)", client, to_log)
            if on_failure is not None:
                on_failure(client, to_log)
    raise Unauthorized("authentication required",
                       headers={"WWW-Authenticate": 'Basic realm="scriptbox", charset="UTF-8"'})


class _GuardedInput:
    """wsgi.input whose failures become one JSON 4xx that closes the connection.

    gevent raises an OSError subclass for a broken chunked body (``zz\\r\\n``)
    and socket.timeout for a stalled one. Uncaught, Bottle answered 500 and
    gevent then parsed the leftover bytes as a second request (issue 20, item 5);
    "Connection: close" makes gevent end the connection after this answer.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def _guard(self, method: Callable[..., bytes], *args: Any) -> bytes:
        try:
            return method(*args)
        except TimeoutError:
            raise ApiError("the request body stalled; the connection is closed", code="request_timeout",
                           status=408, headers={"Connection": "close"}) from None
        except OSError:
            raise ApiError("the request body is malformed (broken chunked framing?)", code="malformed_body",
                           status=400, headers={"Connection": "close"}) from None

    def read(self, *args: Any) -> bytes:
        return self._guard(self._raw.read, *args)

    def readline(self, *args: Any) -> bytes:
        return self._guard(self._raw.readline, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def secure_wsgi(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap the WSGI app: guarded body reads, and the security headers on every answer.

    The headers are added here rather than in a Bottle hook so that no path
    (an unexpected 500, an error raised before routing) can answer without them.
    """
    lowered = {name.lower() for name in SECURITY_HEADERS}

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if "wsgi.input" in environ:
            environ["wsgi.input"] = _GuardedInput(environ["wsgi.input"])

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [h for h in headers if h[0].lower() not in lowered] + list(SECURITY_HEADERS.items())
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return app(environ, start)

    return wrapped


def create_app(services: Services) -> Bottle:
    """Build the WSGI app. Registers every route module's routes.

    Raises ValueError for services built without `access` (a worker's).
    """
    access = services.require_access()
    app = Bottle(catchall=True)
    app.config["json.enable"] = False  # JsonApiPlugin writes JSON (and its errors) itself
    app.install(JsonApiPlugin())

    @app.hook("before_request")
    def guard_request() -> None:
        # Runs before routing, so unknown paths and wrong methods are guarded too.
        try:
            access.host_guard.check(request.environ)
            if is_protected(request.path):
                secret = bearer_token(request.environ.get("HTTP_AUTHORIZATION"))
                if secret is not None:
                    token = authorize_bearer(services, secret)
                    request.environ["scriptbox.token"] = token
                    actor = token.actor
                else:
                    actor = _authenticate(access, services.settings.trusted_proxies, services.audit)
                # The actor (admin, desktop, token:<name>) is what runs record as requestedBy
                # and what the audit log names.
                request.environ["scriptbox.actor"] = actor
                request.environ["scriptbox.user"] = actor
                check_same_origin(request.environ)
        except ApiError as exc:
            raise api_error_response(exc) from None

    app.default_error_handler = json_error_page

    @app.get("/healthz", openapi=Doc(
        "Liveness and database reachability (no auth)", "service",
        {200: Reply("Up, database reachable.", Health), 503: Reply("The database is unreachable.", Health)}))
    def healthz() -> HTTPResponse:
        try:
            services.database.ping()
        except DatabaseUnavailable as exc:
            return json_response({"status": "unavailable", "db": "unreachable", **exc.body()}, 503)
        return json_response({"status": "ok", "db": "ok"})

    @app.get("/", openapi=REDIRECT_DOC)
    @app.get("/admin", openapi=REDIRECT_DOC)
    @app.get("/admin/", openapi=REDIRECT_DOC)
    def to_admin() -> None:
        bottle.redirect("/admin/scripts", 302)

    def ui_page() -> HTTPResponse:
        index = access.ui_dir / "index.html"
        body = index.read_text(encoding="utf-8") if index.is_file() else PLACEHOLDER_PAGE
        resp = HTTPResponse(body=body, status=200)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Content-Security-Policy", PAGE_CSP)
        resp.set_header("Cache-Control", "no-store")
        return resp

    app.get("/admin/scripts", openapi=UI_PAGE_DOC)(ui_page)
    app.get("/admin/scripts/", openapi=UI_PAGE_DOC)(ui_page)
    app.get("/admin/scripts/<path:path>", openapi=UI_SUBPAGE_DOC)(lambda path: ui_page())

    @app.get("/admin/assets/<path:path>", openapi=Doc(
        "A file of the admin page (JavaScript, CSS)", "ui", {200: Reply("The file.", media="*/*")}, errors=(404,)))
    def ui_asset(path: str) -> HTTPResponse:
        result = static_file(path, root=str(access.ui_dir / "assets"))
        if isinstance(result, HTTPError):
            raise result
        return result

    @app.get("/desktop-login", openapi=Doc(
        "The desktop window's sign-in page (loopback, desktop mode only)", "ui",
        {200: Reply("A page that exchanges the one-time token.", media="text/html")}, errors=(404,)))
    def desktop_login_page() -> HTTPResponse:
        if not access.desktop_sessions.enabled or not is_loopback(request.environ.get("REMOTE_ADDR")):
            raise HTTPError(404)
        resp = HTTPResponse(body=DESKTOP_LOGIN_PAGE, status=200)
        resp.content_type = "text/html; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        return resp

    @app.post("/desktop-login", openapi=Doc(
        "Exchange the desktop window's one-time token for a session cookie (loopback, desktop mode only)", "ui",
        {204: Reply("Signed in.", headers={"Set-Cookie": "the HttpOnly, SameSite=Strict session cookie"})},
        errors=(404,), body=DesktopLogin, error_notes={403: "bad_login_token, or refused as for every route."}))
    def desktop_login() -> HTTPResponse:
        if not access.desktop_sessions.enabled or not is_loopback(request.environ.get("REMOTE_ADDR")):
            raise HTTPError(404)
        check_same_origin(request.environ)
        body = read_json_body(request)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise ValidationFailed("a token is required", fields={"token": "is required"})
        session = access.desktop_sessions.exchange(token)
        if session is None:
            raise Forbidden("the login token is invalid or was already used", code="bad_login_token")
        resp = HTTPResponse(status=204)
        resp.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/")
        return resp

    definitions_api.register(app, services)
    versions_api.register(app, services)
    runs_api.register(app, services)
    run_events_api.register(app, services)
    schedules_api.register(app, services)
    tokens_api.register(app, services)
    audit_api.register(app, services)
    executors_api.register(app, services)
    notifications_api.register(app, services)
    _register_tool_routes(app, services)
    return app


def _register_tool_routes(app: Bottle, services: Services) -> None:
    """The OpenAPI document and the Prometheus metrics."""
    document: list[bytes] = []

    @app.get("/api/openapi.json", openapi=Doc(
        "This OpenAPI document", "service", {200: Reply("OpenAPI 3.1, generated from the routes.", media=JSON_TYPE)}))
    def openapi_document() -> HTTPResponse:
        if not document:  # built on first use, when every route is registered
            document.append(json.dumps(build_document(app, is_protected), ensure_ascii=False).encode("utf-8"))
        resp = HTTPResponse(body=document[0], status=200)
        resp.content_type = JSON_TYPE
        return resp

    @app.get("/metrics", openapi=METRICS_DOC)
    def metrics() -> HTTPResponse:
        return metrics_response(services.metrics)


METRICS_DOC = Doc("Prometheus metrics of this process", "service",
                  {200: Reply("Prometheus text exposition format (OpenMetrics if asked for).", media="text/plain")})


def metrics_response(metrics: Metrics) -> HTTPResponse:
    body, content_type = metrics.exposition(request.get_header("Accept"))
    resp = HTTPResponse(body=body, status=200)
    resp.set_header("Content-Type", content_type)
    resp.set_header("Cache-Control", "no-store")
    return resp


def create_metrics_app(metrics: Metrics, checker: CredentialChecker, host_guard: HostGuard) -> Bottle:
    """The only HTTP of a `worker` (SCRIPTBOX_METRICS_PORT): GET /metrics, admin auth, JSON errors."""
    app = Bottle(catchall=True)
    throttle = LoginThrottle()

    @app.hook("before_request")
    def guard_request() -> None:
        try:
            host_guard.check(request.environ)
            _basic_auth(checker, throttle)
        except ApiError as exc:
            raise api_error_response(exc) from None

    @app.hook("after_request")
    def security_headers() -> None:
        for name, value in SECURITY_HEADERS.items():
            response.set_header(name, value)

    app.default_error_handler = json_error_page

    @app.get("/metrics")
    def metrics_route() -> HTTPResponse:
        return metrics_response(metrics)

    return app

"""A small JSON/SSE client on urllib.

urllib rather than requests: the client then needs nothing outside the
standard library (`pip install --no-deps` is enough on a CI runner, and the
server's runtime stays as it is), and http.client's response reads a chunked
SSE body line by line, which is all the stream needs. urllib also honours the
usual proxy variables and SSL_CERT_FILE for a private CA.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

from .credentials import Connection
from .errors import ApiRefused, Unreachable

REQUEST_TIMEOUT_S = 30.0
USER_AGENT = "scriptbox-cli"


def path_segment(value: str) -> str:
    """`value` escaped for use as one path segment."""
    return quote(value, safe="")


class ApiClient:
    """Authenticated requests to one server. Every failure is a CliError subclass."""

    def __init__(self, connection: Connection, timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.connection = connection
        self.timeout = timeout
        self._opener = urllib.request.build_opener()

    def _request(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                 headers: dict[str, str], timeout: float) -> http.client.HTTPResponse:
        url = self.connection.base_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        all_headers = {"Authorization": self.connection.authorization, "User-Agent": USER_AGENT, **headers}
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            response: http.client.HTTPResponse = self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except urllib.error.URLError as exc:
            raise Unreachable(self.connection.base_url, str(exc.reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(self.connection.base_url, str(exc) or type(exc).__name__) from None
        return response

    def json(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        """The decoded JSON answer of a request; raises ApiRefused or Unreachable."""
        response = self._request(method, path, query, body, {"Accept": "application/json"}, self.timeout)
        with response:
            raw = _read_all(response, self.connection.base_url)
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeError, ValueError):
            raise Unreachable(self.connection.base_url, "the answer is not JSON; is this a Scriptbox server?") from None

    def raw(self, path: str) -> bytes:
        """The body of a GET as bytes (e.g. a stored log)."""
        response = self._request("GET", path, None, None, {}, self.timeout)
        with response:
            return _read_all(response, self.connection.base_url)

    def open_stream(self, path: str, last_event_id: int | None, timeout: float) -> http.client.HTTPResponse:
        """An open `text/event-stream` response; `timeout` bounds each read (keepalives come every 15 s)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        return self._request("GET", path, None, None, headers, timeout)


def _read_all(response: http.client.HTTPResponse, base_url: str) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise Unreachable(base_url, f"the connection broke during the answer: {exc or type(exc).__name__}") from None


def _refusal(exc: urllib.error.HTTPError) -> ApiRefused:
    """The server's JSON error body as an ApiRefused (or a generic one for a non-Scriptbox answer)."""
    try:
        raw = exc.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    try:
        error = json.loads(raw.decode("utf-8"))["error"]
        return ApiRefused(exc.code, str(error["code"]), str(error["message"]), error.get("fields"))
    except (UnicodeError, ValueError, KeyError, TypeError):
        return ApiRefused(exc.code, "http_error", str(exc.reason or "no Scriptbox error body"))

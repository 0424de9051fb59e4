"""Clients of the JSON API with the same methods: `Api` over HTTP (requests),
`AppClient` calling the Bottle app in-process (werkzeug's test client)."""

from __future__ import annotations

import itertools
import json as jsonlib
import os
from typing import Any

import requests
from werkzeug.test import Client

ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-password-123"
ADMIN = (ADMIN_USER, ADMIN_PASSWORD)
_names = itertools.count()


def unique_name(prefix: str = "t") -> str:
    """A codeIdentifier-safe name unique within the test run."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def _default_script(fields: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "Test script", "codeIdentifier": unique_name(), "type": "bash", "script": "echo hi"}
    body.update(fields)
    return body


class _Methods:
    """get/post/put/delete and create_script on top of `request`."""

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def create_script(self, **fields: Any) -> dict[str, Any]:
        """Create a definition (bash `echo hi` unless told otherwise); returns the document."""
        response = self.post("/api/admin/scripts", json=_default_script(fields))
        assert response.status_code == 201, response.text
        return dict(response.json())


class Api(_Methods):
    """A small HTTP client bound to one server, authenticated as the admin by default."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = ADMIN) -> None:
        self.base_url = base_url
        self.auth = auth
        self.session = requests.Session()
        if auth is not None:
            self.session.auth = auth

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kwargs)


class AppResponse:
    """The parts of a requests.Response the tests use."""

    def __init__(self, status_code: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = body
        self.text = body.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class AppClient(_Methods):
    """Calls a WSGI app in this process (no socket); `auth` is HTTP Basic."""

    def __init__(self, app: Any, auth: tuple[str, str] | None = ADMIN) -> None:
        self.client = Client(app)
        self.auth = auth

    def request(self, method: str, path: str, **kwargs: Any) -> AppResponse:
        kwargs.pop("timeout", None)
        headers = dict(kwargs.pop("headers", None) or {})
        data = kwargs.pop("data", None)
        json_body = kwargs.pop("json", None)
        params = kwargs.pop("params", None)
        if json_body is not None:
            data = jsonlib.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        assert not kwargs, f"unsupported arguments {sorted(kwargs)}"
        response = self.client.open(path, method=method, headers=headers, data=data, auth=self.auth,
                                    query_string=params)
        body = response.get_data()
        response.close()
        return AppResponse(response.status_code, dict(response.headers), body)

"""Helpers for tests that use API tokens."""

from __future__ import annotations

import time
from typing import Any

from .client import Api
from .server import ScriptboxServer


def token_api(server: ScriptboxServer, secret: str) -> Api:
    """A client that sends `secret` as a Bearer token and no Basic credentials."""
    client = server.api(auth=None)
    client.session.headers["Authorization"] = f"Bearer {secret}"
    return client


def make_token(api: Api, **fields: Any) -> dict[str, Any]:
    """Create a token (run scope, all scripts, unless told otherwise); returns the answer with its secret."""
    body = {"name": f"ci {time.monotonic_ns()}", "scope": "run", **fields}
    response = api.post("/api/admin/tokens", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())

"""Helpers shared by the route modules: JSON bodies and query parameters."""

from __future__ import annotations

import json
from typing import Any

from bottle import LocalRequest

from ..errors import BadJson, PayloadTooLarge

# The largest definition is a 1 MiB script plus 200 env values of 32 KiB.
MAX_BODY_BYTES = 8 * 1024 * 1024


def read_json_body(request: LocalRequest, *, required: bool = True) -> Any:
    """The request's JSON body.

    Returns None for an empty body when not `required`. Raises PayloadTooLarge
    over MAX_BODY_BYTES and BadJson for anything that is not valid UTF-8 JSON.
    """
    if request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if request.chunked:
        # The WSGI server has already removed the chunked framing; Bottle would
        # try again and fail, so read the (bounded) stream directly.
        raw = request.environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
    else:
        raw = request.body.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            raise BadJson("a JSON body is required")
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
        # Lone surrogates ("\\ud800") parse but cannot be stored as UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError) as exc:
        raise BadJson(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadJson("the body is nested too deeply") from None
    return value

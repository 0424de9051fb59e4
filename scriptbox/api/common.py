"""Helpers shared by the route modules: JSON bodies and query parameters."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from bottle import LocalRequest

from ..errors import BadJson, NotFound, PayloadTooLarge
from ..store import parse_object_id

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
        text = raw.decode("utf-8")
        value = json.loads(text)
        if _LONE_SURROGATE.search(text) is not None:
            value = _replace_lone_surrogates(value)
    except (UnicodeError, ValueError) as exc:
        raise BadJson(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadJson("the body is nested too deeply") from None
    return value


# A JSON escape of a UTF-16 surrogate ("\ud800"): valid JSON, but a lone one
# cannot be stored as UTF-8. Like invalid output bytes, it becomes U+FFFD.
_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _replace_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in value.items()}
    return value


def existing_script_ids(values: list[Any], get_definition: Callable[[str], Any], fields: dict[str, str],
                        field: str = "scriptIds") -> list[Any]:
    """The ObjectIds of `values` that name existing scripts, each once, in order.

    Each bad entry is named in `fields` (`scriptIds.<n>`): not an id, or no such
    script (`get_definition` raises NotFound).
    """
    found: list[Any] = []
    for index, value in enumerate(values):
        oid = parse_object_id(value) if isinstance(value, str) else None
        if oid is None:
            fields[f"{field}.{index}"] = "must be a script id (24 hex digits)"
            continue
        try:
            get_definition(str(oid))
        except NotFound:
            fields[f"{field}.{index}"] = "no script has this id"
            continue
        if oid not in found:
            found.append(oid)
    return found


# ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")


def query_limit(value: str | None, default: int, maximum: int, fields: dict[str, str]) -> int:
    """A page size from the query: `default` when absent or empty (like every
    other filter, an empty value means "not given"); on a bad value the reason
    is added to `fields` under "limit" and `default` returned."""
    if value is None or value == "":
        return default
    if not _WHOLE_NUMBER.fullmatch(value) or not 1 <= int(value) <= maximum:
        fields["limit"] = f"must be a whole number from 1 to {maximum}"
        return default
    return int(value)

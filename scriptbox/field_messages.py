"""Validation messages in words an operator reads next to a field.

pydantic's own wording ("Input should be greater than or equal to 100") names
neither the unit nor what to type. Every client (the admin page, the CLI, curl)
shows the server's `fields` as they are, so they are made readable here, once.
Imports nothing from Scriptbox, so the models may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The unit of a numeric field, by its last path segment.
UNITS = {"timeoutMs": "ms"}
# What a list field holds, for "at most 20 tags".
ITEMS = {"tags": "tags", "env": "variables", "params": "parameters", "choices": "choices"}

_TYPE_WORDS = {
    "extra_forbidden": "unknown field",
    "missing": "is required",
    "string_type": "must be text (a JSON string)",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}


def _duration(ms: float) -> str:
    """A rough human reading of a millisecond count: "5 min", "24 h"."""
    for size, unit in ((3_600_000, "h"), (60_000, "min"), (1000, "s")):
        if ms >= size:
            value = ms / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{ms:g} ms"


def _amount(field: str, value: Any) -> str:
    unit = UNITS.get(field)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    text = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    if unit == "ms":
        return f"{text} ms" if value < 1000 else f"{text} ms ({_duration(value)})"
    return f"{text} {unit}" if unit else text


def human_message(loc: str, kind: str, message: str, ctx: Mapping[str, Any] | None = None) -> str:
    """The message for one failure of field `loc`; `kind`, `message` and `ctx` are pydantic's."""
    ctx = ctx or {}
    field = loc.rsplit(".", 1)[-1]
    if field.isdigit():  # an item of a list: name the list's unit, not the index
        field = loc.rsplit(".", 2)[-2] if loc.count(".") >= 1 else field
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    if kind == "int_type" or kind == "int_from_float":
        return "must be a whole number" + (" of milliseconds" if UNITS.get(field) == "ms" else "")
    bounds = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
              "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}
    if kind in bounds and bounds[kind][1] in ctx:
        words, key = bounds[kind]
        return f"must be {words} {_amount(field, ctx[key])}"
    if kind == "string_too_short":
        size = ctx.get("min_length", 1)
        return "must not be empty" if size == 1 else f"must be at least {size} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length'):,} characters"
    if kind in ("too_long", "too_short"):
        words, key = ("at most", "max_length") if kind == "too_long" else ("at least", "min_length")
        noun = ITEMS.get(field, "entries")
        given = f" ({ctx['actual_length']} given)" if "actual_length" in ctx else ""
        return f"must have {words} {ctx.get(key)} {noun}{given}"
    return message

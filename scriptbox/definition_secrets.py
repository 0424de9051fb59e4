"""Secrets of a definition (SPEC §8.3): sealed before they are stored, never shown.

A definition validated by models.py still carries secret values in clear, or
null for "keep the stored one". `seal_definition` turns it into the stored
form, and `present_env` / `present_params` into the form answers show:

- env entry ``{key, value, secret: true}`` is stored as
  ``{key, value: null, secret: true, sealed: "<sealed value>"}``;
- a secret parameter's default is stored as ``default: null`` plus
  ``sealedDefault``; answers show ``default: null`` and ``hasDefault``.

It also checks what needs the stored secrets to decide: a null that has
nothing to keep, browser scripts (the admin page never receives stored
secrets) and the schedule's parameter values.
"""

from __future__ import annotations

from typing import Any

from .errors import ValidationFailed
from .params import ParamsInvalid, resolve
from .secretbox import SecretBox

INVALID = "the script definition is invalid"
BROWSER_NO_SECRETS = ("browser scripts run in the admin page, which never receives stored secrets "
                      "(a secret parameter without a default is asked for at each run)")


def _seal_env(entries: list[dict[str, Any]], stored: list[dict[str, Any]], box: SecretBox,
              fields: dict[str, str]) -> list[dict[str, Any]]:
    kept = {e["key"]: e["sealed"] for e in stored if e.get("secret") and e.get("sealed")}
    out = []
    for i, entry in enumerate(entries):
        if not entry.get("secret"):
            out.append({"key": entry["key"], "value": entry["value"]})
            continue
        if entry["value"] is not None:
            sealed = box.seal(entry["value"])
        elif entry["key"] in kept:
            sealed = kept[entry["key"]]
        else:
            fields[f"env.{i}.value"] = "a new secret needs a value (null only keeps a stored secret)"
            continue
        out.append({"key": entry["key"], "value": None, "secret": True, "sealed": sealed})
    return out


def _seal_params(params: list[dict[str, Any]], stored: list[dict[str, Any]], box: SecretBox) -> list[dict[str, Any]]:
    kept = {p["name"]: p["sealedDefault"] for p in stored if p.get("type") == "secret" and p.get("sealedDefault")}
    out = []
    for param in params:
        param = dict(param)
        if param["type"] == "secret":
            default = param.pop("default", None)
            param["default"] = None
            if default:
                param["sealedDefault"] = box.seal(default)
            elif default is None and param["name"] in kept:
                param["sealedDefault"] = kept[param["name"]]
            # "" removes the stored default: nothing to keep.
        out.append(param)
    return out


def _check_browser(doc: dict[str, Any], fields: dict[str, str]) -> None:
    if doc.get("runner") != "browser":
        return
    for i, entry in enumerate(doc["env"]):
        if entry.get("secret"):
            fields.setdefault(f"env.{i}.secret", BROWSER_NO_SECRETS)
    for i, param in enumerate(doc["params"]):
        if param.get("sealedDefault"):
            fields.setdefault(f"params.{i}.default", BROWSER_NO_SECRETS)


def _check_schedule(doc: dict[str, Any], fields: dict[str, str]) -> None:
    schedule = doc.get("schedule")
    if not schedule:
        return
    given = schedule.get("params") or {}
    try:
        resolved = resolve(doc["params"], given, where="schedule.params", allow_secrets=False)
    except ParamsInvalid as exc:
        fields.update(exc.fields)
        return
    # Stored typed ("5" from a form becomes 5); defaults are filled at each run, not frozen here.
    schedule["params"] = {name: resolved.values[name] for name in given}


def seal_definition(doc: dict[str, Any], existing: dict[str, Any] | None, box: SecretBox) -> dict[str, Any]:
    """The stored form of a validated definition (`existing`: the stored one, None on create).

    Raises ValidationFailed naming each field that cannot be stored.
    """
    fields: dict[str, str] = {}
    stored = existing or {}
    doc = dict(doc)
    doc["env"] = _seal_env(doc.get("env") or [], stored.get("env") or [], box, fields)
    doc["params"] = _seal_params(doc.get("params") or [], stored.get("params") or [], box)
    if not fields:
        _check_browser(doc, fields)
        _check_schedule(doc, fields)
    if fields:
        raise ValidationFailed(INVALID, fields=fields)
    return doc


def present_env(entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Env entries as answers show them: secret values as null."""
    out = []
    for entry in entries or []:
        if entry.get("secret"):
            out.append({"key": entry["key"], "value": None, "secret": True})
        else:
            out.append({"key": entry["key"], "value": entry.get("value")})
    return out


def present_params(params: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Declared params as answers show them: a secret default as null, with hasDefault."""
    out = []
    for param in params or []:
        shown = {k: v for k, v in param.items() if k != "sealedDefault"}
        if param.get("type") == "secret":
            shown["default"] = None
            shown["hasDefault"] = bool(param.get("sealedDefault"))
        out.append(shown)
    return out


def secret_values_of(doc: dict[str, Any], box: SecretBox) -> list[str]:
    """Every stored secret of a definition in clear (for masking); raises SecretUnavailable."""
    values = [box.open(e["sealed"], f"env {e['key']}") for e in doc.get("env") or [] if e.get("sealed")]
    values += [box.open(p["sealedDefault"], f"parameter {p['name']} (its default)")
               for p in doc.get("params") or [] if p.get("sealedDefault")]
    return values

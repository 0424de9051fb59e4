"""Run parameters (SPEC §8.2): declarations checked on save, values checked on run.

In-process (the Bottle app on the real database, no worker): runs are created
queued, so their stored `params` show exactly what a run would get.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from scriptbox.params import ParamError, check_value, resolve
from support import AppClient, unique_name


def _create(client: AppClient, **fields: Any) -> Any:
    body = {"name": "p", "codeIdentifier": unique_name(), "type": "bash", "script": "true", **fields}
    return client.post("/api/admin/scripts", json=body)


def _fields(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.text
    return dict(response.json()["error"]["fields"])


ALL_TYPES = [
    {"name": "host", "type": "string", "required": True, "pattern": "[a-z0-9.-]+", "label": "Host"},
    {"name": "notes", "type": "text", "default": "line 1\nline 2"},
    {"name": "count", "type": "int", "min": 1, "max": 10, "default": 3},
    {"name": "ratio", "type": "number", "min": 0, "max": 1},
    {"name": "dry_run", "type": "bool"},
    {"name": "mode", "type": "enum", "choices": ["fast", "safe"], "default": "safe"},
    {"name": "token", "type": "secret"},
]


@pytest.mark.parametrize(("param", "field", "says"), [
    ({"name": "1x", "type": "string"}, "params.0.name", "must match"),
    ({"name": "PATH", "type": "string"}, "params.0.name", "reserved"),
    ({"name": "LD_PRELOAD", "type": "string"}, "params.0.name", "reserved"),
    ({"name": "SCRIPTBOX_X", "type": "string"}, "params.0.name", "reserved"),
    ({"name": "x", "type": "date"}, "params.0.type", ""),
    ({"name": "x"}, "params.0.type", "is required"),
    ({"type": "int"}, "params.0.name", "is required"),
    ({"name": "x", "type": "enum"}, "params.0.choices", "at least one"),
    ({"name": "x", "type": "enum", "choices": ["a", "a"]}, "params.0.choices", "unique"),
    ({"name": "x", "type": "enum", "choices": ["a"], "default": "b"}, "params.0.default", "one of a"),
    ({"name": "x", "type": "string", "choices": ["a"]}, "params.0.choices", "only enum"),
    ({"name": "x", "type": "int", "pattern": "a"}, "params.0.pattern", "only string"),
    ({"name": "x", "type": "string", "pattern": "("}, "params.0.pattern", "not a valid regular expression"),
    ({"name": "x", "type": "string", "pattern": "[a-z]+", "default": "A"}, "params.0.default", "pattern"),
    ({"name": "x", "type": "string", "min": 1}, "params.0.min", "only int and number"),
    ({"name": "x", "type": "int", "min": 1.5}, "params.0.min", "whole number"),
    ({"name": "x", "type": "int", "min": 5, "max": 1}, "params.0.max", "less than min"),
    ({"name": "x", "type": "int", "default": "5"}, "params.0.default", "whole number"),
    ({"name": "x", "type": "int", "default": True}, "params.0.default", "whole number"),
    ({"name": "x", "type": "int", "default": 2**53}, "params.0.default", "between"),
    ({"name": "x", "type": "int", "max": 3, "default": 4}, "params.0.default", "at most 3"),
    ({"name": "x", "type": "number", "default": "1.5"}, "params.0.default", "must be a number"),
    ({"name": "x", "type": "bool", "default": "true"}, "params.0.default", "true or false"),
    ({"name": "x", "type": "string", "default": "a\nb"}, "params.0.default", "one line"),
    ({"name": "x", "type": "text", "default": "a\0b"}, "params.0.default", "NUL"),
    ({"name": "x", "type": "string", "required": "yes"}, "params.0.required", ""),
    ({"name": "x", "type": "string", "colour": "red"}, "params.0.colour", "unknown field"),
])
def test_each_declaration_rule_is_checked_on_save_naming_the_field(client: AppClient, param: dict[str, Any],
                                                                   field: str, says: str) -> None:
    fields = _fields(_create(client, params=[param]))
    assert field in fields, fields
    assert says in fields[field], fields


def test_names_are_unique_apart_from_env_and_at_most_fifty(client: AppClient) -> None:
    twice = _fields(_create(client, params=[{"name": "a", "type": "int"}, {"name": "a", "type": "bool"}]))
    assert "duplicate" in twice["params.1.name"]
    clash = _fields(_create(client, env=[{"key": "a", "value": "1"}], params=[{"name": "a", "type": "int"}]))
    assert "env key" in clash["params.0.name"]
    many = _fields(_create(client, params=[{"name": f"p{i}", "type": "int"} for i in range(51)]))
    assert "params" in many


def test_a_valid_declaration_of_every_type_is_stored_and_shown(client: AppClient) -> None:
    created = _create(client, params=ALL_TYPES)
    assert created.status_code == 201, created.text
    shown = {p["name"]: p for p in created.json()["params"]}
    assert [p["name"] for p in created.json()["params"]] == [p["name"] for p in ALL_TYPES]
    assert shown["count"]["default"] == 3 and shown["mode"]["choices"] == ["fast", "safe"]
    assert shown["token"]["default"] is None and shown["token"]["hasDefault"] is False
    # A document from GET goes back unchanged (hasDefault is read-only and ignored).
    again = client.put(f"/api/admin/scripts/{created.json()['id']}", json=created.json())
    assert again.status_code == 200, again.text
    assert again.json()["params"] == created.json()["params"]


@pytest.fixture(scope="module")
def declared(app: Any) -> dict[str, Any]:
    created = _create(app.client(), params=ALL_TYPES)
    assert created.status_code == 201, created.text
    return dict(created.json())


def _run(client: AppClient, script: dict[str, Any], params: Any, by_code: bool = False) -> Any:
    path = (f"/api/admin/scripts/by-code/{script['codeIdentifier']}/run" if by_code
            else f"/api/admin/scripts/{script['id']}/run")
    return client.post(path, json={"params": params})


@pytest.mark.parametrize(("given", "field", "says"), [
    ({}, "params.host", "is required"),
    ({"host": ""}, "params.host", "is required"),
    ({"host": "UPPER"}, "params.host", "pattern"),
    ({"host": 5}, "params.host", "must be a string"),
    ({"host": "a", "notes": 1}, "params.notes", "must be a string"),
    ({"host": "a", "count": 0}, "params.count", "at least 1"),
    ({"host": "a", "count": 11}, "params.count", "at most 10"),
    ({"host": "a", "count": 2.5}, "params.count", "whole number"),
    ({"host": "a", "count": "2.0"}, "params.count", "whole number"),
    ({"host": "a", "count": True}, "params.count", "whole number"),
    ({"host": "a", "ratio": "abc"}, "params.ratio", "must be a number"),
    ({"host": "a", "ratio": 1.5}, "params.ratio", "at most 1"),
    ({"host": "a", "ratio": "nan"}, "params.ratio", "must be a number"),
    ({"host": "a", "dry_run": "maybe"}, "params.dry_run", "true or false"),
    ({"host": "a", "dry_run": 1}, "params.dry_run", "true or false"),
    ({"host": "a", "mode": "slow"}, "params.mode", "one of fast, safe"),
    ({"host": "a", "token": 42}, "params.token", "must be a string"),
    ({"host": "a", "other": 1}, "params.other", "unknown parameter"),
])
def test_each_value_is_checked_on_run_naming_the_parameter(client: AppClient, declared: dict[str, Any],
                                                           given: dict[str, Any], field: str, says: str) -> None:
    for by_code in (False, True):
        fields = _fields(_run(client, declared, given, by_code))
        assert field in fields and says in fields[field], fields


def test_params_must_be_an_object_and_unknown_names_are_refused_even_without_declarations(
        client: AppClient, declared: dict[str, Any]) -> None:
    assert "params" in _fields(_run(client, declared, ["host"]))
    plain = _create(client).json()
    assert _fields(_run(client, plain, {"a": "1"})) == {"params.a": "unknown parameter"}
    started = client.post(f"/api/admin/scripts/{plain['id']}/run", json={"params": {}})
    assert started.status_code == 202 and started.json()["params"] == {}


def test_defaults_fill_the_rest_and_strings_are_coerced_to_the_declared_type(
        client: AppClient, declared: dict[str, Any]) -> None:
    started = _run(client, declared, {"host": "db-1.example", "count": "7", "ratio": "0.25", "dry_run": "true",
                                      "token": "s3cr3t-value", "notes": None})
    assert started.status_code == 202, started.text
    expected = {"host": "db-1.example", "notes": "line 1\nline 2", "count": 7, "ratio": 0.25, "dry_run": True,
                "mode": "safe", "token": "***"}
    assert started.json()["params"] == expected
    run = client.get(f"/api/admin/scripts/runs/{started.json()['runId']}").json()
    assert run["params"] == expected
    typed = _run(client, declared, {"host": "a", "count": 10, "ratio": 1, "dry_run": False, "mode": "fast"}).json()
    assert typed["params"] == {"host": "a", "notes": "line 1\nline 2", "count": 10, "ratio": 1, "dry_run": False,
                               "mode": "fast", "token": None}
    # Re-running: the run's params are accepted again as they are (*** is not a secret to keep).
    rerun = {k: v for k, v in typed["params"].items() if v is not None}
    assert _run(client, declared, rerun).status_code == 202


def test_schedule_params_are_checked_against_the_declaration(client: AppClient) -> None:
    params = [{"name": "count", "type": "int", "required": True}, {"name": "key", "type": "secret"}]
    bad = [({"count": "x"}, "schedule.params.count"), ({}, "schedule.params.count"),
           ({"count": 1, "nope": 1}, "schedule.params.nope"), ({"count": 1, "key": "abcd"}, "schedule.params.key")]
    for given, field in bad:
        fields = _fields(_create(client, params=params, schedule={"cron": "@daily", "params": given}))
        assert field in fields, (given, fields)
    ok = _create(client, params=params, schedule={"cron": "@daily", "params": {"count": "4"}})
    assert ok.status_code == 201, ok.text
    assert ok.json()["schedule"]["params"] == {"count": 4}


def test_the_pure_rules_coerce_only_when_asked() -> None:
    decl = {"name": "n", "type": "int", "min": None, "max": None}
    assert check_value(decl, "-5", coerce=True) == -5
    with pytest.raises(ParamError):
        check_value(decl, "-5", coerce=False)
    number = {"name": "n", "type": "number"}
    assert check_value(number, "1e3", coerce=True) == 1000.0 and check_value(number, "4", coerce=True) == 4
    flag = {"name": "b", "type": "bool"}
    assert [check_value(flag, v, coerce=True) for v in ("TRUE", "false", "1", "0")] == [True, False, True, False]
    resolved = resolve([{"name": "b", "type": "bool"}, {"name": "s", "type": "string"}], None)
    assert resolved.values == {"b": False, "s": None}


def test_a_backtracking_pattern_cannot_freeze_the_server(client: AppClient) -> None:
    """An admin's pattern with catastrophic backtracking meets a value crafted
    against it: the run is refused within its time limit, and the server stays
    usable (Python's `re` would spin here for far longer than a human waits)."""
    params = [{"name": "word", "type": "string", "required": True, "pattern": "(a|aa)+"}]
    definition = _create(client, params=params).json()
    assert _run(client, definition, {"word": "aaaa"}).status_code == 202
    started = time.perf_counter()
    fields = _fields(_run(client, definition, {"word": "a" * 60 + "!"}))
    assert time.perf_counter() - started < 5.0
    assert "in time" in fields["params.word"], fields
    assert client.get(f"/api/admin/scripts/{definition['id']}").status_code == 200

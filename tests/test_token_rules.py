"""The pure rules behind tokens, run-and-wait and the audit log, without a server."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from scriptbox.audit import AUTH_FAILED_WINDOW_S, AuditLog, changed_fields
from scriptbox.run_wait import parse_wait
from scriptbox.store import Database
from scriptbox.store.audit import AuditStore
from scriptbox.tokens import RunTarget, Token, bearer_token, new_secret, parse_expiry, run_target, scope_allows

A = "a" * 24
B = "b" * 24


def token(scope: str, *script_ids: str) -> Token:
    return Token("c" * 24, "ci", scope, frozenset(script_ids), None)


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("POST", f"/api/admin/scripts/{A}/run", RunTarget("script", A)),
    ("POST", "/api/admin/scripts/by-code/nightly/run", RunTarget("code", "nightly")),
    ("GET", f"/api/admin/scripts/runs/{A}", RunTarget("run", A)),
    ("HEAD", f"/api/admin/scripts/runs/{A}/stream", RunTarget("run", A)),
    ("GET", f"/api/admin/scripts/runs/{A}/log", RunTarget("run", A)),
    ("GET", "/api/admin/scripts/runs", RunTarget("runs", "")),
    ("GET", f"/api/admin/scripts/{A}/run", None),
    ("POST", f"/api/admin/scripts/runs/{A}/cancel", None),
    ("POST", f"/api/admin/scripts/runs/{A}/browser-result", None),
    ("GET", "/api/admin/scripts", None),
    ("GET", f"/api/admin/scripts/{A}", None),
    ("GET", "/api/admin/tokens", None),
    ("GET", "/api/admin/audit", None),
    ("POST", f"/api/admin/scripts/{A}/run/extra", None),
])
def test_run_target_names_only_what_a_run_token_may_touch(method: str, path: str,
                                                         expected: RunTarget | None) -> None:
    assert run_target(method, path) == expected


def test_scope_allows_the_listed_scripts_or_all_when_none_are_listed() -> None:
    assert scope_allows(token("admin"), None)
    assert scope_allows(token("run"), B) and scope_allows(token("run"), None)
    assert scope_allows(token("run", A), A) and scope_allows(token("run", A), A.upper())
    assert not scope_allows(token("run", A), B)
    assert not scope_allows(token("run", A), None)
    assert not scope_allows(token("run", A), "")


def test_secrets_and_bearer_headers() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100 and all(s.startswith("sbx_") and len(s) == 47 for s in secrets)
    assert bearer_token("Bearer sbx_x") == "sbx_x" and bearer_token("bearer  sbx_y ") == "sbx_y"
    assert bearer_token("Basic abc") is None and bearer_token(None) is None and bearer_token("Bearer") == ""


def test_parse_expiry() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0)
    assert parse_expiry(None, now) == (None, None)
    assert parse_expiry("2030-01-01T13:00:00.1234Z", now) == (datetime(2030, 1, 1, 13, 0, 0, 123000), None)
    assert parse_expiry("2030-01-01T14:00:00+02:00", now)[1] == "must be in the future"
    assert parse_expiry("2030-01-01T13:00:00", now)[1] is not None  # no timezone
    assert parse_expiry(17, now)[1] is not None and parse_expiry("soon", now)[1] is not None


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("", None), ("0", 0), ("300", 300), ("07", 7)])
def test_parse_wait_accepts_whole_seconds_up_to_300(raw: str | None, expected: int | None) -> None:
    assert parse_wait(raw) == (expected, None)


@pytest.mark.parametrize("raw", ["301", "-1", "1.5", "\u00b2", "1e2", " 5", "99999"])
def test_parse_wait_refuses_anything_else(raw: str) -> None:
    assert parse_wait(raw)[1] is not None


def test_changed_fields_names_fields_never_values() -> None:
    before = {"name": "a", "env": [{"key": "K", "value": "old"}], "script": "x"}
    after = {"name": "a", "env": [{"key": "K", "value": "new"}], "script": "y", "description": "d"}
    assert changed_fields(before, after) == ["description", "env", "script"]


def test_failed_sign_ins_are_written_once_per_window_with_their_count(mongodb_uri: str) -> None:
    database = Database(mongodb_uri, f"rules_{uuid.uuid4().hex[:10]}")
    now = [1000.0]
    log = AuditLog(AuditStore(database), clock=lambda: now[0])
    try:
        assert log.auth_failed("10.0.0.1", "bad password")
        assert not log.auth_failed("10.0.0.1", "bad password")
        assert not log.auth_failed("10.0.0.1", "bad password", count=3)
        assert log.auth_failed("10.0.0.2", "bad token")  # another address has its own window
        now[0] += AUTH_FAILED_WINDOW_S
        assert log.auth_failed("10.0.0.1", "bad password")
        docs, _ = log.store.page(action="auth.failed", target_id=None, script_id=None, before=None, limit=10)
        assert [(d["remoteAddr"], d["details"]["failures"]) for d in docs] == [
            ("10.0.0.1", 5), ("10.0.0.2", 1), ("10.0.0.1", 1)]
        assert all(d["actor"] == "anonymous" for d in docs)
    finally:
        database.close()

"""Script definition routes and their validation rules, on the app in-process."""

from __future__ import annotations

from typing import Any

import pytest

from support import AppClient, unique_name

MIB = 1024 * 1024
Api = AppClient  # the same methods as the HTTP client


@pytest.fixture()
def api(client: AppClient) -> AppClient:
    """These routes need no server process: the app in-process on the real database."""
    return client


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Disk usage", "codeIdentifier": unique_name("du"), "type": "bash",
                            "script": "df -h"}
    body.update(changes)
    return body


def test_it_creates_a_definition_with_defaults_and_server_timestamps(api: Api) -> None:
    body = valid_body(createdAt="1999-01-01T00:00:00Z", id="not-mine")
    response = api.post("/api/admin/scripts", json=body)
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    doc = response.json()
    assert len(doc["id"]) == 24 and doc["id"] != "not-mine"
    assert response.headers["Location"].endswith(doc["id"])
    assert doc["runner"] == "host"
    assert doc["description"] == "" and doc["env"] == [] and doc["enabled"] is True
    assert doc["timeoutMs"] == 300_000 and doc["defaultWorkingDirectory"] == ""
    assert doc["createdAt"].endswith("Z") and not doc["createdAt"].startswith("1999")
    assert doc["createdAt"] == doc["updatedAt"]
    assert api.get(f"/api/admin/scripts/{doc['id']}").json() == doc


@pytest.mark.parametrize(("script_type", "expected_runner"), [("bash", "host"), ("node", "host"),
                                                             ("browser", "browser")])
def test_it_defaults_the_runner_from_the_type(api: Api, script_type: str, expected_runner: str) -> None:
    doc = api.post("/api/admin/scripts", json=valid_body(type=script_type)).json()
    assert doc["runner"] == expected_runner


def test_it_accepts_every_allowed_type_runner_pair_and_the_limits(api: Api) -> None:
    for script_type, runner in [("bash", "host"), ("node", "host"), ("node", "vm2"), ("browser", "browser")]:
        response = api.post("/api/admin/scripts", json=valid_body(type=script_type, runner=runner))
        assert response.status_code == 201, response.text
    edge = valid_body(
        name="n" * 200, codeIdentifier=unique_name("x").ljust(64, "z"),
        description="d" * 10_000, script="é" * (MIB // 2), defaultWorkingDirectory="/tmp",
        env=[{"key": f"K_{i}", "value": "v"} for i in range(199)] + [{"key": "BIG", "value": "x" * 32 * 1024}],
        timeoutMs=100, enabled=False,
    )
    response = api.post("/api/admin/scripts", json=edge)
    assert response.status_code == 201, response.text[:500]
    assert api.post("/api/admin/scripts", json=valid_body(timeoutMs=86_400_000)).status_code == 201


BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("missing name", {"name": None}, "name"),
    ("empty name", {"name": ""}, "name"),
    ("blank name", {"name": "   "}, "name"),
    ("long name", {"name": "n" * 201}, "name"),
    ("name not a string", {"name": 5}, "name"),
    ("missing codeIdentifier", {"codeIdentifier": None}, "codeIdentifier"),
    ("uppercase codeIdentifier", {"codeIdentifier": "Backup"}, "codeIdentifier"),
    ("codeIdentifier starting with -", {"codeIdentifier": "-x"}, "codeIdentifier"),
    ("codeIdentifier with space", {"codeIdentifier": "a b"}, "codeIdentifier"),
    ("codeIdentifier of 65 chars", {"codeIdentifier": "a" * 65}, "codeIdentifier"),
    ("long description", {"description": "d" * 10_001}, "description"),
    ("unknown type", {"type": "python"}, "type"),
    ("missing type", {"type": None}, "type"),
    ("unknown runner", {"runner": "docker"}, "runner"),
    ("bash on vm2", {"type": "bash", "runner": "vm2"}, "runner"),
    ("bash in the browser", {"type": "bash", "runner": "browser"}, "runner"),
    ("node in the browser", {"type": "node", "runner": "browser"}, "runner"),
    ("browser on the host", {"type": "browser", "runner": "host"}, "runner"),
    ("script over 1 MiB of UTF-8", {"script": "é" * (MIB // 2 + 1)}, "script"),
    ("script not a string", {"script": ["echo"]}, "script"),
    ("relative working directory", {"defaultWorkingDirectory": "tmp/x"}, "defaultWorkingDirectory"),
    ("env not a list", {"env": {"A": "1"}}, "env"),
    ("env key with dash", {"env": [{"key": "A-B", "value": "1"}]}, "env.0.key"),
    ("env key starting with digit", {"env": [{"key": "1A", "value": "1"}]}, "env.0.key"),
    ("env value not a string", {"env": [{"key": "A", "value": 1}]}, "env.0.value"),
    ("env value over 32 KiB", {"env": [{"key": "A", "value": "x" * (32 * 1024 + 1)}]}, "env.0.value"),
    ("env entry with extra field", {"env": [{"key": "A", "value": "1", "hidden": True}]}, "env.0.hidden"),
    ("duplicate env keys", {"env": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}, "env"),
    ("201 env entries", {"env": [{"key": f"K{i}", "value": ""} for i in range(201)]}, "env"),
    ("timeout below 100", {"timeoutMs": 99}, "timeoutMs"),
    ("timeout above a day", {"timeoutMs": 86_400_001}, "timeoutMs"),
    ("timeout as a string", {"timeoutMs": "5000"}, "timeoutMs"),
    ("timeout as a float", {"timeoutMs": 5000.5}, "timeoutMs"),
    ("timeout as a boolean", {"timeoutMs": True}, "timeoutMs"),
    ("enabled as a string", {"enabled": "yes"}, "enabled"),
    ("unknown field", {"owner": "bob"}, "owner"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_it_refuses_an_invalid_definition_naming_the_field(api: Api, case: str, changes: dict[str, Any],
                                                           field: str) -> None:
    body = valid_body(**changes)
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post("/api/admin/scripts", json=body)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert field in error["fields"], error
    assert api.get("/api/admin/scripts", params={"q": body.get("codeIdentifier", "?")}).json()["scripts"] == []


def test_it_refuses_a_duplicate_code_identifier_with_409(api: Api) -> None:
    first = api.create_script()
    response = api.post("/api/admin/scripts", json=valid_body(codeIdentifier=first["codeIdentifier"]))
    assert response.status_code == 409
    assert "codeIdentifier" in response.json()["error"]["fields"]
    other = api.create_script()
    response = api.put(f"/api/admin/scripts/{other['id']}", json={"codeIdentifier": first["codeIdentifier"]})
    assert response.status_code == 409
    assert api.get(f"/api/admin/scripts/{other['id']}").json() == other


def test_it_updates_partially_and_keeps_the_rest(api: Api) -> None:
    doc = api.create_script(description="before", env=[{"key": "A", "value": "1"}])
    response = api.put(f"/api/admin/scripts/{doc['id']}", json={"description": "after"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["description"] == "after"
    assert updated["env"] == [{"key": "A", "value": "1"}] and updated["script"] == doc["script"]
    assert updated["createdAt"] == doc["createdAt"] and updated["updatedAt"] >= doc["updatedAt"]
    # A document read with GET can be sent back whole.
    assert api.put(f"/api/admin/scripts/{doc['id']}", json=updated).status_code == 200


def test_two_admins_saving_the_same_loaded_version_do_not_overwrite_each_other(api: Api) -> None:
    loaded = api.create_script(description="v1")
    first = api.put(f"/api/admin/scripts/{loaded['id']}", json={**loaded, "description": "alice"})
    assert first.status_code == 200
    second = api.put(f"/api/admin/scripts/{loaded['id']}", json={**loaded, "description": "bob"})
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "edit_conflict"
    assert api.get(f"/api/admin/scripts/{loaded['id']}").json()["description"] == "alice"
    for stale in ["garbage", 5, None, loaded["updatedAt"].removesuffix("Z")]:
        malformed = api.put(f"/api/admin/scripts/{loaded['id']}", json={"description": "x", "updatedAt": stale})
        assert malformed.status_code == 400, (stale, malformed.text)
        assert "updatedAt" in malformed.json()["error"]["fields"]
    # Automation that sends no updatedAt just updates.
    assert api.put(f"/api/admin/scripts/{loaded['id']}", json={"description": "bot"}).status_code == 200


def test_it_resets_the_runner_when_the_type_changes_without_one(api: Api) -> None:
    doc = api.create_script(type="node", runner="vm2")
    assert api.put(f"/api/admin/scripts/{doc['id']}", json={"type": "node"}).json()["runner"] == "vm2"
    assert api.put(f"/api/admin/scripts/{doc['id']}", json={"type": "bash"}).json()["runner"] == "host"
    assert api.put(f"/api/admin/scripts/{doc['id']}", json={"type": "browser"}).json()["runner"] == "browser"


def test_an_invalid_update_changes_nothing(api: Api) -> None:
    doc = api.create_script()
    response = api.put(f"/api/admin/scripts/{doc['id']}", json={"name": "", "timeoutMs": 5})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "timeoutMs"}
    assert api.put(f"/api/admin/scripts/{doc['id']}", json={"runner": "vm2"}).status_code == 400
    assert api.get(f"/api/admin/scripts/{doc['id']}").json() == doc


def test_it_lists_and_filters_by_name_or_code_identifier(api: Api) -> None:
    marker = unique_name("flt")
    a = api.create_script(name=f"Rotate logs {marker}")
    b = api.create_script(codeIdentifier=f"{marker}-b", name="Other")
    api.create_script(name="Unrelated")
    found = api.get("/api/admin/scripts", params={"q": marker.upper()}).json()["scripts"]
    assert {d["id"] for d in found} == {a["id"], b["id"]}
    assert all(d["lastRun"] is None for d in found)
    assert api.get("/api/admin/scripts", params={"q": ".*"}).json()["scripts"] == []


def test_it_deletes_a_definition(api: Api) -> None:
    doc = api.create_script()
    response = api.delete(f"/api/admin/scripts/{doc['id']}")
    assert response.status_code == 204 and response.content == b""
    assert api.get(f"/api/admin/scripts/{doc['id']}").status_code == 404
    assert api.delete(f"/api/admin/scripts/{doc['id']}").status_code == 404


@pytest.mark.parametrize("path", ["/api/admin/scripts/ffffffffffffffffffffffff", "/api/admin/scripts/nope",
                                  "/api/admin/scripts/ZZZZZZZZZZZZZZZZZZZZZZZZ"])
def test_unknown_or_malformed_ids_are_404(api: Api, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = api.request(method, path, json={"name": "x"} if method == "PUT" else None)
        assert response.status_code == 404, (method, response.text)
        assert response.json()["error"]["code"] == "not_found"

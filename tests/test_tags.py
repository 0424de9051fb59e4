"""Tags on script definitions (issue 21 item 12) and the readable validation messages
(item 9), on the app in-process against the real database."""

from __future__ import annotations

from typing import Any

from support import AppClient, unique_name


def body(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "Tagged", "codeIdentifier": unique_name("tag"), "type": "bash", "script": "true"}
    doc.update(changes)
    return doc


def test_tags_are_trimmed_deduplicated_ignoring_case_and_kept_in_order(client: AppClient) -> None:
    created = client.post("/api/admin/scripts", json=body(tags=[" backup ", "nightly", "Backup", "db", "nightly"]))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["tags"] == ["backup", "nightly", "db"]
    assert client.get(f"/api/admin/scripts/{doc['id']}").json()["tags"] == ["backup", "nightly", "db"]

    updated = client.put(f"/api/admin/scripts/{doc['id']}", json={"tags": ["ops"]})
    assert updated.status_code == 200 and updated.json()["tags"] == ["ops"]
    entry = client.get(f"/api/admin/audit?targetId={doc['id']}&action=script.update").json()["entries"][0]
    assert entry["details"]["fields"] == ["tags"]
    # A partial update that does not mention tags keeps them; a definition without any has [].
    assert client.put(f"/api/admin/scripts/{doc['id']}", json={"name": "Renamed"}).json()["tags"] == ["ops"]
    assert client.post("/api/admin/scripts", json=body()).json()["tags"] == []


def test_bad_tags_are_refused_naming_each_bad_item(client: AppClient) -> None:
    cases: list[tuple[Any, dict[str, str]]] = [
        (["ok", "   ", "x" * 41],
         {"tags.1": "must not be blank", "tags.2": "must be at most 40 characters (41 given)"}),
        (["fine", 7], {"tags.1": "must be text (a JSON string)"}),
        ([" " + "w" * 39 + " "], {"tags.0": "must be at most 40 characters (41 given)"}),  # as sent
        ([f"t{i}" for i in range(21)], {"tags": "must have at most 20 tags (21 given)"}),
        ("ops", {"tags": "must be a list"}),
    ]
    for tags, expected in cases:
        answer = client.post("/api/admin/scripts", json=body(tags=tags))
        assert answer.status_code == 400, (tags, answer.text)
        assert answer.json()["error"]["fields"] == expected, tags
    edge = [("y" * 39 + f"{i}") if i < 10 else f" {'z' * 36}{i} " for i in range(20)]  # 40 as sent
    accepted = client.post("/api/admin/scripts", json=body(tags=edge))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["tags"] == [tag.strip() for tag in edge]


def test_the_list_filters_by_tag_in_any_case(client: AppClient) -> None:
    label = unique_name("grp")
    first = client.post("/api/admin/scripts", json=body(name="B one", tags=[label, "x"])).json()
    second = client.post("/api/admin/scripts", json=body(name="A two", tags=[label.upper()])).json()
    client.post("/api/admin/scripts", json=body(name="C other", tags=[label + "-not"]))
    listed = client.get("/api/admin/scripts", params={"tag": f" {label.title()} "}).json()["scripts"]
    assert [s["id"] for s in listed] == [second["id"], first["id"]]  # by name
    assert client.get("/api/admin/scripts", params={"tag": label, "q": "one"}).json()["scripts"][0]["id"] == first["id"]
    assert client.get("/api/admin/scripts", params={"tag": "a.*"}).json()["scripts"] == []  # not a pattern


def test_validation_messages_name_units_and_limits(client: AppClient) -> None:
    low = client.post("/api/admin/scripts", json=body(timeoutMs=99)).json()["error"]["fields"]
    assert low == {"timeoutMs": "must be at least 100 ms"}
    high = client.post("/api/admin/scripts", json=body(timeoutMs=86_400_001)).json()["error"]["fields"]
    assert high == {"timeoutMs": "must be at most 86,400,000 ms (24 h)"}
    assert client.post("/api/admin/scripts", json=body(timeoutMs=1.5)).json()["error"]["fields"] == {
        "timeoutMs": "must be a whole number of milliseconds"}
    several = client.post("/api/admin/scripts", json=body(name="", description="d" * 10_001, enabled="yes"))
    assert several.json()["error"]["fields"] == {
        "name": "must not be empty", "description": "must be at most 10,000 characters",
        "enabled": "must be true or false"}


def test_a_taken_identifier_says_what_conflicts(client: AppClient) -> None:
    ident = unique_name("dup")
    assert client.post("/api/admin/scripts", json=body(codeIdentifier=ident)).status_code == 201
    answer = client.post("/api/admin/scripts", json=body(codeIdentifier=ident))
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "duplicate_code_identifier"
    assert error["message"] == f"the code identifier '{ident}' is already used by another script; choose another"
    assert error["fields"] == {"codeIdentifier": f"'{ident}' is already used by another script"}

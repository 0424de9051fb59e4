"""GET /api/openapi.json: valid OpenAPI 3.1, every route of the app, one error shape."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from scriptbox.api.openapi import openapi_path
from scriptbox.models import ScriptDefinitionInput
from support import Api, ScriptboxServer
from support.inprocess import InProcessApp


@pytest.fixture(scope="module")
def document(server: ScriptboxServer) -> dict[str, Any]:
    response = server.api().get("/api/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    return dict(response.json())


@pytest.fixture(scope="module")
def app_routes(app: InProcessApp) -> list[tuple[str, str]]:
    """(METHOD, rule) of every route of the app built in-process from real parts."""
    return [(route.method, route.rule) for route in app.app.routes]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


def test_every_route_of_the_app_is_in_the_document_and_documented(
        document: dict[str, Any], app_routes: list[tuple[str, str]]) -> None:
    assert len(app_routes) >= 20
    operations = {(method.upper(), path): op for path, item in document["paths"].items()
                  for method, op in item.items()}
    for method, rule in app_routes:
        path, _ = openapi_path(rule)
        op = operations.get((method, path))
        assert op is not None, f"{method} {rule} is missing from the document"
        assert not op.get("x-undocumented"), f"{method} {rule} has no openapi=Doc(...) where it is registered"
        assert op["summary"] and op["responses"], (method, rule)
    assert len(operations) == len(app_routes)


def test_the_document_needs_the_admin(server: ScriptboxServer) -> None:
    anonymous = Api(server.base_url, auth=None).get("/api/openapi.json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_protected_routes_declare_basic_auth_and_401_and_healthz_does_not(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, op in item.items():
            protected = path.startswith(("/api/admin/", "/admin")) or path in ("/api/openapi.json", "/metrics")
            assert (op["security"] == [{"basicAuth": []}, {"bearerAuth": []}]) == protected, (method, path)
            assert ("401" in op["responses"]) == protected, (method, path)
    schemes = document["components"]["securitySchemes"]
    assert schemes["basicAuth"]["scheme"] == "basic" and schemes["bearerAuth"]["scheme"] == "bearer"


def test_every_error_answer_is_the_one_error_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, reply in op["responses"].items():
                if int(status) < 400 or path == "/healthz":
                    continue
                schema = reply["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_request_bodies_are_the_models_the_server_validates_with(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    model_schema = ScriptDefinitionInput.model_json_schema()
    create = schemas["ScriptDefinitionCreate"]
    for name, prop in model_schema["properties"].items():
        if "$ref" not in str(prop):
            assert create["properties"][name] == prop, name
    assert create["required"] == model_schema["required"]
    assert "required" not in schemas["ScriptDefinitionUpdate"]
    post = document["paths"]["/api/admin/scripts"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScriptDefinitionCreate")
    assert schemas["ScriptDefinitionInput"]["properties"]["codeIdentifier"]["pattern"] == "^[a-z0-9][a-z0-9_-]{0,63}$"


def test_path_parameters_come_from_the_router_rules() -> None:
    path, params = openapi_path("/api/admin/scripts/runs/<run_id:re:[0-9a-fA-F]{24}>/log")
    assert path == "/api/admin/scripts/runs/{run_id}/log"
    assert params == [{"name": "run_id", "in": "path", "required": True,
                       "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}}]
    path, params = openapi_path("/admin/assets/<path:path>")
    assert path == "/admin/assets/{path}" and params[0]["schema"]["pattern"] == "^.+$"
    assert openapi_path("/x/<name>")[1][0]["schema"]["pattern"] == "^[^/]+$"

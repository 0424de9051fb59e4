"""One error shape everywhere: malformed requests of every kind, on every route.

No request, however malformed, gets a 500, an HTML page or a traceback, and
nothing stored is changed by a refused request.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import requests

from support import Api, ScriptboxServer, wait_status

ALLOWED_ERROR_STATUSES = {400, 401, 403, 404, 405, 409, 413}
NO_SUCH_ID = "ffffffffffffffffffffffff"


def assert_error_shape(response: requests.Response, statuses: set[int] = ALLOWED_ERROR_STATUSES) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json; charset=utf-8", response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    if "fields" in error:
        assert isinstance(error["fields"], dict) and error["fields"]
    return dict(error)


@pytest.fixture(scope="module")
def ids(server: ScriptboxServer) -> dict[str, str]:
    api = server.api()
    script = api.create_script(script="echo stored")
    run = api.post(f"/api/admin/scripts/{script['id']}/run").json()["runId"]
    return {"script": script["id"], "run": run}


def routes(ids: dict[str, str]) -> list[tuple[str, str]]:
    script, run = ids["script"], ids["run"]
    return [
        ("POST", "/api/admin/scripts"),
        ("PUT", f"/api/admin/scripts/{script}"),
        ("POST", f"/api/admin/scripts/{script}/run"),
        ("POST", f"/api/admin/scripts/runs/{run}/browser-result"),
    ]


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"{name: 'x'"),
    ("truncated", b'{"name": "x"'),
    ("a string", b'"hello"'),
    ("an array", b"[1, 2]"),
    ("a number", b"42"),
    ("null", b"null"),
    ("invalid utf-8", b'{"name": "\xff\xfe"}'),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000),
    ("huge number", b'{"timeoutMs": 1' + b"0" * 5000 + b"}"),
    ("NaN", b'{"timeoutMs": NaN}'),
    ("wrong types everywhere", b'{"name": {}, "codeIdentifier": [], "type": 1, "env": "A=1", "enabled": null}'),
]


@pytest.mark.parametrize(("case", "body"), BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_malformed_bodies_get_a_json_4xx_on_every_json_route(api: Api, ids: dict[str, str], case: str,
                                                             body: bytes) -> None:
    before = api.get(f"/api/admin/scripts/{ids['script']}").json()
    for method, path in routes(ids):
        if case == "null" and path.endswith("/run"):
            continue  # the run body is optional, and null says "no options"
        response = api.request(method, path, data=body, headers={"Content-Type": "application/json"})
        assert_error_shape(response, {400, 409})
    assert api.get(f"/api/admin/scripts/{ids['script']}").json() == before


def test_a_lone_surrogate_is_stored_as_a_replacement_character(api: Api) -> None:
    body = b'{"name": "a\\ud800b \\ud83d\\ude00", "codeIdentifier": "lone-surrogate", "type": "bash"}'
    response = api.post("/api/admin/scripts", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "a\ufffdb \U0001f600"


def test_a_body_over_the_limit_is_413(api: Api, ids: dict[str, str]) -> None:
    big = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    for method, path in routes(ids):
        response = api.request(method, path, data=big, headers={"Content-Type": "application/json"})
        assert_error_shape(response, {413})


def test_an_announced_body_over_the_limit_is_refused_before_it_is_sent(server: ScriptboxServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/admin/scripts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Basic YWRtaW46dGVzdC1wYXNzd29yZC0xMjM=\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n")
        received = b""
        while b"payload_too_large" not in received and (chunk := sock.recv(65536)):
            received += chunk
        reply = received.decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]
    assert '"payload_too_large"' in reply


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/admin/nothing"),
    ("GET", "/api/admin/scripts/" + NO_SUCH_ID),
    ("GET", "/api/admin/scripts/not-an-id"),
    ("POST", f"/api/admin/scripts/{NO_SUCH_ID}/run"),
    ("GET", f"/api/admin/scripts/runs/{NO_SUCH_ID}"),
    ("GET", f"/api/admin/scripts/runs/{NO_SUCH_ID}/log"),
    ("GET", f"/api/admin/scripts/runs/{NO_SUCH_ID}/stream"),
    ("POST", f"/api/admin/scripts/runs/{NO_SUCH_ID}/cancel"),
    ("GET", "/api/admin/scripts/runs/xyz"),
    ("GET", "/nothing-at-all"),
    ("GET", "/admin/assets/nope.js"),
    ("GET", "/admin/assets/../../../etc/passwd"),
])
def test_unknown_things_are_json_404(api: Api, method: str, path: str) -> None:
    assert_error_shape(api.request(method, path), {404})


@pytest.mark.parametrize(("method", "path"), [
    ("DELETE", "/api/admin/scripts"),
    ("PATCH", "/api/admin/scripts"),
    ("POST", "/healthz"),
    ("PUT", "/api/admin/scripts/runs"),
    ("GET", f"/api/admin/scripts/{NO_SUCH_ID}/run"),
    ("DELETE", f"/api/admin/scripts/runs/{NO_SUCH_ID}"),
])
def test_wrong_methods_are_json_405_with_allow(api: Api, method: str, path: str) -> None:
    response = api.request(method, path, json={} if method != "GET" else None)
    assert_error_shape(response, {405})
    assert response.headers.get("Allow")


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"status": "sleeping"}, "status"), ({"scriptId": "nope"}, "scriptId"), ({"before": "garbage!"}, "before"),
])
def test_bad_run_list_parameters_name_the_parameter(api: Api, params: dict[str, str], field: str) -> None:
    error = assert_error_shape(api.get("/api/admin/scripts/runs", params=params), {400})
    assert field in error["fields"]


def test_conflicts_are_json_409(api: Api, ids: dict[str, str]) -> None:
    disabled = api.create_script(enabled=False)
    assert_error_shape(api.post(f"/api/admin/scripts/{disabled['id']}/run"), {409})
    running = api.create_script(script="sleep 30")
    run_id = api.post(f"/api/admin/scripts/{running['id']}/run").json()["runId"]
    assert_error_shape(api.delete(f"/api/admin/scripts/{running['id']}"), {409})
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    wait_status(api, ids["run"])
    assert_error_shape(api.post(f"/api/admin/scripts/runs/{ids['run']}/cancel"), {409})


def test_auth_and_origin_errors_share_the_shape(server: ScriptboxServer) -> None:
    assert_error_shape(requests.get(server.base_url + "/api/admin/scripts", timeout=10), {401})
    assert_error_shape(server.api().post("/api/admin/scripts", json={}, headers={"Origin": "https://x.example"}),
                       {403})
    assert_error_shape(server.api().get("/api/admin/scripts", headers={"Host": "x.example"}), {403})


def _raw_exchange(server: ScriptboxServer, request: bytes) -> tuple[str, bytes]:
    """Send raw bytes; returns (status line, body) of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode("latin-1"), body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET / HTTP/9.9\r\n\r\n", "400"),
    (b"NOT-HTTP\r\n\r\n", "400"),
    (b"GET /api/admin/scripts?q=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "414"),
])
def test_protocol_errors_answered_by_the_http_server_are_json_too(server: ScriptboxServer, request_bytes: bytes,
                                                                 status: str) -> None:
    status_line, body = _raw_exchange(server, request_bytes)
    assert status_line.split(" ")[1] == status, status_line
    error = json.loads(body)["error"]
    assert error["code"] and error["message"]


def test_a_chunked_body_is_read_and_limited_like_any_other(api: Api) -> None:
    def chunks(payload: bytes) -> Any:
        for start in range(0, len(payload), 65536):
            yield payload[start:start + 65536]

    small = json.dumps({"name": "Chunked", "codeIdentifier": "chunked-body", "type": "bash"}).encode()
    response = api.post("/api/admin/scripts", data=chunks(small), headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    big = b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    response = api.post("/api/admin/scripts", data=chunks(big), headers={"Content-Type": "application/json"})
    assert_error_shape(response, {413})


def test_garbage_on_the_socket_does_not_take_the_server_down(server: ScriptboxServer) -> None:
    for junk in [b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
                 b"POST /api/admin/scripts HTTP/1.1\r\nContent-Length: -5\r\n\r\n"]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(junk)
            try:
                sock.recv(4096)
            except (ConnectionResetError, TimeoutError):
                pass
    assert requests.get(server.base_url + "/healthz", timeout=10).status_code == 200

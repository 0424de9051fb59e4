"""Basic auth, failure throttling, same-origin and Host guards, the first password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from scriptbox.auth import LoginThrottle
from scriptbox.config import load_settings
from support import ADMIN_PASSWORD, Api, ScriptboxServer
from support.inprocess import InProcessApp

PROTECTED = [
    ("GET", "/api/admin/scripts"),
    ("POST", "/api/admin/scripts"),
    ("GET", "/api/admin/scripts/ffffffffffffffffffffffff"),
    ("GET", "/api/admin/scripts/runs"),
    ("GET", "/api/admin/nothing-here"),
    ("GET", "/admin/scripts"),
    ("GET", "/admin/scripts/runs/ffffffffffffffffffffffff"),
    ("GET", "/admin/assets/app.js"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_admin_routes_need_basic_auth(server: ScriptboxServer, method: str, path: str) -> None:
    response = requests.request(method, server.base_url + path, json={}, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="scriptbox"')
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_wrong_user_or_password_is_refused(server: ScriptboxServer) -> None:
    for auth in [("admin", "wrong"), ("root", ADMIN_PASSWORD), ("admin", ""), ("", "")]:
        response = requests.get(server.base_url + "/api/admin/scripts", auth=auth, timeout=10)
        assert response.status_code == 401, auth
    garbage = {"Authorization": "Basic !!!notbase64"}
    assert requests.get(server.base_url + "/api/admin/scripts", headers=garbage, timeout=10).status_code == 401
    assert server.api().get("/api/admin/scripts").status_code == 200


def test_healthz_is_open(server: ScriptboxServer) -> None:
    response = requests.get(server.base_url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "db": "ok"}


def test_repeated_failures_from_one_address_are_slowed_down(mongodb_uri: str, tmp_path: Path) -> None:
    # In-process, with a login throttle of its own (the module's server keeps its budget for the other tests);
    # test_security_attacks.py floods a real server in parallel.
    instance = InProcessApp(mongodb_uri, tmp_path)
    guesser = instance.client(auth=("admin", "guess"))
    try:
        answers = [guesser.get("/api/admin/scripts") for _ in range(LoginThrottle.FREE_FAILURES)]
        # Past the free failures the address must wait; meanwhile its attempts are refused unread.
        locked = [guesser.get("/api/admin/scripts") for _ in range(2)]
    finally:
        instance.close()
    assert [a.status_code for a in answers] == [401] * LoginThrottle.FREE_FAILURES
    refused = next(a for a in locked if a.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert int(refused.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},
    {"Sec-Fetch-Site": "cross-site"},
])
def test_cross_site_state_changes_are_refused(api: Api, headers: dict[str, str]) -> None:
    before = api.get("/api/admin/scripts").json()
    for method, path in [("POST", "/api/admin/scripts"), ("PUT", "/api/admin/scripts/ffffffffffffffffffffffff"),
                         ("DELETE", "/api/admin/scripts/ffffffffffffffffffffffff")]:
        response = api.request(method, path, json={"name": "x", "codeIdentifier": "csrf", "type": "bash"},
                               headers=headers)
        assert response.status_code == 403, (method, response.text)
        assert response.json()["error"]["code"] == "cross_site_refused"
    assert api.get("/api/admin/scripts").json() == before


def test_same_origin_requests_are_accepted(api: Api, server: ScriptboxServer) -> None:
    headers = {"Origin": server.base_url, "Sec-Fetch-Site": "same-origin"}
    response = api.post("/api/admin/scripts", json={"name": "x", "codeIdentifier": "same-origin-ok",
                                                    "type": "bash"}, headers=headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_bodies_must_be_json(api: Api, content_type: str) -> None:
    response = api.post("/api/admin/scripts", data=b'{"name":"x","codeIdentifier":"form-post","type":"bash"}',
                        headers={"Content-Type": content_type})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unsupported_content_type"
    assert api.get("/api/admin/scripts", params={"q": "form-post"}).json()["scripts"] == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "10.1.2.3"])
def test_a_foreign_host_header_is_refused(server: ScriptboxServer, host: str) -> None:
    for path in ("/api/admin/scripts", "/admin/scripts", "/healthz"):
        response = server.api().get(path, headers={"Host": host})
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"]["code"] == "host_not_allowed"
    assert server.api().get("/api/admin/scripts", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_allowed_hosts_setting_admits_a_proxy_name(mongodb_uri: str, tmp_path: Path) -> None:
    # The setting as an operator writes it, parsed by the settings table, then the app in-process.
    allowed = load_settings(environ={"SCRIPTBOX_ALLOWED_HOSTS": "scripts.example.com, other.example"}).allowed_hosts
    instance = InProcessApp(mongodb_uri, tmp_path, allowed_hosts=allowed)
    try:
        client = instance.client()
        for host in ("scripts.example.com", "other.example"):
            assert client.get("/api/admin/scripts", headers={"Host": host}).status_code == 200, host
        assert client.get("/api/admin/scripts", headers={"Host": "evil.example"}).status_code == 403
    finally:
        instance.close()


def test_the_first_start_generates_a_password_printed_once_and_stored_hashed(server_factory: Any,
                                                                            tmp_path: Path) -> None:
    env = {"SCRIPTBOX_ADMIN_PASSWORD": ""}
    first = server_factory(data_dir=tmp_path / "d", env=env)
    first.env.pop("SCRIPTBOX_ADMIN_PASSWORD")
    first.start()
    lines = first.text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("Generated admin password"))
    password = lines[index + 1].strip()
    assert len(password) >= 20
    stored = (tmp_path / "d" / "admin-password.hash").read_text()
    assert password not in stored and stored.startswith("$argon2")
    assert (tmp_path / "d" / "admin-password.hash").stat().st_mode & 0o077 == 0
    assert first.api(auth=("admin", password)).get("/api/admin/scripts").status_code == 200
    assert first.api().get("/api/admin/scripts").status_code == 401
    assert first.stop() == 0

    second = server_factory(data_dir=tmp_path / "d")
    second.env.pop("SCRIPTBOX_ADMIN_PASSWORD")
    second.start()
    assert "Generated admin password" not in second.text and password not in second.text
    assert second.api(auth=("admin", password)).get("/api/admin/scripts").status_code == 200


def test_the_desktop_login_page_is_not_served_without_a_desktop_token(server: ScriptboxServer) -> None:
    assert requests.get(server.base_url + "/desktop-login", timeout=10).status_code == 404
    response = requests.post(server.base_url + "/desktop-login", json={"token": "x"}, timeout=10)
    assert response.status_code == 404


def test_a_desktop_token_is_exchanged_once_for_a_loopback_session(server_factory: Any) -> None:
    instance = server_factory(extra_args=["--desktop-login-stdin"]).start(stdin_text="one-time-token-abc\n")
    assert "one-time-token-abc" not in instance.text

    browser = requests.Session()
    assert browser.get(instance.base_url + "/admin/scripts", timeout=10).status_code == 401
    assert browser.get(instance.base_url + "/desktop-login", timeout=10).status_code == 200
    bad = browser.post(instance.base_url + "/desktop-login", json={"token": "guess"}, timeout=10)
    assert bad.status_code == 403
    good = browser.post(instance.base_url + "/desktop-login", json={"token": "one-time-token-abc"}, timeout=10)
    assert good.status_code == 204
    assert "HttpOnly" in good.headers["Set-Cookie"] and "samesite=strict" in good.headers["Set-Cookie"].lower()
    assert browser.get(instance.base_url + "/api/admin/scripts", timeout=10).status_code == 200
    again = requests.post(instance.base_url + "/desktop-login", json={"token": "one-time-token-abc"}, timeout=10)
    assert again.status_code == 403

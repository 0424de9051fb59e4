"""Where Scriptbox listens: loopback by default, a warning elsewhere without TLS, HTTPS with a cert."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import requests

from support import ScriptboxServer

TLS_WARNING = "without TLS"


def test_it_listens_on_loopback_without_a_warning_by_default(server: ScriptboxServer) -> None:
    assert f"http://127.0.0.1:{server.port}/admin/scripts" in server.text
    assert TLS_WARNING not in server.text


def test_binding_to_all_interfaces_without_tls_prints_a_warning(server_factory: Any) -> None:
    # The fixture passes --host 127.0.0.1; a later --host wins.
    instance = server_factory(extra_args=["--host", "0.0.0.0"]).start()
    assert TLS_WARNING in instance.text
    # Still reachable over loopback, and the Host guard still knows its own names.
    assert instance.api().get("/api/admin/scripts").status_code == 200


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert), "-days", "1"], check=True, capture_output=True)
    return cert, key


def test_it_serves_https_when_given_a_certificate_and_key(server_factory: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    instance = server_factory(env={"SCRIPTBOX_TLS_CERT": str(cert), "SCRIPTBOX_TLS_KEY": str(key)},
                              extra_args=["--host", "0.0.0.0"])
    instance.start()
    assert f"https://0.0.0.0:{instance.port}/admin/scripts" in instance.text
    assert TLS_WARNING not in instance.text
    response = requests.get(f"https://127.0.0.1:{instance.port}/healthz", verify=str(cert), timeout=10)
    assert response.json() == {"status": "ok", "db": "ok"}
    plain = requests.Session()
    try:
        plain.get(f"http://127.0.0.1:{instance.port}/healthz", timeout=5)
    except requests.exceptions.ConnectionError:
        pass  # a plain-HTTP client gets no answer from a TLS port, which is what we want
    else:
        raise AssertionError("a TLS port answered plain HTTP")

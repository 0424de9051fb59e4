"""Shared fixtures: a real SecantusDB, real Scriptbox servers as subprocesses.

* ``mongodb_uri`` (session): one SecantusDB child for the whole run, started by
  the same EmbeddedDatabase class the product uses.
* ``ScriptboxServer``: ``python app.py serve`` on a free loopback port with its
  own data dir and database name; read its output, stop it, SIGKILL it.
* ``server`` (module): one such server per test module; ``api`` (function): an
  authenticated HTTP client for it.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scriptbox.childproc import free_loopback_port  # noqa: E402
from scriptbox.embedded_db import EmbeddedDatabase  # noqa: E402

ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-password-123"
START_TIMEOUT_S = 60.0
_counter = itertools.count()


def unique_name(prefix: str = "t") -> str:
    """A codeIdentifier-safe name unique within the test run."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = EmbeddedDatabase(tmp_path_factory.mktemp("secantus"))
    uri = database.start()
    assert database.credential is not None
    # Servers under test get it through --mongodb-uri, as an operator's shared database would.
    yield database.credential.uri(uri)
    database.stop()


class Api:
    """A small HTTP client bound to one server, authenticated as the admin."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = (ADMIN_USER, ADMIN_PASSWORD)) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        if auth is not None:
            self.session.auth = auth

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_script(self, **fields: Any) -> dict[str, Any]:
        """Create a definition (bash `echo hi` unless told otherwise); returns the document."""
        body = {"name": "Test script", "codeIdentifier": unique_name(), "type": "bash", "script": "echo hi"}
        body.update(fields)
        response = self.post("/api/admin/scripts", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())


class ScriptboxServer:
    """One real `python app.py serve` process."""

    def __init__(self, data_dir: Path, *, mongodb_uri: str | None, db_name: str | None = None,
                 env: dict[str, str] | None = None, port: int | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_loopback_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.mongodb_uri = mongodb_uri
        self.db_name = db_name or f"sbx_{uuid.uuid4().hex[:12]}"
        home = data_dir.parent / f"{data_dir.name}-home"
        home.mkdir(parents=True, exist_ok=True)
        # A home of its own: `bash -lc` then reads no ~/.profile of this machine
        # (here it runs `pyenv rehash`, whose lock, left by a killed run, would
        # stall every later run of every test for a minute).
        self.env = {**os.environ, "SCRIPTBOX_DB_NAME": self.db_name, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD,
                    "PYTHONUNBUFFERED": "1", "HOME": str(home)}
        self.env.update(env or {})
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def argv(self) -> list[str]:
        argv = [sys.executable, str(REPO / "app.py"), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.mongodb_uri:
            argv += ["--mongodb-uri", self.mongodb_uri]
        return argv + self.extra_args

    def start(self, wait: bool = True, stdin_text: str | None = None) -> ScriptboxServer:
        """Start the process; `stdin_text` is written to its stdin (else stdin is empty)."""
        self._ready.clear()
        self.output.clear()
        self.process = subprocess.Popen(self.argv, cwd=REPO, env=self.env,
                                        stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        if stdin_text is not None:
            assert self.process.stdin is not None
            self.process.stdin.write(stdin_text)
            self.process.stdin.close()
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        if wait:
            self.wait_ready()
        return self

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if line.startswith("Scriptbox listening on "):
                self._ready.set()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)  # let the drain thread collect the last lines
                raise AssertionError(f"server did not start (exit {self.process.poll()}):\n{self.text}")

    @property
    def text(self) -> str:
        return "".join(self.output)

    def api(self, **kwargs: Any) -> Api:
        return Api(self.base_url, **kwargs)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


@pytest.fixture(scope="module")
def server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("data"), mongodb_uri=mongodb_uri).start()
    yield instance
    instance.stop()


@pytest.fixture()
def api(server: ScriptboxServer) -> Api:
    return server.api()


@pytest.fixture()
def server_factory(tmp_path: Path, mongodb_uri: str) -> Iterator[Any]:
    """Builds servers for tests that start, kill or restart them; all stopped at the end."""
    created: list[ScriptboxServer] = []

    def make(**kwargs: Any) -> ScriptboxServer:
        kwargs.setdefault("mongodb_uri", mongodb_uri)
        data_dir = kwargs.pop("data_dir", None) or tmp_path / f"data{len(created)}"
        instance = ScriptboxServer(data_dir, **kwargs)
        created.append(instance)
        return instance

    yield make
    for instance in created:
        if instance.process is not None and instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait(10)

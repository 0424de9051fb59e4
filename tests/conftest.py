"""Shared fixtures: a real SecantusDB, real Scriptbox servers, the app in-process.

Helpers live in the importable package tests/support/ (shared with bench/).

* ``mongodb_uri`` (session): one SecantusDB child for the whole run, started by
  the same EmbeddedDatabase class the product uses.
* ``server`` (module): one real ``app.py serve`` per test module; ``api``
  (function): an authenticated HTTP client for it.
* ``server_factory``: builds servers for tests that start, kill or restart them.
* ``app`` (module): the Bottle app and its services in this process, on its
  own database; ``client`` (function): an authenticated in-process client.
* ``separate_db`` (function): a SecantusDB of the test's own, which the test
  may kill and restart under the servers it points at it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scriptbox.embedded_db import EmbeddedDatabase
from support import Api, AppClient, ScriptboxServer
from support.inprocess import InProcessApp
from support.separate_db import SeparateDatabase


@pytest.fixture(scope="session")
def mongodb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = EmbeddedDatabase(tmp_path_factory.mktemp("secantus"))
    uri = database.start()
    assert database.credential is not None
    # Servers under test get it through --mongodb-uri, as an operator's shared database would.
    yield database.credential.uri(uri)
    database.stop()


@pytest.fixture(scope="module")
def server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("data"), mongodb_uri=mongodb_uri).start()
    yield instance
    instance.stop()


@pytest.fixture()
def api(server: ScriptboxServer) -> Api:
    return server.api()


@pytest.fixture()
def server_factory(tmp_path: Path, mongodb_uri: str) -> Iterator[Callable[..., ScriptboxServer]]:
    """Builds servers for tests that start, kill or restart them; all stopped at the end."""
    created: list[ScriptboxServer] = []

    def make(**kwargs: object) -> ScriptboxServer:
        kwargs.setdefault("mongodb_uri", mongodb_uri)
        data_dir = kwargs.pop("data_dir", None) or tmp_path / f"data{len(created)}"
        instance = ScriptboxServer(data_dir, **kwargs)  # type: ignore[arg-type]
        created.append(instance)
        return instance

    yield make
    for instance in created:
        if instance.process is not None and instance.process.poll() is None:
            instance.process.kill()
            instance.process.wait(10)


@pytest.fixture(scope="module")
def app(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("app"))
    yield instance
    instance.close()


@pytest.fixture()
def client(app: InProcessApp) -> AppClient:
    return app.client()


@pytest.fixture()
def separate_db(tmp_path: Path) -> Iterator[SeparateDatabase]:
    db = SeparateDatabase(tmp_path / "mongo").start()
    yield db
    if db.process is not None and db.process.poll() is None:
        db.kill()

"""Fixtures for the admin UI tests: a real headless Chromium driven by Playwright.

* ``ui_dist`` (session): the built admin page (ui/dist); built with npm if missing.
* ``browser`` (module): one Debian Chromium (/usr/bin/chromium) per test module.
  ``playwright install`` is never used.
* ``server`` (module, overrides the root one): a real ``app.py serve`` on the shared
  SecantusDB whose runs get an empty HOME, so ``bash -lc`` does not spend its time in
  the machine's login scripts (pyenv's rehash lock made runs hang for a minute here).
* ``ui_page`` (function): a fresh context and page signed in (HTTP Basic) to that
  server, 1280x800; it fails the test if the page threw an uncaught error.
* ``open_ui_page`` (function): makes more such pages (other viewport, colour scheme).
* ``artifacts``: tests/artifacts/, where screenshots go.
* ``DroppableProxy``: a TCP relay in front of the server whose open connections a
  test can cut, as a flaky network would (real sockets, no mocks).

Helpers come from the tests/support package.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

import support

REPO = support.REPO
ScriptboxServer = support.ScriptboxServer
Api = support.Api
unique_name = support.unique_name

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture(scope="session")
def ui_dist() -> Path:
    dist = REPO / "ui" / "dist"
    if not (dist / "index.html").is_file() or not (dist / "assets" / "app.js").is_file():
        npm = shutil.which("npm")
        assert npm, "npm is needed to build the admin UI (make ui)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=REPO / "ui", check=True)
        subprocess.run([npm, "run", "build"], cwd=REPO / "ui", check=True)
    return dist


class DroppableProxy:
    """Relays 127.0.0.1:<port> to the server; drop_all() cuts every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def drop_all(self) -> None:
        with self.lock:
            sockets, self.open = self.open, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.drop_all()


@pytest.fixture()
def proxy(server: ScriptboxServer) -> Iterator[DroppableProxy]:
    relay = DroppableProxy(server.port)
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    home = tmp_path_factory.mktemp("home")
    instance = ScriptboxServer(tmp_path_factory.mktemp("data"), mongodb_uri=mongodb_uri, env={"HOME": str(home)})
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser(ui_dist: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture()
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def open_page(browser: Browser, server: ScriptboxServer, base_url: str | None = None,
              **context_args: Any) -> tuple[Page, list[str]]:
    """A signed-in page on `server` (or on `base_url`, e.g. a proxy in front of it);
    returns it with the list that collects the page's uncaught errors."""
    user, password = server.api().session.auth
    context_args.setdefault("viewport", VIEWPORT)
    context = browser.new_context(
        base_url=base_url or server.base_url,
        http_credentials={"username": user, "password": password},
        **context_args,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


@pytest.fixture()
def ui_page(browser: Browser, server: ScriptboxServer) -> Iterator[Page]:
    page, errors = open_page(browser, server)
    yield page
    page.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture()
def open_ui_page(browser: Browser, server: ScriptboxServer) -> Iterator[Callable[..., Page]]:
    """open_ui_page(viewport=..., color_scheme=..., base_url=...) -> a signed-in page;
    closed and checked for uncaught errors at the end of the test."""
    opened: list[tuple[Page, list[str]]] = []

    def make(**context_args: Any) -> Page:
        page, errors = open_page(browser, server, **context_args)
        opened.append((page, errors))
        return page

    yield make
    for page, errors in opened:
        page.context.close()
        assert not errors, f"uncaught errors in the page: {errors}"

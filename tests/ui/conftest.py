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

tests/ui is a package (``ui.conftest``), so ``conftest`` below is tests/conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from conftest import REPO, ScriptboxServer

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


def open_page(browser: Browser, server: ScriptboxServer, **context_args: Any) -> tuple[Page, list[str]]:
    """A signed-in page on `server` (a ScriptboxServer); returns it with the list that
    collects the page's uncaught errors."""
    user, password = server.api().session.auth
    context_args.setdefault("viewport", VIEWPORT)
    context = browser.new_context(
        base_url=server.base_url,
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
    """open_ui_page(viewport=..., color_scheme=...) -> a signed-in page; closed and
    checked for uncaught errors at the end of the test."""
    opened: list[tuple[Page, list[str]]] = []

    def make(**context_args: Any) -> Page:
        page, errors = open_page(browser, server, **context_args)
        opened.append((page, errors))
        return page

    yield make
    for page, errors in opened:
        page.context.close()
        assert not errors, f"uncaught errors in the page: {errors}"

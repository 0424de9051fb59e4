"""An axe-core scan of every main view of the admin page, in light and dark mode (issue 21
item 13): no serious or critical violation.

axe-core comes from ui/node_modules (pinned in ui/package.json, a test-only package that is
never bundled) and is injected into each page before the page's own scripts run. One
browser, one server, one page per colour scheme; each view is scanned once, after its data
has arrived (axe looks at what is on screen).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from support import REPO, unique_name, wait_status

AXE = REPO / "ui" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def views(server: Any) -> dict[str, tuple[str, str]]:
    """Each main view: its path, and a selector that is there once its data has loaded."""
    api = server.api()
    script = api.create_script(
        name="Disk report", description="Disk usage of the data volumes", tags=["ops", "nightly"],
        env=[{"key": "THRESHOLD", "value": "80"}],
        script="# check\nname=\"disk\"\nprintf '\\033[32mok\\033[0m %s\\n' \"$name\"\necho 'warn' >&2\nexit 1\n")
    api.create_script(name="Stopped job", enabled=False, tags=["ops"])
    scheduled = api.create_script(name="Nightly rotate", type="node", runner="vm2", script="console.log(env.A);",
                                  schedule={"cron": "0 3 * * *", "timezone": "UTC"})
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    wait_status(api, run_id, timeout=60)
    api.post("/api/admin/tokens", json={"name": unique_name("ci"), "scope": "run", "scriptIds": [],
                                        "expiresAt": None})
    # Nothing listens on port 9 (discard): the channel's test fails, so its error state is scanned too.
    channel = api.post("/api/admin/notifications", json={"name": unique_name("ops"), "url": "json://127.0.0.1:9/x",
                                                         "scriptIds": [script["id"]]}).json()
    api.post(f"/api/admin/notifications/{channel['id']}/test")
    return {
        "home": ("/admin/scripts", ".home-view, .view-title"),
        "script": (f"/admin/scripts/{script['id']}", ".run-panel[data-status=failed]"),
        "form": ("/admin/scripts/new", ".script-form"),
        "schedules": (f"/admin/scripts/{scheduled['id']}", ".schedule-description:not(:empty)"),
        "runs": ("/admin/scripts/runs", ".runs-view .run-row"),
        "run": (f"/admin/scripts/runs/{run_id}", ".run-panel[data-status=failed]"),
        "tokens": ("/admin/scripts/tokens", ".view-title"),
        "audit": ("/admin/scripts/audit", ".view-title"),
        "executors": ("/admin/scripts/executors", ".executor-row"),
        "notifications": ("/admin/scripts/notifications", ".notification-row .last-error"),
    }


def scan(page: Page, within: str | None = None) -> list[dict[str, Any]]:
    """axe's serious and critical violations on what the page shows now (or in `within`)."""
    started = time.monotonic()
    result = page.evaluate("(within) => axe.run(within || document, {resultTypes: ['violations']})", within)
    print(f"axe scan of {page.url}: {time.monotonic() - started:.2f} s")
    return [
        {"rule": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [{"target": n["target"], "summary": n.get("failureSummary", "")[:300]} for n in v["nodes"][:5]]}
        for v in result["violations"] if v["impact"] in BLOCKING
    ]


def test_every_main_view_has_no_serious_accessibility_violation_in_light_or_dark_mode(
        views: dict[str, tuple[str, str]], open_ui_page: Callable[..., Page], artifacts: Path) -> None:
    assert AXE.is_file(), "axe-core is a test dependency: cd ui && npm ci"
    page = open_ui_page(color_scheme="light")
    page.context.add_init_script(path=str(AXE))
    found: dict[str, list[dict[str, Any]]] = {}

    def scan_both(name: str, within: str | None = None) -> None:
        # Each view is loaded once and scanned in both schemes (the page follows
        # prefers-color-scheme live, so no reload is needed).
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.wait_for_timeout(150)  # colour transitions
            if violations := scan(page, within):
                found[f"{name}-{scheme}"] = violations
                page.screenshot(path=str(artifacts / f"axe-{name}-{scheme}.png"))

    for name, (path, ready) in views.items():
        page.emulate_media(color_scheme="light")
        page.goto(path)
        expect(page.locator(ready).first).to_be_visible()
        expect(page.locator("#scripts-list .script-item").first).to_be_visible()
        scan_both(name)
    # The error toast is a view of its own for contrast (it was 3.18:1 in dark mode).
    page.goto(views["form"][0])
    page.locator("#save-script").click()
    expect(page.locator(".toast-error")).to_be_visible()
    page.wait_for_timeout(300)  # its fade-in
    scan_both("error-toast", ".toasts")  # the rest of this page was scanned as "form"
    page.screenshot(path=str(artifacts / "axe-error-toast-dark.png"))
    assert not found, json.dumps(found, indent=1)

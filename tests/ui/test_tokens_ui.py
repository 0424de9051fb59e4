"""The Tokens and Audit pages and who-started-it, in real headless Chromium against a real server."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests
from playwright.sync_api import Page, expect

from support import Api, ScriptboxServer


def bearer(server: ScriptboxServer, secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_is_created_shown_once_used_and_revoked(ui_page: Page, api: Api, server: ScriptboxServer,
                                                        artifacts: Path) -> None:
    script = api.create_script(name="Deploy hook", script="echo deployed")
    ui_page.goto("/admin/scripts/tokens")
    expect(ui_page.locator(".view-title")).to_have_text("API tokens")
    name = f"ci-{time.monotonic_ns()}"
    ui_page.get_by_label("Name", exact=True).fill(name)
    ui_page.get_by_label("Scope", exact=True).select_option("run")
    ui_page.get_by_label("Limit to scripts").select_option(script["id"])
    ui_page.get_by_label("Expires", exact=True).select_option("7")
    ui_page.get_by_role("button", name="Create token").click()

    dialog = ui_page.locator("dialog.token-dialog")
    expect(dialog).to_be_visible()
    secret = ui_page.get_by_label("The new token").input_value()
    assert re.fullmatch(r"sbx_[A-Za-z0-9_-]{43}", secret)
    dialog.screenshot(path=str(artifacts / "ui-token-created.png"))
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_have_count(0)
    row = ui_page.locator("tr.token-row", has_text=name)
    expect(row).to_contain_text("Deploy hook")
    expect(row.locator(".last-used")).to_have_text("never")
    assert secret not in ui_page.content()  # shown once: gone with the dialog

    started = requests.post(f"{server.base_url}/api/admin/scripts/{script['id']}/run?wait=30",
                            headers=bearer(server, secret), timeout=60)
    assert started.status_code == 200 and started.json()["status"] == "succeeded"
    ui_page.reload()
    expect(row.locator(".last-used")).not_to_have_text("never")
    ui_page.screenshot(path=str(artifacts / "ui-tokens.png"), full_page=True)

    ui_page.goto("/admin/scripts/runs")
    expect(ui_page.locator("tr.run-row").first.locator(".cell-by")).to_have_text(f"token:{name}")
    ui_page.goto(f"/admin/scripts/runs/{started.json()['id']}")
    expect(ui_page.locator(".fact", has_text="Requested by")).to_contain_text(f"token:{name}")

    ui_page.goto("/admin/scripts/tokens")
    row.get_by_role("button", name="Revoke").click()
    ui_page.locator("dialog.modal").get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    assert requests.get(f"{server.base_url}/api/admin/scripts/runs/{started.json()['id']}",
                        headers=bearer(server, secret), timeout=10).status_code == 401


def test_token_form_errors_come_from_the_server(ui_page: Page, api: Api) -> None:
    taken = api.post("/api/admin/tokens", json={"name": f"taken-{time.monotonic_ns()}", "scope": "admin"}).json()
    ui_page.goto("/admin/scripts/tokens")
    ui_page.get_by_label("Name", exact=True).fill(taken["name"])
    ui_page.get_by_label("Scope", exact=True).select_option("admin")
    expect(ui_page.get_by_label("Limit to scripts")).to_be_hidden()  # admin tokens are not limited to scripts
    ui_page.get_by_role("button", name="Create token").click()
    expect(ui_page.locator(".form-errors")).to_contain_text("another token has this name")
    expect(ui_page.locator("dialog.token-dialog")).to_have_count(0)


def test_the_audit_page_filters_by_action_and_script_and_pages(ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name="Audited script")
    for n in range(52):
        assert api.put(f"/api/admin/scripts/{script['id']}", json={"description": f"rev {n}"}).status_code == 200
    other = api.create_script(name="Another script")
    api.post(f"/api/admin/scripts/{other['id']}/run", json={"trigger": "manual"})

    ui_page.goto("/admin/scripts/audit")
    expect(ui_page.locator(".view-title")).to_have_text("Audit log")
    first = ui_page.locator("tr.audit-row").first
    expect(first).to_have_attribute("data-action", "run.start")
    expect(first.locator(".audit-actor")).to_have_text("admin")
    ui_page.screenshot(path=str(artifacts / "ui-audit.png"), full_page=True)

    ui_page.get_by_label("Script", exact=True).select_option(script["id"])
    expect(ui_page).to_have_url(re.compile(rf"scriptId={script['id']}"))
    rows = ui_page.locator("tr.audit-row")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("description")
    ui_page.get_by_role("button", name="Load older entries").click()
    expect(rows).to_have_count(53)
    expect(rows.last).to_have_attribute("data-action", "script.create")
    expect(ui_page.get_by_role("button", name="Load older entries")).to_be_hidden()

    ui_page.get_by_label("Action", exact=True).select_option("run")
    expect(ui_page.locator(".history-info")).to_have_text("No entries.")
    ui_page.get_by_label("Script", exact=True).select_option("")
    expect(rows.first).to_have_attribute("data-action", "run.start")
    rows.first.get_by_role("link").click()
    expect(ui_page).to_have_url(re.compile(r"/admin/scripts/runs/[0-9a-f]{24}$"))

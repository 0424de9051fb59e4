"""Retention in the admin page (SPEC §8.6): the editor's retention fields and deleting a run,
in real headless Chromium against a real server."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from support import Api


def test_retention_fields_are_saved_and_the_servers_errors_shown_beside_them(ui_page: Page, api: Api,
                                                                            artifacts: Path) -> None:
    script = api.create_script(name="Nightly cleanup")
    ui_page.goto(f"/admin/scripts/{script['id']}")
    days = ui_page.get_by_label("Keep finished runs (days)")
    keep = ui_page.get_by_label("Always keep the newest")
    expect(days).to_have_value("")
    days.fill("-3")
    ui_page.locator("#save-script").click()
    error = ui_page.locator("[data-error-for='retention.days']")
    expect(error).to_have_text("must be at least 0 days")
    days.fill("14")
    keep.fill("25")
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    expect(error).to_be_hidden()
    assert api.get(f"/api/admin/scripts/{script['id']}").json()["retention"] == {"days": 14, "keepRuns": 25}
    ui_page.reload()
    expect(days).to_have_value("14")
    ui_page.locator(".retention-field").scroll_into_view_if_needed()
    ui_page.locator(".retention-field").screenshot(path=str(artifacts / "ui-retention-fields.png"))
    days.fill("")
    keep.fill("")
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    assert api.get(f"/api/admin/scripts/{script['id']}").json()["retention"] is None


def test_a_finished_run_is_deleted_after_confirmation_and_the_page_returns_to_the_list(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name="Short-lived", script="echo gone soon")
    run = api.post(f"/api/admin/scripts/{script['id']}/run?wait=30").json()
    assert run["status"] == "succeeded"
    ui_page.goto(f"/admin/scripts/runs/{run['id']}")
    expect(ui_page.locator(".output-lines")).to_contain_text("gone soon")
    delete = ui_page.get_by_role("button", name="Delete run")
    delete.click()
    dialog = ui_page.locator("dialog.modal")
    expect(dialog).to_contain_text("Delete this run?")
    dialog.screenshot(path=str(artifacts / "ui-delete-run-confirm.png"))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert api.get(f"/api/admin/scripts/runs/{run['id']}").status_code == 200  # nothing without confirming

    delete.click()
    ui_page.locator("dialog.modal").get_by_role("button", name="Delete run").click()
    expect(ui_page).to_have_url(f"{ui_page.url.split('/admin/')[0]}/admin/scripts/runs")
    expect(ui_page.locator(".view-title")).to_have_text("Run history")
    assert api.get(f"/api/admin/scripts/runs/{run['id']}").status_code == 404
    expect(ui_page.locator(f"tr.run-row[data-run-id='{run['id']}']")).to_have_count(0)


def test_an_active_run_offers_no_delete(ui_page: Page, api: Api) -> None:
    script = api.create_script(name="Still going", script="sleep 30")
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run").json()["runId"]
    ui_page.goto(f"/admin/scripts/runs/{run_id}")
    expect(ui_page.locator("[data-testid='run-status']")).to_have_attribute("data-status", "running")
    expect(ui_page.get_by_role("button", name="Delete run")).to_be_hidden()
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    expect(ui_page.get_by_role("button", name="Delete run")).to_be_visible()

"""The schedule section of the editor, the next run in the scripts list and the
trigger filter of run history, in real Chromium against a real server (SPEC §8.1)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from support import Api, eventually
from ui.test_admin_ui import set_code


def test_set_a_schedule_see_the_preview_the_next_run_and_the_scheduled_run(ui_page: Page, api: Api,
                                                                           artifacts: Path) -> None:
    ui_page.goto("/admin/scripts/new")
    ui_page.get_by_label("Name", exact=True).fill("Every two seconds")
    set_code(ui_page, "echo scheduled\n")
    ui_page.get_by_label("Run on a schedule").check()
    cron = ui_page.get_by_label("Cron", exact=True)
    cron.fill("61 * * * *")
    expect(ui_page.locator(".schedule-description")).to_contain_text("cron: invalid cron expression")
    cron.fill("*/2 * * * * *")
    expect(ui_page.locator(".schedule-description")).to_have_text("Every 2 seconds")
    expect(ui_page.locator(".schedule-next li")).to_have_count(5)
    ui_page.get_by_label("Time zone").select_option("Europe/Berlin")
    ui_page.get_by_label("If a run is still active").select_option("allow")
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".view-title")).to_have_text("Every two seconds")

    script = next(s for s in api.get("/api/admin/scripts").json()["scripts"] if s["name"] == "Every two seconds")
    assert script["schedule"]["cron"] == "*/2 * * * * *"
    assert script["schedule"]["timezone"] == "Europe/Berlin"
    assert script["schedule"]["overlap"] == "allow"
    item = ui_page.locator(f"#scripts-list [data-id='{script['id']}']")
    expect(item.locator(".next-run")).to_contain_text("next in")

    query = {"scriptId": script["id"], "trigger": "schedule"}
    eventually(lambda: api.get("/api/admin/scripts/runs", params=query).json()["runs"], 30,
               message="a scheduled run")
    ui_page.goto("/admin/scripts/runs")
    ui_page.get_by_label("Trigger").select_option("schedule")
    rows = ui_page.locator(".runs-table tbody tr")
    expect(rows.first.locator(".trigger")).to_have_text("schedule")
    expect(rows.first.locator(".cell-script")).to_have_text("Every two seconds")
    ui_page.get_by_label("Trigger").select_option("manual")
    expect(ui_page.locator(".history-info")).to_have_text("No runs match the filter.")

    ui_page.goto(f"/admin/scripts/{script['id']}")
    expect(ui_page.locator(".schedule-state")).to_contain_text("Fired")
    ui_page.locator(".schedule-field").scroll_into_view_if_needed()
    ui_page.screenshot(path=str(artifacts / "ui-schedule.png"), full_page=True)
    # Switching the schedule off in the editor stops it.
    ui_page.get_by_label("Fires when due").uncheck()
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    assert api.get(f"/api/admin/scripts/{script['id']}").json()["schedule"]["nextRunAt"] is None

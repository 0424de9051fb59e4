"""Script versions in the admin page, in real headless Chromium against a real server:
the Versions tab, a diff of two versions (CodeMirror's merge view), restore, and a
run's link to the version it ran."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from support import Api

BODY_V1 = "set -e\necho 'checking disks'\ndf -h /\necho done\n"
BODY_V2 = "set -e\necho 'checking disks and inodes'\ndf -h /\ndf -i /\necho done\n"


def test_two_versions_are_diffed_and_an_old_one_is_restored(ui_page: Page, open_ui_page: Callable[..., Page], api: Api,
                                                           artifacts: Path) -> None:
    script = api.create_script(name="Disk check", script=BODY_V1, timeoutMs=60_000)
    sid = script["id"]
    assert api.put(f"/api/admin/scripts/{sid}", json={"script": BODY_V2}).json()["version"] == 2
    ran = api.post(f"/api/admin/scripts/{sid}/run?wait=30", json={"trigger": "manual"}).json()
    assert ran["status"] == "succeeded" and ran["meta"]["version"] == 2
    assert api.put(f"/api/admin/scripts/{sid}", json={"description": "nightly\ncheck", "timeoutMs": 90_000}
                   ).json()["version"] == 3

    ui_page.goto(f"/admin/scripts/{sid}")
    ui_page.get_by_role("tab", name="Versions").click()
    rows = ui_page.locator("#pane-versions .version-row")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("v3")
    expect(rows.first.locator(".current-badge")).to_have_text("current")
    expect(rows.first.locator(".cell-by")).to_have_text("admin")
    ui_page.get_by_label("Compare from version 1").check()
    ui_page.get_by_label("Compare to version 3").check()
    ui_page.get_by_role("button", name="Compare selected").click()

    expect(ui_page).to_have_url(re.compile(rf"/admin/scripts/{sid}/versions/3\?against=1$"))
    expect(ui_page.locator(".view-title")).to_have_text("Version 3 of Disk check")
    merge = ui_page.locator(".diff-host .cm-mergeView")
    expect(merge).to_be_visible()
    left, right = merge.locator(".cm-merge-a .cm-content"), merge.locator(".cm-merge-b .cm-content")
    expect(left).to_contain_text("checking disks'")
    expect(right).to_contain_text("df -i /")
    expect(right).to_contain_text("timeoutMs: 90000")
    expect(left).to_contain_text("timeoutMs: 60000")
    assert merge.locator(".cm-changedText").count() >= 2  # words changed inside lines are marked
    expect(ui_page.locator(".diff-legend")).to_have_text("version 1 → version 3")
    ui_page.screenshot(path=str(artifacts / "ui-version-diff.png"), full_page=True)

    ui_page.get_by_label("Unified").check()
    unified = ui_page.locator(".diff-host .cm-editor")
    expect(unified).to_have_count(1)
    expect(unified.locator(".cm-deletedChunk", has_text="timeoutMs: 60000")).to_have_count(1)
    expect(unified.locator(".cm-deletedChunk", has_text="echo 'checking disks'")).to_have_count(1)
    ui_page.locator(".diff-host").screenshot(path=str(artifacts / "ui-version-diff-unified.png"))
    ui_page.get_by_label("Unified").uncheck()  # the choice is remembered; leave the default for others

    dark = open_ui_page(color_scheme="dark")  # the merge view's colours follow the page's theme
    dark.goto(f"/admin/scripts/{sid}/versions/3?against=1")
    expect(dark.locator(".diff-host .cm-mergeView .cm-changedText").first).to_be_visible()
    dark.screenshot(path=str(artifacts / "ui-version-diff-dark.png"))

    ui_page.get_by_label("Compare with").select_option("2")
    expect(ui_page.locator(".diff-legend")).to_have_text("version 2 → version 3")
    expect(merge.locator(".cm-merge-a .cm-content")).to_contain_text("timeoutMs: 60000")
    # The script did not change from 2 to 3: its lines are folded away.
    expect(merge.locator(".cm-merge-a .cm-collapsedLines")).to_contain_text("unchanged lines")

    # Restore version 1 from the script's Versions tab, with confirmation.
    ui_page.get_by_role("link", name="Open Disk check").click()
    ui_page.get_by_role("tab", name="Versions").click()
    row = ui_page.locator("#pane-versions .version-row[data-n='1']")
    row.get_by_role("button", name="Restore…").click()
    dialog = ui_page.locator("dialog.modal")
    expect(dialog).to_contain_text("Restore version 1?")
    dialog.get_by_role("button", name="Cancel").click()
    assert api.get(f"/api/admin/scripts/{sid}").json()["version"] == 3  # canceled: nothing happened
    row.get_by_role("button", name="Restore…").click()
    dialog.get_by_role("button", name="Restore version 1").click()
    expect(ui_page.locator(".toast-success").last).to_contain_text("Restored version 1 as version 4")
    expect(ui_page.locator(".code-host .cm-content")).to_contain_text("echo 'checking disks'")
    restored = api.get(f"/api/admin/scripts/{sid}").json()
    assert restored["version"] == 4 and restored["script"] == BODY_V1 and restored["timeoutMs"] == 60_000
    ui_page.get_by_role("tab", name="Versions").click()
    expect(ui_page.locator("#pane-versions .version-row").first).to_contain_text("v4")
    ui_page.screenshot(path=str(artifacts / "ui-versions-tab.png"))

    # From the run to the version it ran.
    ui_page.goto(f"/admin/scripts/runs/{ran['id']}")
    link = ui_page.locator(".fact", has_text="Script version").get_by_role("link")
    expect(link).to_have_text("version 2")
    link.click()
    expect(ui_page.locator(".view-title")).to_have_text("Version 2 of Disk check")
    expect(ui_page.locator(".diff-legend")).to_have_text("version 1 → version 2")
    expect(ui_page.locator("#restore-version")).to_have_text("Restore version 2…")

"""The Output field of the script form and what the run views say about the order of a
run's stdout and stderr (issue 21 item 11, merged-order view), in real Chromium against
one real server. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from support import Api, unique_name, wait_status

PAIRS = 40
# Fast enough that, on two pipes, stdout and stderr lines are read out of their written order.
SCRIPT = f'for i in $(seq 1 {PAIRS}); do echo "out $i"; echo "err $i" >&2; done'
EXPECTED = [line for i in range(1, PAIRS + 1) for line in (f"out {i}", f"err {i}")]


def test_merged_output_is_set_in_the_form_and_the_run_shows_every_line_in_written_order(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name=unique_name("merged"), script=SCRIPT)
    page = ui_page
    page.goto(f"/admin/scripts/{script['id']}")
    mode = page.get_by_label("Output streams", exact=True)
    hint = page.locator("[data-testid='output-mode-hint']")
    expect(mode).to_have_value("separate")
    expect(hint).to_contain_text("order they were read")
    mode.select_option("merged")
    expect(hint).to_contain_text("as with 2>&1")
    row = page.locator(".field[data-field='outputMode']").locator("xpath=..")  # beside the working directory
    row.screenshot(path=str(artifacts / "ui-output-mode-field.png"))
    page.locator("#save-script").click()
    expect(page.locator(".dirty-mark")).to_be_hidden()
    assert api.get(f"/api/admin/scripts/{script['id']}").json()["outputMode"] == "merged"
    page.goto(f"/admin/scripts/{script['id']}/versions/2")  # diffed against version 1
    merge = page.locator(".diff-host .cm-mergeView")
    expect(merge.locator(".cm-merge-a .cm-content")).to_contain_text("outputMode: separate")
    expect(merge.locator(".cm-merge-b .cm-content")).to_contain_text("outputMode: merged")
    page.goto(f"/admin/scripts/{script['id']}")

    page.locator("#run-script").click()
    panel = page.locator(".run-panel")
    expect(panel.locator("[data-testid='run-status']")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    note = panel.locator("[data-testid='order-note']")
    expect(note).to_have_text("stdout and stderr merged in exact order")
    expect(note).to_have_attribute("title", re.compile("in the order it was written"))
    lines = panel.locator(".output .line")
    expect(lines).to_have_count(len(EXPECTED))
    assert lines.all_inner_texts() == EXPECTED
    expect(panel.locator(".output .line.err")).to_have_count(0)  # merged: nothing is marked stderr
    panel.screenshot(path=str(artifacts / "ui-output-mode-merged-panel.png"))

    run_id = panel.get_attribute("data-run-id")
    page.goto(f"/admin/scripts/runs/{run_id}")
    expect(page.locator(".what-ran")).to_contain_text("merged: stderr into stdout, in exact order")
    viewer = page.locator(".log-viewer")
    expect(viewer.locator("[data-testid='order-note']")).to_have_text("stdout and stderr merged in exact order")
    expect(viewer.locator(".line .lt")).to_have_count(len(EXPECTED))  # the log is read after the note shows
    assert viewer.locator(".line .lt").all_inner_texts() == EXPECTED
    page.locator(".what-ran").screenshot(path=str(artifacts / "ui-output-mode-what-ran.png"))
    viewer.locator(".log-toolbar").screenshot(path=str(artifacts / "ui-output-mode-merged-log-viewer.png"))


def test_separate_runs_explain_the_read_order_and_browser_scripts_have_no_choice(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name=unique_name("separate"), script=SCRIPT)
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    wait_status(api, run_id)
    page = ui_page
    page.goto(f"/admin/scripts/runs/{run_id}")
    note = page.locator(".log-viewer [data-testid='order-note']")
    expect(note).to_have_text("stdout and stderr in read order")
    expect(note).to_have_attribute("title", re.compile("a stderr line written just after a stdout line can show "
                                                       "above it.*set the script's Output streams to merged"))
    expect(page.locator(".what-ran")).to_contain_text("separate: stdout and stderr, in read order")
    expect(page.locator(".log-viewer .line.err")).to_have_count(PAIRS)  # stderr told apart
    page.locator(".log-viewer .log-toolbar").screenshot(path=str(artifacts / "ui-output-mode-separate-note.png"))

    page.goto(f"/admin/scripts/{script['id']}")
    mode = page.get_by_label("Output streams", exact=True)
    mode.select_option("merged")
    page.get_by_label("Type", exact=True).select_option("browser")
    expect(mode).to_be_disabled()
    expect(mode).to_have_value("separate")
    expect(page.locator("[data-testid='output-mode-hint']")).to_have_text(
        "Browser runs keep stdout and stderr in the order they were written.")

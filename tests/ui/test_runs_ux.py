"""Issue 21, part A, in real Chromium against one real server (shared by the module):
history navigation, the History tab after creating a script, run page facts, the
finished-run log tools and live run lists. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from support import Api, unique_name, wait_status


def _path(page: Page) -> str:
    return page.evaluate("location.pathname")


def test_back_and_forward_walk_the_visited_views_like_any_website(ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name=unique_name("nav"), script="echo hi")
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    wait_status(api, run_id)
    page = ui_page
    page.goto("/admin/scripts")
    expect(page.locator(".home-view")).to_be_visible()
    page.locator(f".sidebar a[href='/admin/scripts/{script['id']}']").first.click()
    expect(page.locator(".script-view .view-title")).to_have_text(script["name"])
    page.locator("a.nav-link", has_text="Runs").click()
    expect(page.locator(".runs-view")).to_be_visible()
    page.locator(f".runs-view tr[data-run-id='{run_id}'] a").click()
    expect(page.locator(".run-view")).to_be_visible()
    visited = ["/admin/scripts", f"/admin/scripts/{script['id']}", "/admin/scripts/runs",
               f"/admin/scripts/runs/{run_id}"]
    assert page.evaluate("history.length") >= 4
    # Back to the start, one view at a time, each view shown for its address.
    for expected, view in zip(reversed(visited[:-1]), (".runs-view", ".script-view", ".home-view"), strict=True):
        page.go_back()
        expect(page).to_have_url(re.compile(re.escape(expected) + "$"))
        expect(page.locator(view)).to_be_visible()
    # And forward again to the run; nothing left beyond it.
    for expected, view in zip(visited[1:], (".script-view", ".runs-view", ".run-view"), strict=True):
        page.go_forward()
        expect(page).to_have_url(re.compile(re.escape(expected) + "$"))
        expect(page.locator(view)).to_be_visible()
    assert page.go_forward() is None or _path(page) == visited[-1]
    assert _path(page) == visited[-1]
    # Reload shows the same view, and Back still works after it.
    page.reload()
    expect(page.locator(".run-view")).to_be_visible()
    page.go_back()
    expect(page.locator(".runs-view")).to_be_visible()
    assert _path(page) == "/admin/scripts/runs"
    page.screenshot(path=str(artifacts / "runs-ux-back-forward.png"))


def test_back_with_unsaved_changes_asks_and_keep_editing_stays_without_losing_forward(ui_page: Page,
                                                                                      api: Api) -> None:
    script = api.create_script(name=unique_name("dirty"), script="echo hi")
    page = ui_page
    page.goto("/admin/scripts/runs")
    expect(page.locator(".runs-view")).to_be_visible()
    page.locator(f".sidebar a[href='/admin/scripts/{script['id']}']").first.click()
    page.get_by_label("Name", exact=True).fill("changed name")
    page.go_back()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep editing").click()
    expect(page).to_have_url(re.compile(re.escape(f"/admin/scripts/{script['id']}") + "$"))
    expect(page.get_by_label("Name", exact=True)).to_have_value("changed name")
    page.go_back()
    page.locator("dialog[open]").get_by_role("button", name="Discard changes").click()
    expect(page.locator(".runs-view")).to_be_visible()
    assert _path(page) == "/admin/scripts/runs"


def test_history_tab_columns_match_their_headers_after_creating_a_script(ui_page: Page, artifacts: Path) -> None:
    page = ui_page
    page.goto("/admin/scripts/new")
    page.get_by_label("Name", exact=True).fill(unique_name("cols"))
    page.locator("#save-script").click()
    expect(page).to_have_url(re.compile(r"/admin/scripts/[0-9a-f]{24}$"))
    page.locator("#run-script").click()
    expect(page.locator(".run-panel [data-testid=run-status]")).to_have_text(re.compile("Succeeded", re.I),
                                                                             timeout=30_000)
    page.locator("#tab-history").click()
    rows = page.locator("#pane-history tbody tr")
    expect(rows).to_have_count(1)
    headers = page.locator("#pane-history thead th").all_inner_texts()
    cells = rows.first.locator("td").all_inner_texts()
    page.screenshot(path=str(artifacts / "runs-ux-history-after-create.png"))
    assert "Script" not in headers
    assert len(headers) == len(cells), (headers, cells)
    assert cells[headers.index("Trigger")] == "manual"


def test_the_run_page_states_what_ran_in_words_ticks_its_duration_and_runs_again(ui_page: Page, api: Api,
                                                                                 artifacts: Path,
                                                                                 tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = api.create_script(name=unique_name("facts"),
                               script=f"echo start; while [ ! -e {gate} ]; do sleep 0.1; done; echo done",
                               env=[{"key": "TARGET", "value": "/srv"}, {"key": "MODE", "value": "fast"}])
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    page = ui_page
    page.goto(f"/admin/scripts/runs/{run_id}")
    expect(page.locator(".run-panel [data-testid=run-status]")).to_have_text(re.compile("Running", re.I))
    duration = page.locator(".run-view .facts [data-fact=Duration] dd")
    # While it runs, the Duration fact follows the live badge (not frozen at the first render).
    expect(duration).to_have_text(re.compile(r"^[1-9]\.\d s$"), timeout=10_000)
    page.wait_for_function(
        "() => document.querySelector('[data-fact=Duration] dd').textContent"
        " === document.querySelector('[data-testid=run-elapsed]').textContent")
    gate.touch()
    expect(page.locator(".run-panel [data-testid=run-status]")).to_have_text(re.compile("Succeeded", re.I),
                                                                             timeout=30_000)
    ran = page.locator(".what-ran")
    expect(ran).to_contain_text(script["name"])
    expect(ran.locator(".env-keys code")).to_have_text(["TARGET", "MODE"])
    expect(ran).not_to_contain_text("/srv")  # names only, never values
    page.locator(".run-view details.meta summary").click()
    labels = page.locator(".meta-list dt").all_inner_texts()
    page.screenshot(path=str(artifacts / "runs-ux-run-facts.png"), full_page=True)
    assert not [label for label in labels if "." in label or label.upper() in ("OUTPUTBYTES", "REQUESTEDBY")], labels
    assert "REQUESTED BY" not in [label.upper() for label in labels]  # it is in the facts already
    assert "OUTPUT SIZE" in [label.upper() for label in labels]
    gate.unlink()
    page.locator("#run-again").click()
    expect(page).not_to_have_url(re.compile(re.escape(run_id) + "$"))
    expect(page).to_have_url(re.compile(r"/admin/scripts/runs/[0-9a-f]{24}$"))
    again = page.evaluate("location.pathname").rsplit("/", 1)[1]
    assert api.get(f"/api/admin/scripts/runs/{again}").json()["scriptId"] == script["id"]
    api.post(f"/api/admin/scripts/runs/{again}/cancel", json={})


def test_runs_page_recent_runs_and_sidebar_follow_runs_started_elsewhere(ui_page: Page, api: Api,
                                                                         artifacts: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = api.create_script(name=unique_name("live"),
                               script=f"while [ ! -e {gate} ]; do sleep 0.1; done; echo done")
    page = ui_page
    page.goto("/admin/scripts/runs")
    expect(page.locator(".runs-view")).to_be_visible()
    page.wait_for_timeout(500)
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]  # not this page
    row = page.locator(f".runs-view tr[data-run-id='{run_id}']")
    expect(row).to_have_attribute("data-status", re.compile("queued|running"), timeout=5_000)
    sidebar_status = page.locator(f".sidebar li[data-id='{script['id']}']")
    expect(sidebar_status).to_contain_text("running", timeout=5_000)
    gate.touch()
    expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(sidebar_status).not_to_contain_text("running", timeout=5_000)
    # Relative times tick: a row's time moved two minutes back is redrawn within the tick.
    page.evaluate("""(id) => {
        const t = document.querySelector(`tr[data-run-id="${id}"] time`);
        t.setAttribute('datetime', new Date(Date.now() - 125000).toISOString());
    }""", run_id)
    expect(row.locator(".rel")).to_contain_text("2 min", timeout=8_000)
    page.screenshot(path=str(artifacts / "runs-ux-live-runs-page.png"))
    # Home's "Recent runs" follows too.
    page.locator("a.brand").click()
    expect(page.locator(".home-view")).to_be_visible()
    page.wait_for_timeout(500)
    gate.unlink()
    second = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    expect(page.locator(f".home-view tr[data-run-id='{second}']")).to_be_visible(timeout=5_000)
    gate.touch()
    expect(page.locator(f".home-view tr[data-run-id='{second}']")).to_have_attribute("data-status", "succeeded",
                                                                                     timeout=10_000)

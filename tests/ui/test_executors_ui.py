"""The Executors page in real headless Chromium against a real server: the serving
process listed alive, its runs linked as they start and end, a silent one shown gone."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from scriptbox.store import Database, utcnow
from scriptbox.store.executors import ExecutorStore
from scriptbox.store.records import Executor
from support import Api, ScriptboxServer, start_run, wait_status


@pytest.fixture()
def silent_executor(server: ScriptboxServer, mongodb_uri: str) -> Iterator[Executor]:
    """An executor of another host that stopped heartbeating a minute ago (as a crashed worker's)."""
    database = Database(mongodb_uri, server.db_name)
    store = ExecutorStore(database)
    executor = Executor(id="other-host/4242/deadbeef", host="other-host", pid=4242, start=1)
    store.register(executor, "worker", 8)
    database.db.executors.update_one({"_id": executor.id},
                                     {"$set": {"heartbeatAt": utcnow() - timedelta(seconds=60)}})
    yield executor
    store.remove(executor.id)
    database.close()


def test_the_executors_page_follows_runs_and_shows_a_silent_executor_gone(
        ui_page: Page, api: Api, server: ScriptboxServer, silent_executor: Executor, artifacts: Path) -> None:
    assert server.process is not None
    ui_page.goto("/admin/scripts")
    ui_page.get_by_role("link", name="Executors").click()
    expect(ui_page.locator(".view-title")).to_have_text("Executors")
    expect(ui_page.get_by_role("link", name="Executors")).to_have_attribute("aria-current", "page")
    mine = ui_page.locator(f'tr.executor-row[data-id*="/{server.process.pid}/"]')
    expect(mine).to_have_count(1)
    expect(mine.locator(".executor-state")).to_have_text("alive")
    expect(mine).to_contain_text(os.uname().nodename)
    expect(mine.locator(".executor-load")).to_have_text("0 / 4")
    expect(mine.locator(".executor-heartbeat")).to_contain_text("s ago")
    gone = ui_page.locator(f'tr.executor-row[data-id="{silent_executor.id}"]')
    expect(gone.locator(".executor-state")).to_have_text("gone")
    expect(gone).to_contain_text("other-host")

    script = api.create_script(name="Long job", script="echo started; exec sleep 60")
    run_id = start_run(api, script["id"])
    # The page follows without a reload: the run appears at its executor's next heartbeat.
    link = mine.locator(f'a.executor-run[href="/admin/scripts/runs/{run_id}"]')
    expect(link).to_be_visible(timeout=20_000)
    expect(mine.locator(".executor-load")).to_have_text("1 / 4")
    ui_page.screenshot(path=str(artifacts / "ui-executors.png"), full_page=True)

    link.click()
    expect(ui_page).to_have_url(f"{server.base_url}/admin/scripts/runs/{run_id}")
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code in (200, 202)
    assert wait_status(api, run_id)["status"] == "canceled"
    ui_page.go_back()
    expect(mine.locator(".executor-load")).to_have_text("0 / 4", timeout=20_000)
    expect(mine.locator("a.executor-run")).to_have_count(0)

"""The Notifications page in real headless Chromium against a real server, with a real HTTP receiver;
also the end-to-end path of a run's end through a real (gevent-patched) server process."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from support import Api, ScriptboxServer, eventually
from support.receiver import Receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    instance = Receiver(hang_s=1.0)
    yield instance
    instance.close()


def test_channels_are_added_tested_edited_and_deleted(ui_page: Page, api: Api, server: ScriptboxServer,
                                                      receiver: Receiver, artifacts: Path) -> None:
    script = api.create_script(name="Nightly backup", script="echo backed up")
    target = f"ok/{uuid.uuid4().hex[:8]}"
    ui_page.goto("/admin/scripts")
    ui_page.get_by_role("link", name="Notifications").click()
    expect(ui_page.locator(".view-title")).to_have_text("Notifications")
    expect(ui_page.locator(".history-info")).to_have_text("No channels yet.")

    name = f"ops-{uuid.uuid4().hex[:6]}"
    ui_page.get_by_label("Name", exact=True).fill(name)
    ui_page.get_by_label("URL", exact=True).fill(receiver.url(target, auth="bot:hunter2secret@"))
    ui_page.get_by_label("Succeeded").check()
    ui_page.get_by_label("Limit to scripts").select_option(script["id"])
    ui_page.get_by_role("button", name="Add channel").click()
    row = ui_page.locator("tr.notification-row", has_text=name)
    # The first channel makes the server load Apprise (about a second of CPU, more on a busy machine).
    expect(row).to_contain_text("bot:****@", timeout=30_000)
    expect(row.locator(".channel-events")).to_have_text("Failed, Timed out, Succeeded")
    expect(row).to_contain_text("Nightly backup")
    expect(row.locator(".last-sent")).to_have_text("never")
    assert "hunter2secret" not in ui_page.content()

    row.get_by_role("button", name="Test").click()
    expect(row.locator(".test-result")).to_have_text("Test message sent")
    expect(row.locator(".last-sent")).not_to_have_text("never")
    [hit] = receiver.hits_to(target)
    assert hit.body["title"] == "Scriptbox: test notification"
    ui_page.screenshot(path=str(artifacts / "ui-notifications.png"), full_page=True)

    # Editing sends the masked URL back unchanged: the stored one (with its password) is kept.
    row.get_by_role("button", name="Edit").click()
    expect(ui_page.get_by_label("URL", exact=True)).to_have_value(row.locator(".channel-url").inner_text())
    ui_page.get_by_label("Name", exact=True).fill(f"{name}-renamed")
    ui_page.get_by_label("Failed").uncheck()
    ui_page.get_by_role("button", name="Save changes").click()
    renamed = ui_page.locator("tr.notification-row", has_text=f"{name}-renamed")
    expect(renamed.locator(".channel-events")).to_have_text("Timed out, Succeeded")
    api.post(f"/api/admin/scripts/{script['id']}/run?wait=30")
    hits = eventually(lambda: len(receiver.hits_to(target)) == 2 and receiver.hits_to(target),
                      message="the run end reaches the channel")
    assert hits[1].body["title"] == "Scriptbox: Nightly backup succeeded, exit code 0"
    # Without SCRIPTBOX_PUBLIC_URL the link is the server's own address.
    assert f"Run: {server.base_url}/admin/scripts/runs/" in hits[1].body["message"]
    eventually(lambda: 'scriptbox_notifications_total{result="sent"} 2.0' in api.get("/metrics").text,
               message="the test message and the run end are counted as sent")
    assert hits[1].headers["Authorization"] == "Basic " + base64.b64encode(b"bot:hunter2secret").decode()

    renamed.get_by_role("button", name="Delete").click()
    ui_page.locator("dialog.modal").get_by_role("button", name="Delete").click()
    expect(renamed).to_have_count(0)
    assert all(c["name"] != f"{name}-renamed" for c in api.get("/api/admin/notifications").json()["notifications"])


def test_a_failing_test_and_a_bad_url_are_shown(ui_page: Page, receiver: Receiver, artifacts: Path) -> None:
    ui_page.goto("/admin/scripts/notifications")
    ui_page.get_by_label("Name", exact=True).fill(f"broken-{uuid.uuid4().hex[:6]}")
    ui_page.get_by_label("URL", exact=True).fill("nope://nowhere")
    ui_page.get_by_role("button", name="Add channel").click()
    # This server's first Apprise use loads its plugins: seconds beside the desktop bundle's build.
    expect(ui_page.locator(".form-errors")).to_contain_text("Apprise cannot use this URL", timeout=20_000)

    name = f"failing-{uuid.uuid4().hex[:6]}"
    ui_page.get_by_label("Name", exact=True).fill(name)
    ui_page.get_by_label("URL", exact=True).fill(receiver.url(f"fail/{uuid.uuid4().hex[:8]}"))
    ui_page.get_by_label("Enabled", exact=True).uncheck()
    ui_page.get_by_role("button", name="Add channel").click()
    row = ui_page.locator("tr.notification-row", has_text=name)
    expect(row).to_contain_text("disabled")
    row.get_by_role("button", name="Test").click()
    expect(row.locator(".test-result")).to_contain_text("Test failed")
    expect(row.locator(".test-result")).to_contain_text("500")
    expect(row.locator(".last-error.error-current")).to_contain_text("500")
    row.screenshot(path=str(artifacts / "ui-notification-failed.png"))


def test_what_is_typed_while_the_scripts_list_loads_is_kept(ui_page: Page, api: Api) -> None:
    """The form is usable at once; the "Limit to scripts" list arriving later must not wipe it.
    (It did: the view reset the form after that list loaded, so a quick typist lost the name
    and URL, and "Add channel" then stopped at the browser's "fill in this field".)"""
    script = api.create_script(name=f"Held list {uuid.uuid4().hex[:6]}", script="true")
    held: list[Route] = []
    ui_page.route(lambda url: urlsplit(url).path == "/api/admin/scripts", lambda route: held.append(route))
    ui_page.goto("/admin/scripts/notifications")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        ui_page.wait_for_timeout(20)
    assert held, "the page asks for the scripts list"
    name = f"quick-{uuid.uuid4().hex[:6]}"
    ui_page.get_by_label("Name", exact=True).fill(name)
    ui_page.get_by_label("URL", exact=True).fill("json://127.0.0.1:9/quick")

    for route in held:
        route.continue_()
    ui_page.unroute_all()
    scripts = ui_page.get_by_label("Limit to scripts")
    expect(scripts.locator("option", has_text=script["name"])).to_have_count(1)
    expect(ui_page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(ui_page.get_by_label("URL", exact=True)).to_have_value("json://127.0.0.1:9/quick")
    ui_page.get_by_role("button", name="Add channel").click()
    row = ui_page.locator("tr.notification-row", has_text=name)
    expect(row).to_contain_text("json://127.0.0.1:9/quick", timeout=30_000)
    row.get_by_role("button", name="Delete").click()
    ui_page.locator("dialog.modal").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)

"""The script list and form as a new operator meets them (issue 21, items 6-9 and 12), in
real Chromium against a real server. Screenshots go to tests/artifacts/scripts-ux-*.png."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from support import Api, ScriptboxServer, eventually, unique_name, wait_status
from ui.conftest import open_page

CODE = ".code-host .cm-content"


def code_text(page: Page) -> str:
    """The editor's text (every line of a short script is rendered)."""
    return str(page.evaluate(
        "() => [...document.querySelectorAll('.code-host .cm-line')].map((l) => l.textContent).join('\\n')"))


def focused_field(page: Page) -> str:
    """What has keyboard focus: the code editor, or a control's name."""
    return str(page.evaluate("""() => {
        const el = document.activeElement;
        if (el.closest('.cm-content')) return 'code';
        return el.getAttribute('name') || el.id || el.tagName;
    }"""))


def test_changing_the_type_swaps_an_untouched_starter_and_explains_the_runner(ui_page: Page, artifacts: Path) -> None:
    ui_page.goto("/admin/scripts/new")
    kind = ui_page.get_by_label("Type", exact=True)
    runner = ui_page.get_by_label("Runner", exact=True)
    hint = ui_page.get_by_test_id("runner-hint")
    expect(ui_page.locator(CODE)).to_contain_text("#!/usr/bin/env bash")
    expect(hint).to_contain_text("$NAME")

    kind.select_option("node")
    expect(ui_page.locator(CODE)).to_contain_text("process.env.NAME")
    assert "#!/usr/bin/env bash" not in code_text(ui_page)
    expect(hint).to_contain_text("process.env.NAME")
    runner.select_option("vm2")
    expect(ui_page.locator(CODE)).to_contain_text("no require")
    expect(hint).to_contain_text("no require")
    expect(hint).to_contain_text("frozen env")
    kind.select_option("browser")
    expect(ui_page.locator(CODE)).to_contain_text("Web Worker")
    expect(hint).to_contain_text("navigator is a stub")
    ui_page.screenshot(path=str(artifacts / "scripts-ux-starter-browser.png"))

    # The operator's own code is never replaced.
    ui_page.locator(CODE).click()
    ui_page.keyboard.press("Control+A")
    ui_page.keyboard.insert_text("console.log('mine');\n")
    kind.select_option("bash")
    expect(hint).to_contain_text("$NAME")
    assert code_text(ui_page) == "console.log('mine');\n"


def test_tab_passes_the_code_editor_until_it_is_entered_and_says_how_to_leave(ui_page: Page, artifacts: Path) -> None:
    ui_page.goto("/admin/scripts/new")
    ui_page.get_by_label("Timeout (ms)").focus()
    before = code_text(ui_page)
    hint = ui_page.locator(".code-hint")
    ui_page.keyboard.press("Tab")  # the Enabled switch
    ui_page.keyboard.press("Tab")
    assert focused_field(ui_page) == "code"
    expect(hint).to_have_text(re.compile("Tab moves to the next field"))
    expect(hint).to_be_visible()
    ui_page.screenshot(path=str(artifacts / "scripts-ux-editor-tab-hint.png"))
    ui_page.keyboard.press("Tab")  # straight through: nothing typed, nothing indented
    assert focused_field(ui_page) != "code"
    assert code_text(ui_page) == before
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()

    ui_page.keyboard.press("Shift+Tab")
    assert focused_field(ui_page) == "code"
    ui_page.keyboard.press("Control+End")
    ui_page.keyboard.type("x")  # entered deliberately: now Tab indents
    expect(hint).to_have_text(re.compile("Esc, then Tab"))
    ui_page.keyboard.press("Home")
    ui_page.keyboard.press("Tab")
    assert focused_field(ui_page) == "code"
    assert code_text(ui_page) == before + "  x"
    ui_page.keyboard.press("Escape")
    expect(hint).to_have_text(re.compile("Press Tab to leave"))
    ui_page.wait_for_timeout(2100)  # longer than CodeMirror's own 2 s escape window
    ui_page.keyboard.press("Tab")
    assert focused_field(ui_page) != "code"
    assert code_text(ui_page) == before + "  x"


def test_on_a_phone_run_brings_the_output_into_view(open_ui_page: Callable[..., Page], api: Api,
                                                      artifacts: Path) -> None:
    script = api.create_script(name="Phone run", script="echo from the phone; sleep 1; echo done")
    page = open_ui_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.goto(f"/admin/scripts/{script['id']}")
    output = page.locator(".run-panel .output")
    expect(output).not_to_be_in_viewport()  # two screens below the form
    page.locator("#run-script").click()
    expect(output).to_contain_text("from the phone")
    expect(output).to_be_in_viewport()
    expect(page.locator(".run-panel [data-testid=run-status]")).to_be_in_viewport()
    page.screenshot(path=str(artifacts / "scripts-ux-phone-run.png"))
    expect(page.locator(".run-panel [data-testid=run-status]")).to_have_attribute("data-status", "succeeded")
    # Back at the top, the header says how the run went and leads to the output.
    page.locator(".main").evaluate("el => el.scrollTo(0, 0)")
    page.evaluate("() => window.scrollTo(0, 0)")
    chip = page.locator("#run-chip")
    expect(chip).to_be_visible()
    expect(chip).to_contain_text("succeeded")
    chip.click()
    expect(output).to_be_in_viewport()


def test_form_errors_go_when_the_field_changes_say_what_conflicts_and_stay_below_the_header(
        open_ui_page: Callable[..., Page], api: Api, artifacts: Path) -> None:
    taken = api.create_script(name="Taken")["codeIdentifier"]
    page = open_ui_page(viewport={"width": 1000, "height": 620})
    page.goto("/admin/scripts/new")
    page.get_by_label("Name", exact=True).fill("Second")
    ident = page.get_by_label("Code identifier", exact=True)
    ident.fill(taken)
    page.locator("#save-script").click()
    toast = page.locator(".toast-error")
    expect(toast).to_contain_text(f"the code identifier '{taken}' is already used by another script")
    assert "definition is invalid" not in toast.inner_text()
    error = page.locator("[data-field=codeIdentifier] .field-error")
    expect(error).to_contain_text("already used")
    expect(ident).to_be_focused()
    ident.press("End")
    ident.type("-2")
    expect(error).to_be_hidden()  # stale as soon as the field changed, before any save
    expect(ident).not_to_have_attribute("aria-invalid", "true")

    timeout = page.get_by_label("Timeout (ms)")
    timeout.fill("99")
    # Scrolled down to the run panel, the bad field is far above: focusing it must show its label.
    page.locator(".main").evaluate("el => el.scrollTo(0, el.scrollHeight)")
    page.locator("#save-script").click()
    timeout_error = page.locator("[data-field=timeoutMs] .field-error")
    expect(timeout_error).to_have_text("must be at least 100 ms")
    expect(timeout).to_be_focused()
    page.wait_for_timeout(300)
    header = page.locator(".view-head").bounding_box()
    label = page.locator("[data-field=timeoutMs] .label").bounding_box()
    assert header and label
    assert label["y"] >= header["y"] + header["height"], (label, header)
    page.screenshot(path=str(artifacts / "scripts-ux-error-below-header.png"))
    timeout.fill("250")
    expect(timeout_error).to_be_hidden()


def test_seventy_scripts_filter_count_group_sort_and_toggle_safely(ui_page: Page, api: Api, artifacts: Path) -> None:
    tag = unique_name("bk")[:30]
    long_name = "Rotate the application logs of every web frontend and compress the old ones " + tag
    made = []
    for i in range(70):
        fields: dict[str, object] = {"name": f"Job {i:02d} {tag}", "description": f"routine number {i}"}
        if i < 8:
            fields["tags"] = [tag, "ops"]
        if i == 8:
            fields.update(name=long_name, type="node", runner="vm2", script="console.log(1)",
                          description="compresses yesterday's files")
        made.append(api.create_script(**fields))
    recent = made[40]
    wait_status(api, api.post(f"/api/admin/scripts/{recent['id']}/run", json={}).json()["runId"], timeout=60)
    total = len(api.get("/api/admin/scripts").json()["scripts"])

    ui_page.goto("/admin/scripts")
    count = ui_page.get_by_test_id("list-count")
    expect(count).to_have_text(str(total))
    search = ui_page.get_by_role("searchbox", name=re.compile("Filter scripts"))
    search.fill(tag)
    expect(count).to_have_text(f"70 of {total}")
    search.fill(f"{tag} ops")  # every word must match: name and tag
    expect(count).to_have_text(f"8 of {total}")
    group = ui_page.locator(f"#scripts-list .script-group[data-tag='{tag}']")
    expect(group.locator(".script-item")).to_have_count(8)
    expect(group.locator(".group-title")).to_contain_text(tag)
    search.fill(f"yesterday {tag}")  # the description
    expect(count).to_have_text(f"1 of {total}")
    search.fill(f"vm2 {tag}")  # the runner
    expect(count).to_have_text(f"1 of {total}")
    name = ui_page.locator("#scripts-list .script-name", has_text=long_name)
    expect(name).to_have_text(long_name)
    assert name.evaluate("el => el.scrollWidth <= el.clientWidth"
                         " && el.offsetHeight > 1.5 * parseFloat(getComputedStyle(el).lineHeight)"), "wrapped, not cut"
    ui_page.screenshot(path=str(artifacts / "scripts-ux-long-name.png"))

    search.fill(tag)
    ui_page.get_by_label("Group by tag").uncheck()
    ui_page.get_by_label("Sort scripts").select_option("recent")
    expect(ui_page.locator("#scripts-list .script-item").first).to_have_attribute("data-id", recent["id"])
    ui_page.screenshot(path=str(artifacts / "scripts-ux-recent.png"))

    # One Tab stop per row: from one row's link, Tab reaches the next row's link.
    links = ui_page.locator("#scripts-list a.script-link")
    links.nth(0).focus()
    ui_page.keyboard.press("Tab")
    expect(links.nth(1)).to_be_focused()
    ui_page.keyboard.press("ArrowDown")
    expect(links.nth(2)).to_be_focused()

    # The row's switch asks before it disables anything.
    victim = made[3]
    switch = ui_page.get_by_label(f"Enabled: {victim['name']}")
    switch.click()
    dialog = ui_page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Disable “{victim['name']}”?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(switch).to_be_checked()
    assert api.get(f"/api/admin/scripts/{victim['id']}").json()["enabled"] is True
    switch.click()
    ui_page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    eventually(lambda: api.get(f"/api/admin/scripts/{victim['id']}").json()["enabled"] is False, timeout=10,
               message="the confirmed switch disables the script")
    expect(switch).not_to_be_checked()

    # A disabled script's Run button cannot be pressed, and says why.
    ui_page.locator(f"#scripts-list .script-item[data-id='{victim['id']}'] a").click()
    run = ui_page.locator("#run-script")
    expect(run).to_be_disabled()
    expect(ui_page.locator("#run-note")).to_contain_text("Disabled")
    ui_page.screenshot(path=str(artifacts / "scripts-ux-disabled-run.png"))
    ui_page.locator(CODE).click()
    ui_page.keyboard.press("Control+Enter")
    expect(ui_page.locator(".toast-error")).to_contain_text("disabled")
    assert api.get(f"/api/admin/scripts/runs?scriptId={victim['id']}").json()["runs"] == []


def test_the_page_says_when_the_server_is_unreachable_and_catches_up_when_it_is_back(
        browser: Browser, server_factory: Callable[..., ScriptboxServer], tmp_path: Path, artifacts: Path) -> None:
    # Its own server: this one is stopped and started again on the same port, as a restart does.
    server = server_factory(env={"HOME": str(tmp_path)}).start()
    page, errors = open_page(browser, server)
    try:
        page.goto("/admin/scripts")
        note = page.get_by_role("status").filter(has_text="unreachable")
        expect(page.get_by_text("No scripts yet")).to_be_visible()
        expect(note).to_have_count(0)

        server.stop()
        expect(note).to_be_visible(timeout=15_000)  # after 5 s without the server, not at its first hiccup
        page.screenshot(path=str(artifacts / "scripts-ux-unreachable.png"))

        server.start()
        name = unique_name("made-while-away")
        server.api().create_script(name=name, script="echo hi")
        # Reconnected: the note goes and the lists catch up with what happened meanwhile.
        expect(note).to_have_count(0, timeout=30_000)
        expect(page.locator(".sidebar").get_by_text(name)).to_be_visible()
        assert not errors, errors
    finally:
        page.context.close()

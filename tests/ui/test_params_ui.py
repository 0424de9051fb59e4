"""Run parameters and secrets in the admin page (SPEC §8.2, §8.3), in real Chromium against
a real server: the parameters editor, the run dialog, secret env rows, a run's params in the
run view and "Run again". One server and one browser for the module (tests/ui/conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from support import REPO, Api, unique_name, wait_status
from ui.test_admin_ui import OUTPUT, STATUS, set_code
from ui.test_axe import AXE, scan

ECHO_PARAMS = (
    'echo "HOST=$HOST COUNT=$COUNT RATIO=$RATIO DRY_RUN=$DRY_RUN MODE=$MODE"\n'
    'printf "NOTE=%s|\\n" "$NOTE"\n'
    '[ "$TOKEN" = "tok-12345" ] && echo token-ok\n'
    '[ "$API_KEY" = "key-value-1" ] && echo key-kept\n'
    'exit 0\n'
)
PARAMS: list[dict[str, Any]] = [
    {"name": "HOST", "label": "Host name", "type": "string", "required": True, "pattern": "[a-z0-9.-]+",
     "default": "web-1"},
    {"name": "COUNT", "type": "int", "min": 1, "max": 10, "default": 3},
    {"name": "RATIO", "type": "number", "min": 0, "max": 1, "default": 0.5},
    {"name": "MODE", "type": "enum", "choices": ["fast", "safe"], "default": "safe"},
    {"name": "DRY_RUN", "type": "bool", "default": True},
    {"name": "NOTE", "type": "text", "description": "free text, several lines"},
    {"name": "TOKEN", "type": "secret", "required": True},
]


def card(page: Page, index: int) -> Locator:
    return page.locator(".param-row").nth(index)


def define(page: Page, index: int, decl: dict[str, Any]) -> None:
    """Adds a parameter card and fills it the way an admin would."""
    page.get_by_role("button", name="+ Add parameter").click()
    row = card(page, index)
    expect(row.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.type(decl["name"])
    row.get_by_label("Type").select_option(decl["type"])
    if "label" in decl:
        row.get_by_label("Label").fill(decl["label"])
    if "description" in decl:
        row.get_by_label("Description").fill(decl["description"])
    if decl.get("required"):
        row.get_by_label("Required").check()
    if "choices" in decl:
        row.get_by_label("Choices (one per line)").fill("\n".join(decl["choices"]))
    if "pattern" in decl:
        row.get_by_label("Pattern (regex)").fill(decl["pattern"])
    for bound in ("min", "max"):
        if bound in decl:
            row.get_by_label("Minimum" if bound == "min" else "Maximum").fill(str(decl[bound]))
    default = row.get_by_label("Default")
    if decl["type"] == "bool":
        default.set_checked(decl["default"])
    elif decl["type"] == "enum":
        default.select_option(decl["default"])
    elif "default" in decl:
        default.fill(str(decl["default"]))


def test_the_editor_defines_every_type_shows_errors_in_place_reorders_and_keeps_secrets(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    name = unique_name("params-editor")
    ui_page.goto("/admin/scripts/new")
    ui_page.get_by_label("Name", exact=True).fill(name)
    set_code(ui_page, ECHO_PARAMS)
    order = [PARAMS[i] for i in (0, 1, 2, 4, 3, 5, 6)]  # MODE after DRY_RUN: moved up below
    for i, decl in enumerate(order):
        define(ui_page, i, {**decl, "name": "PATH"} if decl["name"] == "COUNT" else decl)
    ui_page.get_by_role("button", name="+ Add variable").click()
    ui_page.get_by_label("Variable 1 name").fill("API_KEY")
    ui_page.get_by_label("Variable 1 is a secret").check()
    expect(ui_page.get_by_label("Variable 1 value")).to_have_attribute("type", "password")
    ui_page.get_by_label("Variable 1 value").fill("key-value-1")

    # The server refuses the reserved name: the error sits under that card's Name field.
    ui_page.locator("#save-script").click()
    bad_name = card(ui_page, 1).get_by_label("Name", exact=True)
    error = card(ui_page, 1).locator("[data-param-field=name] .field-error")
    expect(error).to_contain_text("reserved")
    expect(bad_name).to_have_attribute("aria-invalid", "true")
    expect(bad_name).to_be_focused()
    assert error.get_attribute("id") in (bad_name.get_attribute("aria-describedby") or "")
    expect(card(ui_page, 0).locator(".field-error:visible")).to_have_count(0)
    bad_name.fill("COUNT")

    # Reorder with the keyboard: MODE one up; the focus stays on the button, the move is announced.
    up = card(ui_page, 4).get_by_role("button", name="Move MODE up")
    up.focus()
    ui_page.keyboard.press("Enter")
    expect(ui_page.locator(".param-legend")).to_have_text(
        [f"Parameter {i + 1}: {p['name']}" for i, p in enumerate(PARAMS)])
    expect(card(ui_page, 3).get_by_role("button", name="Move MODE up")).to_be_focused()
    expect(ui_page.locator(".params-field [role=status]")).to_have_text("MODE moved to position 4 of 7")
    expect(card(ui_page, 0).get_by_role("button", name="Move HOST up")).to_be_disabled()

    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".view-title")).to_have_text(name)
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    script = next(s for s in api.get("/api/admin/scripts").json()["scripts"] if s["name"] == name)
    stored = {p["name"]: p for p in script["params"]}
    assert [p["name"] for p in script["params"]] == [p["name"] for p in PARAMS]
    for decl in PARAMS:
        for key, value in decl.items():
            assert stored[decl["name"]][key] == value, (decl["name"], key)
    assert script["env"] == [{"key": "API_KEY", "value": None, "secret": True}]
    # The saved secret is shown as "set", never as a value (even before a reload).
    expect(ui_page.locator(".env-row .secret-set")).to_be_visible()
    expect(ui_page.get_by_label("Variable 1 value")).to_be_hidden()

    ui_page.reload()
    expect(card(ui_page, 6).get_by_label("Name", exact=True)).to_have_value("TOKEN")
    for i, decl in enumerate(PARAMS):
        expect(card(ui_page, i).get_by_label("Type")).to_have_value(decl["type"])
    expect(card(ui_page, 0).get_by_label("Pattern (regex)")).to_have_value("[a-z0-9.-]+")
    expect(card(ui_page, 0).get_by_label("Required")).to_be_checked()
    expect(card(ui_page, 1).get_by_label("Maximum")).to_have_value("10")
    expect(card(ui_page, 2).get_by_label("Default")).to_have_value("0.5")
    expect(card(ui_page, 3).get_by_label("Choices (one per line)")).to_have_value("fast\nsafe")
    expect(card(ui_page, 3).get_by_label("Default")).to_have_value("safe")
    expect(card(ui_page, 4).get_by_label("Default")).to_be_checked()
    expect(card(ui_page, 5).get_by_label("Description")).to_have_value("free text, several lines")
    expect(card(ui_page, 6).get_by_label("Default")).to_have_attribute("type", "password")
    expect(ui_page.locator(".env-row .secret-set")).to_have_text("set")
    expect(ui_page.get_by_role("button", name="Replace the secret value of variable 1")).to_be_visible()
    # (The script's code compares with the value, so look at the form's fields, not the page.)
    assert not ui_page.evaluate(
        "[...document.querySelectorAll('input, textarea')].some((el) => el.value.includes('key-value-1'))")

    # Scheduled runs: inputs for the non-secret params (empty: the default at each run); the
    # required secret has no default, so the server refuses next to it; a default fixes it.
    ui_page.get_by_label("Run on a schedule").check()
    ui_page.get_by_label("Cron", exact=True).fill("@yearly")
    schedule = ui_page.locator(".schedule-params")
    schedule.get_by_label("COUNT").fill("4")
    schedule.get_by_label("MODE").select_option("fast")
    expect(schedule.get_by_label("RATIO")).to_have_attribute("placeholder", "default: 0.5")
    ui_page.locator("#save-script").click()
    expect(schedule.locator("[data-field='schedule.params.TOKEN'] .field-error")).to_have_text("is required")
    card(ui_page, 6).get_by_label("Default").fill("tok-12345")
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    expect(card(ui_page, 6).locator(".secret-set")).to_be_visible()
    ui_page.locator(".schedule-field").screenshot(path=str(artifacts / "ui-schedule-params.png"))
    saved = api.get(f"/api/admin/scripts/{script['id']}").json()
    assert saved["schedule"]["params"] == {"COUNT": 4, "MODE": "fast"}
    assert saved["params"][6]["hasDefault"] is True and saved["params"][6]["default"] is None

    # Saving another change sends null for both secrets, and the server keeps them: a run
    # without params gets the secret default and the secret env value.
    ui_page.locator("[data-field=description] textarea").fill("edited")
    ui_page.locator("#save-script").click()
    expect(ui_page.locator(".dirty-mark")).to_be_hidden()
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    assert wait_status(api, run_id)["status"] == "succeeded"
    log = api.get(f"/api/admin/scripts/runs/{run_id}/log").text
    assert "key-kept" in log and "token-ok" in log
    assert "HOST=web-1 COUNT=3 RATIO=0.5 DRY_RUN=true MODE=safe" in log


def open_dialog(page: Page) -> Locator:
    page.locator("#run-script").click()
    dialog = page.locator("dialog.run-dialog")
    expect(dialog).to_be_visible()
    return dialog


def param_field(dialog: Locator, name: str) -> Locator:
    return dialog.locator(f".run-param[data-param='{name}']")


def create_params_script(api: Api, **fields: Any) -> dict[str, Any]:
    return api.create_script(name=unique_name("params-run"), script=ECHO_PARAMS, params=PARAMS,
                             env=[{"key": "API_KEY", "value": "key-value-1", "secret": True}], **fields)


def test_the_run_dialog_checks_values_shows_server_errors_in_place_runs_and_runs_again(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    script = create_params_script(api)
    ui_page.goto(f"/admin/scripts/{script['id']}")
    expect(ui_page.locator(".view-title")).to_have_text(script["name"])

    # Esc cancels, and the focus goes back to Run.
    dialog = open_dialog(ui_page)
    expect(dialog.get_by_label("Host name")).to_be_focused()
    ui_page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(ui_page.locator("#run-script")).to_be_focused()
    assert api.get("/api/admin/scripts/runs", params={"scriptId": script["id"]}).json()["runs"] == []

    dialog = open_dialog(ui_page)
    count = dialog.get_by_label("COUNT")
    expect(count).to_have_attribute("type", "number")
    expect(count).to_have_attribute("min", "1")
    expect(count).to_have_attribute("max", "10")
    expect(count).to_have_value("3")
    expect(dialog.get_by_label("RATIO")).to_have_value("0.5")
    expect(dialog.get_by_role("switch", name="DRY_RUN")).to_be_checked()
    expect(dialog.get_by_label("MODE")).to_have_value("safe")
    assert dialog.get_by_label("NOTE").evaluate("el => el.tagName") == "TEXTAREA"
    token = dialog.get_by_label("TOKEN")
    expect(token).to_have_attribute("type", "password")
    expect(token).to_have_attribute("aria-required", "true")
    expect(dialog.get_by_label("Host name")).to_have_value("web-1")
    # Tab stays inside the dialog: from its last control back to its first.
    dialog.get_by_role("button", name="▶ Run").focus()
    ui_page.keyboard.press("Tab")
    expect(dialog.get_by_label("Host name")).to_be_focused()

    # Checked here first: out of range and missing, shown on the fields, nothing sent.
    count.fill("50")
    count.press("Enter")
    count_error = param_field(dialog, "COUNT").locator(".field-error")
    expect(count_error).to_have_text("At most 10.")
    expect(count).to_have_attribute("aria-invalid", "true")
    assert count_error.get_attribute("id") in (count.get_attribute("aria-describedby") or "")
    expect(param_field(dialog, "TOKEN").locator(".field-error")).to_have_text("Required.")
    expect(count).to_be_focused()
    dialog.screenshot(path=str(artifacts / "ui-run-dialog-errors.png"))

    # The declaration changed on the server meanwhile: its 400 lands on the HOST field.
    api.put(f"/api/admin/scripts/{script['id']}", json={"params": [
        {**PARAMS[0], "pattern": "db-[0-9]+", "default": "db-1"}, *PARAMS[1:]]})
    count.fill("7")
    token.fill("tok-12345")
    dialog.get_by_label("NOTE").fill("two\nlines")
    token.press("Enter")
    host_error = param_field(dialog, "HOST").locator(".field-error")
    expect(host_error).to_contain_text("must match the pattern")
    expect(dialog.get_by_label("Host name")).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_label("Host name")).to_be_focused()
    expect(count).not_to_have_attribute("aria-invalid", "true")

    dialog.get_by_label("Host name").fill("db-7")
    token.fill("tok-12345")
    dialog.get_by_label("NOTE").press("Control+Enter")
    expect(dialog).to_have_count(0)
    expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "succeeded", timeout=30_000)
    output = ui_page.locator(OUTPUT)
    expect(output).to_contain_text("HOST=db-7 COUNT=7 RATIO=0.5 DRY_RUN=true MODE=safe")
    expect(output).to_contain_text("NOTE=two")
    expect(output).to_contain_text("lines|")
    expect(output).to_contain_text("token-ok")
    expect(output).to_contain_text("key-kept")
    run_id = ui_page.locator(".run-panel").get_attribute("data-run-id")
    run = api.get(f"/api/admin/scripts/runs/{run_id}").json()
    assert run["params"]["TOKEN"] == "***" and run["params"]["COUNT"] == 7
    assert run["trigger"] == "manual"

    # The run view lists the params (the secret as ***) and runs again with them.
    ui_page.goto(f"/admin/scripts/runs/{run_id}")
    shown = ui_page.locator(".run-params-section")
    expect(shown.locator("[data-param=HOST] dd")).to_have_text("db-7")
    expect(shown.locator("[data-param=TOKEN] dd")).to_have_text("***")
    expect(shown.locator("[data-param=DRY_RUN] dd")).to_have_text("true")
    ui_page.screenshot(path=str(artifacts / "ui-run-params.png"))
    ui_page.get_by_role("button", name="↻ Run again").click()
    dialog = ui_page.locator("dialog.run-dialog")
    expect(dialog.get_by_label("Host name")).to_have_value("db-7")
    expect(dialog.get_by_label("COUNT")).to_have_value("7")
    expect(dialog.get_by_label("NOTE")).to_have_value("two\nlines")
    expect(dialog.get_by_label("TOKEN")).to_have_value("")
    expect(param_field(dialog, "TOKEN")).to_contain_text("type it again")
    dialog.get_by_label("COUNT").press("Enter")
    expect(param_field(dialog, "TOKEN").locator(".field-error")).to_have_text("Required.")
    dialog.get_by_label("TOKEN").fill("tok-12345")
    dialog.get_by_label("TOKEN").press("Enter")
    expect(ui_page).not_to_have_url(re.compile(f"{run_id}$"))
    expect(ui_page.locator(OUTPUT)).to_contain_text("token-ok", timeout=30_000)
    expect(ui_page.locator(OUTPUT)).to_contain_text("HOST=db-7 COUNT=7")


def test_a_browser_script_gets_typed_frozen_params_and_its_secret_is_masked_in_the_page(
        ui_page: Page, api: Api) -> None:
    code = (
        'console.log("n+1=" + (params.N + 1), "flag=" + params.FLAG, "frozen=" + Object.isFrozen(params));\n'
        'console.log("pass=" + params.PASS);\n'
        'throw new Error("failed with " + params.PASS);\n'
    )
    script = api.create_script(name=unique_name("browser-params"), type="browser", runner="browser", script=code,
                               params=[{"name": "N", "type": "int", "default": 2},
                                       {"name": "FLAG", "type": "bool", "default": True},
                                       {"name": "PASS", "type": "secret", "required": True}])
    ui_page.goto(f"/admin/scripts/{script['id']}")
    dialog = open_dialog(ui_page)
    dialog.get_by_label("N", exact=True).fill("41")
    dialog.get_by_role("switch", name="FLAG").uncheck()
    dialog.get_by_label("PASS").fill("hunter2-secret")
    dialog.get_by_label("PASS").press("Enter")
    expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "failed", timeout=30_000)
    output = ui_page.locator(OUTPUT)
    expect(output).to_contain_text("n+1=42 flag=false frozen=true")
    expect(output).to_contain_text("pass=***")
    expect(output).to_contain_text("failed with ***")
    assert "hunter2-secret" not in output.inner_text()
    run_id = ui_page.locator(".run-panel").get_attribute("data-run-id")
    run = api.get(f"/api/admin/scripts/runs/{run_id}").json()
    assert run["params"] == {"N": 41, "FLAG": False, "PASS": "***"}
    assert "hunter2-secret" not in api.get(f"/api/admin/scripts/runs/{run_id}/log").text
    assert "hunter2-secret" not in str(run)


MASK_PIECES = """async ([source, secrets, text, step]) => {
  const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
  const { StreamMasker } = await import(url);
  const masker = new StreamMasker(secrets);
  let out = "";
  const held = [];
  for (let i = 0; i < text.length; i += step) {
    out += masker.feed(text.slice(i, i + step));
    held.push(masker.held.length);
  }
  return { out: out + masker.flush(), maxHeld: Math.max(...held) };
}"""


def test_the_pages_masker_hides_secrets_fed_in_any_pieces(browser: Browser) -> None:
    """ui/src/secretMask.js, which masks browser runs' output in the page, in Chromium."""
    source = (REPO / "ui" / "src" / "secretMask.js").read_text(encoding="utf-8")
    secrets = ["hunter2-secret", "abcd", "abcdef", "abc"]  # "abc": too short to mask
    text = "x hunter2-secret y abcdefg abcd abc hunt\nhunter2-secre"
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>mask</title>")
        for step in (1, 2, 3, 5, 64):
            result = page.evaluate(MASK_PIECES, [source, secrets, text, step])
            assert result["out"] == "x *** y ***g *** abc hunt\nhunter2-secre", step
            assert result["maxHeld"] <= len("hunter2-secret") - 1
    finally:
        page.close()


def test_screenshots_of_the_run_dialog_and_the_editor_at_390_px(
        open_ui_page: Callable[..., Page], api: Api, artifacts: Path) -> None:
    # (Scripts without params starting at once is what test_admin_ui.py's runs already do.)
    script = create_params_script(api, description="Restarts a service on one host")
    page = open_ui_page(viewport={"width": 390, "height": 844})
    page.context.add_init_script(path=str(AXE))
    page.goto(f"/admin/scripts/{script['id']}")
    expect(page.locator(".view-title")).to_have_text(script["name"])
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide at 390 px"
        dialog = open_dialog(page)
        box = dialog.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        page.screenshot(path=str(artifacts / f"ui-run-dialog-{scheme}-390.png"))
        # axe (serious and critical rules) on the dialog showing an error, and on the editors.
        dialog.get_by_label("TOKEN").press("Enter")
        expect(param_field(dialog, "TOKEN").locator(".field-error")).to_be_visible()
        found = {"dialog": scan(page, "dialog.run-dialog")}
        page.keyboard.press("Escape")
        for part, selector in (("params-editor", ".params-field"), ("secret-env", ".env-field")):
            page.locator(selector).evaluate("el => el.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(artifacts / f"ui-{part}-{scheme}-390.png"))
            found[part] = scan(page, selector)
        assert not any(found.values()), found

"""The API reference page (/admin/scripts/api) in real Chromium: every operation of the
served OpenAPI document, reached from the navigation, behind auth."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from ui.conftest import Api, ScriptboxServer


def test_the_reference_page_shows_every_operation_of_the_document(ui_page: Page, api: Api, artifacts: Path) -> None:
    document = api.get("/api/openapi.json").json()
    operations = [(method, path, op) for path, item in document["paths"].items() for method, op in item.items()]
    ui_page.goto("/admin/scripts")
    ui_page.locator("#nav-api").click()
    expect(ui_page).to_have_url("/admin/scripts/api")
    expect(ui_page.locator("#nav-api")).to_have_attribute("aria-current", "page")
    cards = ui_page.locator("article.api-op")
    expect(cards).to_have_count(len(operations))
    for method, path, op in operations:
        card = ui_page.locator(f"article.api-op[data-method='{method}'][data-path='{path}']")
        expect(card.locator(".api-summary")).to_have_text(op["summary"])
        for status in op["responses"]:
            expect(card.locator(".api-status", has_text=status)).to_have_count(1)
    create = ui_page.locator("article.api-op[data-method='post'][data-path='/api/admin/scripts']")
    expect(create.locator(".api-auth")).to_have_text("auth")
    expect(ui_page.locator("article.api-op[data-path='/healthz'] .api-auth")).to_have_text("no auth")
    # The body's schema is a link to its fields, with the rules the server enforces.
    create.get_by_role("link", name="ScriptDefinitionCreate").click()
    schema = ui_page.locator("#schema-ScriptDefinitionCreate")
    expect(schema).to_be_in_viewport()
    row = schema.locator("tr", has=ui_page.locator("code", has_text="codeIdentifier"))
    expect(row.locator(".api-rules")).to_contain_text("^[a-z0-9][a-z0-9_-]{0,63}$")
    expect(row).to_contain_text("required")
    ui_page.screenshot(path=str(artifacts / "api-reference.png"))


def test_the_page_and_its_document_need_the_admin(browser: Browser, server: ScriptboxServer) -> None:
    context = browser.new_context(base_url=server.base_url)
    try:
        for path in ("/admin/scripts/api", "/api/openapi.json"):
            response = context.request.get(path)
            assert response.status == 401, path
    finally:
        context.close()

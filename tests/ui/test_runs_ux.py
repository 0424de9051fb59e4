"""Issue 21, part A, in real Chromium against one real server (shared by the module):
history navigation, the History tab after creating a script, run page facts, the
finished-run log tools and live run lists. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Callable
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


# stdout and stderr are separate pipes, numbered in the order they are read:
# the pauses around each stderr line let the server read what came before it
# first (a run starts in a few ms now, and bash prints 1000 lines in as few).
LONG = ("for i in $(seq 1 2500); do printf '\\033[32mline %d\\033[0m\\n' $i; "
        "if [ $((i % 1000)) -eq 0 ]; then sleep 0.3; echo \"warn $i\" >&2; sleep 0.3; fi; done")


def test_a_finished_runs_whole_log_is_paged_searched_wrapped_timed_copied_and_downloadable(
        open_ui_page: Callable[..., Page], api: Api, artifacts: Path) -> None:
    script = api.create_script(name=unique_name("long"), script=LONG)
    run_id = api.post(f"/api/admin/scripts/{script['id']}/run", json={}).json()["runId"]
    assert wait_status(api, run_id)["status"] == "succeeded"
    page = open_ui_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/admin/scripts/runs/{run_id}")
    viewer = page.locator(".log-viewer")
    expect(viewer.locator(".log-info")).to_have_text("2,502 lines", timeout=20_000)
    # The last page first (where runs end); every line is there, not the last 2,000.
    expect(viewer.locator(".log-range")).to_have_text(re.compile(r"Lines 2,001–2,502 of 2,502 · page 3 of 3"))
    expect(viewer.locator(".line .lt").filter(has_text=re.compile(r"^line 2500$"))).to_have_count(1)
    # Colours drawn, not escape boxes; stderr in the order it was produced (after line 1000).
    first_green = viewer.locator(".line .lt span.ansi-fg2").first
    expect(first_green).to_have_text(re.compile(r"^line \d+$"))
    viewer.get_by_role("button", name="« First").click()
    expect(viewer.locator(".line[data-line='1'] .lt")).to_have_text("line 1")
    # Search: a count, next/previous across pages.
    viewer.get_by_label("Search the log").fill("warn")
    expect(viewer.locator(".log-count")).to_have_text("1 of 2 lines (2 matches)")
    expect(viewer.locator(".line.current-match mark")).to_have_text("warn")
    # stderr is shown among stdout in the order the two pipes were read (one sequence for
    # both), marked as stderr.
    expect(viewer.locator(".line.current-match")).to_have_class(re.compile(r"\berr\b"))
    viewer.get_by_role("button", name="Next match").click()
    expect(viewer.locator(".log-count")).to_have_text("2 of 2 lines (2 matches)")
    expect(viewer.locator(".line.current-match .lt")).to_have_text("warn 2000")
    at = int(viewer.locator(".line.current-match").get_attribute("data-line") or 0)
    expect(viewer.locator(".log-range")).to_contain_text(f"page {(at - 1) // 1000 + 1} of 3")  # its page
    # Wrap and timestamps toggle; times are the chunks' (a clock time with milliseconds).
    body = viewer.locator(".log-body")
    viewer.get_by_label("Wrap").uncheck()
    expect(body).to_have_class(re.compile(r"\bnowrap\b"))
    viewer.get_by_label("Timestamps").check()
    expect(viewer.locator(".line.current-match .ts")).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))
    page.screenshot(path=str(artifacts / "runs-ux-log-viewer.png"), full_page=True)
    viewer.get_by_role("button", name="Copy").click()
    expect(page.locator(".toast")).to_contain_text("Copied 2,502 lines")
    copied = page.evaluate("navigator.clipboard.readText()")
    expected = [f"line {i}" for i in range(1, 2501)] + ["warn 1000", "warn 2000"]
    assert "\x1b" not in copied and sorted(copied.split("\n")) == sorted(expected)
    href = viewer.get_by_role("link", name="Download").get_attribute("href")
    assert href == f"/api/admin/scripts/runs/{run_id}/log?download=1&plain=1"
    plain = api.get(href)
    assert plain.headers["Content-Disposition"].startswith("attachment") and "\x1b" not in plain.text


def test_the_live_output_panel_has_a_wrap_switch_and_copies_its_output(open_ui_page: Callable[..., Page],
                                                                        api: Api) -> None:
    script = api.create_script(name=unique_name("tools"), script="printf 'a %.0s' $(seq 1 200); echo; echo second")
    page = open_ui_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/admin/scripts/{script['id']}")
    page.locator("#run-script").click()
    panel = page.locator(".run-panel")
    expect(panel.locator(".output")).to_contain_text("second", timeout=30_000)
    first = panel.locator(".output .line").first
    wrapped = first.bounding_box()
    panel.get_by_label("Wrap").uncheck()
    expect(panel.locator(".output")).to_have_class(re.compile(r"\bnowrap\b"))
    unwrapped = first.bounding_box()
    assert wrapped and unwrapped and unwrapped["height"] < wrapped["height"]  # one line, scrolled sideways
    panel.get_by_role("button", name="Copy").click()
    expect(page.locator(".toast")).to_contain_text("Output copied")
    assert page.evaluate("navigator.clipboard.readText()").rstrip("\n").endswith(" \nsecond")


def test_the_live_output_panel_searches_numbers_and_times_lines_as_they_arrive(open_ui_page: Callable[..., Page],
                                                                               api: Api, artifacts: Path,
                                                                               tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    script = api.create_script(name=unique_name("live-find"),
                               script=f"seq 1 20000; sleep 3; echo 'warn one' >&2; "
                                      f"while [ ! -e {gate} ]; do sleep 0.05; done; echo 'then warn two'; echo done")
    page = open_ui_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page.goto(f"/admin/scripts/{script['id']}")
    panel = page.locator(".run-panel")
    search = panel.get_by_label("Search the output")
    search.fill("warn")  # before the run: the query applies to lines as they arrive
    page.locator("#run-script").click()
    count = panel.locator(".log-count")
    expect(count).to_have_text("1 of 1 lines (1 matches)", timeout=30_000)
    current = panel.locator(".output .line.current-match")
    expect(current).to_have_text("warn one")
    assert page.evaluate("CSS.highlights.get('output-find').size") == 1
    # Numbers count the whole output (the first 10,000 lines were trimmed), times are clock times.
    panel.get_by_label("Line numbers").check()
    panel.get_by_label("Timestamps").check()
    gutter = current.evaluate("el => [getComputedStyle(el, '::before').content,"
                              " getComputedStyle(el, '::after').content]")
    assert gutter[0] == '"20001"' and re.fullmatch(r'"\d\d:\d\d:\d\d\.\d{3}"', gutter[1]), gutter
    text_box, line_box = current.evaluate(
        "el => { const r = document.createRange(); r.selectNodeContents(el);"
        " return [r.getBoundingClientRect().left, el.getBoundingClientRect().left]; }")
    assert text_box - line_box > 100  # the gutter sits beside the text, not over it
    # Each line's time is when the server read it (the output event's `at`), also when the
    # panel joined late and got the lines replayed at once: the sleep shows between them.
    # (Read times, not print times: a slow viewer holds the reader back, so of the 3 s
    # pause at least 1 s is asserted.)
    before = panel.locator(".output .line[data-ln='20000']").get_attribute("data-ts") or ""
    after = current.get_attribute("data-ts") or ""
    assert _clock_ms(after) - _clock_ms(before) >= 1000, (before, after)
    # A line that arrives later is found without searching again; Enter / Shift+Enter move.
    gate.touch()
    expect(count).to_have_text("1 of 2 lines (2 matches)", timeout=30_000)
    search.press("Enter")
    expect(count).to_have_text("2 of 2 lines (2 matches)")
    expect(current).to_have_text("then warn two")
    search.press("Shift+Enter")
    expect(current).to_have_text("warn one")
    expect(panel.locator("[data-testid=run-status]")).to_have_text(re.compile("Succeeded", re.I), timeout=30_000)
    page.screenshot(path=str(artifacts / "runs-ux-live-panel-tools-390-dark.png"), full_page=True)
    panel.locator(".output-tools").screenshot(path=str(artifacts / "runs-ux-live-panel-toolbar-390-dark.png"))
    # Copy stays the output's text: no numbers or times in it.
    assert "20001" not in panel.locator(".output .line").last.inner_text()
    search.fill("")
    expect(count).to_have_text("")
    assert page.evaluate("CSS.highlights.get('output-find').size") == 0


def _clock_ms(clock: str) -> int:
    h, m, s = clock.split(":")
    return round(((int(h) * 60 + int(m)) * 60 + float(s)) * 1000)

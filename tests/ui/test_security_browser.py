"""Issue 20, the browser half, replayed in real Chromium against a real server.

* A browser script shares its Web Worker's realm with the bootstrap that reports its
  outcome: no prototype patch, global replacement or listener trick may turn a throwing
  script into a success, change its recorded message, or end it without a word.
* An output flood neither freezes the admin page nor delays the run's timeout, and says
  what it dropped.
* Bidi controls and other invisible characters in output are shown as markers, never
  applied (live panel and a finished run's replay).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ui.conftest import Api
from ui.test_admin_ui import OUTPUT, STATUS, shown_run_id, wait_finished

# Each attack patches something the old bootstrap relied on, then throws. The run must
# end `failed`, exit 1, with the script's own message in meta.error and in the log.
FORGERIES = {
    "promise_then": """
        const then = Promise.prototype.then;
        Promise.prototype.then = function (ok, _bad) { return then.call(this, ok, () => ok()); };
        throw new Error('forged-then');""",
    "promise_then_after_await": """
        await null;
        Promise.prototype.then = function (ok) { ok(); };
        throw new Error('forged-then-late');""",
    "promise_constructor_and_species": """
        class Fake extends Promise { then(ok) { ok(); } }
        Object.defineProperty(Promise.prototype, 'constructor', { get() { return Fake; } });
        Object.defineProperty(Promise, Symbol.species, { get() { return Fake; } });
        Promise.prototype.then = function (ok) { ok(); };
        throw new Error('forged-species');""",
    "set_size_getter": """
        Object.defineProperty(Set.prototype, 'size', { get() { return 0; } });
        Map.prototype.get = () => undefined;
        setTimeout(() => { throw new Error('forged-size'); }, 300);""",
    "array_json_string": """
        Array.prototype.push = function () { return 0; };
        Array.prototype.join = () => '';
        Array.prototype.map = () => [];
        Array.prototype[Symbol.iterator] = function* () {};
        Object.defineProperty(Array.prototype, '0', { set() {}, configurable: true });
        String.prototype.split = () => [];
        String.prototype.slice = () => '';
        JSON.stringify = () => '"fine"';
        Function.prototype.call = () => undefined;
        Function.prototype.apply = () => undefined;
        Reflect.apply = () => undefined;
        Object.defineProperty = () => {};
        throw new Error('forged-array');""",
    "error_formatting": """
        Error.prepareStackTrace = () => 'Error: all good';
        Object.defineProperty(Error.prototype, 'message', { get() { return 'all good'; } });
        Error.prototype.toString = () => 'all good';
        globalThis.Error = function () { return {}; };
        throw new RangeError('forged-error');""",
    "event_listener_tricks": """
        self.addEventListener('error', (e) => { e.stopImmediatePropagation(); e.preventDefault(); }, true);
        self.addEventListener('unhandledrejection', (e) => { e.stopImmediatePropagation(); e.preventDefault(); }, true);
        Event.prototype.preventDefault = () => {};
        Object.defineProperty(ErrorEvent.prototype, 'error', { get() { return undefined; } });
        Object.defineProperty(ErrorEvent.prototype, 'message', { get() { return ''; } });
        queueMicrotask(() => { throw new Error('forged-listener'); });""",
    "post_message_from_a_prototype": """
        let proto = self;
        while (proto) {
          const d = Object.getOwnPropertyDescriptor(proto, 'postMessage');
          if (d && d.value) try { d.value.call(self, { t: 'done', ok: true }); } catch (e) {}
          proto = Object.getPrototypeOf(proto);
        }
        for (const C of [DedicatedWorkerGlobalScope, WorkerGlobalScope]) {
          try { C.prototype.close.call(self); } catch (e) {}
        }
        throw new Error('forged-post');""",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_no_prototype_patch_changes_a_browser_runs_recorded_outcome(ui_page: Page, api: Api, name: str) -> None:
    message = FORGERIES[name].rsplit("Error('", 1)[1].split("'", 1)[0]
    script = api.create_script(name=f"Forgery {name}", type="browser", timeoutMs=20_000, script=FORGERIES[name])
    ui_page.goto(f"/admin/scripts/{script['id']}")
    ui_page.locator("#run-script").click()
    expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "failed", timeout=30_000)
    run = wait_finished(api, shown_run_id(ui_page))
    assert (run["status"], run["exitCode"]) == ("failed", 1), run
    assert message in run["meta"]["error"], run["meta"]
    log = api.get(f"/api/admin/scripts/runs/{run['id']}/log").text
    assert f"Uncaught {'RangeError' if name == 'error_formatting' else 'Error'}: {message}" in log, log


def test_an_untouched_script_still_succeeds_and_a_patch_without_a_throw_is_no_failure(
        ui_page: Page, api: Api) -> None:
    """The control case: the same patches without a throw end `succeeded`."""
    code = FORGERIES["promise_constructor_and_species"].replace("throw new Error('forged-species');",
                                                                 "console.log('patched, no throw');")
    script = api.create_script(name="Patched but fine", type="browser", timeoutMs=20_000, script=code)
    ui_page.goto(f"/admin/scripts/{script['id']}")
    ui_page.locator("#run-script").click()
    expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(ui_page.locator(OUTPUT)).to_contain_text("patched, no throw")
    assert wait_finished(api, shown_run_id(ui_page))["status"] == "succeeded"


FLOOD_TIMEOUT_MS = 10_000
FLOOD_BODIES = {
    "flood": 'for (;;) console.log("z".repeat(1e5));',
    # The same CPU-bound worker without output: the baseline of what a busy worker costs.
    "spin": "for (;;) {}",
}
# Installed before the run starts: a requestAnimationFrame loop recording the gaps between
# frames (a busy main thread shows as one long gap), and the page time at which the
# panel shows that the timeout stopped the worker.
MEASURE_JS = """() => {
    window.__gaps = []; window.__stoppedAt = null; let last = performance.now();
    const loop = (t) => {
        window.__gaps.push(t - last); last = t;
        if (window.__stoppedAt === null) window.__raf = requestAnimationFrame(loop);
    };
    window.__raf = requestAnimationFrame(loop);
    const panel = document.querySelector('.run-panel');
    new MutationObserver((_m, observer) => {
        if (panel.textContent.includes('the worker was stopped')) {
            window.__stoppedAt = performance.now(); observer.disconnect();
        }
    }).observe(panel, { childList: true, subtree: true, characterData: true });
    return performance.now();
}"""


def measure_timeout_run(page: Page, api: Api, body: str) -> tuple[float, float, dict[str, object]]:
    """Runs a browser script that never ends; returns (longest frame gap in ms until the
    timeout stopped it, seconds between the click and the stop, the finished run)."""
    script = api.create_script(name="Flood", type="browser", timeoutMs=FLOOD_TIMEOUT_MS,
                               script=f'console.log("start");\n{body}')
    page.goto(f"/admin/scripts/{script['id']}")
    expect(page.locator(".run-panel")).to_be_attached()
    clicked = page.evaluate(MEASURE_JS)
    page.locator("#run-script").click()
    expect(page.locator(STATUS)).to_have_attribute("data-status", "timed_out", timeout=60_000)
    stopped_at, gaps = page.evaluate("() => [window.__stoppedAt, window.__gaps]")
    assert stopped_at is not None, "the panel never said the worker was stopped"
    return max(gaps), (stopped_at - clicked) / 1000, wait_finished(api, shown_run_id(page))


@pytest.mark.parametrize("kind", sorted(FLOOD_BODIES))
def test_an_output_flood_neither_freezes_the_page_nor_delays_the_timeout(ui_page: Page, api: Api, kind: str) -> None:
    gap_ms, stopped_after, run = measure_timeout_run(ui_page, api, FLOOD_BODIES[kind])
    print(f"{kind}: longest frame gap {gap_ms:.0f} ms, stopped {stopped_after:.2f} s after the click "
          f"(timeout {FLOOD_TIMEOUT_MS / 1000:.0f} s)")
    assert run["status"] == "timed_out"
    # Bounds generous enough for a shared 2-core machine at load ~10 (where the flood
    # measured a 1-1.8 s longest gap and a stop 1-2 s late, the busy worker alone 0.1-0.6 s
    # and 0.2-0.7 s), yet far from the old bootstrap's 12 s freeze and 24 s end.
    # bench/browser_flood.py prints median and spread against that baseline.
    assert gap_ms < 4000, f"the page froze for {gap_ms:.0f} ms"
    assert stopped_after < FLOOD_TIMEOUT_MS / 1000 + 4, f"stopped {stopped_after:.1f} s after the click"
    log = api.get(f"/api/admin/scripts/runs/{run['id']}/log").text
    assert log.startswith("start\n")
    if kind == "flood":
        assert re.search(r"\[scriptbox\] \d+ characters of output \(\d+ writes\) dropped: "
                         r"browser runs may write 512 KiB/s", log), log[-2000:]
        expect(ui_page.locator(OUTPUT)).to_contain_text("dropped: browser runs may write")


RLO = "\u202e"


def test_bidi_and_invisible_characters_show_as_markers_never_applied(
        ui_page: Page, api: Api, artifacts: Path) -> None:
    script = api.create_script(name="Bidi", script=(
        "printf 'invoice_\\xe2\\x80\\xaefdp.exe\\n'\n"
        "printf 'a\\xe2\\x81\\xa6b\\xe2\\x81\\xa9c\\xe2\\x80\\x8ed\\xe2\\x80\\x8fe\\xd8\\x9cf\\n'\n"
        "printf 'c1:\\xc2\\x85\\xc2\\x9b|zw\\xe2\\x80\\x8b|bom\\xef\\xbb\\xbf|\\n'\n"
        "printf '\\033[31mred \\xe2\\x80\\xae text\\033[0m plain\\n'\n"))
    ui_page.goto(f"/admin/scripts/{script['id']}")
    ui_page.locator("#run-script").click()
    expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "succeeded")
    output = ui_page.locator(OUTPUT)
    for view in ("live", "replay"):
        if view == "replay":
            run_id = shown_run_id(ui_page)
            ui_page.goto(f"/admin/scripts/runs/{run_id}")
            expect(ui_page.locator(STATUS)).to_have_attribute("data-status", "succeeded")
        expect(output).to_contain_text("invoice_⟨U+202E⟩fdp.exe")
        expect(output).to_contain_text("a⟨U+2066⟩b⟨U+2069⟩c⟨U+200E⟩d⟨U+200F⟩e⟨U+061C⟩f")
        expect(output).to_contain_text("c1:⟨U+0085⟩⟨U+009B⟩|zw⟨U+200B⟩|bom⟨U+FEFF⟩|")
        text = output.inner_text()
        for raw in (RLO, "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u0085", "\u009b", "\u200b", "\ufeff"):
            assert raw not in text, (view, hex(ord(raw)))
        marker = output.locator(".invisible-char").first
        expect(marker).to_have_attribute("title", "U+202E RIGHT-TO-LEFT OVERRIDE (shown, not applied)")
        # ANSI colours still apply around a marker.
        expect(output.locator(".ansi-fg1").first).to_contain_text("red ⟨U+202E⟩ text")
    ui_page.screenshot(path=str(artifacts / "output-bidi-markers.png"))

"""Benchmark: an output flood in a browser run (issue 20).

A `browser` script `for (;;) console.log("z".repeat(1e5))` with a 10 s timeout, run
from the admin page in Debian's headless Chromium. Measured in the page: the longest
gap between animation frames until the timeout stopped the worker (a busy main thread
shows as one long gap), and how long after the click the panel said the worker was
stopped (the timeout plus starting the run).

Raw baseline, in this same process and interleaved with the flood repetitions: the same
page runs `for (;;) {}` (a worker just as busy, with no output) with the same timeout,
so what the flood itself costs is the difference. A third variant logs one string over
and over, separating the cost of the output from that of the script's own allocations.

Repeated --reps times (default 3); prints median and spread.

    .venv/bin/python bench/browser_flood.py [--reps 3]
"""

from __future__ import annotations

import argparse
import time

from _harness import AUTH, BenchServer, spread
from playwright.sync_api import Page, sync_playwright

TIMEOUT_MS = 10_000
BODIES = {
    "flood": 'for (;;) console.log("z".repeat(1e5));',
    # The same flood without allocating a new string per line: what the script's own
    # allocations (V8's garbage collector threads) cost the page, apart from its output.
    "flood, one string": 'const z = "z".repeat(1e5); for (;;) console.log(z);',
    "spin (baseline)": "for (;;) {}",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
MEASURE_JS = """() => {
    window.__gaps = []; window.__stoppedAt = null; let last = performance.now();
    const loop = (t) => {
        window.__gaps.push(t - last); last = t;
        if (window.__stoppedAt === null) requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
    const panel = document.querySelector('.run-panel');
    new MutationObserver((_m, observer) => {
        if (panel.textContent.includes('the worker was stopped')) {
            window.__stoppedAt = performance.now(); observer.disconnect();
        }
    }).observe(panel, { childList: true, subtree: true, characterData: true });
    return performance.now();
}"""


def one_run(page: Page, server: BenchServer, body: str) -> tuple[float, float]:
    """(longest frame gap in ms, seconds from the click until the worker was stopped)."""
    script_id = server.create_script(type="browser", timeoutMs=TIMEOUT_MS, script=f'console.log("start");\n{body}')
    page.goto(f"{server.base}/admin/scripts/{script_id}")
    page.wait_for_selector(".run-panel", state="attached")
    clicked = page.evaluate(MEASURE_JS)
    page.click("#run-script")
    page.wait_for_function("() => window.__stoppedAt !== null", timeout=120_000)
    stopped_at, gaps = page.evaluate("() => [window.__stoppedAt, window.__gaps]")
    page.wait_for_selector('.run-panel [data-testid=run-status][data-status="timed_out"]', timeout=120_000)
    return max(gaps), (stopped_at - clicked) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    server = BenchServer()
    results: dict[str, dict[str, list[float]]] = {k: {"gap": [], "stop": []} for k in BODIES}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            context = browser.new_context(http_credentials={"username": AUTH[0], "password": AUTH[1]},
                                          viewport={"width": 1280, "height": 800})
            page = context.new_page()
            for _ in range(args.reps):
                for kind, body in BODIES.items():  # interleaved: both see the same machine load
                    gap, stop = one_run(page, server, body)
                    results[kind]["gap"].append(gap)
                    results[kind]["stop"].append(stop)
                    time.sleep(1)
            browser.close()
    finally:
        server.stop()
    print(f"browser run, timeout {TIMEOUT_MS / 1000:.0f} s, {args.reps} repetitions each")
    for kind, r in results.items():
        print(f"  {kind:18} longest frame gap {spread(r['gap'], ' ms', digits=0)}")
        print(f"  {'':18} stopped after     {spread(r['stop'], ' s', digits=2)}")


if __name__ == "__main__":
    main()

"""Browser scripts get their run's parameters as a frozen global `params`, in a
real Chromium Web Worker built from ui/src/worker-bootstrap.js (as the admin
page builds it; the page hands the run's params in as the 4th argument)."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Browser

from support import REPO

RUN_IN_WORKER = """async ([bootstrapSource, params]) => {
  const body = `
    const bootstrap = ${bootstrapSource};
    const run = bootstrap(self, {PLAIN: "p"}, 0, ${JSON.stringify(params)});
    run(async function (env, console) {
      const types = {};
      for (const [k, v] of Object.entries(params)) types[k] = v === null ? "null" : typeof v;
      let replaced = true;
      try { params = {}; } catch (err) { replaced = false; }
      let changed = true;
      try { params.count = 1; } catch (err) { changed = false; }
      console.log(JSON.stringify({types, frozen: Object.isFrozen(params), replaced: replaced && params.count !== 5,
                                  changed: params.count !== 5, count: params.count, flag: params.dry_run,
                                  env: env.PLAIN}));
    });`;
  const worker = new Worker(URL.createObjectURL(new Blob([body], {type: "text/javascript"})));
  return await new Promise((resolve) => {
    const out = [];
    worker.onmessage = (ev) => {
      if (ev.data.t === "out") out.push(...ev.data.parts);
      if (ev.data.t === "done") resolve({out, ok: ev.data.ok, error: ev.data.error});
    };
    worker.onerror = (ev) => resolve({out, ok: false, error: String(ev.message)});
  });
}"""


def test_a_browser_script_sees_typed_frozen_params(browser: Browser) -> None:
    source = (REPO / "ui" / "src" / "worker-bootstrap.js").read_text(encoding="utf-8")
    source = source.split("export function bootstrap", 1)[1]
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><title>params</title>")
        params = {"host": "db-1", "count": 5, "ratio": 0.5, "dry_run": True, "token": "***", "notes": None}
        result: dict[str, Any] = page.evaluate(RUN_IN_WORKER, ["function bootstrap" + source, params])
    finally:
        page.close()
    assert result["ok"], result
    assert result["out"][0] == "stdout"
    seen = json.loads(result["out"][1])
    assert seen == {"types": {"host": "string", "count": "number", "ratio": "number", "dry_run": "boolean",
                              "token": "string", "notes": "null"},
                    "frozen": True, "replaced": False, "changed": False, "count": 5, "flag": True, "env": "p"}

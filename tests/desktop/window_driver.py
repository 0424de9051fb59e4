"""A desktop session driven from inside, as the window tests' subject.

Run under an X display: `python window_driver.py SCENARIO REPORT.json [SCREENSHOT.png]`.
It calls scriptbox.desktop.run_desktop() with an `on_window_ready` probe, which
looks at the signed-in page through the window itself, then acts out SCENARIO:

  inspect      check the page, reload it, check again, screenshot, close the window
  kill-server  SIGKILL the server child and wait for the launcher to notice
  hold         report READY and keep the window open (the test signals us)

The report (JSON) gets what the probe saw plus run_desktop's return code. Settings
come from the environment (SCRIPTBOX_DATA_DIR, SCRIPTBOX_ADMIN_PASSWORD, ...).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from scriptbox.config import load_settings  # noqa: E402
from scriptbox.desktop import run_desktop  # noqa: E402
from tests.support.wait import eventually  # noqa: E402

SCRIPT_NAME = "Desktop probe script"


def page_value(window: Any, expression: str) -> Any:
    """Evaluate `expression` in the page. run_js, not evaluate_js: the admin page's
    CSP forbids the eval() that evaluate_js wraps code in."""
    raw = window.run_js(f"JSON.stringify({expression})")
    return None if raw is None else json.loads(raw)


def wait_for(window: Any, expression: str, timeout: float = 15.0) -> Any:
    """Poll the page until `expression` is truthy; returns its last value."""
    try:
        return eventually(lambda: page_value(window, expression), timeout, interval=0.1)
    except AssertionError:
        return page_value(window, expression)


def fetch_status(window: Any, path: str) -> Any:
    """HTTP status of a same-origin GET made by the page (with its cookies)."""
    window.run_js(
        f"window.__probe = null; fetch({json.dumps(path)}, {{credentials: 'same-origin'}})"
        ".then(function (r) { window.__probe = r.status; }, function (e) { window.__probe = String(e); });"
    )
    return wait_for(window, "window.__probe", timeout=10)


def server_processes() -> tuple[psutil.Process, list[psutil.Process]]:
    """The `serve` child of this launcher and its own children (the embedded DB)."""
    for child in psutil.Process().children():
        if "serve" in child.cmdline():
            return child, child.children(recursive=True)
    raise AssertionError("no serve child found")


def describe_page(window: Any, report: dict[str, Any], prefix: str) -> None:
    report[f"{prefix}_url"] = window.get_current_url()
    report[f"{prefix}_history_length"] = page_value(window, "history.length")
    report[f"{prefix}_page_status"] = fetch_status(window, "/admin/scripts")
    report[f"{prefix}_api_status"] = fetch_status(window, "/api/admin/scripts")
    report[f"{prefix}_list_text"] = wait_for(
        window,
        f"(function () {{ var l = document.getElementById('scripts-list');"
        f" return l && l.innerText.indexOf({json.dumps(SCRIPT_NAME)}) >= 0 ? l.innerText : null; }})()",
    )


def window_facts() -> dict[str, Any]:
    """Title, size and icon of our top-level window, as the X server sees them."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, check=True).stdout
    match = re.search(r'(0x[0-9a-f]+) "Scriptbox": \("scriptbox" "scriptbox"\)\s+(\d+)x(\d+)', tree)
    if match is None:
        return {"window_found": False, "tree": tree}
    props = subprocess.run(
        ["xprop", "-id", match.group(1), "WM_NAME", "_NET_WM_ICON"], capture_output=True, text=True, check=True
    ).stdout
    return {
        "window_found": True,
        "window_size": [int(match.group(2)), int(match.group(3))],
        "window_has_icon": "_NET_WM_ICON(CARDINAL) = " in props,
    }


def inspect(window: Any, report: dict[str, Any], screenshot: Path | None) -> None:
    base = "{0.scheme}://{0.netloc}".format(urlsplit(window.get_current_url()))
    report["base_url"] = base
    server, database = server_processes()
    report["server_cmdline"] = server.cmdline()
    report["database_cmdlines"] = [p.cmdline() for p in database]
    # Remote clients still need Basic auth: the cookie is the window's alone.
    report["anonymous_api_status"] = requests.get(base + "/api/admin/scripts", timeout=10).status_code
    report["forged_login_status"] = requests.post(
        base + "/desktop-login", json={"token": "0" * 64}, timeout=10
    ).status_code
    password = load_settings().admin_password or ""
    created = requests.post(
        base + "/api/admin/scripts",
        json={"name": SCRIPT_NAME, "codeIdentifier": "desktop-probe", "type": "bash", "script": "echo hi"},
        auth=("admin", password),
        timeout=10,
    )
    report["create_status"] = created.status_code
    window.run_js("location.reload();")
    time.sleep(0.5)
    describe_page(window, report, "first")
    report.update(window_facts())
    if screenshot is not None:
        subprocess.run(["import", "-window", "root", str(screenshot)], check=True, timeout=30)
    window.run_js("location.reload();")
    time.sleep(0.5)
    describe_page(window, report, "reloaded")
    window.destroy()


def kill_server(report: dict[str, Any]) -> None:
    server, database = server_processes()
    report["server_pid"] = server.pid
    report["database_pids"] = [p.pid for p in database]
    server.kill()  # a crash: the launcher must close the window by itself


def hold(report: dict[str, Any], report_path: Path) -> None:
    """Leave the window open; the test signals the launcher."""
    server, database = server_processes()
    report["server_pid"] = server.pid
    report["database_pids"] = [p.pid for p in database]
    report_path.write_text(json.dumps(report))
    print("READY", flush=True)


def main() -> int:
    scenario, report_path = sys.argv[1], Path(sys.argv[2])
    screenshot = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    report: dict[str, Any] = {"scenario": scenario}
    started = time.monotonic()

    def probe(window: Any) -> None:
        report["ready_after_s"] = round(time.monotonic() - started, 2)
        if scenario == "inspect":
            inspect(window, report, screenshot)
        elif scenario == "kill-server":
            kill_server(report)
        elif scenario == "hold":
            hold(report, report_path)
        else:
            raise ValueError(scenario)

    code = run_desktop(load_settings(), on_window_ready=probe)
    report["exit_code"] = code
    report["total_s"] = round(time.monotonic() - started, 2)
    report_path.write_text(json.dumps(report))
    return code


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(main())

"""`app.py desktop` for real: a pywebview (Qt WebEngine) window under Xvfb onto a real
server with its embedded SecantusDB, driven from inside by window_driver.py."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from .desktop_support import (
    REPO,
    desktop_env,
    finish,
    kill_all,
    processes_using,
    start_driver,
    wait_for_line,
    wait_until_gone,
)

PASSWORD = "desktop-test-password-9f2c"
HEX_TOKEN = re.compile(r"[0-9a-f]{64}")
STOP_TIMEOUT_S = 30.0


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_window_opens_signed_in_survives_reload_and_closing_stops_everything(
    display: str, data_dir: Path, tmp_path: Path, artifacts: Path
) -> None:
    report_path = tmp_path / "report.json"
    screenshot = artifacts / "desktop-window.png"
    screenshot.unlink(missing_ok=True)
    driver = start_driver("inspect", report_path, desktop_env(display, data_dir, PASSWORD), screenshot)
    code, output = finish(driver)
    left = wait_until_gone(data_dir, STOP_TIMEOUT_S)
    kill_all(left)
    report = json.loads(report_path.read_text())
    assert code == 0, output
    assert report["exit_code"] == 0

    # Signed in without a password: the page, its API calls, the rendered list.
    for prefix in ("first", "reloaded"):
        assert report[f"{prefix}_url"].endswith("/admin/scripts"), report
        assert report[f"{prefix}_page_status"] == 200, report
        assert report[f"{prefix}_api_status"] == 200, report
        assert "Desktop probe script" in (report[f"{prefix}_list_text"] or ""), report
    # The one-time login page is not in the window's history.
    assert report["first_history_length"] == 1
    # Basic auth still guards everyone else, and a guessed token gets nowhere.
    assert report["anonymous_api_status"] == 401
    assert report["forged_login_status"] in (401, 403)
    assert report["create_status"] == 201

    # Title, default size, icon.
    assert report["window_found"], report.get("tree")
    assert report["window_size"] == [1280, 860]
    assert report["window_has_icon"]
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000

    # Neither the password nor a token shows up in a command line, a URL or the output.
    command_lines = " ".join([*report["server_cmdline"], *sum(report["database_cmdlines"], [])])
    for text in (command_lines, report["first_url"], report["reloaded_url"], output):
        assert PASSWORD not in text
    assert not HEX_TOKEN.search(command_lines + report["first_url"] + output)
    assert "token" not in report["first_url"]

    # Closing the window stopped the server and its database.
    assert left == [], [p.info for p in left]


def test_server_crash_closes_the_window_and_takes_the_database_along(
    display: str, data_dir: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "report.json"
    driver = start_driver("kill-server", report_path, desktop_env(display, data_dir, PASSWORD))
    code, output = finish(driver)
    left = wait_until_gone(data_dir, STOP_TIMEOUT_S)
    kill_all(left)
    report = json.loads(report_path.read_text())
    assert report["database_pids"], report  # there was an embedded database to lose
    assert code == 1, output
    assert "exited unexpectedly" in output
    assert left == [], [p.info for p in left]


@pytest.mark.parametrize(
    ("sig", "to_group", "expected_exit"),
    [
        (signal.SIGTERM, False, 0),  # closes the window like the user would, then stops the server
        (signal.SIGINT, True, 0),  # Ctrl-C in the terminal: the launcher's whole process group
        (signal.SIGKILL, False, -signal.SIGKILL),  # a launcher crash: the server must notice alone
    ],
    ids=["sigterm", "ctrl-c", "sigkill"],
)
def test_launcher_signal_stops_server_and_database(
    display: str, data_dir: Path, tmp_path: Path, sig: signal.Signals, to_group: bool, expected_exit: int
) -> None:
    report_path = tmp_path / "report.json"
    driver = start_driver("hold", report_path, desktop_env(display, data_dir, PASSWORD))
    try:
        wait_for_line(driver, "READY", timeout=90)
        report = json.loads(report_path.read_text())
        assert psutil.pid_exists(report["server_pid"]) and report["database_pids"]
        time.sleep(0.3)  # let the probe thread return: the window is now just open
        if to_group:
            os.killpg(driver.pid, sig)
        else:
            driver.send_signal(sig)
        code, output = finish(driver, timeout=STOP_TIMEOUT_S + 10)
    finally:
        if driver.poll() is None:
            driver.kill()
    left = wait_until_gone(data_dir, STOP_TIMEOUT_S)
    kill_all(left)
    assert code == expected_exit, output
    assert left == [], [p.info for p in left]
    assert processes_using(data_dir) == []


def run_app_desktop(env: dict[str, str], data_dir: Path) -> tuple[int, str]:
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), "desktop", "--data-dir", str(data_dir)], cwd=REPO, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return finish(process, timeout=60)


def test_desktop_without_a_display_says_so_and_starts_nothing(data_dir: Path) -> None:
    env = desktop_env(":0", data_dir, PASSWORD)
    del env["DISPLAY"]
    code, output = run_app_desktop(env, data_dir)
    assert code == 1
    assert "no graphical display" in output
    assert processes_using(data_dir) == []


def test_desktop_reports_a_server_that_cannot_start_and_opens_no_window(
    display: str, data_dir: Path, server_factory: Any
) -> None:
    # `serve` already holds this data dir: the desktop's own server must refuse it.
    server_factory(data_dir=data_dir).start()
    code, output = run_app_desktop(desktop_env(display, data_dir, PASSWORD), data_dir)
    assert code == 1, output
    assert "already using the data dir" in output  # the server's own reason, passed through
    assert "exited during start-up" in output

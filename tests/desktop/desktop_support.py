"""Helpers of the desktop and packaging tests: start a driven desktop session, read
a process's output, and find processes a test left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from support import eventually

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "window_driver.py"


def desktop_env(display: str, data_dir: Path, password: str) -> dict[str, str]:
    """The environment of a desktop session under test: our screen, its own data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIPTBOX_")}
    env.update(
        DISPLAY=display,
        SCRIPTBOX_DATA_DIR=str(data_dir),
        SCRIPTBOX_ADMIN_PASSWORD=password,
        PYTHONUNBUFFERED="1",
    )
    env.pop("WAYLAND_DISPLAY", None)
    return env


def start_driver(
    scenario: str, report: Path, env: dict[str, str], screenshot: Path | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, str(DRIVER), scenario, str(report)]
    if screenshot is not None:
        argv.append(str(screenshot))
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as in a terminal: Ctrl-C goes to the group
    )


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Read the process's output until a line starts with `marker`; returns the lines."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if line.startswith(marker):
            return lines
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {marker!r} line (exit {process.poll()}):\n{''.join(lines)}")


def processes_using(path: Path) -> list[psutil.Process]:
    """Live processes whose command line mentions `path` (a test's private data dir)."""
    found = []
    needle = str(path)
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(needle in arg for arg in proc.info["cmdline"] or ()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def wait_until_gone(path: Path, timeout: float) -> list[psutil.Process]:
    """Wait for every process of `path` to end; returns those still alive after `timeout`."""
    try:
        eventually(lambda: not processes_using(path), timeout, interval=0.1)
    except AssertionError:
        pass
    return processes_using(path)


def kill_all(processes: list[psutil.Process]) -> None:
    """Clean up after a failed test, so one failure does not poison the next ones."""
    for proc in processes:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass


def finish(process: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int, str]:
    """Wait for the process to exit; returns its exit code and its whole output."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the process did not end within {timeout:.0f} s:\n{output}") from None
    return process.returncode, output


def wait_for_line_matching(process: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float) -> list[str]:
    """Read the process's output until a line matches `pattern`; returns the lines."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if pattern.search(line):
            return lines
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no line matching {pattern.pattern!r}:\n{''.join(lines)}")

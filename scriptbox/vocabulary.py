"""The words every part of Scriptbox shares: run statuses, triggers, runners, limits.

One place for Python (the admin page has its mirror in ui/src/vocabulary.js).
Imports nothing, so any module may use it.
"""

from __future__ import annotations

# A run goes queued -> running -> one finished status, and never changes again.
ACTIVE_STATUSES = ("queued", "running")
FINISHED_STATUSES = ("succeeded", "failed", "canceled", "timed_out")
RUN_STATUSES = ACTIVE_STATUSES + FINISHED_STATUSES

# Who asked for a run. `schedule` is reserved for the scheduler.
CLIENT_TRIGGERS = ("manual", "api")
RUN_TRIGGERS = CLIENT_TRIGGERS + ("schedule",)
DEFAULT_TRIGGER = "api"

SCRIPT_TYPES = ("bash", "node", "browser")
RUNNERS = ("host", "vm2", "browser")
ALLOWED_RUNNERS: dict[str, tuple[str, ...]] = {
    "bash": ("host",),
    "node": ("host", "vm2"),
    "browser": ("browser",),
}
DEFAULT_RUNNER = {"bash": "host", "node": "host", "browser": "browser"}
# Runs of the browser runner execute in the admin page; their `meta.node` says so.
BROWSER_NODE = "browser"

# How a server run's stderr reaches Scriptbox: "separate" (two pipes, each chunk
# labelled stdout or stderr, the two interleaved in the order they were read) or
# "merged" (stderr is the stdout pipe, as with 2>&1: everything is stdout, in
# exactly the order it was written). Browser runs keep the written order anyway.
OUTPUT_MODES = ("separate", "merged")
DEFAULT_OUTPUT_MODE = "separate"

DEFAULT_TIMEOUT_MS = 300_000
MIN_TIMEOUT_MS = 100
MAX_TIMEOUT_MS = 86_400_000

# The exit code of a process that ended its own run on timeout (like coreutils
# `timeout`); the vm2 harness uses it.
TIMEOUT_EXIT_CODE = 124

# The line `serve` prints once it accepts connections; the desktop launcher
# and the tests wait for it.
LISTENING_PREFIX = "Scriptbox listening on "


def runner_of(kind: object, runner: object = None) -> str:
    """The runner of a definition: its own, else the default of its type."""
    if isinstance(runner, str) and runner:
        return runner
    return DEFAULT_RUNNER.get(str(kind), "host")

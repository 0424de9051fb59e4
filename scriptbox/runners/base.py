"""What every runner hands to the run engine: how to start one run's process.

A runner only *describes* the process (argv, environment, working directory,
what to feed on stdin, what to do in the child before exec). The engine owns
spawning, output reading, timeouts, cancel and process-tree cleanup, so all
runners get the same lifecycle guarantees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class RunnerUnavailable(Exception):
    """The run cannot start (missing working directory, missing node, ...).

    The message is shown to the operator in the run's output and `meta.error`.
    """


@dataclass
class LaunchSpec:
    """Everything needed to start the process of one run."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    # Bytes written to the child's stdin, which is then closed. None means an
    # empty stdin (/dev/null), which is what host scripts get.
    stdin_data: bytes | None = None
    # Extra work in the child between fork and exec (e.g. setrlimit). The
    # engine always starts a new session itself; this runs after that.
    preexec: Callable[[], None] | None = None
    # Called once after the run's processes are gone (e.g. remove a temp dir).
    cleanup: Callable[[], None] | None = None
    # A name for logs and meta, e.g. "bash", "node", "vm2".
    label: str = ""
    # stderr on the stdout pipe (2>&1 at the spawn): one pipe, so the order of the
    # two is exactly the order of the process's writes; everything is read as stdout.
    merge_stderr: bool = False

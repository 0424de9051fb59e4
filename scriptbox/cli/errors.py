"""Client errors and the exit codes they end the process with."""

from __future__ import annotations

from typing import Any

from ..vocabulary import TIMEOUT_EXIT_CODE

EXIT_OK = 0
EXIT_FAILED = 1  # the request or the run failed (not found, conflict, server unreachable, run failed to start)
EXIT_USAGE = 2  # bad command line, missing or refused credentials, a request the server calls invalid
EXIT_STILL_RUNNING = 3  # `run --wait N`: the run had not finished after N seconds
EXIT_TIMED_OUT = TIMEOUT_EXIT_CODE  # as timeout(1)
EXIT_INTERRUPTED = 130  # 128 + SIGINT: the run was canceled, or Ctrl-C detached from it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: whoever read our stdout stopped reading


class CliError(Exception):
    """Ends the command with `message` on stderr and `exit_code`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiRefused(CliError):
    """The server answered with an error status and (usually) the one JSON error body."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        text = f"the server refused the request ({status} {code}): {message}"
        for name, why in (fields or {}).items():
            text += f"\n  {name}: {why}"
        super().__init__(text, EXIT_USAGE if status in (400, 401, 403, 413, 414) else EXIT_FAILED)
        self.status = status
        self.code = code
        self.fields = fields or {}


class Unreachable(CliError):
    """No HTTP answer at all: connection refused or reset, DNS, TLS, timeout."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the server at {url}: {reason}", EXIT_FAILED)

"""How a finished run becomes the client's exit code and its one-line explanation (pure rules)."""

from __future__ import annotations

import signal
from typing import Any

from ..vocabulary import FINISHED_STATUSES
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TIMED_OUT

FINISHED = FINISHED_STATUSES


def _signal_number(name: Any) -> int | None:
    if not isinstance(name, str):
        return None
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


def exit_code_for(run: dict[str, Any]) -> int:
    """succeeded 0; failed: the script's exit code (1–255), 128+N when killed by signal N as a shell
    reports it, else 1 (it never started, or its executor was lost); timed_out 124; canceled 130."""
    status = run.get("status")
    if status == "succeeded":
        return EXIT_OK
    if status == "timed_out":
        return EXIT_TIMED_OUT
    if status == "canceled":
        return EXIT_INTERRUPTED
    code = run.get("exitCode")
    if isinstance(code, int) and not isinstance(code, bool) and 1 <= code <= 255:
        return code
    number = _signal_number((run.get("meta") or {}).get("signal"))
    if number is not None and code is None:
        return 128 + number
    return EXIT_FAILED


def outcome_message(run: dict[str, Any]) -> str | None:
    """What to tell a person on stderr about how the run ended; None when the exit code says it all
    (succeeded, or failed with the script's own exit code: its stderr stays exactly the script's)."""
    status = run.get("status")
    run_id = run.get("id")
    error = (run.get("meta") or {}).get("error")
    reason = f" ({error})" if error else ""
    if status == "timed_out":
        return f"run {run_id} timed out{reason}"
    if status == "canceled":
        return f"run {run_id} was canceled"
    if status == "failed":
        code = run.get("exitCode")
        if isinstance(code, int) and not isinstance(code, bool) and 1 <= code <= 255 and not error:
            return None
        if code is None and (run.get("meta") or {}).get("pid") is None:
            # No process was ever started (bad working directory, missing node, disabled runner...).
            return f"run {run_id} could not start: {error or 'no reason recorded'}"
        if code is None:
            return f"run {run_id} failed without an exit code: {error or 'no reason recorded'}"
        return f"run {run_id} failed with exit code {code}{reason}"
    return None

"""How a run ended -> what is recorded: a pure rule, tested on its own."""

from __future__ import annotations

import signal

from ..store.records import RunEnd
from ..vocabulary import TIMEOUT_EXIT_CODE

# Why the engine stopped a run before its main process exited by itself.
TIMEOUT = "timeout"
CANCEL = "cancel"
SHUTDOWN = "shutdown"
# The run was ended elsewhere (reaped after this executor's lease lapsed): its
# process is stopped; the record is the reaper's, this end is never stored.
LOST = "lost"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def outcome(returncode: int, stop_reason: str | None, *, timeout_ms: int, times_itself_out: bool = False) -> RunEnd:
    """The recorded end of a run whose main process exited with `returncode`
    (negative: killed by that signal, as subprocess reports it).

    `stop_reason` is why the engine stopped it (TIMEOUT, CANCEL, SHUTDOWN) or
    None when it ended by itself; `times_itself_out` says the runner ends its
    own run with exit code 124 when the timeout elapses (the vm2 harness).

    A timed-out run has no exit code of its own: whatever its main process
    returned was caused by the kill (or, for vm2, is the harness's mark), so
    it is recorded as None and the reason says it timed out.
    """
    exit_code = returncode if returncode >= 0 else None
    sig = signal_name(-returncode) if returncode < 0 else None
    timed_out = f"timed out after {timeout_ms} ms"
    if stop_reason == TIMEOUT:
        return RunEnd("timed_out", None, timed_out, sig)
    if stop_reason == CANCEL:
        return RunEnd("canceled", exit_code, "canceled", sig)
    if stop_reason == SHUTDOWN:
        return RunEnd("failed", exit_code, "server shut down", sig)
    if stop_reason == LOST:
        return RunEnd("failed", exit_code, "executor lost: the run was taken away", sig)
    if times_itself_out and returncode == TIMEOUT_EXIT_CODE:
        return RunEnd("timed_out", None, timed_out, sig)
    if returncode == 0:
        return RunEnd("succeeded", 0)
    if sig is not None:
        return RunEnd("failed", None, f"killed by {sig}", sig)
    return RunEnd("failed", exit_code)


def stopped_before_start(stop_reason: str | None) -> RunEnd:
    """The end of a run stopped after it was claimed but before its process started."""
    if stop_reason == SHUTDOWN:
        return RunEnd("failed", error="server shut down")
    if stop_reason == LOST:
        return RunEnd("failed", error="executor lost: the run was taken away")
    return RunEnd("canceled", error="canceled")

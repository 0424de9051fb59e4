"""What a notification says: pure rules, tested on their own.

`run_ended` keeps only what a message needs from a finished run document (so
the bounded queue of run ends holds small records, not 16 KiB tails), and
`run_message` words it. The output lines come from the run's `outputTail`,
which is what every viewer sees (masked wherever the engine masks output).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Chat services cut long messages (Discord at 2,000 characters, Telegram at
# 4,096); the end of the output is what explains a failure.
TAIL_LINES = 20
TAIL_CHARS = 1500
RUN_PATH = "/admin/scripts/runs/"

STATUS_WORDS = {"succeeded": "succeeded", "failed": "failed", "timed_out": "timed out", "canceled": "was canceled"}
# Apprise's message types: colours and icons on the services that have them.
NOTIFY_TYPES = {"succeeded": "success", "failed": "failure", "timed_out": "failure", "canceled": "warning"}


@dataclass(frozen=True)
class RunEnded:
    """A finished run, as much as a message needs."""

    run_id: str
    script_id: str | None
    status: str
    name: str
    code_identifier: str | None
    exit_code: int | None
    error: str | None
    duration_s: float | None
    trigger: str
    requested_by: str | None
    scheduled_for: str | None
    tail: str


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    notify_type: str  # info | success | warning | failure


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def last_lines(text: str, max_lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> str:
    """The last `max_lines` lines of `text`, at most `max_chars` characters (cut at a line start when possible)."""
    lines = text.rstrip("\n").split("\n")[-max_lines:]
    tail = "\n".join(lines)
    if len(tail) > max_chars:
        tail = tail[-max_chars:]
        newline = tail.find("\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1:]
    return tail


def run_ended(doc: Mapping[str, Any]) -> RunEnded:
    """The RunEnded of a finished run document (as the run store returns it)."""
    meta = doc.get("meta") or {}
    snapshot = meta.get("snapshot") or {}
    started, finished = _utc(doc.get("startedAt")), _utc(doc.get("finishedAt"))
    duration = max((finished - started).total_seconds(), 0.0) if started and finished else None
    script_id = doc.get("scriptId")
    return RunEnded(
        run_id=str(doc.get("_id")), script_id=str(script_id) if script_id is not None else None,
        status=str(doc.get("status")), name=str(snapshot.get("name") or "(unnamed script)"),
        code_identifier=snapshot.get("codeIdentifier"), exit_code=doc.get("exitCode"), error=meta.get("error"),
        duration_s=duration, trigger=str(doc.get("trigger") or "api"), requested_by=meta.get("requestedBy"),
        scheduled_for=meta.get("scheduledFor"), tail=last_lines(str(doc.get("outputTail") or "")))


def describe_duration(seconds: float | None) -> str:
    """'0.42 s', '12.3 s', '4 min 05 s', '2 h 03 min'; 'not started' for None."""
    if seconds is None:
        return "not started"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def run_link(base_url: str | None, run_id: str) -> str:
    """The admin page's view of the run; a path alone when no base URL is known."""
    return f"{(base_url or '').rstrip('/')}{RUN_PATH}{run_id}"


def run_message(event: RunEnded, base_url: str | None) -> Message:
    """The message of a finished run for every channel that wants it."""
    words = STATUS_WORDS.get(event.status, event.status)
    exit_part = f", exit code {event.exit_code}" if event.exit_code is not None else ""
    script = f"{event.name} ({event.code_identifier})" if event.code_identifier else event.name
    trigger = event.trigger + (f" (due {event.scheduled_for})" if event.scheduled_for else "")
    lines = [f"Script: {script}", f"Status: {event.status.replace('_', ' ')}{exit_part}"]
    if event.error:
        lines.append(f"Reason: {event.error}")
    lines += [f"Duration: {describe_duration(event.duration_s)}", f"Trigger: {trigger}",
              f"Started by: {event.requested_by or ('scheduler' if event.trigger == 'schedule' else 'unknown')}",
              f"Run: {run_link(base_url, event.run_id)}"]
    if not base_url:
        lines.append("(set SCRIPTBOX_PUBLIC_URL for a full link)")
    lines += ["", "Last output:", event.tail or "(no output)"]
    return Message(title=f"Scriptbox: {event.name} {words}{exit_part}", body="\n".join(lines),
                   notify_type=NOTIFY_TYPES.get(event.status, "info"))


def check_message(channel_name: str, base_url: str | None) -> Message:
    """What POST /api/admin/notifications/:id/test sends."""
    page = f"{(base_url or '').rstrip('/')}/admin/scripts/notifications" if base_url else "the Notifications page"
    return Message(title="Scriptbox: test notification",
                   body=f"This is a test of the notification channel {channel_name!r}.\n"
                        f"Runs that end with one of its events will be reported here. Manage it at {page}.",
                   notify_type="info")

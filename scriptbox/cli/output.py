"""Plain-text tables and listings for people; JSON for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO


def print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def short_time(value: Any) -> str:
    """An API time (ISO-8601 UTC with Z) as `YYYY-MM-DD HH:MM:SS`; `-` for none."""
    if not isinstance(value, str) or not value:
        return "-"
    return value.replace("T", " ")[:19]


def duration(run: dict[str, Any]) -> str:
    """Seconds from start to finish, e.g. `1.3s`; `-` while unknown."""
    try:
        started = datetime.fromisoformat(str(run["startedAt"]).removesuffix("Z"))
        finished = datetime.fromisoformat(str(run["finishedAt"]).removesuffix("Z"))
    except (KeyError, ValueError):
        return "-"
    return f"{(finished - started).total_seconds():.1f}s"


def cell(value: Any) -> str:
    """A table cell: no control characters (a name with a newline must not break the table)."""
    text = "-" if value is None or value == "" else str(value)
    return "".join(ch if ch.isprintable() else " " for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, header first; trailing spaces trimmed."""
    cells = [[cell(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in cells)


def listing(pairs: Sequence[tuple[str, Any]]) -> str:
    """`key:  value` lines, keys aligned."""
    width = max(len(k) for k, _ in pairs) + 1
    return "".join(f"{(k + ':').ljust(width)}  {cell(v)}\n" for k, v in pairs)


def run_listing(run: dict[str, Any], code: str | None = None) -> str:
    meta = run.get("meta") or {}
    pairs: list[tuple[str, Any]] = [
        ("run", run.get("id")),
        ("script", f"{code} ({run.get('scriptId')})" if code else run.get("scriptId")),
        ("status", run.get("status")),
        ("exit code", run.get("exitCode")),
        ("trigger", run.get("trigger")),
        ("created", short_time(run.get("createdAt"))),
        ("started", short_time(run.get("startedAt"))),
        ("finished", short_time(run.get("finishedAt"))),
        ("duration", duration(run)),
    ]
    if meta.get("error"):
        pairs.append(("error", meta["error"]))
    if meta.get("signal"):
        pairs.append(("signal", meta["signal"]))
    return listing(pairs)


def definition_listing(doc: dict[str, Any]) -> str:
    env = doc.get("env") or []
    pairs: list[tuple[str, Any]] = [
        ("name", doc.get("name")),
        ("codeIdentifier", doc.get("codeIdentifier")),
        ("id", doc.get("id")),
        ("type", f"{doc.get('type')} / {doc.get('runner')}"),
        ("enabled", "yes" if doc.get("enabled", True) else "no"),
        ("timeout", f"{doc.get('timeoutMs')} ms"),
        ("output", "stdout and stderr merged (exact order)" if doc.get("outputMode") == "merged"
         else "stdout and stderr separate"),
        ("working dir", doc.get("defaultWorkingDirectory") or "(default)"),
        # Names only: values may be secrets, and a terminal is often shared or recorded.
        ("env", ", ".join(str(e.get("key")) for e in env if isinstance(e, dict)) or "-"),
        ("updated", short_time(doc.get("updatedAt"))),
    ]
    text = listing(pairs)
    if doc.get("description"):
        text += "\n" + str(doc["description"]).rstrip("\n") + "\n"
    script = str(doc.get("script") or "")
    text += "\n--- script ---\n" + script + ("" if script.endswith("\n") or not script else "\n")
    return text

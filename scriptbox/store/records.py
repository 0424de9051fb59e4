"""Typed values the rest of Scriptbox hands to the stores.

Callers say what happened (a run ended like this, these chunks were written)
with these records; only the stores turn them into MongoDB documents, field
paths and conditions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Executor:
    """The process executing runs: `id` is unique per process start."""

    id: str
    host: str
    pid: int
    start: int | None  # the process's start time (clock ticks), so a reused pid is not taken for it

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid, "start": self.start}


@dataclass(frozen=True)
class Snapshot:
    """What ran: the definition as it was when the run started."""

    name: str | None
    code_identifier: str | None
    type: str | None
    runner: str
    timeout_ms: int
    working_directory: str
    env_keys: tuple[str, ...] = ()  # the names of the script's env entries; never their values
    # The definition's version (recorded as meta.version, beside the snapshot); None before versions existed.
    version: int | None = None
    # "separate" or "merged" (vocabulary.OUTPUT_MODES): how the run's stderr reached it.
    output_mode: str = "separate"

    def to_doc(self) -> dict[str, Any]:
        return {"name": self.name, "codeIdentifier": self.code_identifier, "type": self.type,
                "runner": self.runner, "timeoutMs": self.timeout_ms, "workingDirectory": self.working_directory,
                "envKeys": list(self.env_keys), "outputMode": self.output_mode}


@dataclass(frozen=True)
class Claim:
    """A run inserted already held by the process that executes it (see RunStore.create)."""

    executor: Executor
    lease: timedelta


@dataclass(frozen=True)
class NewRun:
    """A run to create. With `browser_time` it is a browser run: created
    running (the admin page executes it), and timed out by the watchdog when
    `browser_time` has passed since its start."""

    script_id: str
    trigger: str
    requested_by: str | None
    snapshot: Snapshot
    browser_time: timedelta | None = None
    # From the scheduler: meta.scheduledFor (and catchUp); for overlap
    # `queue`, the id of the run this one waits for.
    meta: Mapping[str, Any] = field(default_factory=dict)
    waits_for: str | None = None
    # The run's parameter values as shown (secrets "***") and the sealed secret
    # values (engine/inputs.py opens them; removed when the run ends).
    params: Mapping[str, Any] = field(default_factory=dict)
    sealed_params: Mapping[str, str] = field(default_factory=dict)
    # Set when the submitting process executes the run itself at once: it is
    # inserted running, held by that executor, and never queued.
    claim: Claim | None = None


@dataclass(frozen=True)
class OutputTotals:
    """A run's output so far: its tail, its size, whether the stored log was cut."""

    tail: str
    output_bytes: int
    truncated: bool


@dataclass(frozen=True)
class RunEnd:
    """How a run ended, as it is recorded."""

    status: str
    exit_code: int | None = None
    error: str | None = None
    signal: str | None = None
    output: OutputTotals | None = None


@dataclass(frozen=True)
class Chunk:
    """One piece of a run's stored output."""

    run_id: str
    seq: int
    stream: str  # "stdout" | "stderr"
    data: str
    system: bool = False  # written by Scriptbox itself (e.g. the truncation marker)
    # When its (first) piece was read from the script; a replayed line then shows
    # the same time as it did live, however late the database write came.
    at: datetime | None = None
    # A chunk may hold several consecutive pieces of output, each published
    # live with its own seq: then `seq` is the last one's and `parts` the
    # length (characters) of each, so a reader can resume after any of them.
    parts: tuple[int, ...] = ()


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as retention sees it."""

    id: str
    script_id: str | None
    status: str
    finished_at: datetime

"""Pydantic models of what the API answers, for the OpenAPI document.

Requests are validated by the models in scriptbox/models.py, and the document
uses those same classes for request bodies. Answers are built by the stores'
``*_to_json`` functions; the models below describe them, and the fuzz test
(tests/test_fuzz_api.py) checks every answer of the running server against
them, so a field added to an answer without its model fails the suite.

Answer models derive from the request models where they share fields, so a
field added to a definition appears in both directions by construction.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import EnvEntry, ScriptDefinitionInput
from ..params import ParamDecl
from ..schedule import ScheduleInput
from ..vocabulary import FINISHED_STATUSES, RUN_STATUSES

IsoTime = Field(description="ISO-8601 UTC with Z, millisecond precision", examples=["2026-01-31T12:00:00.000Z"])
ObjectIdHex = Field(pattern=r"^[0-9a-f]{24}$", description="an ObjectId as 24 lowercase hex digits")

RunStatus = Literal["queued", "running", "succeeded", "failed", "canceled", "timed_out"]
FinishedStatus = Literal["succeeded", "failed", "canceled", "timed_out"]
Trigger = Literal["manual", "api", "schedule"]
assert RunStatus.__args__ == RUN_STATUSES and FinishedStatus.__args__ == FINISHED_STATUSES  # type: ignore[attr-defined]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable, machine-readable, e.g. validation_failed, not_found, edit_conflict")
    message: str = Field(description="for humans")
    fields: dict[str, str] | None = Field(
        None, description="one message per bad field, by path (e.g. env.3.key); only on validation errors")


class ErrorBody(BaseModel):
    """The one error shape of every non-success answer (scriptbox/errors.py)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class ScheduleState(ScheduleInput):
    """`schedule` as the API shows it: what was set, when it fires next, what happened so far."""

    model_config = ConfigDict(extra="allow")

    nextRunAt: str | None = Field(description="the next due time (ISO Z); null when disabled or never due")
    lastScheduledFor: str | None = Field(description="the latest due time any process acted on")
    lastFiredAt: str | None = Field(description="the latest due time that started a run")
    lastSkippedAt: str | None = Field(description="the latest due time skipped (overlap skip)")
    lastMissedAt: str | None = Field(description="the latest due time missed (no server was running)")
    firedCount: int = Field(ge=0)
    skippedCount: int = Field(ge=0)
    missedCount: int = Field(ge=0)


class SchedulePreview(BaseModel):
    model_config = ConfigDict(extra="forbid")

    next: list[str] = Field(description="the next five due times, ISO-8601 UTC with Z")
    description: str = Field(description="the expression in words (cron-descriptor); may be empty")
    timezone: str = Field(description="the time zone the times were computed in")


class ParamShown(ParamDecl):
    """A declared parameter as answers show it."""

    model_config = ConfigDict(extra="allow")

    hasDefault: bool | None = Field(None, description="secret parameters only: whether a default is stored "
                                                         "(its value is never shown: default is null)")


ParamValue = str | int | float | bool | None
PARAM_VALUES = Field(description="the run's parameter values by name (typed; secret values as \"***\"; "
                                 "null: no value)")


class ScriptDefinition(ScriptDefinitionInput):
    """A stored definition as the API shows it."""

    # Answers may carry fields added by later versions; clients ignore what they do not know.
    model_config = ConfigDict(extra="allow")

    schedule: ScheduleState | None = None

    id: str = ObjectIdHex
    runner: str  # always set once stored
    env: list[EnvEntry]
    params: list[ParamShown] = []  # type: ignore[assignment]
    createdAt: str = IsoTime
    updatedAt: str = IsoTime
    version: int = Field(ge=1, description="the current version: 1 at create, +1 on each save that changes it")
    updatedBy: str | None = Field(None, description="who saved the current version (admin, desktop, token:<name>)")


class VersionSummary(BaseModel):
    """One saved state of a definition, as listed (without the definition)."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(ge=1, description="the version number")
    at: str | None = IsoTime
    actor: str | None = Field(description="who saved it: admin, desktop or token:<name>")


class VersionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    versions: list[VersionSummary] = Field(description="newest first")
    nextBefore: int | None = Field(description="pass as ?before= for the next page; null on the last page")


class VersionDefinition(ScriptDefinitionInput):
    """The definition as it was stored at that version."""

    model_config = ConfigDict(extra="allow")

    runner: str
    env: list[EnvEntry]


class ScriptVersion(VersionSummary):
    """One whole version."""

    scriptId: str = ObjectIdHex
    definition: VersionDefinition


class LastRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ObjectIdHex
    status: RunStatus
    createdAt: str | None = IsoTime
    finishedAt: str | None = IsoTime


class ScriptListItem(ScriptDefinition):
    model_config = ConfigDict(extra="allow")

    lastRun: LastRun | None = Field(description="the script's newest run, or null when it never ran")


class ScriptList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scripts: list[ScriptListItem] = Field(description="sorted by name")


class RunMeta(BaseModel):
    """Details of a run. Later versions add keys; clients ignore what they do not know."""

    model_config = ConfigDict(extra="allow")

    node: str | None = Field(description="the host that executed it, or 'browser'")
    pid: int | None
    signal: str | None = Field(description="the signal that ended the main process, e.g. SIGKILL")
    error: str | None = Field(description="why it failed, timed out or was canceled")
    outputBytes: int = Field(ge=0, description="bytes of output the run produced")
    logTruncated: bool = Field(description="the stored log reached SCRIPTBOX_MAX_LOG_BYTES")
    requestedBy: str | None = Field(description="who started it")
    snapshot: dict[str, Any] | None = Field(
        None, description="what ran: name, codeIdentifier, type, runner, timeoutMs, workingDirectory, "
                    "envKeys (the names of its env entries, never their values), outputMode (separate or merged; "
                    "absent on runs recorded before it existed: separate)")
    version: int | None = Field(
        None, description="the version of the script the run executes (set when it starts; while queued, the "
                          "version at submit); null for runs recorded before versions existed")
    executor: str | None = Field(
        None, description="the id of the executor (a serve or worker process, GET /api/admin/executors) that "
                          "claimed it; null while queued, for browser runs and for runs recorded before executors")


class Run(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = ObjectIdHex
    scriptId: str | None = ObjectIdHex
    status: RunStatus
    trigger: Trigger | None
    createdAt: str | None = IsoTime
    startedAt: str | None = IsoTime
    finishedAt: str | None = IsoTime
    exitCode: int | None = Field(description="null unless the process exited")
    outputTail: str = Field(description="the last SCRIPTBOX_TAIL_BYTES of output")
    params: dict[str, ParamValue] = PARAM_VALUES
    meta: RunMeta


class RunList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: list[Run] = Field(description="newest first")
    nextBefore: str | None = Field(description="pass as ?before= for the next page; null on the last page")


class RunRequest(BaseModel):
    """POST …/run body (optional)."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["manual", "api"] = Field(
        "api", description="manual: the admin UI; api: any other client. schedule is the scheduler's alone")
    params: dict[str, ParamValue] | None = Field(
        None, description="values of the script's declared params by name; null or missing values take the "
                          "default. int/number/bool also as strings (\"5\", \"2.5\", \"true\")")


class RunStarted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runId: str = ObjectIdHex
    status: RunStatus
    params: dict[str, ParamValue] = PARAM_VALUES


class OutputEvent(BaseModel):
    """The data of an SSE `output` event (its id is the chunk's sequence number)."""

    model_config = ConfigDict(extra="forbid")

    stream: Literal["stdout", "stderr"]
    data: str
    system: bool | None = Field(None, description="true on lines Scriptbox wrote itself (e.g. truncation)")
    at: str | None = Field(None, description="when the server read this text (ISO-8601 UTC, ms); absent from "
                           "servers that predate it")


class StoredChunk(BaseModel):
    """One stored piece of a run's output."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0, description="its place in the run's output: stdout and stderr share one sequence; "
                     "a chunk holding several pieces that went out live one by one has the last one's")
    stream: Literal["stdout", "stderr"]
    data: str
    at: str | None = Field(description="when it was stored (ISO Z), within a flush interval of its output")
    system: bool | None = Field(None, description="true on lines Scriptbox wrote itself (e.g. truncation)")


class ChunkPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: list[StoredChunk]
    next: int | None = Field(description="pass as `after` for the next page; null when this was the last so far")


class BrowserOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream: Literal["stdout", "stderr"]
    data: str


class BrowserResult(BaseModel):
    """POST …/browser-result body: the admin page reports a browser run."""

    model_config = ConfigDict(extra="forbid")

    status: FinishedStatus
    exitCode: int | None = Field(None, ge=-(2**31), le=2**31 - 1)
    output: list[BrowserOutput] = []
    error: str | None = Field(None, description="kept up to 2000 characters")


class DesktopLogin(BaseModel):
    """POST /desktop-login body: the desktop window's one-time token."""

    model_config = ConfigDict(extra="allow")

    token: str


class Health(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "unavailable"]
    db: Literal["ok", "unreachable"]


class ExecutorInfo(BaseModel):
    """A process that executes runs (serve with its worker, or worker)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="host/pid/random, unique per process start; runs name it in meta.executor")
    host: str
    pid: int
    role: Literal["serve", "worker"]
    startedAt: str | None = IsoTime
    heartbeatAt: str | None = IsoTime
    state: Literal["alive", "gone"] = Field(
        description="gone: no heartbeat for a lease (SCRIPTBOX_LEASE_SECONDS); removed after ten leases")
    slots: int = Field(ge=0, description="its SCRIPTBOX_MAX_CONCURRENT_RUNS; 0 for serve --no-worker")
    running: int = Field(ge=0, description="runs it executed at its last heartbeat")
    runs: list[str] = Field(description="the ids of those runs")


class ExecutorList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executors: list[ExecutorInfo] = Field(description="oldest start first")
    leaseSeconds: float = Field(description="this server's lease: an executor silent for longer is gone")
    clusterMaxRuns: int = Field(ge=0, description="SCRIPTBOX_CLUSTER_MAX_RUNS of this server; 0: no limit")

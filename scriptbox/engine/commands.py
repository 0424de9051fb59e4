"""Requests from the API: submit a run, cancel one. Browser results: browser.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import Conflict, NotFound
from ..store.records import NewRun, RunEnd
from ..vocabulary import FINISHED_STATUSES
from .browser import is_browser_run, time_allowed
from .context import EngineContext
from .dispatcher import Dispatcher
from .launch import snapshot_of
from .outcome import CANCEL

CANCEL_ATTEMPTS = 3


def submit(ctx: EngineContext, dispatcher: Dispatcher, script_id: str, trigger: str,
           requested_by: str | None, meta: Mapping[str, Any] | None = None,
           waits_for: str | None = None) -> dict[str, Any]:
    """Create a run of a script; returns the stored run document.

    The scheduler adds `meta` (scheduledFor, catchUp) and, for overlap
    `queue`, the run this one waits for. Raises NotFound (unknown script) and
    Conflict (disabled script).
    """
    definition = ctx.get_definition(script_id)
    if not definition.get("enabled", True):
        raise Conflict("the script is disabled", code="script_disabled")
    snapshot = snapshot_of(definition)
    # Browser runs execute in the admin page, never here.
    browser_time = (time_allowed(snapshot.timeout_ms, ctx.options.browser_grace_s)
                    if snapshot.runner == "browser" else None)
    doc = ctx.runs.create(NewRun(str(definition["_id"]), trigger, requested_by, snapshot, browser_time,
                                 meta=dict(meta or {}), waits_for=waits_for))
    dispatcher.wake()
    ctx.live.publish_status(doc)  # the run-events feed shows it at once (it has no viewers yet)
    return doc


def cancel(ctx: EngineContext, dispatcher: Dispatcher, run_id: str) -> dict[str, Any]:
    """Cancel a queued or running run; returns the run document.

    A queued run and a browser run end `canceled` at once; a running run is
    flagged in the database, and its executor (this process or another) stops
    it. Raises NotFound, or Conflict when the run has already finished.
    """
    for _ in range(CANCEL_ATTEMPTS):
        doc = ctx.runs.get(run_id)
        if doc is None:
            raise NotFound(f"no run with id {run_id!r}")
        if doc["status"] in FINISHED_STATUSES:
            raise Conflict(f"the run has already finished ({doc['status']})", code="run_finished")
        done = _cancel_once(ctx, dispatcher, run_id, doc)
        if done is not None:
            return done
        # Lost a race with a transition (claimed, finished); look again.
    raise Conflict("the run changed while canceling; try again", code="run_busy")


def _cancel_once(ctx: EngineContext, dispatcher: Dispatcher, run_id: str,
                 doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["status"] == "queued":
        done = ctx.runs.finish_queued(run_id, RunEnd("canceled", error="canceled before it started"))
    elif is_browser_run(doc):
        done = ctx.runs.finish_open_browser_run(run_id, RunEnd("canceled", error="canceled"))
    else:
        flagged = ctx.runs.request_cancel(run_id)
        local = dispatcher.get(run_id)
        if flagged is not None and local is not None:
            local.request_stop(CANCEL)
        return flagged
    if done is not None:
        ctx.live.publish_end(done)
    return done

"""Requests from the API: submit a run, cancel one. Browser results: browser.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..errors import Conflict, NotFound, ValidationFailed
from ..params import ParamsInvalid, ResolvedParams, resolve
from ..secretbox import SecretBox
from ..store.records import Claim, NewRun, RunEnd
from ..store.runs import RunListener
from ..vocabulary import FINISHED_STATUSES
from .browser import is_browser_run, time_allowed
from .context import EngineContext
from .dispatcher import Dispatcher
from .launch import snapshot_of
from .outcome import CANCEL

CANCEL_ATTEMPTS = 3


def sealed_params(definition: Mapping[str, Any], resolved: ResolvedParams,
                  box: SecretBox | None) -> dict[str, str]:
    """The run's secret parameter values, sealed: given ones sealed now, defaults copied as stored."""
    if resolved.secrets and box is None:
        raise Conflict("this process has no secret key to keep secret parameters", code="no_secret_key")
    out = {name: box.seal(value) for name, value in resolved.secrets.items()} if box is not None else {}
    for param in definition.get("params") or []:
        if param["name"] in resolved.secret_defaults:
            out[param["name"]] = param["sealedDefault"]
    return out


def submit(ctx: EngineContext, dispatcher: Dispatcher, script_id: str, trigger: str,
           requested_by: str | None, meta: Mapping[str, Any] | None = None,
           waits_for: str | None = None, params: Any = None,
           on_created: RunListener | None = None) -> dict[str, Any]:
    """Create a run of a script; returns the stored run document.

    `params` are the request's parameter values (checked against the
    definition; defaults fill the rest). The scheduler adds `meta`
    (scheduledFor, catchUp) and, for overlap `queue`, the run this one waits
    for. Raises NotFound (unknown script), Conflict (disabled script) and
    ValidationFailed (parameters, naming each as params.<name>).
    `on_created` is told of the run as soon as it is stored, before the
    script's last-run summary is written (the API records its audit entry
    meanwhile).
    """
    definition = ctx.get_definition(script_id)
    if not definition.get("enabled", True):
        raise Conflict("the script is disabled", code="script_disabled")
    try:
        resolved = resolve(definition.get("params") or [], params)
    except ParamsInvalid as exc:
        raise ValidationFailed("the run parameters are invalid", fields=exc.fields) from None
    snapshot = snapshot_of(definition)
    # Browser runs execute in the admin page, never here.
    browser_time = (time_allowed(snapshot.timeout_ms, ctx.options.browser_grace_s)
                    if snapshot.runner == "browser" else None)
    new = NewRun(str(definition["_id"]), trigger, requested_by, snapshot, browser_time,
                 meta=dict(meta or {}), waits_for=waits_for, params=resolved.shown(),
                 sealed_params=sealed_params(definition, resolved, ctx.secrets))
    # A run that waits for another, or a browser run, never starts here at once.
    if browser_time is None and waits_for is None and dispatcher.reserve_slot():
        return _start_here(ctx, dispatcher, new, definition, on_created)
    doc = ctx.runs.create(new, on_inserted=on_created)
    dispatcher.wake()
    ctx.live.publish_status(doc)  # the run-events feed shows it at once (it has no viewers yet)
    return doc


def _start_here(ctx: EngineContext, dispatcher: Dispatcher, new: NewRun, definition: dict[str, Any],
                on_created: RunListener | None) -> dict[str, Any]:
    """Insert the run already claimed by this process and start it as soon as it is stored.

    Saves the claim round trip and the second definition read of a queued run;
    the execution publishes its status. Exactly once still holds: nothing but
    this process can hold a run inserted running with its executor id.
    """
    claim = Claim(ctx.executor, timedelta(seconds=ctx.options.lease_s))
    started = False

    def start(doc: dict[str, Any]) -> None:
        nonlocal started
        started = True
        dispatcher.start_claimed(doc, definition)
        if on_created is not None:
            on_created(doc)

    try:
        return ctx.runs.create(dataclasses.replace(new, claim=claim), on_inserted=start)
    finally:
        if not started:
            dispatcher.release_slot()


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

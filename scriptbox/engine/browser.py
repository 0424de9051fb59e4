"""Browser runs: executed by the admin page in a Web Worker, recorded here.

A browser run is created `running` (there is nothing to claim) with its
deadline in `leaseUntil`: the script's timeout plus `browser_grace_s` for the
page to report. It ends by the page's result (once only), by cancel, or by the
watchdog when the deadline passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import Conflict, NotFound, ValidationFailed
from ..masking import SecretMasker
from ..secretbox import SecretUnavailable
from ..store.records import RunEnd
from ..vocabulary import BROWSER_NODE, FINISHED_STATUSES
from .context import EngineContext
from .inputs import open_run_secrets

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class BrowserResult:
    status: str
    exit_code: int | None
    output: list[dict[str, str]]  # [{stream, data}]
    error: str | None


def is_browser_run(doc: dict[str, Any]) -> bool:
    return bool((doc.get("meta") or {}).get("node") == BROWSER_NODE)


def time_allowed(timeout_ms: int, grace_s: float) -> timedelta:
    """How long after its start the watchdog ends a browser run the page never reported."""
    return timedelta(milliseconds=timeout_ms, seconds=grace_s)


def overdue_end(doc: dict[str, Any], grace_s: float) -> RunEnd:
    """How the watchdog ends a browser run past its deadline."""
    timeout_ms = (doc.get("meta") or {}).get("snapshot", {}).get("timeoutMs")
    return RunEnd("timed_out", error=f"the browser did not report a result within the timeout ({timeout_ms} ms) "
                                     f"plus {int(grace_s)} s")


def _output_problem(output: Any) -> tuple[str, str] | None:
    if not isinstance(output, list):
        return "output", "must be an array of {stream, data}"
    for i, item in enumerate(output):
        if (not isinstance(item, dict) or set(item) - {"stream", "data"}
                or item.get("stream") not in ("stdout", "stderr") or not isinstance(item.get("data"), str)):
            return f"output.{i}", 'must be {"stream": "stdout"|"stderr", "data": string}'
    return None


def validate_browser_result(body: Any) -> BrowserResult:
    """Check a browser-result body; raises ValidationFailed naming bad fields."""
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    fields = {str(key): "unknown field" for key in body if key not in ("status", "exitCode", "output", "error")}
    status = body.get("status")
    if status not in FINISHED_STATUSES:
        fields["status"] = "must be one of " + ", ".join(FINISHED_STATUSES)
    exit_code = body.get("exitCode")
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)
                                  or not -(2**31) <= exit_code < 2**31):
        fields["exitCode"] = "must be an integer or null"
    output = body.get("output", [])
    problem = _output_problem(output)
    if problem is not None:
        fields[problem[0]] = problem[1]
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        fields["error"] = "must be a string"
    if fields:
        raise ValidationFailed("the browser result is invalid", fields=fields)
    return BrowserResult(str(status), exit_code, output or [],
                         error[:MAX_ERROR_CHARS] if isinstance(error, str) else None)


def _masker_of(ctx: EngineContext, doc: dict[str, Any]) -> tuple[SecretMasker, str | None]:
    """The masker of a browser run's secret parameters, or why its output cannot be recorded.

    Output that could hold a secret this process cannot open (another key) is
    not recorded at all: without the value there is no way to mask it.
    """
    if not doc.get("secretParams"):
        return SecretMasker(()), None
    if ctx.secrets is None:
        return SecretMasker(()), "this process has no secret key to mask the run's secrets"
    try:
        return SecretMasker(open_run_secrets(doc, ctx.secrets).values()), None
    except SecretUnavailable as exc:
        return SecretMasker(()), str(exc)


def record_result(ctx: EngineContext, run_id: str, body: Any) -> dict[str, Any]:
    """Record the outcome of a browser run reported by the admin page; returns the finished run.

    Raises ValidationFailed, NotFound, or Conflict (finished / not a browser
    run / result already reported).
    """
    result = validate_browser_result(body)
    doc = ctx.runs.get(run_id)
    if doc is None:
        raise NotFound(f"no run with id {run_id!r}")
    if not is_browser_run(doc) or doc.get("executor") is not None:
        raise Conflict("the run is not a browser run", code="not_browser_run")
    if doc["status"] != "running":
        raise Conflict(f"the run has already finished ({doc['status']})", code="run_finished")
    if not ctx.runs.claim_browser_result(run_id):
        raise Conflict("the run has already finished or its result was already reported", code="run_finished")
    output = ctx.live.new_output(run_id)
    masker, withheld = _masker_of(ctx, doc)
    error = result.error
    if withheld is not None:
        output.emit("stderr", f"[scriptbox] the output was not recorded: {withheld}\n", 0, system=True)
        error = withheld
    else:
        output.mask_secrets(masker)
        for item in result.output:
            output.emit(item["stream"], item["data"], len(item["data"].encode("utf-8")))
        output.close()
        error = masker.mask(error) if error is not None else None
    ctx.live.flush_now()
    done = ctx.runs.finish_browser_result(
        run_id, RunEnd(result.status, result.exit_code, error, output=output.totals()))
    if done is None:
        raise Conflict("the run has already finished", code="run_finished")
    ctx.live.publish_end(done)
    return done

"""Run routes: start, list, read, log, stream (SSE), cancel, delete, browser result."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from bottle import Bottle, HTTPResponse, request, response

from ..errors import Conflict, DatabaseUnavailable, NotFound, ValidationFailed
from ..run_wait import MAX_WAIT_S, parse_wait, wait_for_end
from ..services import Services
from ..sse_wire import SCATTER_ENVIRON, parse_last_event_id
from ..store import iso, parse_object_id
from ..store.runs import RunStore, decode_cursor
from ..vocabulary import ACTIVE_STATUSES, CLIENT_TRIGGERS, DEFAULT_TRIGGER, RUN_STATUSES, RUN_TRIGGERS
from .audit import audit_request, start_audit
from .common import query_limit, read_json_body
from .definitions import BY_CODE, DEFINITION_ID
from .logtext import EscapeStripper
from .openapi import Doc, Param, Reply
from .presenters import chunk_to_json, run_to_json
from .schemas import BrowserResult, ChunkPage, ErrorBody, OutputEvent, Run, RunList, RunRequest, RunStarted
from .sse_response import sse_response
from .stream import RunStream, RunStreamSource

RUN_ID = "<run_id:re:[0-9a-fA-F]{24}>"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_SEQ = re.compile(r"[0-9]{1,18}")  # a chunk's seq fits the database's 64-bit integers
MAX_CHUNKS = 2000
_STATUS_LIST = "^(" + "|".join(RUN_STATUSES) + ")(,(" + "|".join(RUN_STATUSES) + "))*$"
_TRIGGER_LIST = "^(manual|api|schedule)(,(manual|api|schedule))*$"


PARAMS_NOTE = ("`params` are checked against the script's declared params (400 naming `params.<name>`); "
               "defaults fill the rest, unknown names are refused. int, number and bool values may also be "
               'given as strings ("5", "2.5", "true"/"false"/"1"/"0"), as the CLI sends them.')

WAIT_PARAM = Param("wait", {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_S},
                   "seconds to wait for the run to end: 200 with the finished run if it does, else the 202")


def parse_run_request(body: Any) -> tuple[str, dict[str, Any] | None]:
    """The trigger and the parameter values of a run request; raises ValidationFailed naming bad fields.

    The values themselves are checked against the script's declaration when the run is submitted.
    """
    if body is None:
        return DEFAULT_TRIGGER, None
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    unknown = {str(k): "unknown field" for k in body if k not in ("trigger", "params")}
    trigger = body.get("trigger", DEFAULT_TRIGGER)
    fields = dict(unknown)
    if trigger == "schedule":
        fields["trigger"] = "schedule is reserved for the scheduler"
    elif trigger not in CLIENT_TRIGGERS:
        fields["trigger"] = "must be manual or api"
    params = body.get("params")
    if params is not None and not isinstance(params, dict):
        fields["params"] = "must be an object of parameter values"
    if fields:
        raise ValidationFailed("the run request is invalid", fields=fields)
    return str(trigger), params


def parse_list_query(query: Any) -> dict[str, Any]:
    """scriptId, status and trigger (one or comma-separated), limit, before; 400 on bad values."""
    fields: dict[str, str] = {}
    out: dict[str, Any] = {"script_id": None, "statuses": None, "limit": DEFAULT_LIMIT, "before": None}
    script_id = query.getunicode("scriptId")
    if script_id:
        if parse_object_id(script_id) is None:
            fields["scriptId"] = "must be a script id (24 hex digits)"
        out["script_id"] = script_id
    status = query.getunicode("status")
    if status:
        # Exactly as documented (OpenAPI): names separated by commas, nothing else.
        statuses = status.split(",")
        bad = [s for s in statuses if s not in RUN_STATUSES]
        if bad:
            fields["status"] = "must be one or more of " + ", ".join(RUN_STATUSES)
        out["statuses"] = statuses
    trigger = query.getunicode("trigger")
    out["triggers"] = None
    if trigger:
        triggers = trigger.split(",")  # like status: exactly names separated by commas
        if any(t not in RUN_TRIGGERS for t in triggers):
            fields["trigger"] = "must be one or more of " + ", ".join(RUN_TRIGGERS)
        out["triggers"] = triggers
    out["limit"] = query_limit(query.getunicode("limit"), DEFAULT_LIMIT, MAX_LIMIT, fields)
    before = query.getunicode("before")
    if before:
        cursor = decode_cursor(before)
        if cursor is None:
            fields["before"] = "must be a nextBefore value from a previous page"
        out["before"] = cursor
    if fields:
        raise ValidationFailed("invalid query parameters", fields=fields)
    return out


def flag_param(name: str) -> bool:
    """A `0`/`1` query flag (absent: off; anything else, empty included, is refused as the
    OpenAPI document says); raises ValidationFailed."""
    raw = request.query.getunicode(name)
    if raw is None or raw == "0":
        return False
    if raw == "1":
        return True
    raise ValidationFailed("invalid query parameters", fields={name: "must be 0 or 1"})


def log_filename(run: dict[str, Any]) -> str:
    """`<codeIdentifier>-<runId>.log` (identifiers are [a-z0-9_-] only, safe in a header)."""
    code = str(((run.get("meta") or {}).get("snapshot") or {}).get("codeIdentifier") or "run")
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", code)[:64] or "run"
    return f"{safe}-{run['_id']}.log"


def parse_chunk_query(query: Any) -> tuple[int, int]:
    """`after` and `limit` of GET …/chunks; raises ValidationFailed naming each bad one."""
    fields: dict[str, str] = {}
    after, limit = -1, MAX_CHUNKS
    raw_after = query.getunicode("after")
    if raw_after not in (None, ""):
        if raw_after == "-1":
            after = -1
        elif not _SEQ.fullmatch(raw_after):
            fields["after"] = "must be -1 or a chunk's seq (a whole number)"
        else:
            after = int(raw_after)
    limit = query_limit(query.getunicode("limit"), MAX_CHUNKS, MAX_CHUNKS, fields)
    if fields:
        raise ValidationFailed("invalid query parameters", fields=fields)
    return after, limit


def register(app: Bottle, services: Services) -> None:
    engine = services.engine
    runs = services.runs
    source = RunStreamSource(get_run=runs.get, chunks_after=runs.chunks_after, subscribe=engine.subscribe,
                             unsubscribe=engine.unsubscribe, is_local=engine.is_local, present=run_to_json,
                             pushed=engine.remote_pushed, local_run=engine.local_run)

    def get_run(run_id: str) -> dict[str, Any]:
        doc = runs.get(run_id)
        if doc is None:
            raise NotFound(f"no run with id {run_id!r}")
        return doc

    def submit(definition_id: str, request_body: tuple[str, dict[str, Any] | None],
               wait_s: int | None) -> dict[str, Any]:
        trigger, params = request_body
        user = request.environ.get("scriptbox.user")
        if request.environ.get("scriptbox.token") is not None:
            trigger = "api"  # "manual" means the admin page; a token is automation whatever it says
        doc = engine.submit(definition_id, trigger, user, params=params, on_created=start_audit(services, trigger))
        run_id = str(doc["_id"])
        if wait_s:
            finished = wait_for_end(run_id, wait_s, get_run=runs.get,
                                    subscribe=lambda run: engine.subscribe(run, outputs=False),
                                    unsubscribe=engine.unsubscribe)
            if finished is not None:
                return run_to_json(finished)
        response.status = 202
        response.set_header("Location", f"/api/admin/scripts/runs/{run_id}")
        return {"runId": run_id, "status": doc["status"], "params": doc.get("params") or {}}

    def wait_param() -> int | None:
        seconds, why = parse_wait(request.query.getunicode("wait"))
        if why:
            raise ValidationFailed("invalid query parameters", fields={"wait": why})
        return seconds

    @app.post(f"/api/admin/scripts/{DEFINITION_ID}/run", openapi=Doc(
        "Start a run", "runs",
        {200: Reply("With ?wait=N: the run finished within N seconds.", Run),
         202: Reply("Queued (or, for a browser script, running in the admin page).", RunStarted,
                    headers={"Location": "the run's URL"})},
        errors=(404, 409, 503), body=RunRequest, body_required=False,
        params=(WAIT_PARAM,),
        description=PARAMS_NOTE,
        error_notes={409: "script_disabled: the script is disabled."}))
    def start_run(definition_id: str) -> dict[str, Any]:
        """Start a run of the script with this id → 202 {runId, status, params}; 404 unknown, 409 disabled.

        With ?wait=N (0-300 s): 200 with the finished run if it ends within N seconds, else the 202.
        """
        wait_s = wait_param()
        body = parse_run_request(read_json_body(request, required=False))
        return submit(definition_id, body, wait_s)

    @app.post(f"/api/admin/scripts/{BY_CODE}/run", openapi=Doc(
        "Start a run of the script with this codeIdentifier", "runs",
        {200: Reply("With ?wait=N: the run finished within N seconds.", Run),
         202: Reply("As POST /api/admin/scripts/{definition_id}/run.", RunStarted,
                    headers={"Location": "the run's URL"})},
        errors=(404, 409, 503), body=RunRequest, body_required=False,
        params=(WAIT_PARAM,),
        error_notes={409: "script_disabled: the script is disabled."}))
    def start_run_by_code(code_identifier: str) -> dict[str, Any]:
        """Start a run of the script with this codeIdentifier; same body, answers and errors as the id route."""
        # The body is validated first, as on the id route, so both answer a bad
        # body with 400 whether or not the script exists.
        wait_s = wait_param()
        body = parse_run_request(read_json_body(request, required=False))
        definition = services.definitions.get_by_code(code_identifier)
        return submit(str(definition["_id"]), body, wait_s)

    @app.get("/api/admin/scripts/runs", openapi=Doc(
        "List runs, newest first", "runs", {200: Reply("One page of runs.", RunList)}, errors=(400, 503),
        params=(
            Param("scriptId", {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}, "only this script's runs"),
            Param("status", {"type": "string", "pattern": _STATUS_LIST},
                  "one status or several, comma-separated"),
            Param("trigger", {"type": "string", "pattern": _TRIGGER_LIST},
                  "one trigger (manual, api, schedule) or several, comma-separated"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                  f"page size, default {DEFAULT_LIMIT}"),
            Param("before", {"type": "string"}, "the nextBefore of the previous page"),
        )))
    def list_runs() -> dict[str, Any]:
        params = parse_list_query(request.query)
        docs, next_before = runs.page(params["script_id"], params["statuses"], params["limit"], params["before"],
                                      params["triggers"])
        return {"runs": [run_to_json(d) for d in docs], "nextBefore": next_before}

    @app.get(f"/api/admin/scripts/runs/{RUN_ID}", openapi=Doc(
        "Read a run", "runs", {200: Reply("The run.", Run)}, errors=(404, 503)))
    def read_run(run_id: str) -> dict[str, Any]:
        return run_to_json(get_run(run_id))

    register_output(app, runs, get_run)

    @app.get(f"/api/admin/scripts/runs/{RUN_ID}/stream", openapi=Doc(
        "Follow a run's output live (Server-Sent Events)", "runs",
        {200: Reply("`output` events (id = sequence number, data {stream, data, at}), `status` events, then `end` "
                    "with the finished run; `: keepalive` comments after 15 s of silence. "
                    "A stream opened with an API token ends with `revoked` when the token is revoked or expires.",
                    media="text/event-stream",
                    events={"output": OutputEvent, "status": Run, "end": Run, "revoked": ErrorBody})},
        errors=(404, 503),
        params=(Param("Last-Event-ID", {"type": "string"}, "resume after this sequence number", where="header"),
                Param("lastEventId", {"type": "string"}, "the same, for clients that cannot set headers"))))
    def stream_run(run_id: str) -> HTTPResponse:
        if not engine.knows(run_id):  # a run executing or just ended here exists: no database read for the 404
            get_run(run_id)
        last = parse_last_event_id(request.get_header("Last-Event-ID"), request.query.getunicode("lastEventId"))
        return sse_response(services, RunStream(source, run_id, last, heartbeat_s=engine.options.heartbeat_s,
                                                scatter=bool(request.environ.get(SCATTER_ENVIRON))))

    @app.post(f"/api/admin/scripts/runs/{RUN_ID}/cancel", openapi=Doc(
        "Cancel a queued or running run", "runs",
        {202: Reply("Canceled (queued) or being stopped (running).", Run)}, errors=(404, 409, 503),
        error_notes={409: "run_finished: the run has already finished."}))
    def cancel_run(run_id: str) -> dict[str, Any]:
        doc = engine.cancel(run_id)
        audit_request(services, "run.cancel", "run", run_id.lower(),
                      f"canceled a run of {doc['meta']['snapshot']['name']!r}", script_id=str(doc["scriptId"]))
        response.status = 202
        return run_to_json(doc)

    @app.delete(f"/api/admin/scripts/runs/{RUN_ID}", openapi=Doc(
        "Delete a finished run and its stored output", "runs", {204: Reply("Deleted.")}, errors=(404, 409, 503),
        description="Run tokens may not delete runs (403 token_scope).",
        error_notes={409: "run_active: the run is queued or running; cancel it first."}))
    def delete_run(run_id: str) -> HTTPResponse:
        """Delete a finished run with its output → 204; 404 unknown, 409 while queued or running."""
        doc = get_run(run_id)
        if doc["status"] in ACTIVE_STATUSES:
            raise Conflict("the run is queued or running; cancel it or wait for it to finish", code="run_active")
        deleted, chunks = services.finished_runs.delete_finished([run_id])
        engine.forget([run_id])
        if not deleted:
            raise NotFound(f"no run with id {run_id!r}")  # deleted meanwhile (by the pruner or another admin)
        snapshot = (doc.get("meta") or {}).get("snapshot") or {}
        audit_request(services, "run.delete", "run", run_id.lower(),
                      f"deleted a {doc['status']} run of {snapshot.get('name')!r}",
                      {"status": doc["status"], "chunks": chunks, "finishedAt": iso(doc.get("finishedAt"))},
                      script_id=str(doc["scriptId"]))
        return HTTPResponse(status=204)

    @app.post(f"/api/admin/scripts/runs/{RUN_ID}/browser-result", openapi=Doc(
        "Report a browser run's output and outcome (the admin page does)", "runs",
        {200: Reply("The finished run.", Run)}, errors=(404, 409, 503), body=BrowserResult,
        error_notes={409: "run_finished or not_browser_run."}))
    def browser_result(run_id: str) -> dict[str, Any]:
        body = read_json_body(request)
        return run_to_json(engine.browser_result(run_id, body))


def register_output(app: Bottle, runs: RunStore, get_run: Callable[[str], dict[str, Any]]) -> None:
    """The stored output of a run: the log (to read or download) and its chunks with their times."""

    @app.get(f"/api/admin/scripts/runs/{RUN_ID}/log", openapi=Doc(
        "Read a run's stored log", "runs",
        {200: Reply("The stored output, stdout and stderr interleaved in the order they were produced.",
                    media="text/plain", headers={"Content-Disposition": "with download=1: attachment; filename=…"})},
        errors=(400, 404, 503),
        params=(Param("download", {"type": "string", "enum": ["0", "1"]},
                      "1: answer as a file to save (Content-Disposition: attachment)"),
                Param("plain", {"type": "string", "enum": ["0", "1"]},
                      "1: without terminal escape sequences (ANSI colours, cursor moves, titles)"))))
    def read_log(run_id: str) -> HTTPResponse:
        download, plain = flag_param("download"), flag_param("plain")
        run = get_run(run_id)
        stripper = EscapeStripper() if plain else None

        def body() -> Iterator[bytes]:
            parts: list[bytes] = []
            size = 0
            try:
                for chunk in runs.chunks_after(run_id, -1):
                    data = (stripper.feed(chunk.data) if stripper else chunk.data).encode("utf-8")
                    parts.append(data)
                    size += len(data)
                    if size >= 256 * 1024:
                        yield b"".join(parts)
                        parts, size = [], 0
            except DatabaseUnavailable:
                parts.append(b"\n[scriptbox] the database became unreachable; the log is incomplete\n")
            if parts:
                yield b"".join(parts)

        resp = HTTPResponse(body=body(), status=200)
        resp.content_type = "text/plain; charset=utf-8"
        resp.set_header("Cache-Control", "no-store")
        if download:
            resp.set_header("Content-Disposition", f'attachment; filename="{log_filename(run)}"')
        return resp

    @app.get(f"/api/admin/scripts/runs/{RUN_ID}/chunks", openapi=Doc(
        "Read a run's stored output chunk by chunk, with the time of each", "runs",
        {200: Reply("One page of chunks in the order they were produced (seq), and the seq to ask after "
                    "for the next page (null: none yet).", ChunkPage)},
        errors=(400, 404, 503),
        params=(Param("after", {"type": "integer", "minimum": -1}, "the seq of the last chunk already read "
                                                                  "(default -1: from the start)"),
                Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_CHUNKS},
                      f"chunks per page, default {MAX_CHUNKS}"))))
    def read_chunks(run_id: str) -> dict[str, Any]:
        after, limit = parse_chunk_query(request.query)
        get_run(run_id)
        page = runs.chunk_page(run_id, after, limit)
        return {"chunks": [chunk_to_json(c) for c in page], "next": page[-1].seq if len(page) == limit else None}

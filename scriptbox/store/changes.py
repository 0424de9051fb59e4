"""Change streams: what other processes sharing the database just did, pushed.

One `ChangeFeed` per process opens at most one change stream per collection
(`script_runs` always; `script_run_output` only once someone asks for chunk
news, i.e. a viewer of a run executed elsewhere) and fans each event out to
the process's one listener (the engine's `Wakeups`). Every wait is
cooperative: pymongo's sockets are gevent's in a patched process, and each
stream is read by its own greenlet.

Where the deployment cannot offer change streams (a standalone mongod without
a replica set refuses `$changeStream`), with `SCRIPTBOX_CHANGE_STREAMS=off`,
and with the embedded database under `auto` (its only client is this
process, so there is nothing to learn of, and following the streams cost
SecantusDB about a third of its CPU per run: bench/start_latency.py), the
feed says so once in the log and `live` stays False: the consumers keep
polling as they did before. When a stream breaks (database stopped or
restarted), it reconnects with backoff, resuming after the last event seen
(or from now, when the database no longer knows that point), logs one line
per outage and one when it is back, and tells the listener to `resync`: news
may have been missed meanwhile, so everyone looks once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
from pymongo.errors import OperationFailure, PyMongoError

from . import Database

log = logging.getLogger("scriptbox.store")

CHANGE_STREAM_MODES = ("auto", "on", "off")
# How long one getMore waits on the server for news; the greenlet is killed
# at stop, so this only bounds how often an idle stream asks again.
AWAIT_MS = 5000
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
# The chunks stream closes when nobody asked for it this long (a process that
# executes runs would otherwise keep receiving its own chunks for nothing).
CHUNKS_IDLE_S = 60.0


@dataclass(frozen=True)
class ChangeListener:
    """What a process wants to hear; every callback must return quickly."""

    run_queued: Callable[[], None]  # a run became claimable (inserted queued, or released)
    cancel_requested: Callable[[str], None]  # a running run was asked to stop
    run_changed: Callable[[str], None]  # a run was inserted or its status changed
    chunks_added: Callable[[str], None]  # output chunks of a run were stored
    resync: Callable[[], None]  # news may have been missed (a stream broke); look again


def _no_listener() -> ChangeListener:
    def nothing(*_: Any) -> None:
        return None

    return ChangeListener(nothing, nothing, nothing, nothing, nothing)


# The runs stream carries only what someone acts on: inserts, status changes,
# releases of waiting runs and cancel requests (not the tails written every second).
RUNS_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"$or": [
        {"operationType": "insert"},
        {"updateDescription.updatedFields.status": {"$exists": True}},
        {"updateDescription.updatedFields.waitsFor": {"$exists": True}},
        {"updateDescription.updatedFields.cancelRequested": True},
    ]}},
    {"$project": {
        "operationType": 1, "documentKey": 1, "fullDocument.status": 1, "fullDocument.waitsFor": 1,
        "updateDescription.updatedFields.status": 1, "updateDescription.updatedFields.waitsFor": 1,
        "updateDescription.updatedFields.cancelRequested": 1,
    }},
]
# Chunk events name the run and the sequence number only: viewers read the
# chunks themselves, so the data does not cross the wire twice.
CHUNKS_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": "insert"}},
    {"$project": {"operationType": 1, "fullDocument.runId": 1, "fullDocument.seq": 1}},
]


def route_run_event(event: Mapping[str, Any], listener: ChangeListener) -> None:
    """Hand one `script_runs` change event to the listener's callbacks."""
    run_id = str((event.get("documentKey") or {}).get("_id"))
    if event.get("operationType") == "insert":
        doc = event.get("fullDocument") or {}
        listener.run_changed(run_id)
        if doc.get("status") == "queued" and doc.get("waitsFor") is None:
            listener.run_queued()
        return
    fields = (event.get("updateDescription") or {}).get("updatedFields") or {}
    if fields.get("cancelRequested") is True:
        listener.cancel_requested(run_id)
    if "status" in fields:
        listener.run_changed(run_id)
        if fields["status"] == "queued":
            listener.run_queued()
    if "waitsFor" in fields and fields["waitsFor"] is None:
        listener.run_queued()


def route_chunk_event(event: Mapping[str, Any], listener: ChangeListener) -> None:
    """Hand one `script_run_output` insert event to the listener."""
    run_id = (event.get("fullDocument") or {}).get("runId")
    if run_id is not None:
        listener.chunks_added(str(run_id))


class _Watch:
    """One change stream on one collection, read by its own greenlet until stopped."""

    def __init__(self, feed: ChangeFeed, collection: str, pipeline: list[dict[str, Any]],
                 route: Callable[[Mapping[str, Any], ChangeListener], None],
                 wanted: Callable[[], bool] = lambda: True) -> None:
        self.feed = feed
        self.wanted = wanted
        self.collection = collection
        self.pipeline = pipeline
        self.route = route
        self.open = False
        self.unsupported = False
        self._ever_opened = False
        self._broken = False  # between an interruption and the next successful open
        self.greenlet: gevent.Greenlet | None = None
        self._token: Mapping[str, Any] | None = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=True, timeout=5)
        self.open = False

    def _run(self) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                self._follow()
                if not self.wanted():
                    log.info("change stream on %s closed: nobody follows it", self.collection)
                    self.open = False
                    self.greenlet = None
                    return
                # Invalidated (the collection was dropped or renamed): start again from now.
                log.warning("change stream on %s invalidated; reopening", self.collection)
                self._token = None
            except OperationFailure as exc:
                if not self._ever_opened:
                    # Refused at the first open (standalone mongod, no
                    # privilege): waiting will not change that.
                    self.unsupported = True
                    log.warning("change streams unavailable on %s (%s); polling instead",
                                self.collection, exc.details.get("errmsg") if exc.details else exc)
                    self.feed.listener.resync()
                    return
                # E.g. the resume point is no longer in the database's
                # history (it restarted): start from now and look once.
                if not self._broken:
                    log.warning("change stream on %s failed (%s); starting again from now", self.collection,
                                exc.details.get("errmsg") if exc.details else exc)
                self._token = None
                self.open = False
            except PyMongoError as exc:
                if not self._broken:
                    log.warning("change stream on %s interrupted (%s); polling until it is back",
                                self.collection, type(exc).__name__)
                self.open = False
            if not self._broken:
                self.feed.listener.resync()  # consumers switch to polling now, not after their safety wait
                delay = RETRY_FIRST_S
            self._broken = True
            gevent.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    def _follow(self) -> None:
        collection = self.feed.database.db[self.collection]
        with collection.watch(self.pipeline, resume_after=self._token, max_await_time_ms=AWAIT_MS) as stream:
            self.open = True
            self._ever_opened = True
            if self._broken:
                self._broken = False
                log.info("change stream on %s is back", self.collection)
                self.feed.listener.resync()
            else:
                log.info("change stream on %s open", self.collection)
            while stream.alive and self.wanted():
                event = stream.try_next()
                self._token = stream.resume_token
                if event is not None:
                    try:
                        self.route(event, self.feed.listener)
                    except Exception:  # noqa: BLE001 - one bad event must not end the stream
                        log.exception("change event on %s not handled", self.collection)


def streams_mode(mode: str, *, embedded: bool) -> str:
    """What SCRIPTBOX_CHANGE_STREAMS `mode` means here: `auto` is off on the
    embedded database (its only client is this process), else as given. The
    embedded database keeps an oplog only when this is not "off" (server.py)."""
    if mode not in CHANGE_STREAM_MODES:
        raise ValueError(f"mode must be one of {CHANGE_STREAM_MODES}")
    return "off" if mode == "auto" and embedded else mode


class ChangeFeed:
    """The change streams of one process (see the module's docstring)."""

    def __init__(self, database: Database, mode: str = "auto", *, embedded: bool = False) -> None:
        """`mode` as SCRIPTBOX_CHANGE_STREAMS says; `embedded`: the database is
        this process's own SecantusDB (then `auto` means off)."""
        self.database = database
        self.mode = streams_mode(mode, embedded=embedded)
        self._off_reason = ("the embedded database has no other client" if mode == "auto"
                            else "SCRIPTBOX_CHANGE_STREAMS=off")
        self.listener = _no_listener()
        self._runs = _Watch(self, "script_runs", RUNS_PIPELINE, route_run_event)
        self._chunks = _Watch(self, "script_run_output", CHUNKS_PIPELINE, route_chunk_event,
                              wanted=lambda: time.monotonic() - self._chunks_asked < CHUNKS_IDLE_S)
        self._chunks_asked = 0.0
        self._started = False

    def listen(self, listener: ChangeListener) -> None:
        """Set the one listener (before `start`)."""
        self.listener = listener

    def start(self) -> None:
        """Open the runs stream (in the background); a no-op when off."""
        if self.mode == "off":
            log.info("change streams off (%s): polling the database", self._off_reason)
            return
        self._started = True
        self._runs.start()

    def want_chunks(self) -> None:
        """Also follow stored output chunks (idempotent; opened on the first need,
        closed again after CHUNKS_IDLE_S without a call)."""
        self._chunks_asked = time.monotonic()
        if self._started and self._chunks.greenlet is None and not self._runs.unsupported:
            self._chunks.start()

    def stop(self) -> None:
        self._started = False
        self._runs.stop()
        self._chunks.stop()

    @property
    def runs_live(self) -> bool:
        """Whether run news (queued, cancel, status) arrive pushed right now."""
        return self._runs.open

    @property
    def chunks_live(self) -> bool:
        """Whether chunk news arrive pushed right now (False until `want_chunks`)."""
        return self._runs.open and self._chunks.open

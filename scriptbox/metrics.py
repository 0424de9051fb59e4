"""Prometheus metrics of one Scriptbox process, with prometheus_client.

prometheus_client is the reference client: it owns the text format (and
OpenMetrics when a scraper asks for it), histograms and the process metrics,
so none of that is hand-written here.

Each process has its own registry (no module globals) and exports what it saw:

* counters and histograms (runs_total, durations, queue wait, output bytes)
  count the runs this process finished, claimed or received output for;
* ``scriptbox_runs_queued`` / ``scriptbox_runs_running`` are read from the
  database when scraped, so every process reports the same cluster-wide value
  (aggregate with max, not sum); ``scriptbox_runs_executing`` is this
  process's share;
* ``scriptbox_schedule_firings_total{result}`` counts the due times this
  process claimed (fired, skipped, missed; each due time is claimed by one
  process, so sum over processes); ``scriptbox_notifications_total{result}``
  counts this process's notification deliveries (sent, failed after the last
  retry, dropped because a queue was full).

Callers report through a few hook methods (run_claimed, run_finished,
output_bytes, viewing); none of them can raise into the engine.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.registry import Collector

from .errors import DatabaseUnavailable
from .vocabulary import CLIENT_TRIGGERS, FINISHED_STATUSES

log = logging.getLogger(__name__)

TRIGGERS = (*CLIENT_TRIGGERS, "schedule")
SCHEDULE_RESULTS = ("fired", "skipped", "missed")
NOTIFICATION_RESULTS = ("sent", "failed", "dropped")
# Scripts run from a fraction of a second to a day (timeoutMs allows 24 h).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


def _seconds_between(start: Any, end: Any) -> float | None:
    """end - start in seconds for two datetimes (naive = UTC, as pymongo returns them)."""
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return None
    start = start.astimezone(UTC) if start.tzinfo else start.replace(tzinfo=UTC)
    end = end.astimezone(UTC) if end.tzinfo else end.replace(tzinfo=UTC)
    return max((end - start).total_seconds(), 0.0)


class _RunStateCollector(Collector):
    """Queued/running runs, read from the database at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        executing = GaugeMetricFamily("scriptbox_runs_executing", "Runs this process is executing now.")
        executing.add_metric([], float(self._metrics.executing()))
        yield executing
        count = self._metrics.count_runs
        if count is None:
            return
        try:
            counts = count()
        except DatabaseUnavailable:
            # The scrape still answers (process metrics, counters); these two go missing,
            # which alerting sees as absent() rather than as a false zero.
            log.warning("metrics: the database is unreachable; runs_queued/runs_running omitted")
            return
        for status, help_text in (("queued", "Runs waiting for an executor (all processes)."),
                                  ("running", "Runs executing now (all processes, browser runs included).")):
            family = GaugeMetricFamily(f"scriptbox_runs_{status}", help_text)
            family.add_metric([], float(counts.get(status, 0)))
            yield family


class _OutputBytesCollector(Collector):
    """scriptbox_output_bytes_total, kept as a plain integer: it grows with every
    piece of output a run prints (thousands a second in a flood), and a Counter
    takes a lock each time (~4 % of the server's CPU in bench/throughput.py)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("scriptbox_output_bytes", "Bytes of run output received by this process.",
                                  value=self._metrics.output_bytes_received)


class Metrics:
    """The registry of one process and the hooks that feed it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.count_runs: Callable[[], Mapping[str, int]] | None = None
        self.executing: Callable[[], int] = lambda: 0
        self.runs_total = Counter(
            "scriptbox_runs", "Runs finished, by final status and trigger (finished by this process).",
            ["status", "trigger"], registry=self.registry)
        for status in FINISHED_STATUSES:
            for trigger in TRIGGERS:
                self.runs_total.labels(status, trigger)  # present at 0, so rate() works from the start
        self.run_duration = Histogram(
            "scriptbox_run_duration_seconds", "Time from start to end of finished runs.",
            buckets=DURATION_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram(
            "scriptbox_run_queue_wait_seconds", "Time runs waited queued before this process claimed them.",
            buckets=QUEUE_WAIT_BUCKETS, registry=self.registry)
        self.sse_viewers = Gauge(
            "scriptbox_sse_viewers", "Open live-output streams (SSE) on this process.", registry=self.registry)
        self.output_bytes_received = 0
        self.registry.register(_OutputBytesCollector(self))
        self.schedule_firings = Counter(
            "scriptbox_schedule_firings", "Schedule due times this process acted on, by result.",
            ["result"], registry=self.registry)
        for result in SCHEDULE_RESULTS:
            self.schedule_firings.labels(result)
        self.notifications = Counter(
            "scriptbox_notifications", "Notification deliveries of this process, by result (sent, failed, dropped).",
            ["result"], registry=self.registry)
        for result in NOTIFICATION_RESULTS:
            self.notifications.labels(result)
        self.registry.register(_RunStateCollector(self))

    def bind(self, count_runs: Callable[[], Mapping[str, int]], executing: Callable[[], int]) -> None:
        """Where the run-state gauges read from (the run store and the engine)."""
        self.count_runs = count_runs
        self.executing = executing

    # -- hooks ---------------------------------------------------------------

    def run_claimed(self, doc: Mapping[str, Any]) -> None:
        """A queued run was claimed by this process."""
        wait = _seconds_between(doc.get("createdAt"), doc.get("startedAt"))
        if wait is not None:
            self.queue_wait.observe(wait)

    def run_finished(self, doc: Mapping[str, Any]) -> None:
        """This process moved a run to its final status (called once per run)."""
        status = str(doc.get("status"))
        if status not in FINISHED_STATUSES:
            return
        self.runs_total.labels(status, str(doc.get("trigger") or "api")).inc()
        duration = _seconds_between(doc.get("startedAt"), doc.get("finishedAt"))
        if duration is not None:
            self.run_duration.observe(duration)

    def schedule_firing(self, result: str, count: int = 1) -> None:
        """This process claimed `count` due times with this result (fired, skipped, missed)."""
        if result in SCHEDULE_RESULTS and count > 0:
            self.schedule_firings.labels(result).inc(count)

    def notification(self, result: str) -> None:
        """This process sent a notification, gave up on one (failed), or dropped one (a queue was full)."""
        if result in NOTIFICATION_RESULTS:
            self.notifications.labels(result).inc()

    def output_bytes(self, count: int) -> None:
        if count > 0:
            self.output_bytes_received += count

    @contextlib.contextmanager
    def viewing(self) -> Iterator[None]:
        """Counts an open SSE stream for as long as the block runs."""
        self.sse_viewers.inc()
        try:
            yield
        finally:
            self.sse_viewers.dec()

    # -- exposition ----------------------------------------------------------

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The scrape body and its content type (OpenMetrics if the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

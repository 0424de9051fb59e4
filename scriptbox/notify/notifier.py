"""Delivery of notifications in the background, bounded in every direction.

    run store finishes a run ──run_finished()──▶ queue of run ends (bounded; full: dropped)
        dispatcher greenlet: matching channels (one query) ──▶ one outbox per channel (bounded; full: dropped)
            one sender greenlet per busy channel: send, retry with backoff ──▶ thread pool (Apprise)

* The hook `run_finished` is called by the run store right after the
  conditional update that ended a run succeeded. That update succeeds once
  across every process sharing the database, so the process that recorded the
  end (the executor, or whoever canceled or reaped the run) is the one that
  notifies, exactly once. It only puts a small record on a queue: it never
  waits, never touches the network and never raises, so no run's end waits.
* One outbox and one sender per channel: a channel that hangs or fails
  delays only its own messages, never another channel's.
* Apprise is blocking code: it runs in a small pool of OS threads, each send
  with Apprise's connect/read timeouts set to `send_timeout_s`; the sender
  stops waiting a little after that. A semaphore counts sends still running in
  a thread (also those given up on), so stuck sends cannot pile up work.
* Every delivery that fails after its last attempt is recorded on the channel
  (`lastError`, `lastErrorAt`), in the audit log (`notification.failed`) and in
  `scriptbox_notifications_total{result="failed"}`. A channel whose sealed
  URL cannot be opened (another or a lost key) fails at once, without
  attempts, and is recorded the same way with the key problem as its error.
  Messages dropped because
  a queue was full count as `dropped`, are logged, and are summed into one
  audit entry per `drop_report_s`.
* Delivery is at most once: messages still waiting when the process stops
  (after a grace period) are lost, as are run ends recorded while the
  database was unreachable for the channel lookup.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.pool
import gevent.queue
from gevent.threadpool import ThreadPool

from ..audit import AuditLog
from ..errors import DatabaseUnavailable
from ..secretbox import SecretBox, SecretUnavailable
from ..store import utcnow
from ..store.notifications import NotificationStore
from .apprise_url import ChannelUrl, parse_channel_url, redact
from .apprise_url import send as apprise_send
from .message import Message, RunEnded, check_message, run_ended, run_message

log = logging.getLogger(__name__)

Sender = Callable[[str, Message, float], "str | None"]


@dataclass
class NotifierOptions:
    send_timeout_s: float = 10.0  # per attempt: Apprise's connect/read timeouts, and our wait
    attempts: int = 3
    retry_delay_s: float = 5.0  # before the 2nd attempt; doubled before each further one
    queue_size: int = 500  # run ends waiting for their channel lookup
    channel_backlog: int = 50  # messages waiting per channel
    threads: int = 4
    stop_grace_s: float = 5.0  # at shutdown, waiting messages get this long
    drop_report_s: float = 60.0  # dropped messages: at most one audit entry per this many seconds


@dataclass(frozen=True)
class _Delivery:
    channel: Mapping[str, Any]
    message: Message
    event: RunEnded | None  # None: a test message


class Notifier:
    """The notifications of one process; `start` before runs end, `stop` after the engine."""

    def __init__(self, store: NotificationStore, audit: AuditLog, secrets: SecretBox, *,
                 on_result: Callable[[str], None],
                 options: NotifierOptions | None = None, base_url: str | None = None,
                 send: Sender = apprise_send) -> None:
        self.options = options or NotifierOptions()
        self._store = store
        self._audit = audit
        self._secrets = secrets
        self._on_result = on_result
        self._send = send
        self.base_url = base_url
        self._events: gevent.queue.Queue[RunEnded] = gevent.queue.Queue(self.options.queue_size)
        self._outboxes: dict[str, deque[_Delivery]] = {}
        self._senders = gevent.pool.Group()
        self._sending: dict[str, gevent.Greenlet] = {}
        self._threads: ThreadPool | None = None
        self._in_threads = gevent.lock.BoundedSemaphore(self.options.threads * 2)
        self._dispatcher: gevent.Greenlet | None = None
        self._dropped = 0
        self._dropped_reported_at = float("-inf")

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._dispatcher = gevent.spawn(self._dispatch_forever)

    def stop(self) -> None:
        """Give waiting messages `stop_grace_s`, then drop the rest."""
        dispatcher, self._dispatcher = self._dispatcher, None
        if dispatcher is not None:
            with gevent.Timeout(self.options.stop_grace_s, False):
                while not self._events.empty():
                    gevent.sleep(0.05)
            dispatcher.kill()
        self._senders.join(timeout=self.options.stop_grace_s)
        self._senders.kill(timeout=1)
        threads, self._threads = self._threads, None
        if threads is not None:
            # ThreadPool.kill returns once every send under way and every one
            # queued behind them has ended, each after up to send_timeout_s (a
            # thread cannot be interrupted): 20 s for eight stuck sends. The stop
            # gives it a second and leaves the rest to end with the process.
            gevent.spawn(threads.kill).join(timeout=1)

    def set_fallback_base_url(self, url: str) -> None:
        """The link base when SCRIPTBOX_PUBLIC_URL is unset (the server's own address, known once bound)."""
        if self.base_url is None:
            self.base_url = url

    # -- the hook ----------------------------------------------------------------

    def run_finished(self, doc: Mapping[str, Any]) -> None:
        """A run ended and this process recorded it: queue its notification. Never blocks, never raises."""
        if self._dispatcher is None:
            return
        try:
            self._events.put_nowait(run_ended(doc))
        except gevent.queue.Full:
            self._drop(f"run {doc.get('_id')}: the queue of run ends is full")
        except Exception:  # noqa: BLE001 - a notification must never break the finish of a run
            log.exception("could not queue the notification of run %s", doc.get("_id"))

    # -- blocking helpers, run in the thread pool ----------------------------------

    def in_thread(self, function: Callable[..., Any], *args: Any, timeout: float | None = None) -> Any:
        """`function(*args)` in the thread pool, waiting cooperatively; raises gevent.Timeout after `timeout`.

        Also used by the API to parse URLs, so Apprise's plugin loading never runs on the event loop.
        """
        if self._threads is None:
            self._threads = ThreadPool(self.options.threads)
        deadline = gevent.Timeout(timeout) if timeout is not None else None
        if deadline is not None:
            deadline.start()
        try:
            self._in_threads.acquire()
            try:
                result = self._threads.spawn(function, *args)
            except BaseException:
                self._in_threads.release()
                raise
            # Released when the thread is done, also when we stopped waiting for it.
            result.rawlink(lambda _: self._in_threads.release())
            return result.get()
        finally:
            if deadline is not None:
                deadline.close()

    def parse_url(self, url: str) -> ChannelUrl | None:
        """Apprise's reading of `url` (None: it cannot use it), computed in the thread pool."""
        try:
            return self.in_thread(parse_channel_url, url, timeout=60)
        except (Exception, gevent.Timeout):  # noqa: BLE001 - an unusable URL (or a broken Apprise) is a 400, not a 500
            log.exception("Apprise could not read a notification URL")
            return None

    # -- sending -------------------------------------------------------------------

    def _open_url(self, channel: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(the channel's URL in clear, None), or (None, why it cannot be opened: the key, or no sealed URL)."""
        try:
            return self._secrets.open(str(channel.get("urlSealed") or ""),
                                      f"URL of notification channel {channel.get('name')!r}"), None
        except SecretUnavailable as exc:
            return None, str(exc)

    def _send_once(self, url: str, message: Message) -> str | None:
        timeout = self.options.send_timeout_s
        try:
            return self.in_thread(self._send, url, message, timeout, timeout=timeout + 2)
        except gevent.Timeout:
            return f"no answer within {timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - Apprise plugins may raise anything; it is this send's failure
            return f"{type(exc).__name__}: {redact(str(exc), url)}"

    def send_test(self, channel: Mapping[str, Any], actor: str, remote_addr: str | None) -> str | None:
        """Send a test message to `channel` now (one attempt); None when delivered, else why not (recorded)."""
        delivery = _Delivery(channel, check_message(str(channel["name"]), self.base_url), None)
        url, error = self._open_url(channel)
        if url is not None:
            error = self._send_once(url, delivery.message)
        if error is None:
            self._succeeded(delivery)
        else:
            self._failed(delivery, error, 0 if url is None else 1, actor, remote_addr)
        return error

    def _deliver(self, delivery: _Delivery) -> None:
        url, error = self._open_url(delivery.channel)
        if url is None:
            # Retrying cannot bring the key back: record it now, no attempt made.
            self._failed(delivery, error or "no URL", 0, "notifier", None)
            return
        for attempt in range(1, self.options.attempts + 1):
            if attempt > 1:
                gevent.sleep(self.options.retry_delay_s * 2 ** (attempt - 2))
            error = self._send_once(url, delivery.message)
            if error is None:
                self._succeeded(delivery)
                return
            log.info("notification to %r failed (attempt %d of %d): %s", delivery.channel.get("name"), attempt,
                     self.options.attempts, error)
        self._failed(delivery, error or "not delivered", self.options.attempts, "notifier", None)

    def _succeeded(self, delivery: _Delivery) -> None:
        self._on_result("sent")
        try:
            self._store.record_sent(delivery.channel["_id"], utcnow())
        except DatabaseUnavailable:
            log.warning("notification to %r sent; its lastSentAt is not recorded (database unreachable)",
                        delivery.channel.get("name"))

    def _failed(self, delivery: _Delivery, error: str, attempts: int, actor: str, remote_addr: str | None) -> None:
        channel, event = delivery.channel, delivery.event
        self._on_result("failed")
        log.warning("notification to %r failed after %d attempt(s): %s", channel.get("name"), attempts, error)
        what = f"run {event.run_id} ({event.status})" if event else "test message"
        details = {"channel": channel.get("name"), "url": channel.get("urlMasked"), "error": error,
                   "attempts": attempts, "runId": event.run_id if event else None,
                   "status": event.status if event else None}
        try:
            self._store.record_failure(channel["_id"], utcnow(), error)
            self._audit.record(actor, "notification.failed", "notification", str(channel["_id"]),
                               f"notification to {channel.get('name')!r} failed: {what}: {error}", details,
                               remote_addr, event.script_id if event else None)
        except DatabaseUnavailable:
            log.warning("the failure of a notification to %r is not recorded (database unreachable)",
                        channel.get("name"))

    # -- the dispatcher and the outboxes -------------------------------------------------

    def _dispatch_forever(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=self.options.drop_report_s)
            except gevent.queue.Empty:
                event = None
            try:
                self._report_drops()
                if event is not None:
                    self._dispatch(event)
            except Exception:  # noqa: BLE001 - one bad run end must not stop every later notification
                log.exception("notifications of a run end were not sent")

    def _dispatch(self, event: RunEnded) -> None:
        try:
            channels = self._store.matching(event.status, event.script_id)
        except DatabaseUnavailable:
            self._drop(f"run {event.run_id}: the database is unreachable, channels unknown")
            return
        if not channels:
            return
        message = run_message(event, self.base_url)
        for channel in channels:
            self._post(_Delivery(channel, message, event))

    def _post(self, delivery: _Delivery) -> None:
        key = str(delivery.channel["_id"])
        outbox = self._outboxes.setdefault(key, deque())
        if len(outbox) >= self.options.channel_backlog:
            self._drop(f"channel {delivery.channel.get('name')!r}: {len(outbox)} messages already waiting")
            return
        outbox.append(delivery)
        if key not in self._sending:
            self._sending[key] = self._senders.spawn(self._drain, key, outbox)

    def _drain(self, key: str, outbox: deque[_Delivery]) -> None:
        try:
            while outbox:
                delivery = outbox.popleft()
                try:
                    self._deliver(delivery)
                except Exception:  # noqa: BLE001 - e.g. a database error recording it; the next message still goes
                    log.exception("notification to %r not completed", delivery.channel.get("name"))
        finally:
            # No switch between the last emptiness check and here: a message
            # posted meanwhile would have found this sender still listed.
            del self._sending[key]
            if not outbox:
                self._outboxes.pop(key, None)

    def _drop(self, why: str) -> None:
        self._dropped += 1
        self._on_result("dropped")
        log.warning("notification dropped: %s", why)

    def _report_drops(self) -> None:
        now = gevent.get_hub().loop.now()
        if not self._dropped or now - self._dropped_reported_at < self.options.drop_report_s:
            return
        count, self._dropped = self._dropped, 0
        self._dropped_reported_at = now
        try:
            self._audit.record("notifier", "notification.failed", "notification", None,
                               f"{count} notification{'s' if count != 1 else ''} dropped: too many waiting",
                               {"dropped": count, "error": "queue full"})
        except DatabaseUnavailable:
            log.warning("%d dropped notifications not recorded in the audit log (database unreachable)", count)

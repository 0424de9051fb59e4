"""Run output: pipe reading, decoding, the tail, batched persistence.

Memory is bounded at every stage, whatever a script prints:

- a pipe is read in blocks of at most `READ_SIZE` bytes by its own greenlet,
  and a block is not read before the previous one is handed on;
- the stored log of a run stops at `max_log_bytes` (then one marker chunk);
- chunks waiting for the database are bounded by `ChunkWriter.max_pending`:
  when the database falls behind, readers wait, so the script blocks on its
  pipe instead of the server buffering;
- each live viewer's queue is bounded (scriptbox/engine/hub.py).

Live delivery and storage are batched apart. A reader hands what it read to
the run at once when nothing is in flight (write-through: a line reaches the
viewers as soon as it is printed) and gathers output only while its viewers
are still busy with the previous piece, for at most `COALESCE_S`. Every piece
gets its own seq and goes to the viewers at once; for the database the pieces
of one stream are grouped into one chunk over up to `STORE_GROUP_S`, or until
an idle chunk writer takes the group (`ChunkWriter.takes_open_groups`): a chatty
script stores at most ~10-20 chunks/s per stream, not one per line.
"""

from __future__ import annotations

import codecs
import errno
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import gevent
import gevent.event
import gevent.socket

from ..masking import SecretMasker, StreamMasker
from ..sse_wire import output_piece
from ..store.records import Chunk, OutputTotals
from .hub import HubEvent, OutputHub

log = logging.getLogger("scriptbox.engine")  # one logger for the whole run engine, as operators filter it

# A reader hands on what it has once the pipe is drained, so a script printing
# lines sees them go one by one; only a script writing faster than the reader
# fills a block. 256 KiB rather than 64: with 64 KiB pieces the server spent a
# third more CPU per MB on pieces, events and writes (bench/throughput.py:
# 0.54 -> 0.42 s per 200 MB, 232 -> 273 MB/s to one SSE client).
READ_SIZE = 256 * 1024
# A run whose stored output stays under this keeps all of it in memory too,
# while it runs and for RECENT_S after its end (engine/live.py): most runs
# print little, and their viewers, who often connect after an instant
# script has ended, then need no database read.
HISTORY_BYTES = 64 * 1024
# While a run's viewers are still busy with the previous piece, a reader
# gathers what follows for at most this long before handing it on anyway.
# Short, because viewers also join whatever queued up into one event: under
# load (20 runs x 5 viewers on a busy 2-core VM) 100 ms here added its full
# length to the p99 lag, 20 ms keeps the hold within the 50 ms goal.
COALESCE_S = 0.02
# Pieces of one stream are stored as one chunk for up to this long (and up to
# STORE_GROUP_BYTES): the database (roughly 5k inserted documents/s for
# SecantusDB) sees ~10 chunks/s per chatty stream whatever the live delivery does.
STORE_GROUP_S = 0.1
STORE_GROUP_BYTES = 64 * 1024
# Chunks waiting for the database, across all runs: above this, pipe readers
# wait. A run stores at most `max_log_bytes` (10 MiB by default), so a flood's
# stored part fits and the database takes it while the script goes on. With
# 4 MiB the reader waited for SecantusDB (~100 MB/s of chunk data) through the
# first 10 MiB, everything else idle: bench/throughput.py went 338 -> 382 MB/s
# (idle CPU 27 -> 18 %) with 16 MiB, for at most 12 MiB more server memory.
MAX_PENDING_BYTES = 16 * 1024 * 1024
# How often an idle writer runs its progress hook (outputTail, byte counts).
IDLE_TICK_S = 0.2
TRUNCATION_NOTE = (
    "\n[scriptbox] stored log limit of {limit} bytes reached: further output is "
    "shown live but not stored\n"
)


@dataclass
class PendingChunk:
    chunk: Chunk
    event: HubEvent
    size: int


class ChunkWriter:
    """Persists output chunks of all runs with group commit: at once when idle,
    else all waiting chunks in one bulk insert, at most one per `interval_s`.

    `insert` is called with a list of chunks from many runs (the runs store's
    `add_chunks`). Chunks stay visible through `unflushed()` until
    their insert has completed, so a viewer that subscribes meanwhile finds
    them either in the database or in its seed.
    """

    def __init__(
        self,
        insert: Callable[[list[Chunk]], None],
        interval_s: float = 0.02,
        max_pending: int = MAX_PENDING_BYTES,
        max_batch_bytes: int = 1024 * 1024,
        on_flushed: Callable[[], None] | None = None,
        takes_open_groups: bool = True,
    ) -> None:
        self._insert = insert
        # Whether the writer seals runs' open store groups (`hold`) when idle or
        # before each insert, rather than leaving them to their STORE_GROUP_S
        # timer: other processes sharing the database read a run's output from
        # there, so they see a line within milliseconds. Alone on its embedded
        # database nobody else reads it, and waiting the 100 ms cut the
        # database's CPU under 20 chatty runs from 27-28 to 17-18 % of a core
        # (bench/fanout.py: 284 -> ~104 chunk documents per 1000-line run).
        self.takes_open_groups = takes_open_groups
        self.interval_s = interval_s
        self.max_pending = max_pending
        # pymongo holds a few encoded copies of a batch while sending it, so
        # one bulk write is kept to about this size (several per interval when
        # a run floods its output; still one per interval for ordinary runs).
        self.max_batch_bytes = max_batch_bytes
        self._on_flushed = on_flushed
        self._pending: list[PendingChunk] = []
        self._sealers: list[Callable[[], None]] = []
        self._inflight: list[PendingChunk] = []
        self._pending_bytes = 0
        self._wake = gevent.event.Event()
        self._room = gevent.event.Event()
        self._room.set()
        self._flushed = gevent.event.Event()
        self._urgent = gevent.event.Event()
        # Chunks are persisted in the order they were added, so two counters
        # tell whether everything added before some moment is stored.
        self._added = 0
        self._persisted = 0
        self._loop: gevent.Greenlet | None = None
        self._stopping = False
        self.batches = 0
        self.documents = 0

    def start(self) -> None:
        if self._loop is None:
            self._loop = gevent.spawn(self._run)

    def stop(self) -> None:
        """Flush what is pending and stop the loop."""
        self._stopping = True
        self._wake.set()
        self._urgent.set()
        if self._loop is not None:
            self._loop.join(timeout=10)
            self._loop.kill()
            self._loop = None

    def add(self, chunk: Chunk, event: HubEvent) -> None:
        size = len(chunk.data) + 64
        self._pending.append(PendingChunk(chunk, event, size))
        self._pending_bytes += size
        self._added += 1
        self._wake.set()  # persisted at once when the writer is idle (group commit, see _run)
        if self._pending_bytes >= self.max_pending:
            self._room.clear()

    def hold(self, seal: Callable[[], None]) -> None:
        """A chunk is being gathered: `seal` hands it over; called right before the next insert
        (unless this writer leaves open groups to their timers, `takes_open_groups`)."""
        if not self.takes_open_groups:
            return
        self._sealers.append(seal)
        self._wake.set()

    def _seal_held(self) -> None:
        sealers, self._sealers = self._sealers, []
        for seal in sealers:
            seal()

    def wait_for_room(self) -> None:
        """Block the caller (a pipe reader) while the database is behind."""
        while self._pending_bytes >= self.max_pending and not self._stopping:
            self._room.wait(1.0)

    def unflushed(self, run_id: str) -> list[HubEvent]:
        """Events of a run that are not yet known to be in the database."""
        return [p.event for p in self._inflight + self._pending if p.chunk.run_id == run_id]

    def flush_now(self, timeout: float = 30.0) -> bool:
        """Wait until everything added so far is persisted (False on timeout)."""
        target = self._added
        deadline = time.monotonic() + timeout
        while self._persisted < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._flushed.clear()
            self._wake.set()
            self._urgent.set()
            self._flushed.wait(min(remaining, 1.0))
        return True

    def _run(self) -> None:
        last_start = float("-inf")
        while True:
            self._seal_held()
            if not self._pending:
                self._urgent.clear()  # nothing left to hurry
                self._flushed.set()
                if self._stopping:
                    return
                # Idle: an `add` wakes the loop at once; the timeout only paces the progress hook.
                self._wake.wait(IDLE_TICK_S)
                self._wake.clear()
                continue
            while self._pending:
                # Group commit: the first chunk after a quiet spell is written at
                # once; chunks added while an insert is in flight, or within
                # `interval_s` of the last insert's start, go together into the
                # next bulk insert. A flood (a full batch waiting) goes at once.
                due = last_start + self.interval_s - time.monotonic()
                if due > 0 and not self._stopping and self._pending_bytes < self.max_batch_bytes:
                    # Someone waiting in flush_now (a run's end) cuts the wait short.
                    self._urgent.wait(due)
                    self._urgent.clear()
                self._seal_held()
                last_start = time.monotonic()
                self._flush_once()
            if self._on_flushed is not None:
                try:
                    self._on_flushed()
                except Exception:  # noqa: BLE001 - progress updates must not stop persistence
                    log.exception("progress update failed")

    def _flush_once(self) -> None:
        taken = 0
        size = 0
        for p in self._pending:
            if taken and size + p.size > self.max_batch_bytes:
                break
            taken += 1
            size += p.size
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._inflight = batch
        delay = 0.2
        while True:
            try:
                self._insert([p.chunk for p in batch])
                break
            except Exception as exc:  # noqa: BLE001 - the database may be briefly away; retry
                # One line per retry: an outage repeats it every few seconds, a traceback each time says nothing new.
                log.warning("storing %d output chunks failed (%s); retrying in %.1f s", len(batch),
                            exc.__class__.__name__, delay)
                gevent.sleep(delay)
                delay = min(delay * 2, 5.0)
                if self._stopping and delay >= 5.0:
                    log.error("dropping %d output chunks at shutdown", len(batch))
                    break
        self.batches += 1
        self.documents += len(batch)
        self._inflight = []
        self._pending_bytes -= sum(p.size for p in batch)
        self._persisted += len(batch)
        self._flushed.set()
        if self._pending_bytes < self.max_pending:
            self._room.set()


class TailBuffer:
    """The last `limit` bytes of output as text (outputTail)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: deque[str] = deque()
        self._chars = 0

    def add(self, text: str) -> None:
        if self.limit <= 0:
            return
        if len(text) > self.limit:
            # Characters are at most 4 bytes; keep enough characters to fill
            # `limit` bytes even when they are all ASCII.
            text = text[-self.limit :]
        self._parts.append(text)
        self._chars += len(text)
        while self._parts and self._chars - len(self._parts[0]) >= self.limit:
            self._chars -= len(self._parts.popleft())

    def text(self) -> str:
        joined = "".join(self._parts)
        raw = joined.encode("utf-8")
        if len(raw) <= self.limit:
            return joined
        # Cut at a character boundary.
        return raw[-self.limit :].decode("utf-8", "ignore")


@dataclass
class StoreGroup:
    """Consecutive stored pieces of one stream, to become one chunk."""

    stream: str
    system: bool
    at: datetime | None = None  # when its first piece was read: the stored chunk's time
    texts: list[str] = field(default_factory=list)
    events: list[HubEvent] = field(default_factory=list)
    size: int = 0
    timer: gevent.Greenlet | None = None

    def chunk(self, run_id: str) -> Chunk:
        last = self.events[-1].seq
        assert last is not None
        parts = tuple(len(t) for t in self.texts) if len(self.texts) > 1 else ()
        return Chunk(run_id, last, self.stream, "".join(self.texts), self.system, at=self.at, parts=parts)


@dataclass
class RunOutput:
    """Output bookkeeping of one run: sequence numbers, cap, tail, totals."""

    run_id: str
    max_log_bytes: int
    tail: TailBuffer
    writer: ChunkWriter
    hub: OutputHub
    seq: int = 0
    stored_bytes: int = 0
    output_bytes: int = 0
    truncated: bool = False
    dirty: bool = False
    on_bytes: Callable[[int], None] | None = None  # told of every byte received (metrics)
    on_close: Callable[[], None] | None = None
    # Secret masking (masking.py): one masker per stream, so a secret split
    # across reads of one stream is still found. Set before any output.
    masker: SecretMasker | None = None
    _masking: dict[str, StreamMasker] = field(default_factory=dict)
    _group: StoreGroup | None = None
    # Every stored piece, in order, while the stored log is small (HISTORY_BYTES;
    # None past that): a viewer who comes late, even just after the end, is
    # then served from memory (LiveOutput.history, Engine.local_run).
    history: list[HubEvent] | None = field(default_factory=list)
    _history_bytes: int = 0

    def totals(self) -> OutputTotals:
        return OutputTotals(self.tail.text(), self.output_bytes, self.truncated)

    def mask_secrets(self, masker: SecretMasker) -> None:
        """Mask these secrets in everything emitted from now on."""
        self.masker = masker if masker else None

    def close(self) -> None:
        """The run's output is complete: emit what the maskers held back, hand the last chunk to the writer."""
        for stream, masking in list(self._masking.items()):
            rest = masking.flush()
            if rest:
                self.emit(stream, rest, 0, unmasked=False)
        self._seal()
        if self.on_close is not None:
            self.on_close()

    def busy(self) -> bool:
        """Whether output handed on before is still on its way to a viewer."""
        return self.hub.busy(self.run_id)

    def wait_idle(self, timeout: float) -> None:
        self.hub.wait_idle(self.run_id, timeout)

    def unstored(self) -> list[HubEvent]:
        """Events of stored pieces not handed to the chunk writer yet (a new viewer's seed)."""
        return list(self._group.events) if self._group is not None else []

    def emit(self, stream: str, text: str, raw_len: int, system: bool = False, *, unmasked: bool = True) -> None:
        """Record, store (within the cap) and publish one piece of output.

        This is the one way output enters a run (pipes, browser results,
        Scriptbox's own lines): secrets are masked here, before the tail, the
        stored log or any viewer sees the text. Scriptbox's own lines (`system`)
        and text already masked (`unmasked` False) pass as they are.
        """
        self.output_bytes += raw_len
        if self.on_bytes is not None:
            self.on_bytes(raw_len)
        if self.masker is not None and unmasked and not system:
            masking = self._masking.get(stream)
            if masking is None:
                masking = self._masking[stream] = self.masker.stream()
            text = masking.feed(text)
        if not text:
            return
        self.tail.add(text)
        self.dirty = True
        if self.truncated:
            self._publish(stream, text, system, store=False)
            return
        encoded_len = len(text.encode("utf-8")) if not text.isascii() else len(text)
        room = self.max_log_bytes - self.stored_bytes
        if encoded_len <= room:
            self.stored_bytes += encoded_len
            self._publish(stream, text, system, store=True)
            return
        # Split at the cap: the part that fits is stored, then one marker
        # chunk, then the rest goes to live viewers only.
        head = text.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
        rest = text[len(head) :]
        if head:
            self.stored_bytes += len(head.encode("utf-8"))
            self._publish(stream, head, system, store=True)
        self.truncated = True
        note = TRUNCATION_NOTE.format(limit=self.max_log_bytes)
        self._publish("stderr", note, True, store=True)
        if rest:
            self._publish(stream, rest, system, store=False)

    def _publish(self, stream: str, text: str, system: bool, store: bool) -> None:
        self.seq += 1
        if not store and not self.hub.watched(self.run_id):
            # Past the stored log's limit with nobody watching, the piece goes
            # nowhere: it is counted (emit) and numbered, not framed. A flood
            # nobody watches (a scheduled run printing gigabytes) costs the
            # server 7-14 % less CPU (bench/throughput.py, "nobody watching").
            return
        at = datetime.now(UTC)
        piece = output_piece(self.seq, stream, text, system, at, kept=store)
        event = HubEvent("output", seq=self.seq, piece=piece)
        if store:
            self._store(stream, text, system, event, at)
            self._remember(event, len(text))
        self.hub.publish(self.run_id, event)
        if store:
            self.writer.wait_for_room()

    def _remember(self, event: HubEvent, size: int) -> None:
        if self.history is None:
            return
        self._history_bytes += size
        if self._history_bytes > HISTORY_BYTES:
            self.history = None  # a big log is replayed from the database
        else:
            self.history.append(event)

    def _store(self, stream: str, text: str, system: bool, event: HubEvent, at: datetime) -> None:
        group = self._group
        if group is not None and (group.stream != stream or group.system != system
                                  or group.size + len(text) > STORE_GROUP_BYTES):
            # Chunks keep the order of the pieces: a piece of the other stream ends the group.
            self._seal()
            group = None
        if group is None:
            group = self._group = StoreGroup(stream, system, at)
            group.timer = gevent.spawn_later(STORE_GROUP_S, self._seal_due, group)
            # An idle writer may seal it at once, a busy one right before its next insert.
            self.writer.hold(self._seal)
        group.texts.append(text)
        group.events.append(event)
        group.size += len(text)

    def _seal_due(self, group: StoreGroup) -> None:
        if self._group is group:
            group.timer = None  # this greenlet is that timer: it must not kill itself
            self._seal()

    def _seal(self) -> None:
        """Hand the open group to the chunk writer as one chunk."""
        group, self._group = self._group, None
        if group is None:
            return
        if group.timer is not None:
            group.timer.kill(block=False)
        chunk = group.chunk(self.run_id)
        self.writer.add(chunk, HubEvent("output", seq=chunk.seq, parts=tuple(group.events)))


class ReadBuffers:
    """Read buffers lent to pipe readers while they hold data.

    A reader takes one when its pipe has something to read and gives it back
    once everything read is handed on: a run that prints a line now and then
    holds no buffer while it waits, so a thousand quiet runs do not hold a
    thousand times 2 x 256 KiB. Up to `keep` free buffers of each size are
    kept for the next reader; the rest are left to the allocator.
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self.lent = 0
        self._free: dict[int, list[bytearray]] = {}

    def take(self, size: int) -> bytearray:
        self.lent += 1
        free = self._free.get(size)
        return free.pop() if free else bytearray(size)

    def give(self, buffer: bytearray) -> None:
        self.lent -= 1
        free = self._free.setdefault(len(buffer), [])
        if len(free) < self.keep:
            free.append(buffer)


# The buffers of all pipe readers of this process (they run on one event loop).
READ_BUFFERS = ReadBuffers()


def read_stream(
    fd: int,
    stream: str,
    sink: Callable[[str, str, int], None],
    coalesce_s: float = COALESCE_S,
    read_size: int = READ_SIZE,
    busy: Callable[[], bool] | None = None,
    wait_idle: Callable[[float], None] | None = None,
) -> None:
    """Read a pipe until EOF, decoding UTF-8 incrementally, and feed `sink`.

    Blocking reads are cooperative (gevent waits for readability; no polling).
    What is read is handed on as soon as the pipe has nothing more to give,
    unless `busy()` says the previous hand-off is still on its way: then the
    reader waits (`wait_idle`) up to `coalesce_s` and hands on everything that
    arrived meanwhile in one piece. A partial line is never held longer than
    that. `sink(stream, text, raw_byte_count)` receives decoded text; invalid
    bytes become U+FFFD and a character split across reads is kept whole.
    """
    os.set_blocking(fd, False)
    # Reads go into one buffer, and a piece is decoded from it: no bytes object
    # per read and no joining of reads (a flood's 200 MB were copied once more
    # by b"".join). Up to 3 bytes of a character split across reads stay at
    # its start for the next piece. The buffer is borrowed (READ_BUFFERS) from
    # the moment the pipe is readable until everything read is handed on.
    buffer: bytearray | None = None
    size = 0  # bytes in the buffer
    fresh = 0  # of which read since the last hand-off
    held_since: float | None = None  # when output was first held back for busy viewers

    def deliver(final: bool = False) -> None:
        nonlocal size, fresh, held_since
        assert buffer is not None
        text, used = codecs.utf_8_decode(memoryview(buffer)[:size], "replace", final)
        if text or fresh:
            sink(stream, text, fresh)
        buffer[:size - used] = buffer[used:size]  # the rest of a split character (a copy: they may overlap)
        size -= used
        fresh = 0
        held_since = None

    try:
        while True:
            if buffer is None:
                buffer = READ_BUFFERS.take(read_size)
            try:
                # A pipe holds 64 KiB (unless resized): reads are no larger.
                count = os.readv(fd, (memoryview(buffer)[size:],))
            except BlockingIOError:
                if not fresh:
                    if not size:  # nothing held: the buffer goes back while the pipe is quiet
                        READ_BUFFERS.give(buffer)
                        buffer = None
                    gevent.socket.wait_read(fd)
                    continue
                # The pipe is drained: hand on now, unless the viewers are still busy.
                if busy is not None and wait_idle is not None and busy():
                    now = time.monotonic()
                    held_since = now if held_since is None else held_since
                    remaining = held_since + coalesce_s - now
                    if remaining > 0:
                        wait_idle(remaining)
                        continue  # read what arrived meanwhile
                deliver()
                continue
            except OSError as exc:
                if exc.errno in (errno.EBADF, errno.EIO):
                    break
                raise
            if not count:
                break
            size += count
            fresh += count
            if size >= read_size:
                deliver()
        deliver(final=True)  # a buffer is taken before every read, the last one included
    finally:
        if buffer is not None:
            READ_BUFFERS.give(buffer)

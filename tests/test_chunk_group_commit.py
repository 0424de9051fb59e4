"""The chunk writer's group commit, on the real database: at once when idle,
one bulk insert for everything that waited while an insert was in flight."""

from __future__ import annotations

import time
from collections.abc import Iterator

import gevent
import pytest
from bson import ObjectId

from scriptbox.engine.hub import HubEvent, OutputHub
from scriptbox.engine.output import STORE_GROUP_S, ChunkWriter, RunOutput, TailBuffer
from scriptbox.store.records import Chunk
from scriptbox.store.runs import RunStore
from support.inprocess import InProcessApp

RUN_A = "65a000000000000000000001"
RUN_B = "65a000000000000000000002"


@pytest.fixture(scope="module")
def runs(app: InProcessApp) -> RunStore:
    return app.services.runs


class CountingInsert:
    """RunStore.add_chunks, counting the bulk inserts and when each began."""

    def __init__(self, runs: RunStore, slow_s: float = 0.0) -> None:
        self.runs = runs
        self.slow_s = slow_s
        self.calls: list[tuple[float, int]] = []

    def __call__(self, chunks: list[Chunk]) -> None:
        self.calls.append((time.monotonic(), len(chunks)))
        self.runs.add_chunks(chunks)
        if self.slow_s:
            gevent.sleep(self.slow_s)  # an insert still in flight, as under a busy database


@pytest.fixture()
def writer_and_insert(runs: RunStore) -> Iterator[tuple[ChunkWriter, CountingInsert]]:
    insert = CountingInsert(runs)
    writer = ChunkWriter(insert, interval_s=0.02)
    writer.start()
    yield writer, insert
    writer.stop()


def _add(writer: ChunkWriter, run_id: str, seq: int) -> None:
    writer.add(Chunk(run_id, seq, "stdout", f"line {seq}\n"), HubEvent("output", seq=seq))


def test_an_idle_writer_stores_a_chunk_at_once(writer_and_insert: tuple[ChunkWriter, CountingInsert],
                                               runs: RunStore) -> None:
    writer, insert = writer_and_insert
    gevent.sleep(0.3)  # idle: longer than the old fixed 200 ms interval
    added = time.monotonic()
    _add(writer, RUN_A, 1)
    assert writer.flush_now(5)
    assert insert.calls and insert.calls[0][0] - added < 0.05  # not held for an interval
    assert [c.seq for c in runs.chunks_after(RUN_A, 0)] == [1]


def test_chunks_of_all_runs_added_while_an_insert_is_in_flight_go_in_one_bulk_insert(runs: RunStore) -> None:
    insert = CountingInsert(runs, slow_s=0.1)
    writer = ChunkWriter(insert, interval_s=0.02)
    writer.start()
    try:
        _add(writer, RUN_B, 1)
        gevent.sleep(0.03)  # the first insert is in flight now
        for seq in range(2, 42):
            _add(writer, RUN_B, seq)
            _add(writer, RUN_A, 100 + seq)
        assert writer.flush_now(5)
    finally:
        writer.stop()
    assert [n for _, n in insert.calls] == [1, 80]  # never one write per line
    assert [c.seq for c in runs.chunks_after(RUN_B, 0)] == list(range(1, 42))  # in order, none lost


def test_a_steady_trickle_is_written_at_most_once_per_interval(
        writer_and_insert: tuple[ChunkWriter, CountingInsert]) -> None:
    writer, insert = writer_and_insert
    for seq in range(200, 260):
        _add(writer, RUN_A, seq)
        gevent.sleep(0.002)
    assert writer.flush_now(5)
    starts = [t for t, _ in insert.calls]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # The last insert is the one flush_now asked for: it goes without waiting out the interval.
    assert len(insert.calls) < 60 and all(g >= 0.019 for g in gaps[:-1]), gaps


def _store_a_chatty_stream(runs: RunStore, takes_open_groups: bool) -> tuple[int, float]:
    """100 lines 10 ms apart through a run's output: (documents stored, seconds until the first was)."""
    insert = CountingInsert(runs)
    writer = ChunkWriter(insert, interval_s=0.05, takes_open_groups=takes_open_groups)
    writer.start()
    output = RunOutput(run_id=str(ObjectId()), max_log_bytes=1 << 20, tail=TailBuffer(1024), writer=writer,
                       hub=OutputHub())
    began = time.monotonic()
    for i in range(100):
        output.emit("stdout", f"line {i}\n", len(f"line {i}\n"))
        gevent.sleep(0.01)
    output.close()
    assert writer.flush_now(10)
    writer.stop()
    return sum(n for _, n in insert.calls), insert.calls[0][0] - began


def test_alone_on_its_database_a_chatty_stream_is_stored_once_per_group_interval(runs: RunStore) -> None:
    # Shared with other processes (which read the output from the database), an
    # idle writer takes a run's open group at once: a line is stored within ms.
    _, first_shared = _store_a_chatty_stream(runs, takes_open_groups=True)
    assert first_shared < STORE_GROUP_S / 2, first_shared
    # Alone (the embedded database), a group waits its STORE_GROUP_S: one document
    # per 100 ms of chatter (~10 for these ~1.1 s), not one per insert interval
    # (20 per second at 50 ms) or per line.
    documents, first_alone = _store_a_chatty_stream(runs, takes_open_groups=False)
    assert first_alone >= STORE_GROUP_S * 0.9, first_alone
    assert documents <= 16, documents

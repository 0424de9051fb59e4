"""The output pieces in-process, on real pipes and real objects (no server)."""

from __future__ import annotations

import os

import gevent

from scriptbox.engine.hub import HubEvent, OutputHub
from scriptbox.engine.output import READ_BUFFERS, ChunkWriter, RunOutput, TailBuffer, read_stream
from scriptbox.run_wait import wait_for_end
from scriptbox.store.records import Chunk


def _output(max_log_bytes: int, tail: int = 64) -> tuple[RunOutput, list[Chunk], OutputHub]:
    stored: list[Chunk] = []
    hub = OutputHub()
    writer = ChunkWriter(stored.extend, interval_s=0.01)
    out = RunOutput(run_id="r", max_log_bytes=max_log_bytes, tail=TailBuffer(tail), writer=writer, hub=hub)
    writer.start()
    return out, stored, hub


def test_the_log_cap_splits_at_a_character_boundary_then_marks_and_stops_storing() -> None:
    out, stored, hub = _output(max_log_bytes=10)
    viewer = hub.subscribe("r")
    out.emit("stdout", "abcdefgh€€", 14)  # the cap falls inside the second €
    out.emit("stdout", "more", 4)
    out.close()  # hands the last stored group to the writer (as the end of a run does)
    assert out.writer.flush_now(5)
    out.writer.stop()
    assert [(c.seq, c.data) for c in stored[:2]] == [(1, "abcdefgh"), (2, stored[1].data)]
    assert stored[1].system and "stored log limit of 10 bytes" in stored[1].data
    assert len(stored) == 2
    assert out.truncated and out.output_bytes == 18 and out.stored_bytes == 8
    live = viewer.take(0)
    assert [e.seq for e in live] == [1, 2, 3, 4]  # live viewers get everything, in order
    assert b"\\u20ac" not in live[2].wire() and "€€".encode() in live[2].wire()


def test_the_tail_keeps_the_last_bytes_only() -> None:
    tail = TailBuffer(10)
    for i in range(1000):
        tail.add(f"{i}\n")
    assert tail.text() == "97\n998\n999\n"[-10:]
    tail.add("ééééééé")  # 14 bytes
    assert len(tail.text().encode()) <= 10 and tail.text() == "ééééé"


def test_reading_a_pipe_decodes_split_characters_and_replaces_invalid_bytes() -> None:
    read_fd, write_fd = os.pipe()
    got: list[tuple[str, str, int]] = []
    reader = gevent.spawn(read_stream, read_fd, "stdout", lambda s, t, n: got.append((s, t, n)), 0.0)
    os.write(write_fd, b"\xe2\x82")
    gevent.sleep(0.05)
    os.write(write_fd, b"\xac ok \xff\n")
    gevent.sleep(0.05)
    os.close(write_fd)
    reader.join(5)
    os.close(read_fd)
    assert "".join(t for _, t, _ in got) == "€ ok \ufffd\n"
    assert sum(n for _, _, n in got) == 9
    assert all(s == "stdout" for s, _, _ in got)


def test_a_full_read_buffer_that_ends_inside_a_character_keeps_it_whole_for_the_next_piece() -> None:
    # 7-byte writes against a 64-byte buffer: pieces end inside 2-, 3- and
    # 4-byte characters, whose first bytes are carried over to the next piece.
    data = ("é€😀x" * 300).encode() + b"\xff\xfeabc" + "😀".encode()[:3]
    read_fd, write_fd = os.pipe()
    got: list[tuple[str, int]] = []

    def write() -> None:
        for i in range(0, len(data), 7):
            os.write(write_fd, data[i:i + 7])
            gevent.sleep(0)
        os.close(write_fd)

    writer = gevent.spawn(write)
    read_stream(read_fd, "stdout", lambda _, t, n: got.append((t, n)), read_size=64)
    writer.join(5)
    os.close(read_fd)
    assert len(got) > 10
    assert "".join(t for t, _ in got) == data.decode("utf-8", "replace")  # the cut 😀 at EOF is one U+FFFD
    assert sum(n for _, n in got) == len(data)


def test_quiet_pipe_readers_hold_no_read_buffer() -> None:
    # 200 runs printing a line now and then must not hold 200 x 256 KiB while they wait.
    pipes = [os.pipe() for _ in range(200)]
    got: list[str] = []
    lent_before = READ_BUFFERS.lent
    readers = [gevent.spawn(read_stream, r, "stdout", lambda _, t, n: got.append(t), 0.0) for r, _ in pipes]
    gevent.sleep(0.05)
    for _, w in pipes:
        os.write(w, b"a line\n")
    while len(got) < len(pipes):
        gevent.sleep(0.01)
    gevent.sleep(0.05)
    assert READ_BUFFERS.lent == lent_before  # every reader is waiting again, its buffer given back
    for _, w in pipes:
        os.close(w)
    gevent.joinall(readers, timeout=5)
    assert all(r.dead for r in readers) and READ_BUFFERS.lent == lent_before
    for r, _ in pipes:
        os.close(r)
    assert got == ["a line\n"] * len(pipes)


def test_a_full_viewer_is_dropped_after_the_stall_timeout_and_others_keep_going() -> None:
    hub = OutputHub(viewer_max_bytes=100, stall_timeout_s=0.2)
    slow = hub.subscribe("r")
    fast = hub.subscribe("r")

    def consume() -> None:
        while not fast.closed:
            fast.take(0.05)

    consumer = gevent.spawn(consume)
    for i in range(5):
        hub.publish("r", HubEvent("output", b"x" * 60, i))
    assert slow.overflowed and not fast.overflowed
    fast.close()
    consumer.join(1)


def test_a_stopping_server_hangs_up_every_viewer_after_what_is_queued_for_it() -> None:
    hub = OutputHub()
    viewer = hub.subscribe("r")
    hub.publish("r", HubEvent("end", doc={"_id": "r", "status": "failed"}), wait=False)
    hub.hang_up_all()
    with gevent.Timeout(2):  # no take() below may wait for its timeout
        # What was queued still goes out; then the stream ends instead of waiting.
        assert [e.kind for e in viewer.take(30)] == ["end"] and viewer.ended
        hub.publish("r", HubEvent("output", b"late", 2))
        assert viewer.take(30) == [] and not hub.busy("r")
        # One that subscribes while the server stops gets its seed, then ends too.
        late = hub.subscribe("q", seed=[HubEvent("output", b"seed", 1)])
        assert [e.seq for e in late.take(30)] == [1] and late.ended and late.take(30) == []


def test_waiting_for_a_run_answers_at_once_when_the_server_stops() -> None:
    hub = OutputHub()
    waiter = gevent.spawn(wait_for_end, "r", 30, get_run=lambda _: {"_id": "r", "status": "running"},
                          subscribe=lambda run: hub.subscribe(run, outputs=False), unsubscribe=hub.unsubscribe)
    gevent.sleep(0.05)
    hub.hang_up_all()
    assert waiter.get(timeout=2) is None  # the request is answered with the run as it is (202)


def test_a_viewer_of_status_and_end_only_gets_no_output_and_never_holds_the_run_back() -> None:
    # What POST /run?wait=N listens with: a full, never-read queue of output
    # would make the run's readers gather output for it, then stall the script.
    hub = OutputHub(viewer_max_bytes=100, stall_timeout_s=0.2)
    waiter = hub.subscribe("r", outputs=False)
    for i in range(5):
        hub.publish("r", HubEvent("output", b"x" * 60, i))
    assert not hub.busy("r") and hub.wait_idle("r", 0) and not waiter.overflowed
    hub.publish("r", HubEvent("end", doc={"_id": "r", "status": "succeeded"}), wait=False)
    assert [e.kind for e in waiter.take(0)] == ["end"]


def test_waiting_for_a_run_takes_the_finished_run_from_its_end_event() -> None:
    hub = OutputHub()
    reads: list[str] = []

    def get_run(run_id: str) -> dict[str, object]:
        reads.append(run_id)
        return {"_id": run_id, "status": "running"}

    finished = {"_id": "r", "status": "failed", "exitCode": 3}
    gevent.spawn_later(0.05, hub.publish, "r", HubEvent("end", doc=finished), False)
    doc = wait_for_end("r", 5, get_run=get_run, subscribe=lambda run: hub.subscribe(run, outputs=False),
                       unsubscribe=hub.unsubscribe)
    assert doc == finished and reads == ["r"]  # read once, before the end: not again after it
    assert hub.run_ids() == []


def test_output_past_the_limit_with_nobody_watching_is_counted_and_numbered_but_goes_nowhere() -> None:
    out, stored, hub = _output(max_log_bytes=4, tail=8)
    waiter = hub.subscribe("r", outputs=False)  # POST ?wait: not a viewer of the output
    out.emit("stdout", "abcdef", 6)  # 4 stored, then the marker, then 2 past the limit
    out.emit("stdout", "unseen", 6)
    viewer = hub.subscribe("r")
    out.emit("stdout", "seen", 4)
    out.close()
    assert out.writer.flush_now(5)
    out.writer.stop()
    assert [c.data for c in stored][0] == "abcd" and len(stored) == 2  # the text, the marker
    live = viewer.take(0)
    assert [e.seq for e in live] == [5] and b'"data":"seen"' in live[0].wire()  # seqs 3-4 were nobody's
    assert out.output_bytes == 16 and out.totals().tail == "unseenseen"[-8:]
    assert waiter.take(0) == []

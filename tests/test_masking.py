"""Secret masking and the secret key, in-process: the streaming masker on every
split, the engine's output path on real pipes, and runs under a wrong key."""

from __future__ import annotations

import base64
import os
import random
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest

from scriptbox.config import ConfigError, Settings, load_settings
from scriptbox.engine import EngineOptions
from scriptbox.engine.hub import OutputHub
from scriptbox.engine.output import ChunkWriter, RunOutput, TailBuffer, read_stream
from scriptbox.masking import SecretMasker
from scriptbox.secretbox import SecretBox, SecretKeyError, SecretUnavailable, load_secret_box
from scriptbox.services import build_services
from scriptbox.store.records import Chunk
from support.inprocess import InProcessApp

SECRETS = ["hunter22", "hunter2222", "s3cr3t-t0ken", "abab"]


def _masked_in_pieces(masker: SecretMasker, pieces: list[str]) -> str:
    stream = masker.stream()
    return "".join(stream.feed(p) for p in pieces) + stream.flush()


@pytest.mark.parametrize("text", [
    "a hunter22 b", "hunter2222!", "hunter22hunter2222", "xx s3cr3t-t0ken", "ababab", "hunter2", "no secret",
    "s3cr3t-t0kes3cr3t-t0ken", "hunte", "€ hunter22 €\n",
])
def test_every_split_masks_like_the_whole_text(text: str) -> None:
    masker = SecretMasker(SECRETS)
    whole = masker.mask(text)
    for cut in range(len(text) + 1):
        assert _masked_in_pieces(masker, [text[:cut], text[cut:]]) == whole, cut
    assert _masked_in_pieces(masker, list(text)) == whole  # one character per piece
    for a in range(len(text)):
        for b in range(a, len(text)):
            assert _masked_in_pieces(masker, [text[:a], text[a:b], text[b:]]) == whole


def test_longer_secrets_win_and_short_ones_are_not_masked() -> None:
    masker = SecretMasker(["abcd", "abcdef", "xyz"])
    assert masker.mask("abcdef abcd abcdeX xyz") == "*** *** ***eX xyz"
    assert not SecretMasker(["abc", ""]) and SecretMasker(["abc", ""]).stream().feed("abc") == "abc"


def test_the_masker_holds_back_only_what_could_still_become_a_secret() -> None:
    stream = SecretMasker(["hunter22"]).stream()
    assert stream.feed("progress 10%\nhun") == "progress 10%\n"
    assert stream.held == "hun"
    assert stream.feed("gry\n") == "hungry\n" and stream.held == ""
    assert stream.feed("x" * 100 + "h") == "x" * 100 and len(stream.held) <= len("hunter22") - 1


def test_random_text_with_secrets_split_anywhere_matches_masking_it_whole() -> None:
    rng = random.Random(12)
    secrets = ["".join(rng.choice("abc") for _ in range(rng.randint(4, 7))) for _ in range(6)]
    masker = SecretMasker(secrets)
    for _ in range(300):
        text = "".join(rng.choice(["a", "b", "c", "\n", *secrets]) for _ in range(30))
        cuts = sorted(rng.sample(range(len(text) + 1), 4))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert _masked_in_pieces(masker, pieces) == masker.mask(text)


def test_pipe_output_is_masked_before_tail_log_and_viewers_also_across_a_64k_read() -> None:
    stored: list[Chunk] = []
    hub = OutputHub()
    writer = ChunkWriter(stored.extend, interval_s=0.01)
    out = RunOutput(run_id="r", max_log_bytes=1 << 20, tail=TailBuffer(64), writer=writer, hub=hub)
    out.mask_secrets(SecretMasker(["s3cr3t-t0ken"]))
    viewer = hub.subscribe("r")
    writer.start()
    read_fd, write_fd = os.pipe()

    def write() -> None:  # a real thread: the first write fills the pipe and blocks until it is read
        # The first read (64 KiB) ends 5 characters into the secret.
        os.write(write_fd, b"x" * (65536 - 5) + b"s3cr3t-t0ken\n")
        for char in b"s3cr3t-t0ken":  # one byte per write
            time.sleep(0.002)
            os.write(write_fd, bytes([char]))
        os.close(write_fd)

    writer_thread = threading.Thread(target=write)
    writer_thread.start()
    gevent.sleep(0.1)  # the pipe is full before the reader starts: its first read takes 64 KiB
    reader = gevent.spawn(read_stream, read_fd, "stdout", out.emit, 0.0)
    reader.join(10)
    writer_thread.join(10)
    os.close(read_fd)
    out.close()
    assert writer.flush_now(5)
    writer.stop()
    text = "".join(c.data for c in stored)
    assert text == "x" * (65536 - 5) + "***\n***"
    assert b"s3cr3t" not in b"".join(e.wire() for e in viewer.take(0))
    assert out.tail.text().endswith("***\n***") and "t0ken" not in out.tail.text()


def test_sealed_values_open_only_with_their_key(tmp_path: Path) -> None:
    box = load_secret_box(None, tmp_path)
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_secret_box(None, tmp_path).key_id == box.key_id  # generated once
    sealed = box.seal("hunter22")
    assert "hunter22" not in sealed and box.open(sealed, "env X") == "hunter22"
    other = SecretBox(os.urandom(32), "SCRIPTBOX_SECRET_KEY")
    with pytest.raises(SecretUnavailable, match="env X was encrypted with another key"):
        other.open(sealed, "env X")
    damaged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretUnavailable, match="damaged"):
        box.open(damaged, "env X")
    key_file.write_text("not a key\n")
    with pytest.raises(SecretKeyError, match="32 bytes"):
        load_secret_box(None, tmp_path)
    with pytest.raises(ConfigError, match="SCRIPTBOX_SECRET_KEY"):
        load_settings(environ={"SCRIPTBOX_SECRET_KEY": base64.b64encode(b"short").decode()})
    good = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    assert load_settings(environ={"SCRIPTBOX_SECRET_KEY": good}).secret_key == good


@pytest.fixture(scope="module")
def engine_app(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    options = EngineOptions(kill_grace_s=1.0, flush_every_s=0.02)
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("keyed"), execute=True, options=options)
    instance.engine.ctx.live.start()
    yield instance
    instance.engine.dispatcher.stop(join_timeout=10)
    instance.engine.ctx.live.stop()
    instance.close()


def _execute(app_services: Any, run_id: str) -> dict[str, Any]:
    [execution] = app_services.engine.dispatcher.claim_available()
    assert execution.run_id == run_id
    assert execution.greenlet is not None
    execution.greenlet.join(timeout=30)
    doc = app_services.runs.get(run_id)
    assert doc is not None
    return dict(doc)


def test_a_run_under_another_or_a_lost_key_fails_clearly_and_reads_still_work(
        engine_app: InProcessApp, tmp_path: Path) -> None:
    client = engine_app.client()
    created = client.post("/api/admin/scripts", json={
        "name": "k", "codeIdentifier": "keyed", "type": "bash", "script": 'echo "${#API_KEY}"',
        "env": [{"key": "API_KEY", "value": "hunter22", "secret": True}],
        "params": [{"name": "token", "type": "secret"}]}).json()
    ok_id = client.post(f"/api/admin/scripts/{created['id']}/run", json={"params": {"token": "abcd1234"}}).json()
    done = _execute(engine_app.services, ok_id["runId"])
    assert (done["status"], done["outputTail"]) == ("succeeded", "8\n")
    assert "secretParams" not in done  # the sealed run values go when the run ends

    # The key file lost: a new one is generated, and the stored secret cannot be opened with it.
    lost = Settings(**{**engine_app.settings.__dict__, "data_dir": tmp_path})
    services = build_services(lost, engine_app.database, None, EngineOptions(flush_every_s=0.02))
    services.engine.ctx.live.start()
    try:
        run = services.engine.submit(created["id"], "api", None, params={"token": "abcd1234"})
        failed = _execute(services, str(run["_id"]))
    finally:
        services.engine.dispatcher.stop(join_timeout=10)
        services.engine.ctx.live.stop()
    reason = failed["meta"]["error"]
    assert failed["status"] == "failed" and "was encrypted with another key" in reason, reason
    assert "SCRIPTBOX_SECRET_KEY" in reason and "secretParams" not in failed
    assert client.get(f"/api/admin/scripts/{created['id']}").status_code == 200
    log = client.get(f"/api/admin/scripts/runs/{run['_id']}/log").text
    assert "cannot start the run: the secret" in log and "hunter22" not in log

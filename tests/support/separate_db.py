"""A SecantusDB that is not a server's child: stopped and restarted under live servers (outage tests)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from scriptbox.childproc import free_loopback_port
from scriptbox.embedded_db import DbCredential, launch, secantus_argv
from scriptbox.store import wait_until_answers


class SeparateDatabase:
    """A SecantusDB that is not the server's child, restartable on one port and data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_loopback_port()
        # SecantusDB as Scriptbox launches it requires a login (given on its stdin).
        self.credential = DbCredential("scriptbox", "outage-test-secret")
        self.uri = self.credential.uri(f"mongodb://127.0.0.1:{self.port}/?directConnection=true")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SeparateDatabase:
        self.path.mkdir(parents=True, exist_ok=True)
        argv = secantus_argv() + ["--host", "127.0.0.1", "--port", str(self.port), "--storage-path",
                                  str(self.path), "--log-level", "WARNING", "--sync-on-commit"]
        self.process = launch(argv, self.credential, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        process = self.process
        assert wait_until_answers(self.uri, 60, lambda: process.poll() is None), "the database did not answer"
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

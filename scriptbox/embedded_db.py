"""The embedded database: SecantusDB as a child process when no URI is given.

SecantusDB speaks the MongoDB wire protocol over WiredTiger files in
``<data-dir>/db``. This module starts it on a free loopback port, waits until
it answers ``ping``, and stops it. It must never outlive Scriptbox:

* the child gets ``PR_SET_PDEATHSIG`` so the kernel sends it SIGTERM when the
  server dies, even by SIGKILL;
* as a second line, its pid is written to ``<data-dir>/db.pid``; a later start
  finds a left-over process of the same data dir and stops it before starting
  a new one (callers hold the data-dir lock, so such a process has no owner).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import psutil

from .childproc import die_with_parent, on_free_loopback_port, terminate_with_grace
from .store import wait_until_answers

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
EMBEDDED_CACHE_SIZE = "256M"
STOP_TIMEOUT_S = 15.0


class EmbeddedDatabaseError(Exception):
    """The embedded database could not be started; the message says why."""


def secantus_argv() -> list[str]:
    """The command that runs SecantusDB's server with this interpreter.

    In a PyInstaller bundle ``sys.executable`` is the bundle itself, which
    understands the hidden ``_secantusd`` subcommand (see app.py).
    """
    if getattr(sys, "frozen", False):
        return [sys.executable, "_secantusd"]
    return [sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())"]


class EmbeddedDatabase:
    """One SecantusDB child process serving ``<data_dir>/db``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.storage_path = data_dir / "db"
        self.pid_path = data_dir / "db.pid"
        self.log_path = data_dir / "db.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None

    def stop_leftover(self) -> None:
        """Stop a database process left behind by a killed server on this data dir."""
        try:
            info = json.loads(self.pid_path.read_text())
            proc = psutil.Process(int(info["pid"]))
            cmdline = proc.cmdline()
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            return
        if str(self.storage_path) not in cmdline:
            return  # the pid was reused by something else: leave it alone
        log.warning("stopping a left-over database process (pid %s) of %s", proc.pid, self.data_dir)
        terminate_with_grace(proc, STOP_TIMEOUT_S)

    def start(self) -> str:
        """Start the server and return its URI once it answers ping.

        Raises EmbeddedDatabaseError with the reason (and the log's tail).
        """
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.stop_leftover()
        try:
            # A free port can be taken between probe and bind: then another port.
            uri = on_free_loopback_port(self._start_on, 3, lambda _port, exc: isinstance(exc, EmbeddedDatabaseError))
        except EmbeddedDatabaseError as exc:
            raise EmbeddedDatabaseError(f"{exc}\n--- {self.log_path} ---\n{self._log_tail()}") from None
        self.uri = uri
        return uri

    def _start_on(self, port: int) -> str:
        argv = secantus_argv() + [
            "--host", "127.0.0.1", "--port", str(port),
            "--storage-path", str(self.storage_path), "--log-level", "WARNING",
            # Without it a killed database loses its last commits (seen in
            # tests); run history is worth ~1 ms per write, and the run
            # engine batches its writes anyway.
            "--sync-on-commit",
            # WiredTiger's cache defaults to 1 GB and keeps what it read or
            # wrote: too much for a console's database on a laptop.
            "--cache-size", EMBEDDED_CACHE_SIZE,
        ]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches Scriptbox, which
                # then stops the database in order, not both at once.
                start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
            )
        self.pid_path.write_text(json.dumps({"pid": self.process.pid, "port": port}))
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        try:
            self._wait_ready(uri)
        except EmbeddedDatabaseError:
            self.stop()
            raise
        log.info("embedded database ready at 127.0.0.1:%s (pid %s)", port, self.process.pid)
        return uri

    def _wait_ready(self, uri: str) -> None:
        assert self.process is not None
        process = self.process
        if wait_until_answers(uri, START_TIMEOUT_S, lambda: process.poll() is None):
            return
        if process.poll() is not None:
            raise EmbeddedDatabaseError(f"the embedded database exited with code {process.returncode}")
        raise EmbeddedDatabaseError(f"the embedded database did not answer within {START_TIMEOUT_S:.0f} s")

    def _log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")
        except OSError:
            return ""

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace) and forget its pid."""
        if self.process is not None:
            terminate_with_grace(self.process, STOP_TIMEOUT_S)
            self.process = None
        try:
            self.pid_path.unlink()
        except FileNotFoundError:
            pass
        self.uri = None

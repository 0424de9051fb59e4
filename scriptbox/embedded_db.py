"""The embedded database: SecantusDB as a child process when no URI is given.

SecantusDB speaks the MongoDB wire protocol over WiredTiger files in
``<data-dir>/db``. This module starts it on a free loopback port, waits until
it answers ``ping``, and stops it. It must never outlive Scriptbox:

* the child gets ``PR_SET_PDEATHSIG`` so the kernel sends it SIGTERM when the
  server dies, even by SIGKILL;
* as a second line, its pid is written to ``<data-dir>/db.pid``; a later start
  finds a left-over process of the same data dir and stops it before starting
  a new one (callers hold the data-dir lock, so such a process has no owner).

It requires authentication (SecantusDB ``--auth``, SCRAM-SHA-256): any local
user can reach a loopback port, so the data dir's 0700 would otherwise promise
nothing. The credential (user ``scriptbox`` and 32 random bytes) is generated
at the first start and kept in ``<data-dir>/db-credential`` (0600); it reaches
the database on its stdin (see dblaunch.py) and the driver as keyword
arguments, never in a command line, a URI that could be logged, or a log line.
A data dir from before this (no credential yet) simply gets one at its next
start: the user is written before the database opens its port.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import psutil

from .childproc import ForeignProcess, die_with_parent, on_free_loopback_port, terminate_with_grace
from .config import secret_env_names
from .store import DatabaseAuthFailed, wait_until_answers

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
EMBEDDED_CACHE_SIZE = "256M"
STOP_TIMEOUT_S = 15.0
CREDENTIAL_FILE = "db-credential"
DB_USER = "scriptbox"
REPO_ROOT = Path(__file__).resolve().parent.parent


class EmbeddedDatabaseError(Exception):
    """The embedded database could not be started; the message says why."""


def secantus_argv() -> list[str]:
    """The command that runs SecantusDB's server (through dblaunch.py) with this interpreter.

    In a PyInstaller bundle ``sys.executable`` is the bundle's ``scriptbox``
    program; the database is its sibling program ``scriptbox-db``, kept apart
    for licence reasons (packaging/secantusd.py).
    """
    if getattr(sys, "frozen", False):
        return [str(Path(sys.executable).with_name("scriptbox-db"))]
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
            "from scriptbox.dblaunch import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]


@dataclass(frozen=True)
class DbCredential:
    """The embedded database's one user; repr hides the password."""

    user: str
    password: str = field(repr=False)

    def client_options(self) -> dict[str, Any]:
        """pymongo keyword arguments that authenticate with this credential."""
        return {"username": self.user, "password": self.password, "authSource": "admin",
                "authMechanism": "SCRAM-SHA-256"}

    def uri(self, uri: str) -> str:
        """`uri` with this credential in it, for tools that take only a URI (tests, a shared worker)."""
        scheme, rest = uri.split("://", 1)
        sep = "&" if "?" in rest else "/?"
        return (f"{scheme}://{quote_plus(self.user)}:{quote_plus(self.password)}@{rest}"
                f"{sep}authSource=admin&authMechanism=SCRAM-SHA-256")


def launch(argv: list[str], credential: DbCredential, **popen: Any) -> subprocess.Popen[bytes]:
    """Start `argv` (secantus_argv() plus SecantusDB flags) and hand it `credential` on stdin.

    The process provisions the user and then serves with --auth (dblaunch.py);
    `popen` goes to subprocess.Popen (stdin is taken).
    """
    process: subprocess.Popen[bytes] = subprocess.Popen(argv, stdin=subprocess.PIPE, **popen)
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps({"user": credential.user, "password": credential.password}).encode() + b"\n")
        process.stdin.close()
    except OSError:
        pass  # it died at once; the caller sees its exit code
    return process


def load_or_create_credential(data_dir: Path) -> DbCredential:
    """The credential in ``<data_dir>/db-credential``, created (0600) when missing.

    A file that is not 0600 is tightened; an unreadable or malformed one raises
    EmbeddedDatabaseError rather than being silently replaced.
    """
    path = data_dir / CREDENTIAL_FILE
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            json.dump({"user": DB_USER, "password": secrets.token_urlsafe(32)}, handle)
        os.replace(tmp, path)
    os.chmod(path, 0o600)
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        return DbCredential(str(data["user"]), str(data["password"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbeddedDatabaseError(
            f"{path} is unreadable or malformed ({exc}); delete it to generate a new credential") from exc


class EmbeddedDatabase:
    """One SecantusDB child process serving ``<data_dir>/db``."""

    def __init__(self, data_dir: Path, *, replica_set: bool = True) -> None:
        """`replica_set`: advertise a one-node replica set, which keeps an oplog
        and so offers change streams. A database only its server uses needs
        neither: without them SecantusDB writes each document once instead of
        twice (bench/start_latency.py, bench/throughput.py)."""
        self.replica_set = replica_set
        self.data_dir = data_dir
        self.storage_path = data_dir / "db"
        self.pid_path = data_dir / "db.pid"
        self.log_path = data_dir / "db.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.uri: str | None = None
        self.credential: DbCredential | None = None

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
        terminate_with_grace(ForeignProcess(proc), STOP_TIMEOUT_S)

    def start(self) -> str:
        """Start the server and return its URI once it answers ping.

        Raises EmbeddedDatabaseError with the reason (and the log's tail).
        """
        self.storage_path.mkdir(parents=True, exist_ok=True)
        self.stop_leftover()
        credential = load_or_create_credential(self.data_dir)
        # The database needs none of Scriptbox's secrets (it gets its own on stdin).
        env = {k: v for k, v in os.environ.items() if k not in secret_env_names()}
        try:
            # A free port can be taken between the probe and the database's bind: retry on another.
            return on_free_loopback_port(lambda port: self._start_on(port, credential, env), attempts=3,
                                         should_retry=lambda _port, exc: isinstance(exc, EmbeddedDatabaseError))
        except EmbeddedDatabaseError as exc:
            raise EmbeddedDatabaseError(f"{exc}\n--- {self.log_path} ---\n{self._log_tail()}") from exc

    def _start_on(self, port: int, credential: DbCredential, env: dict[str, str]) -> str:
        """Launch the database on `port` and return its URI once it answers; stopped again on failure."""
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
        ] + ([] if self.replica_set else ["--standalone"])
        with open(self.log_path, "ab") as log_file:
            self.process = launch(
                argv, credential, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                # Own session: a Ctrl-C in the terminal reaches Scriptbox, which
                # then stops the database in order, not both at once.
                start_new_session=True, preexec_fn=die_with_parent(os.getpid()),
            )
        self.pid_path.write_text(json.dumps({"pid": self.process.pid, "port": port}))
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        try:
            self._wait_ready(uri, credential)
        except EmbeddedDatabaseError:
            self.stop()
            raise
        self.uri = uri
        self.credential = credential
        log.info("embedded database ready at 127.0.0.1:%s (pid %s)", port, self.process.pid)
        return uri

    def _wait_ready(self, uri: str, credential: DbCredential) -> None:
        assert self.process is not None
        process = self.process
        try:
            if wait_until_answers(uri, START_TIMEOUT_S, lambda: process.poll() is None, credential.client_options()):
                return
        except DatabaseAuthFailed as exc:
            raise EmbeddedDatabaseError("the embedded database refused Scriptbox's credential") from exc
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
        self.credential = None

"""The embedded database's own process: provision its one user, then serve with ``--auth``.

Run by embedded_db.py as ``python -m scriptbox.dblaunch <secantus flags>`` (or
``<bundle>/scriptbox-db <flags>`` when frozen, packaging/secantusd.py). The credential arrives as one
JSON line on stdin, never in argv or the environment, so ``/proc/<pid>/cmdline``
and ``/proc/<pid>/environ`` show nothing secret.

SecantusDB has no "localhost exception": its documented way to create the
first user is to start without ``--auth``, connect and run ``createUser`` —
which would leave the port open to every local user for that moment. Instead
the user is written while no port is open: this process opens the storage
directly, runs ``createUser``/``updateUser`` through SecantusDB's own command
dispatcher (so the stored SCRAM record is exactly what the server expects),
drops every other user (an older, unauthenticated version could have been
given extra users by anyone on the machine), closes the storage and only then
starts the server with ``--auth``. This uses SecantusDB internals
(``Storage``, ``dispatch``); SecantusDB is pinned in requirements.txt and
tests/test_security_attacks.py proves the result.

Started ``--standalone`` (a server alone on its database, embedded_db.py), the
database keeps no oplog, and so never prunes one: the oplog an earlier start as
a one-node replica set left behind (up to an hour of writes, every chunk of
output in it) is dropped here, while the storage is open anyway.

SecantusDB's daemon stops the server from inside its SIGTERM/SIGINT handler.
A second signal while that runs (Scriptbox's SIGTERM and the parent-death
SIGTERM at once) re-entered it and deadlocked on a lock the first call held:
the process then ignored SIGTERM for good (seen in the test suite; 1 start in
10 with two SIGTERMs sent at once). `guard_stop_signals` makes the handler run
for the first signal only, and wakes the server's accept loop (`wake_accept`):
its stop closes the listening socket but then waits 2 s for the thread blocked
in accept(), which a close does not wake on Linux.

Imports nothing of Scriptbox's own or gevent: it runs in its own interpreter.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

USER_DB = "admin"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

SignalHandler = Callable[[int, FrameType | None], Any]


class StopSignalsOnce:
    """The `signal` module, except that SIGTERM/SIGINT handlers installed
    through it run for the first of those signals only: later ones (a signal
    that arrives while the first is handled, and would re-enter it) do nothing."""

    def __init__(self, module: ModuleType, on_first: Callable[[], None] | None = None) -> None:
        self._module = module
        self._on_first = on_first
        self.handled = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def signal(self, signum: int, handler: Any) -> Any:
        if signum in STOP_SIGNALS and callable(handler):
            handler = self._first_only(handler)
        return self._module.signal(signum, handler)

    def _first_only(self, handler: SignalHandler) -> SignalHandler:
        def handle(signum: int, frame: FrameType | None) -> Any:
            if self.handled:
                return None
            self.handled = True
            if self._on_first is not None:
                self._on_first()
            return handler(signum, frame)

        return handle


def wake_accept(host: str, port: int, within_s: float = 2.0, every_s: float = 0.02) -> bool:
    """Connect to the server until nothing listens any more (True), for at most
    `within_s`: a connection makes the accept() its stop waits for return, and
    the accept thread then sees the stop. The first connections may come before
    the stop has begun; the thread only accepts them and waits again."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=every_s * 10):
                pass
        except OSError:
            return True
        time.sleep(every_s)
    return False


def guard_stop_signals(host: str | None = None, port: int | None = None) -> None:
    """Make SecantusDB's daemon install its stop handler through StopSignalsOnce
    (its `cli` module calls `signal.signal`; SecantusDB is pinned); with `port`,
    the first stop signal also starts `wake_accept` on it."""
    import secantus.cli

    on_first = None
    if port is not None:
        target = (host or "127.0.0.1", port)
        on_first = threading.Thread(target=wake_accept, args=target, name="wake-accept", daemon=True).start
    secantus.cli.signal = StopSignalsOnce(signal, on_first)


def _run(storage: Any, command: dict[str, Any]) -> None:
    from secantus.commands import CommandContext, dispatch
    from secantus.cursors import CursorRegistry

    reply = dispatch({**command, "$db": USER_DB},
                     CommandContext(connection_id=0, storage=storage, cursors=CursorRegistry(), db_name=USER_DB))
    if reply.get("ok") != 1.0:
        raise RuntimeError(f"provisioning the database user failed: {reply.get('errmsg')}")


def provision(storage_path: str, cache_size: str | None, user: str, password: str, *,
              keep_oplog: bool = True) -> None:
    """Make `user` (root role, SCRAM-SHA-256) the only user of the storage, with `password`;
    without `keep_oplog`, empty the oplog.

    Raises RuntimeError when SecantusDB refuses a command.
    """
    from secantus.storage import Storage

    Path(storage_path).mkdir(parents=True, exist_ok=True)
    storage = Storage(storage_path, **({"cache_size": cache_size} if cache_size else {}))
    try:
        for record in storage.list_users(None, limit=10_000):
            if (record.get("db"), record.get("user")) != (USER_DB, user):
                storage.drop_user(str(record.get("db")), str(record.get("user")))
        roles = [{"role": "root", "db": USER_DB}]
        if storage.get_user(USER_DB, user) is None:
            _run(storage, {"createUser": user, "pwd": password, "roles": roles, "mechanisms": ["SCRAM-SHA-256"]})
        else:
            _run(storage, {"updateUser": user, "pwd": password, "roles": roles})
        if not keep_oplog:
            # Everything written up to now is past the retention seen from then.
            storage.prune_oplog(now=time.time() + storage.oplog_retention_seconds + 1)
    finally:
        storage.close()


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def main(argv: list[str]) -> int:
    """Read the credential from stdin, provision, then run SecantusDB's daemon with ``--auth``."""
    from secantus.cli import main as secantus_main

    line = sys.stdin.readline()
    try:
        credential = json.loads(line)
        user, password = str(credential["user"]), str(credential["password"])
    except (ValueError, KeyError, TypeError):
        print("dblaunch: expected a JSON credential line on stdin", file=sys.stderr)
        return 2
    storage_path = _flag(argv, "--storage-path")
    if storage_path is None:
        print("dblaunch: --storage-path is required", file=sys.stderr)
        return 2
    provision(storage_path, _flag(argv, "--cache-size"), user, password, keep_oplog="--standalone" not in argv)
    del password, credential, line
    port = _flag(argv, "--port")
    guard_stop_signals(_flag(argv, "--host"), int(port) if port and port.isdigit() else None)
    return int(secantus_main([*argv, "--auth"]) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

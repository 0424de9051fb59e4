"""The composition root of `serve`: builds every part, serves, and shuts down in order.

Must run in a gevent-patched process (app.py patches first thing).
Order of start: data-dir lock -> database (embedded or URI) -> indexes ->
admin password -> engine -> scheduler -> pruner -> HTTP. Stop is the reverse, on SIGTERM or SIGINT.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from gevent.pywsgi import LoggingLogAdapter
from gevent.threadpool import ThreadPool

from .allocator import tune_for_serving
from .auth import CredentialChecker, DesktopSessions, LoginThrottle, prepare_admin_password
from .config import Settings
from .datadir import DataDirBusy, DataDirLock, DataDirUnsafe
from .embedded_db import EmbeddedDatabase, EmbeddedDatabaseError
from .engine import Engine
from .errors import DatabaseUnavailable
from .guards import HostGuard
from .httpserver import GuardedWSGIServer, connection_cap, raise_open_file_limit
from .logs import configure_logging
from .loopback import is_loopback
from .metrics import Metrics
from .notify import Notifier
from .retention import Pruner
from .scheduler import Scheduler
from .secretbox import SecretKeyError
from .services import Access, Services, build_services
from .store import Database
from .store.changes import streams_mode
from .vocabulary import LISTENING_PREFIX
from .web import create_app, create_metrics_app, secure_wsgi

log = logging.getLogger("scriptbox")

HTTP_STOP_GRACE_S = 5.0
# Argon2 checks run here, off the gevent loop. Two threads: the throttle admits
# few checks at a time anyway, and more would only compete with the loop for CPU.
PASSWORD_THREADS = max(1, min(2, os.cpu_count() or 1))


# A shutdown step taking longer than this is named in the log (a stop that
# hangs then says where).
SLOW_STOP_STEP_S = 2.0


def _stop_step(name: str, action: Callable[[], object]) -> None:
    """Run one shutdown step; say so when it is slow (while it lasts, and how long it took)."""
    started = time.monotonic()
    still = gevent.spawn_later(SLOW_STOP_STEP_S, log.warning, "shutdown: still stopping %s", name)
    try:
        action()
    finally:
        still.kill(block=False)
    took = time.monotonic() - started
    if took > SLOW_STOP_STEP_S:
        log.warning("shutdown: stopping %s took %.1f s", name, took)


def ui_dist_dir() -> Path:
    """Where the built admin page lives (inside a PyInstaller bundle too)."""
    base = Path(getattr(sys, "_MEIPASS", Path(__file__).resolve().parent.parent))
    return base / "ui" / "dist"




def _wait_for_stop(embedded: EmbeddedDatabase | None) -> int:
    """Block until SIGTERM/SIGINT (exit 0) or the embedded database dies (exit 1)."""
    # Everything allocated by the start-up (modules, app, clients) lives as
    # long as the process: out of the collector's sight, a full collection no
    # longer walks it. Those stopped the event loop for 30-90 ms at a time
    # under 20 runs x 5 viewers, and every viewer's line waited as long.
    gc.freeze()
    stop = gevent.event.Event()
    exit_code = 0
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    if embedded is not None:
        def watch_database() -> None:
            nonlocal exit_code
            assert embedded is not None and embedded.process is not None
            # gevent's subprocess makes wait() cooperative.
            code = embedded.process.wait()
            if not stop.is_set():
                log.error("the embedded database exited unexpectedly (code %s); stopping", code)
                exit_code = 1
                stop.set()

        gevent.spawn(watch_database)
    stop.wait()
    log.info("shutting down")
    return exit_code


def _lock_data_dir(settings: Settings) -> DataDirLock | None:
    """The data dir's lock, or None (reason printed) when another process holds it."""
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
    except (DataDirBusy, DataDirUnsafe) as exc:
        print(f"scriptbox: {exc}", file=sys.stderr)
        return None
    return lock


def work(settings: Settings) -> int:
    """`worker`: execute queued runs from a shared MongoDB; its only HTTP is
    GET /metrics on SCRIPTBOX_METRICS_PORT when that is set."""
    configure_logging(settings.log_format)
    tune_for_serving()
    if settings.mongodb_uri is None:
        print("scriptbox: worker needs --mongodb-uri (the database shared with the serve processes)",
              file=sys.stderr)
        return 2
    if settings.metrics_port is not None and settings.admin_password is None:
        print("scriptbox: SCRIPTBOX_METRICS_PORT needs SCRIPTBOX_ADMIN_PASSWORD (metrics need the admin's auth)",
              file=sys.stderr)
        return 2
    lock = _lock_data_dir(settings)
    if lock is None:
        return 2
    database = Database(settings.mongodb_uri, settings.db_name)
    engine = None
    notifier: Notifier | None = None
    http: GuardedWSGIServer | None = None
    password_pool = ThreadPool(1)  # the metrics port's sign-ins, off the loop
    try:
        try:
            database.ensure_indexes()
        except DatabaseUnavailable:
            print("scriptbox: the database is unreachable; check --mongodb-uri", file=sys.stderr)
            return 1
        services = build_services(settings, database)
        engine = services.engine
        notifier = services.notifier
        if settings.metrics_port is not None:
            http = _metrics_server(settings, services.metrics, password_pool)
            if http is None:
                return 1
        notifier.start()  # before the engine: recovery may end runs
        engine.start(push=True)  # change streams: this process is gevent-patched
        print(f"Scriptbox worker executing runs from database {settings.db_name!r}", flush=True)
        return _wait_for_stop(None)
    except SecretKeyError as exc:
        print(f"scriptbox: secret key: {exc}", file=sys.stderr)
        return 2
    finally:
        if http is not None:
            _stop_step("the metrics endpoint", lambda: http.stop(timeout=1))
        if engine is not None:
            _stop_step("the run engine", engine.stop)
        if notifier is not None:
            # after the engine: runs it ended at shutdown are notified too
            _stop_step("the notifier", notifier.stop)
        database.close()
        password_pool.kill()
        lock.release()


def _http_server(settings: Settings, app: Any, port: int | None = None) -> GuardedWSGIServer:
    """The HTTP server for `app`, its connection cap fitted to the (raised) open-file limit."""
    open_files = raise_open_file_limit()
    cap = connection_cap(settings.max_connections, open_files)
    if cap < settings.max_connections:
        log.warning("SCRIPTBOX_MAX_CONNECTIONS lowered from %d to %d to fit the open-file limit (%d)",
                    settings.max_connections, cap, open_files)
    tls: dict[str, str] = {}
    if settings.tls_enabled:
        tls = {"certfile": str(settings.tls_cert), "keyfile": str(settings.tls_key)}
    return GuardedWSGIServer((settings.host, settings.port if port is None else port), secure_wsgi(app),
                             max_connections=cap, header_timeout=settings.header_timeout,
                             idle_timeout=settings.idle_timeout,
                             log=LoggingLogAdapter(logging.getLogger("scriptbox.access")),
                             error_log=LoggingLogAdapter(logging.getLogger("scriptbox.http"), logging.ERROR),
                             **tls)


def _metrics_server(settings: Settings, metrics: Metrics, pool: ThreadPool) -> GuardedWSGIServer | None:
    """A worker's GET /metrics on SCRIPTBOX_HOST:SCRIPTBOX_METRICS_PORT, started; None if it cannot listen."""
    assert settings.admin_password is not None and settings.metrics_port is not None
    checker = CredentialChecker(settings.admin_user, prepare_admin_password(settings.admin_password,
                                                                           settings.data_dir).password_hash,
                                run_blocking=lambda check: bool(pool.apply(check)))
    app = create_metrics_app(metrics, checker, HostGuard(settings.host, settings.allowed_hosts))
    http = _http_server(settings, app, port=settings.metrics_port)
    try:
        http.start()
    except OSError as exc:
        print(f"scriptbox: cannot listen on {settings.host}:{settings.metrics_port}: {exc.strerror}", file=sys.stderr)
        return None
    print(f"Scriptbox worker metrics on {settings.host}:{http.server_port}/metrics", flush=True)
    return http


def _base_url(settings: Settings, port: int) -> str:
    """This server's own address (a wildcard address named by the machine's name), for links in notifications."""
    scheme = "https" if settings.tls_enabled else "http"
    host = socket.gethostname() if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def _announce(settings: Settings, generated_password: str | None, port: int) -> None:
    """Print the generated password (once), a warning without TLS off loopback, and the URL."""
    scheme = "https" if settings.tls_enabled else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if generated_password:
        print(f"Generated admin password for user {settings.admin_user!r} (shown once, stored hashed):\n"
              f"    {generated_password}", flush=True)
    if not is_loopback(settings.host) and not settings.tls_enabled:
        print(f"WARNING: listening on {settings.host} without TLS: passwords and output cross the "
              "network in clear. Put Scriptbox behind a TLS proxy or set SCRIPTBOX_TLS_CERT/KEY.",
              file=sys.stderr, flush=True)
    print(f"{LISTENING_PREFIX}{scheme}://{host}:{port}/admin/scripts", flush=True)


def _access(settings: Settings, password_hash: str, password_pool: ThreadPool, login_token: str | None) -> Access:
    """Who may ask, and the page they are served (Argon2 checks run in `password_pool`)."""
    return Access(
        credentials=CredentialChecker(settings.admin_user, password_hash,
                                      run_blocking=lambda check: bool(password_pool.apply(check))),
        host_guard=HostGuard(settings.host, settings.allowed_hosts),
        desktop_sessions=DesktopSessions(login_token),
        throttle=LoginThrottle(),
        ui_dir=ui_dist_dir(),
    )


def _embedded_database(settings: Settings) -> EmbeddedDatabase:
    """The data dir's own database (not started yet). Nobody else connects to it, so
    it keeps an oplog only when this process follows change streams anyway."""
    follows_streams = streams_mode(settings.change_streams, embedded=True) != "off"
    return EmbeddedDatabase(settings.data_dir, replica_set=follows_streams)


def _drain(http: GuardedWSGIServer | None, services: Services | None) -> None:
    """Let the requests under way finish, then what they write after answering
    (run.start audit entries, last-run summaries)."""
    if http is not None:
        http.stop(timeout=HTTP_STOP_GRACE_S)
    if services is not None:
        services.settle_writes()


def serve(settings: Settings, login_token: str | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; returns the process exit code."""
    configure_logging(settings.log_format)
    tune_for_serving()
    lock = _lock_data_dir(settings)
    if lock is None:
        return 2

    embedded: EmbeddedDatabase | None = None
    database: Database | None = None
    engine: Engine | None = None
    scheduler: Scheduler | None = None
    pruner: Pruner | None = None
    notifier: Notifier | None = None
    http: GuardedWSGIServer | None = None
    services: Services | None = None
    password_pool = ThreadPool(PASSWORD_THREADS)
    try:
        uri = settings.mongodb_uri
        if uri is None:
            embedded = _embedded_database(settings)
            print(f"Starting the embedded database in {embedded.storage_path} ...", flush=True)
            uri = embedded.start()
        credentials = embedded.credential.client_options() if embedded and embedded.credential else None
        database = Database(uri, settings.db_name, credentials=credentials)
        try:
            database.ensure_indexes()
        except DatabaseUnavailable:
            print("scriptbox: the database is unreachable; check --mongodb-uri", file=sys.stderr)
            return 1
        password = prepare_admin_password(settings.admin_password, settings.data_dir)
        services = build_services(settings, database, _access(settings, password.password_hash, password_pool,
                                                              login_token))
        services.definitions.ensure_versions()  # versions a crash lost, or from before versions (store/versions.py)
        engine = services.engine
        scheduler = services.scheduler
        pruner = services.pruner
        notifier = services.notifier
        http = _http_server(settings, create_app(services))
        try:
            http.init_socket()  # bind before recovery claims queued runs: a busy port fails nothing
        except OSError as exc:
            http = None
            print(f"scriptbox: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
            return 1
        notifier.set_fallback_base_url(_base_url(settings, http.server_port))
        notifier.start()  # before the engine: recovery may end runs
        engine.start(push=True)  # change streams: this process is gevent-patched
        if scheduler is not None:
            scheduler.start()
        if pruner is not None:
            pruner.start()  # its first pass runs now, in the background
        http.start()
        _announce(settings, password.generated, http.server_port)
        return _wait_for_stop(embedded)
    except EmbeddedDatabaseError as exc:
        print(f"scriptbox: cannot start the embedded database: {exc}", file=sys.stderr)
        return 1
    except SecretKeyError as exc:
        print(f"scriptbox: secret key: {exc}", file=sys.stderr)
        return 2
    finally:
        if http is not None:
            http.close()  # no new connection or request; open streams end when the engine stops
        if pruner is not None:
            _stop_step("retention", pruner.stop)
        if scheduler is not None:
            _stop_step("the scheduler", scheduler.stop)
        if engine is not None:
            _stop_step("the run engine", engine.stop)
        if notifier is not None:
            # after the engine: runs it ended at shutdown are notified too
            _stop_step("the notifier", notifier.stop)
        _stop_step("the open requests", lambda: _drain(http, services))
        if database is not None:
            database.close()
        if embedded is not None:
            _stop_step("the embedded database", embedded.stop)
        password_pool.kill()
        lock.release()

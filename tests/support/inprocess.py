"""The Scriptbox app and its services in this process, on the real database.

For route and engine tests that need no server process (as datasette's tests
use its TestClient): requests go straight to the Bottle app, the stores talk
to the shared SecantusDB under a database name of their own.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from scriptbox.auth import CredentialChecker, DesktopSessions, LoginThrottle, prepare_admin_password
from scriptbox.config import Settings
from scriptbox.engine import EngineOptions
from scriptbox.guards import HostGuard
from scriptbox.notify import NotifierOptions
from scriptbox.server import ui_dist_dir
from scriptbox.services import Access, Services, build_services
from scriptbox.store import Database
from scriptbox.web import create_app

from .client import ADMIN_PASSWORD, ADMIN_USER, AppClient


class InProcessApp:
    """Services and the WSGI app over a fresh database (a name of its own on the
    test run's SecantusDB, which goes away with the run)."""

    def __init__(self, mongodb_uri: str, data_dir: Path, *, execute: bool = False,
                 options: EngineOptions | None = None, notifier_options: NotifierOptions | None = None,
                 **settings: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = Settings(data_dir=data_dir, mongodb_uri=mongodb_uri, db_name=f"sbx_{uuid.uuid4().hex[:12]}",
                                 admin_password=ADMIN_PASSWORD, run_worker=execute, **settings)
        self.database = Database(mongodb_uri, self.settings.db_name)
        self.database.ensure_indexes()
        password = prepare_admin_password(ADMIN_PASSWORD, data_dir)
        access = Access(credentials=CredentialChecker(ADMIN_USER, password.password_hash),
                        host_guard=HostGuard(self.settings.host, self.settings.allowed_hosts),
                        desktop_sessions=DesktopSessions(None),
                        throttle=LoginThrottle(), ui_dir=ui_dist_dir())
        self.services: Services = build_services(self.settings, self.database, access, options, notifier_options)
        self.app = create_app(self.services)

    @property
    def engine(self) -> Any:
        return self.services.engine

    def client(self, **kwargs: Any) -> AppClient:
        return AppClient(self.app, **kwargs)

    def close(self) -> None:
        self.services.notifier.stop()
        self.database.close()

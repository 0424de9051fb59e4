"""The collaborators one Scriptbox process is made of, built in server.py.

Routes receive this through the closure made in ``create_app`` (never as
attributes bolted onto the Bottle app or module globals), so tests and other
entry points can assemble their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import AuditLog
from .auth import CredentialChecker, DesktopSessions, LoginThrottle
from .config import Settings
from .guards import HostGuard
from .metrics import Metrics
from .store import Database
from .store.definitions import DefinitionStore
from .tokens import TokenAuthority


@dataclass
class Services:
    settings: Settings
    database: Database
    definitions: DefinitionStore
    credentials: CredentialChecker
    host_guard: HostGuard
    ui_dir: Path
    desktop_sessions: DesktopSessions
    throttle: LoginThrottle
    metrics: Metrics
    tokens: TokenAuthority
    audit: AuditLog
    # The run engine's parts (scriptbox/engine.py, scriptbox/store/runs.py);
    # typed loosely here to keep this module free of import cycles.
    runs: Any = None
    engine: Any = None

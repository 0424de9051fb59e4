"""GET /api/admin/executors: the processes that execute runs, from the executors list."""

from __future__ import annotations

from typing import Any

from bottle import Bottle

from ..services import Services
from .openapi import Doc, Reply
from .presenters import executor_to_json
from .schemas import ExecutorList


def register(app: Bottle, services: Services) -> None:
    @app.get("/api/admin/executors", openapi=Doc(
        "List the executors (serve and worker processes) sharing this database", "executors",
        {200: Reply("Every registered executor, alive or gone.", ExecutorList)}, errors=(503,),
        description="Each executing process registers itself and renews its heartbeat with its leases. "
                    "`gone`: no heartbeat for a lease; such entries are removed after ten leases, and at once "
                    "when a process stops cleanly. A `serve --no-worker` is listed with 0 slots."))
    def list_executors() -> dict[str, Any]:
        """{executors, leaseSeconds, clusterMaxRuns}."""
        lease_s = services.engine.options.lease_s
        docs = services.executors.all() if services.executors is not None else []
        return {"executors": [executor_to_json(d, lease_s) for d in docs], "leaseSeconds": lease_s,
                "clusterMaxRuns": services.settings.cluster_max_runs}

"""Starting runs through the API and waiting for them."""

from __future__ import annotations

from typing import Any

from scriptbox.vocabulary import FINISHED_STATUSES

from .client import Api
from .wait import eventually

FINISHED = FINISHED_STATUSES


def start_run(api: Api, script_id: str, **body: Any) -> str:
    response = api.post(f"/api/admin/scripts/{script_id}/run", json=body or None)
    assert response.status_code == 202, response.text
    return str(response.json()["runId"])


def get_run(api: Api, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/admin/scripts/runs/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(api: Api, run_id: str, statuses: tuple[str, ...] = FINISHED, timeout: float = 30.0) -> dict[str, Any]:
    """The run once its status is one of `statuses`."""
    def reached() -> dict[str, Any] | None:
        run = get_run(api, run_id)
        return run if run["status"] in statuses else None

    return eventually(reached, timeout, message=f"run {run_id} in {statuses}")


def run_script(api: Api, script: str, timeout: float = 30.0, **fields: Any) -> tuple[dict[str, Any], str]:
    """Create a bash script (unless `type` says otherwise), run it, wait; returns (run, log)."""
    definition = api.create_script(script=script, **fields)
    run_id = start_run(api, definition["id"])
    run = wait_status(api, run_id, timeout=timeout)
    log = api.get(f"/api/admin/scripts/runs/{run_id}/log")
    assert log.status_code == 200
    return run, log.text

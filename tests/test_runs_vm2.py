"""node+vm2 runs end to end: through the HTTP API, the engine, the harness and vm2.

The harness itself is tested in depth in test_vm2_sandbox.py; this module
checks that the same scenarios, started as runs, end with the run status,
output and stored log an operator would see, and that the server stays healthy.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from support import Api, ScriptboxServer, run_script
from test_vm2_sandbox import ESCAPE_EXIT_CODES, ESCAPE_KIT, ESCAPE_SCENARIOS, SCENARIOS

STATUS_OF_EXIT = {0: "succeeded", 124: "timed_out"}


@pytest.mark.parametrize("name", ["output_and_env", "uncaught_error", "infinite_loop", "never_settling_promise",
                                  "top_level_await", "memory_bomb"])
def test_a_vm2_scenario_ends_as_the_run_status_an_operator_expects(api: Api, server: ScriptboxServer,
                                                                   name: str) -> None:
    scenario = SCENARIOS[name]
    env = [{"key": k, "value": v} for k, v in scenario.env.items()]
    run, log = run_script(api, scenario.script, type="node", runner="vm2", env=env,
                          timeoutMs=scenario.timeout_ms, timeout=60)
    assert run["status"] == scenario.status, (run, log)
    assert run["meta"]["snapshot"]["runner"] == "vm2"
    for text in scenario.stdout + scenario.stderr:
        assert text in log, (name, log)
    assert requests.get(server.base_url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("name", sorted(ESCAPE_SCENARIOS))
def test_an_escape_attempt_run_through_the_api_does_not_reach_the_host(api: Api, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "escaped"
    run, log = run_script(api, ESCAPE_KIT + ESCAPE_SCENARIOS[name], type="node", runner="vm2",
                          env=[{"key": "MARKER", "value": str(marker)}], timeoutMs=10_000, timeout=60)
    expected = STATUS_OF_EXIT.get(ESCAPE_EXIT_CODES.get(name, 0), "failed")
    assert run["status"] == expected, (run["status"], log)
    assert "ESCAPED" not in log and "FOREIGN" not in log, log
    assert not marker.exists()

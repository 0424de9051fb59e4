"""The running server against its own OpenAPI document, fuzzed by schemathesis.

A real `serve` process on a real database, every operation of the document,
bounded in examples per operation (about a minute in all on a busy machine).
Each answer must: not be a 5xx, have a documented status, content type and
headers, match its schema, and refuse data the schema says is invalid.

The server runs with --no-worker: scripts the fuzzer creates are stored but
never executed, whatever they say.

Checks left out, and why:
* ignored_auth probes each operation with wrong credentials; the login
  throttle then slows every answer down to 8 s. tests/test_auth.py covers auth.
* positive_data_acceptance expects every schema-valid body to be accepted,
  but some rules are beyond JSON Schema: env keys unique, codeIdentifier
  unique, the allowed type/runner pairs. Those answer 400/409 by design.
* use_after_free / ensure_resource_availability / object_level_authorization
  need stateful links or several identities, which this API does not have.

Findings of the fuzzer that were fixed are pinned by the tests at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from support import ADMIN_PASSWORD, ADMIN_USER, Api, ScriptboxServer, start_run

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, unsupported_method]
MAX_EXAMPLES = 10
REQUEST_TIMEOUT_S = 10


@pytest.fixture(scope="module")
def fuzz_server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("fuzz"), mongodb_uri=mongodb_uri, extra_args=["--no-worker"])
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ScriptboxServer) -> Any:
    schema = schemathesis.openapi.from_url(fuzz_server.base_url + "/api/openapi.json",
                                           auth=(ADMIN_USER, ADMIN_PASSWORD), timeout=30)
    schema.config.update(base_url=fuzz_server.base_url, basic_auth=(ADMIN_USER, ADMIN_PASSWORD),
                         request_timeout=REQUEST_TIMEOUT_S)
    return schema


@pytest.fixture()
def existing(fuzz_server: ScriptboxServer) -> dict[str, str]:
    """Path parameters that name real things: a script and a finished run of it."""
    api = fuzz_server.api()
    script = api.create_script(script="echo seeded")
    run_id = start_run(api, script["id"])
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202  # --no-worker: still queued
    return {"definition_id": script["id"], "run_id": run_id, "code_identifier": script["codeIdentifier"]}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_keeps_its_documented_contract(api_schema: Any, existing: dict[str, str],
                                                        mode: GenerationMode) -> None:
    # Driven through hypothesis directly: schemathesis's pytest plugin does not run on pytest 9.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # the seeded script stays until the end
    documented = {f"{method.upper()} {path}" for path, item in api_schema.raw_schema["paths"].items()
                  for method in item}
    # schemathesis leaves out the document's own URL; everything else is exercised.
    assert {op.label for op in operations} == documented - {"GET /api/openapi.json"}
    failures: dict[str, str] = {}
    for operation in operations:
        # Random ids (nothing there) and, for routes with ids, the seeded script and run.
        rounds: list[dict[str, str] | None] = [None]
        names = {p.name for p in operation.path_parameters}
        if names and names <= set(existing):
            rounds.append({name: existing[name] for name in names})
        for path_parameters in rounds:
            failure = _exercise(operation, mode, path_parameters)
            if failure:
                failures[f"{operation.label} {path_parameters or ''}"] = failure
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def _exercise(operation: Any, mode: GenerationMode, path_parameters: dict[str, str] | None) -> str | None:
    """Runs MAX_EXAMPLES cases of one operation; the first failure, or None."""
    # A --no-worker server never finishes a run, so POST …/run?wait=N would hold the request N s
    # (up to 300): wait is pinned to 0 here; tests/test_tokens.py covers run-and-wait.
    query = {"wait": 0} if any(p.name == "wait" for p in operation.query) else None
    # The run-events feed never ends by itself: it is asked to end after a second.
    if any(p.name == "maxSeconds" for p in operation.query):
        query = {"maxSeconds": 1}
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters, query=query))
    def exercise(case: Any) -> None:
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    try:
        exercise()
    except Unsatisfiable:
        # Nothing to make invalid: no body, no query, and the path is fixed or has no parameters.
        assert mode == GenerationMode.NEGATIVE, operation.label
        assert not (len(operation.query) or len(operation.headers) or len(operation.body)), operation.label
        assert path_parameters is not None or not len(operation.path_parameters), operation.label
    except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them all
        return f"{type(exc).__name__}: {exc}"[:3000]
    return None


# -- findings of the fuzzer, fixed and pinned ---------------------------------

def test_a_code_identifier_or_env_key_with_a_trailing_newline_is_refused(fuzz_server: ScriptboxServer) -> None:
    # re.match with "$" also accepted "abc\n"; the document's pattern (and any client) says no.
    api = fuzz_server.api()
    response = api.post("/api/admin/scripts", json={"name": "n", "codeIdentifier": "abc\n", "type": "bash"})
    assert response.status_code == 400 and "codeIdentifier" in response.json()["error"]["fields"]
    response = api.post("/api/admin/scripts", json={"name": "n", "codeIdentifier": "abc", "type": "bash",
                                                    "env": [{"key": "A\n", "value": ""}]})
    assert response.status_code == 400 and "env.0.key" in response.json()["error"]["fields"]


def test_a_status_filter_is_exactly_comma_separated_statuses(fuzz_server: ScriptboxServer) -> None:
    api: Api = fuzz_server.api()
    assert api.get("/api/admin/scripts/runs?status=running,queued").status_code == 200
    for bad in ("running,", ",running", " running", "running,,queued"):
        response = api.get("/api/admin/scripts/runs", params={"status": bad})
        assert response.status_code == 400 and "status" in response.json()["error"]["fields"], bad

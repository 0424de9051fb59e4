"""A timeout stops the script's shell and its children together (issue 21, item 3).

Signalled one by one, a shell whose `sleep` died first could run its next
command and exit 0 before its own SIGTERM arrived: the run printed "after
sleep" after its timeout and was recorded timed_out with exit code 0. Many
runs at once through one real server (gevent-patched, as in production), so
the timeouts fall due together.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from support import Api, ScriptboxServer, eventually, unique_name

PARALLEL = 30
SCRIPT = "echo before sleep; sleep 5; echo after sleep"
# A shell inside the shell: the inner one must not survive to print either.
NESTED = "echo before sleep; bash -c 'sleep 5; echo after sleep'; echo after sleep"


@pytest.fixture(scope="module")
def server(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptboxServer]:
    instance = ScriptboxServer(tmp_path_factory.mktemp("timeout-race"), mongodb_uri=mongodb_uri,
                               env={"SCRIPTBOX_MAX_CONCURRENT_RUNS": str(PARALLEL)}).start()
    yield instance
    instance.stop()


def _run_many(api: Api, scripts: list[str]) -> list[tuple[dict[str, Any], str]]:
    """PARALLEL runs at once, spread over these scripts; each run with its stored log once all ended."""
    script_ids = [api.create_script(name=unique_name(), type="bash", script=s, timeoutMs=1000)["id"] for s in scripts]

    def start(n: int) -> str:
        answer = api.post(f"/api/admin/scripts/{script_ids[n % len(script_ids)]}/run", json={})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["runId"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        run_ids = list(pool.map(start, range(PARALLEL)))

    def all_ended() -> dict[str, dict[str, Any]] | None:
        runs = api.get("/api/admin/scripts/runs", params={"limit": PARALLEL}).json()["runs"]
        ended = {r["id"]: r for r in runs if r["finishedAt"]}
        return ended if set(run_ids) <= set(ended) else None

    runs = eventually(all_ended, timeout=60, message="all runs end")
    return [(runs[run_id], api.get(f"/api/admin/scripts/runs/{run_id}/log").text) for run_id in run_ids]


def test_timed_out_runs_never_run_past_their_timeout_and_have_no_exit_code(server: ScriptboxServer) -> None:
    ended = _run_many(server.api(), [SCRIPT, NESTED])
    late = [(run["status"], run["exitCode"], log) for run, log in ended if "after sleep" in log]
    assert not late, f"{len(late)} of {PARALLEL} runs went on after their timeout: {late[:3]}"
    outcomes = {(run["status"], run["exitCode"], run["meta"]["error"]) for run, _ in ended}
    assert outcomes == {("timed_out", None, "timed out after 1000 ms")}
    # Under load a login shell may not reach its first line within 1 s; most do.
    assert any("before sleep" in log for _, log in ended)

"""GET /metrics: Prometheus text from a real server, before and after real runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from scriptbox.childproc import free_loopback_port
from support import ADMIN_PASSWORD, REPO, Api, ScriptboxServer, SseStream, eventually, start_run, wait_status

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api: Api) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape_until(api: Api, done: Callable[[Samples], bool], timeout: float = 30.0) -> Samples:
    """Scrapes until `done` holds (state that another request changes, e.g. a stream closing)."""
    try:
        return eventually(lambda: samples if done(samples := scrape(api)) else None, timeout)
    except AssertionError:
        return scrape(api)


def test_metrics_need_the_admin(server: ScriptboxServer) -> None:
    response = Api(server.base_url, auth=None).get("/metrics")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_every_metric_of_the_spec_is_exported_from_the_start(api: Api) -> None:
    samples = scrape(api)
    names = {name for name, _ in samples}
    for name in ("scriptbox_runs_total", "scriptbox_runs_running", "scriptbox_runs_queued",
                 "scriptbox_run_duration_seconds_count", "scriptbox_run_queue_wait_seconds_count",
                 "scriptbox_sse_viewers", "scriptbox_output_bytes_total", "scriptbox_schedule_firings_total",
                 "scriptbox_notifications_total", "scriptbox_runs_executing",
                 "process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert name in names, name
    # Not built yet: present, at zero, for every result.
    for result in ("fired", "skipped", "missed"):
        assert ("scriptbox_schedule_firings_total", (("result", result),)) in samples
    assert value(samples, "scriptbox_notifications_total", result="failed") == 0
    assert ("scriptbox_runs_total", (("status", "timed_out"), ("trigger", "manual"))) in samples


def test_metrics_follow_a_run_from_start_to_end(api: Api, tmp_path: Path) -> None:
    release = tmp_path / "release"
    script = api.create_script(script=f"printf 'hello metrics\\n'; while [ ! -e {release} ]; do sleep 0.02; done; "
                                      "printf 'bye\\n'")
    before = scrape(api)
    run_id = start_run(api, script["id"])
    wait_status(api, run_id, ("running",))
    stream = SseStream(api, run_id)
    during = scrape_until(api, lambda s: value(s, "scriptbox_sse_viewers") >= 1)
    assert value(during, "scriptbox_runs_running") == value(before, "scriptbox_runs_running") + 1
    assert value(during, "scriptbox_runs_executing") == value(before, "scriptbox_runs_executing") + 1
    assert value(during, "scriptbox_sse_viewers") == value(before, "scriptbox_sse_viewers") + 1
    assert (value(during, "scriptbox_run_queue_wait_seconds_count")
            == value(before, "scriptbox_run_queue_wait_seconds_count") + 1)

    release.touch()
    events = stream.until_end()
    stream.close()
    assert events[-1].data["status"] == "succeeded"
    after = scrape_until(api, lambda s: value(s, "scriptbox_sse_viewers") == value(before, "scriptbox_sse_viewers"))
    key = {"status": "succeeded", "trigger": "api"}
    assert value(after, "scriptbox_runs_total", **key) == value(before, "scriptbox_runs_total", **key) + 1
    assert value(after, "scriptbox_runs_running") == value(before, "scriptbox_runs_running")
    assert value(after, "scriptbox_runs_executing") == value(before, "scriptbox_runs_executing")
    assert value(after, "scriptbox_sse_viewers") == value(before, "scriptbox_sse_viewers")
    assert (value(after, "scriptbox_output_bytes_total")
            == value(before, "scriptbox_output_bytes_total") + len("hello metrics\nbye\n"))
    assert (value(after, "scriptbox_run_duration_seconds_count")
            == value(before, "scriptbox_run_duration_seconds_count") + 1)


def test_canceled_runs_are_counted_by_trigger(api: Api) -> None:
    script = api.create_script(script="sleep 30")
    before = scrape(api)
    run_id = start_run(api, script["id"], trigger="manual")
    wait_status(api, run_id, ("running",))
    assert api.post(f"/api/admin/scripts/runs/{run_id}/cancel").status_code == 202
    assert wait_status(api, run_id)["status"] == "canceled"
    key = {"status": "canceled", "trigger": "manual"}
    # Other readers may see the final status a few ms before the database has
    # answered the write that stored it, and the run is counted on that
    # answer: scrape until it is.
    after = scrape_until(api, lambda s: value(s, "scriptbox_runs_total", **key) > value(before, "scriptbox_runs_total",
                                                                                          **key))
    assert value(after, "scriptbox_runs_total", **key) == value(before, "scriptbox_runs_total", **key) + 1
    assert value(after, "scriptbox_runs_queued") == value(before, "scriptbox_runs_queued")


def test_a_scraper_asking_for_openmetrics_gets_it(api: Api) -> None:
    response = api.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_a_worker_exports_its_own_metrics_on_its_metrics_port(server_factory: Any, mongodb_uri: str,
                                                              tmp_path: Path) -> None:
    web = server_factory(extra_args=["--no-worker"]).start()
    api = web.api()
    port = free_loopback_port()
    env = {**os.environ, "SCRIPTBOX_DB_NAME": web.db_name, "SCRIPTBOX_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "SCRIPTBOX_METRICS_PORT": str(port), "HOME": str(tmp_path)}
    worker = subprocess.Popen([sys.executable, str(REPO / "app.py"), "worker", "--mongodb-uri", mongodb_uri,
                               "--data-dir", str(tmp_path / "worker")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        worker_api = Api(f"http://127.0.0.1:{port}")
        def listening() -> Samples | None:
            try:
                return scrape(worker_api)
            except requests.ConnectionError:
                assert worker.poll() is None, "the worker exited"
                return None

        before = eventually(listening, 60, interval=0.1, message="the worker listens")
        assert Api(worker_api.base_url, auth=None).get("/metrics").status_code == 401
        assert worker_api.get("/api/admin/scripts").status_code == 404  # metrics only
        script = api.create_script(script="echo from-the-worker")
        run_id = start_run(api, script["id"])
        assert wait_status(api, run_id)["status"] == "succeeded"
        key = {"status": "succeeded", "trigger": "api"}

        def counted() -> Samples:
            # The worker counts a run right after storing its end, so the scrape may trail the document a moment.
            samples = scrape(worker_api)
            assert value(samples, "scriptbox_runs_total", **key) == value(before, "scriptbox_runs_total", **key) + 1
            return samples

        after = eventually(counted, 30, interval=0.05, message="the worker counts the run")
        assert (value(after, "scriptbox_output_bytes_total")
                == value(before, "scriptbox_output_bytes_total") + len("from-the-worker\n"))
        # The serving process executed nothing: its counters did not move.
        assert value(scrape(api), "scriptbox_runs_total", **key) == 0
    finally:
        worker.terminate()
        assert worker.wait(30) == 0


def test_a_worker_metrics_port_needs_an_admin_password(tmp_path: Path, mongodb_uri: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRIPTBOX_")}
    env["SCRIPTBOX_METRICS_PORT"] = "0"
    result = subprocess.run([sys.executable, str(REPO / "app.py"), "worker", "--mongodb-uri", mongodb_uri,
                             "--data-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "SCRIPTBOX_ADMIN_PASSWORD" in result.stderr

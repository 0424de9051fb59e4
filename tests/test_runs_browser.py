"""Browser runs: inserted running, finished by the page's report, cancel or watchdog."""

from __future__ import annotations

import time

from support import Api, SseStream, get_run, output_text, start_run, wait_status


def _browser_script(api: Api, **fields: object) -> dict:  # type: ignore[type-arg]
    return api.create_script(type="browser", script="console.log('hi')", **fields)


def test_a_browser_run_starts_running_and_is_never_executed_by_the_server(api: Api) -> None:
    definition = _browser_script(api)
    run_id = start_run(api, definition["id"], trigger="manual")
    run = get_run(api, run_id)
    assert run["status"] == "running"
    assert run["startedAt"] is not None
    assert run["meta"]["node"] == "browser"
    assert run["meta"]["pid"] is None
    assert run["meta"]["snapshot"]["runner"] == "browser"


def test_the_reported_result_is_stored_like_any_run(api: Api) -> None:
    definition = _browser_script(api)
    run_id = start_run(api, definition["id"])
    viewer = SseStream(api, run_id)
    body = {"status": "failed", "exitCode": 1, "error": "Error: boom",
            "output": [{"stream": "stdout", "data": "line 1\n"}, {"stream": "stderr", "data": "boom\n"}]}
    response = api.post(f"/api/admin/scripts/runs/{run_id}/browser-result", json=body)
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "failed" and run["exitCode"] == 1
    assert run["meta"]["error"] == "Error: boom"
    assert run["outputTail"] == "line 1\nboom\n"
    assert run["meta"]["outputBytes"] == 12
    assert api.get(f"/api/admin/scripts/runs/{run_id}/log").text == "line 1\nboom\n"
    events = viewer.until_end()
    assert output_text(events, "stdout") == "line 1\n"
    assert output_text(events, "stderr") == "boom\n"
    assert events[-1].data["status"] == "failed"
    again = api.post(f"/api/admin/scripts/runs/{run_id}/browser-result",
                     json={"status": "succeeded", "exitCode": 0, "output": []})
    assert again.status_code == 409


def test_browser_result_is_validated(api: Api) -> None:
    run_id = start_run(api, _browser_script(api)["id"])
    path = f"/api/admin/scripts/runs/{run_id}/browser-result"
    cases = [
        ({"status": "done", "output": []}, "status"),
        ({"status": "succeeded", "exitCode": "0", "output": []}, "exitCode"),
        ({"status": "succeeded", "exitCode": True, "output": []}, "exitCode"),
        ({"status": "succeeded", "output": [{"stream": "stdin", "data": "x"}]}, "output.0"),
        ({"status": "succeeded", "output": "text"}, "output"),
        ({"status": "succeeded", "output": [], "extra": 1}, "extra"),
        ({"status": "succeeded", "output": [], "error": 5}, "error"),
    ]
    for body, field in cases:
        response = api.post(path, json=body)
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"], body
    assert get_run(api, run_id)["status"] == "running"


def test_browser_result_for_a_host_run_is_409(api: Api) -> None:
    definition = api.create_script(script="sleep 5")
    run_id = start_run(api, definition["id"])
    response = api.post(f"/api/admin/scripts/runs/{run_id}/browser-result",
                        json={"status": "succeeded", "exitCode": 0, "output": []})
    assert response.status_code == 409
    api.post(f"/api/admin/scripts/runs/{run_id}/cancel")


def test_canceling_a_browser_run_ends_it_and_its_stream(api: Api) -> None:
    run_id = start_run(api, _browser_script(api)["id"])
    viewer = SseStream(api, run_id)
    response = api.post(f"/api/admin/scripts/runs/{run_id}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "canceled"
    events = viewer.until_end()
    assert events[-1].event == "end" and events[-1].data["status"] == "canceled"
    late = api.post(f"/api/admin/scripts/runs/{run_id}/browser-result",
                    json={"status": "succeeded", "exitCode": 0, "output": []})
    assert late.status_code == 409


def test_a_browser_run_that_never_reports_times_out(server_factory) -> None:  # type: ignore[no-untyped-def]
    # The deadline is timeoutMs + 30 s, kept in the run as leaseUntil. Rather
    # than wait half a minute, move the deadline into the past in the
    # database; the watchdog (every 5 s) must then end the run.
    from datetime import datetime, timedelta

    from bson import ObjectId
    from pymongo import MongoClient

    server = server_factory().start()
    api = server.api()
    run_id = start_run(api, _browser_script(api, timeoutMs=100)["id"])
    client: MongoClient = MongoClient(server.mongodb_uri)
    try:
        runs = client[server.db_name].script_runs
        stored = runs.find_one({"_id": ObjectId(run_id)})
        assert stored is not None
        expected = stored["startedAt"] + timedelta(milliseconds=100, seconds=30)
        assert abs((stored["leaseUntil"] - expected).total_seconds()) < 0.01
        time.sleep(1)
        assert get_run(api, run_id)["status"] == "running"
        runs.update_one({"_id": ObjectId(run_id)}, {"$set": {"leaseUntil": datetime.utcnow() - timedelta(seconds=1)}})
    finally:
        client.close()
    run = wait_status(api, run_id, timeout=15)
    assert run["status"] == "timed_out"
    assert "did not report a result" in run["meta"]["error"]

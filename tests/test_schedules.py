"""Schedules (SPEC §8.1): validation, preview, the next-time rule across DST, and the
scheduler against real servers on a real database with the real clock.

Schedules here use 6-field crons with seconds so that a test waits seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_metrics import scrape, value

from scriptbox.schedule import next_due_times
from support import Api, ScriptboxServer, eventually, unique_name, wait_status

EVERY_SECOND = "* * * * * *"


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def runs_of(api: Api, script_id: str) -> list[dict[str, Any]]:
    response = api.get("/api/admin/scripts/runs", params={"scriptId": script_id, "limit": 500})
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["runs"]))  # oldest first


def schedule(cron: str = EVERY_SECOND, **fields: Any) -> dict[str, Any]:
    return {"cron": cron, "timezone": "UTC", **fields}


def stop_schedule(api: Api, script_id: str) -> dict[str, Any]:
    """Disable the script's schedule (its counts stay visible); returns the definition."""
    current = api.get(f"/api/admin/scripts/{script_id}").json()["schedule"]
    response = api.put(f"/api/admin/scripts/{script_id}", json={"schedule": {**current, "enabled": False}})
    assert response.status_code == 200, response.text
    return dict(response.json())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the next-time rule (pure) ---------------------------------------------


def test_berlin_spring_forward_skips_the_missing_local_time() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    due = next_due_times("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 0), 3)
    assert due == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]


def test_berlin_fall_back_fires_a_repeated_time_once_at_its_first_occurrence() -> None:
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:00-02:59 happen twice.
    due = next_due_times("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 2)
    assert due == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    half_hourly = next_due_times("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 15), 5)
    assert half_hourly == [utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30),
                           utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 30)]


def test_berlin_from_inside_the_second_pass_of_the_repeated_hour() -> None:
    # 01:15 UTC is 02:15 CET, the second 02:15 of the night: 02:30 has fired already (00:30 UTC).
    assert next_due_times("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 15), 1) == [utc(2026, 10, 26, 1, 30)]


def test_new_york_spring_forward_and_fall_back() -> None:
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    assert next_due_times("30 2 * * *", "America/New_York", utc(2026, 3, 7, 0), 2) == [
        utc(2026, 3, 7, 7, 30), utc(2026, 3, 9, 6, 30)]
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice, fires once.
    assert next_due_times("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    # Midnight is unaffected: @daily keeps its local midnight on both sides of the change.
    assert next_due_times("@daily", "America/New_York", utc(2026, 3, 7, 12), 2) == [
        utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)]


def test_six_fields_have_seconds_first_and_names_work() -> None:
    after = utc(2026, 1, 5, 8, 59, 58)  # a Monday
    assert next_due_times("*/20 * * * * *", "UTC", after, 3) == [
        utc(2026, 1, 5, 9, 0, 0), utc(2026, 1, 5, 9, 0, 20), utc(2026, 1, 5, 9, 0, 40)]
    assert next_due_times("0 9 * JAN MON-FRI", "UTC", after, 2) == [utc(2026, 1, 5, 9), utc(2026, 1, 6, 9)]


# -- the API ---------------------------------------------------------------


@pytest.mark.parametrize(("sched", "field"), [
    ({"cron": "61 * * * *"}, "schedule.cron"),
    ({"cron": "* * *"}, "schedule.cron"),
    ({"cron": "@sometimes"}, "schedule.cron"),
    ({"cron": "0 0 31 2 *"}, "schedule.cron"),
    ({"cron": 5}, "schedule.cron"),
    ({}, "schedule.cron"),
    ({"cron": "@daily", "timezone": "Mars/Olympus"}, "schedule.timezone"),
    ({"cron": "@daily", "timezone": "../../etc/passwd"}, "schedule.timezone"),
    ({"cron": "@daily", "overlap": "sometimes"}, "schedule.overlap"),
    ({"cron": "@daily", "catchUp": "all"}, "schedule.catchUp"),
    ({"cron": "@daily", "enabled": "yes"}, "schedule.enabled"),
    ({"cron": "@daily", "params": {"x": 1}}, "schedule.params.x"),  # no such parameter declared
    ({"cron": "@daily", "color": "red"}, "schedule.color"),
])
def test_invalid_schedule_is_400_naming_the_field(api: Api, sched: dict[str, Any], field: str) -> None:
    body = {"name": "x", "codeIdentifier": unique_name(), "type": "bash", "schedule": sched}
    response = api.post("/api/admin/scripts", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"], response.text
    created = api.create_script()
    response = api.put(f"/api/admin/scripts/{created['id']}", json={"schedule": sched})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"], response.text


def test_schedule_is_stored_with_defaults_and_answers_carry_next_run_at(api: Api) -> None:
    created = api.create_script(schedule={"cron": "0 3 * * *", "timezone": "Europe/Berlin"})
    sched = created["schedule"]
    assert {k: sched[k] for k in ("cron", "timezone", "enabled", "overlap", "catchUp", "params")} == {
        "cron": "0 3 * * *", "timezone": "Europe/Berlin", "enabled": True, "overlap": "skip", "catchUp": "none",
        "params": {}}
    expected = next_due_times("0 3 * * *", "Europe/Berlin", datetime.now(UTC), 1)[0]
    assert parse_iso(sched["nextRunAt"]) == expected
    assert sched["skippedCount"] == 0 and sched["lastSkippedAt"] is None
    # A document from GET goes back unchanged (the server's fields are ignored).
    fetched = api.get(f"/api/admin/scripts/{created['id']}").json()
    response = api.put(f"/api/admin/scripts/{created['id']}", json=fetched)
    assert response.status_code == 200, response.text
    listed = [s for s in api.get("/api/admin/scripts").json()["scripts"] if s["id"] == created["id"]]
    assert listed[0]["schedule"]["nextRunAt"] == sched["nextRunAt"]
    # Disabled schedule or script: nothing is due.
    off = api.put(f"/api/admin/scripts/{created['id']}",
                  json={"schedule": {**schedule("0 3 * * *"), "enabled": False}}).json()
    assert off["schedule"]["nextRunAt"] is None
    assert api.create_script(enabled=False, schedule=schedule("@hourly"))["schedule"]["nextRunAt"] is None
    assert api.create_script()["schedule"] is None


def test_browser_scripts_cannot_be_scheduled(api: Api) -> None:
    response = api.post("/api/admin/scripts", json={"name": "b", "codeIdentifier": unique_name(), "type": "browser",
                                                    "schedule": schedule("@daily")})
    assert response.status_code == 400
    assert "schedule" in response.json()["error"]["fields"]


def test_schedule_preview(api: Api) -> None:
    response = api.get("/api/admin/schedule-preview", params={"cron": "0 30 2 * * 1-5", "timezone": "Europe/Berlin"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"] == [d.isoformat(timespec="milliseconds").replace("+00:00", "Z") for d in
                            next_due_times("0 30 2 * * 1-5", "Europe/Berlin", datetime.now(UTC), 5)]
    assert body["description"] == "At 02:30, Monday through Friday"
    assert api.get("/api/admin/schedule-preview", params={"cron": "@hourly"}).json()["description"] == (
        "Every hour")
    bad = api.get("/api/admin/schedule-preview", params={"cron": "1 2 3", "timezone": "Nowhere/City"})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"cron", "timezone"}
    assert api.get("/api/admin/schedule-preview").json()["error"]["fields"] == {"cron": "is required"}


def test_client_cannot_filter_with_an_unknown_trigger_and_can_filter_by_trigger(api: Api) -> None:
    bad = api.get("/api/admin/scripts/runs", params={"trigger": "cron"})
    assert bad.status_code == 400 and "trigger" in bad.json()["error"]["fields"]
    script = api.create_script(script="true")
    manual = api.post(f"/api/admin/scripts/{script['id']}/run", json={"trigger": "manual"}).json()["runId"]
    wait_status(api, manual)
    by_api = api.post(f"/api/admin/scripts/{script['id']}/run").json()["runId"]
    wait_status(api, by_api)
    only = api.get("/api/admin/scripts/runs", params={"scriptId": script["id"], "trigger": "manual"}).json()["runs"]
    assert [r["id"] for r in only] == [manual]


# -- the scheduler ---------------------------------------------------------


def test_fires_each_due_time_with_trigger_schedule(api: Api) -> None:
    fired_before = value(scrape(api), "scriptbox_schedule_firings_total", result="fired")
    script = api.create_script(script="echo tick", schedule=schedule("*/2 * * * * *", overlap="allow"))
    runs = eventually(lambda: len(runs_of(api, script["id"])) >= 3 and runs_of(api, script["id"]), 20,
                      message="three scheduled runs")
    stop_schedule(api, script["id"])
    for run in runs:
        assert run["trigger"] == "schedule"
        assert run["meta"]["requestedBy"] == "scheduler"
        due = parse_iso(run["meta"]["scheduledFor"])
        assert due.second % 2 == 0 and due.microsecond == 0
        assert parse_iso(run["createdAt"]) >= due  # never early
    dues = [parse_iso(r["meta"]["scheduledFor"]) for r in runs]
    assert dues == sorted(set(dues))
    finished = wait_status(api, runs[0]["id"])
    assert finished["status"] == "succeeded"
    state = api.get(f"/api/admin/scripts/{script['id']}").json()["schedule"]
    assert state["enabled"] is False and state["nextRunAt"] is None
    eventually(lambda: api.get(f"/api/admin/scripts/{script['id']}").json()["schedule"]["firedCount"]
               == len(runs_of(api, script["id"])), 10, message="firedCount matches the runs")
    # One server: it claimed every due time.
    fired = value(scrape(api), "scriptbox_schedule_firings_total", result="fired") - fired_before
    assert fired == len(runs_of(api, script["id"]))


def test_disabled_script_or_schedule_does_not_fire(api: Api) -> None:
    off_script = api.create_script(script="true", enabled=False, schedule=schedule(overlap="allow"))
    off_schedule = api.create_script(script="true", schedule={**schedule(overlap="allow"), "enabled": False})
    control = api.create_script(script="true", schedule=schedule(overlap="allow"))
    eventually(lambda: len(runs_of(api, control["id"])) >= 3, 20, message="the control script fires")
    # Disabling an active schedule stops it too.
    api.put(f"/api/admin/scripts/{control['id']}", json={"enabled": False})
    count = len(runs_of(api, control["id"]))
    time.sleep(2.5)
    assert runs_of(api, off_script["id"]) == []
    assert runs_of(api, off_schedule["id"]) == []
    assert len(runs_of(api, control["id"])) <= count + 1  # one may have been in flight


def _never_two_active(runs: list[dict[str, Any]]) -> bool:
    spans = sorted((parse_iso(r["startedAt"]), parse_iso(r["finishedAt"])) for r in runs)
    return all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))


def test_overlap_skip_queue_allow(api: Api) -> None:
    scripts = {mode: api.create_script(script="sleep 2.5", schedule=schedule(overlap=mode))
               for mode in ("skip", "queue", "allow")}
    time.sleep(6)
    for script in scripts.values():
        stop_schedule(api, script["id"])
    runs = {mode: [wait_status(api, r["id"], timeout=60) for r in runs_of(api, s["id"])]
            for mode, s in scripts.items()}
    # skip: due times while a run was active started nothing and are counted.
    skip_state = api.get(f"/api/admin/scripts/{scripts['skip']['id']}").json()["schedule"]
    assert skip_state["skippedCount"] >= 2 and skip_state["firedCount"] == len(runs["skip"])
    assert 1 <= len(runs["skip"]) <= 3
    assert _never_two_active(runs["skip"])
    # queue: every due time got a run, each started after the previous one ended.
    assert len(runs["queue"]) > len(runs["skip"])
    assert _never_two_active(runs["queue"])
    # allow: runs of the same script ran side by side.
    assert not _never_two_active(runs["allow"])


def test_alone_on_its_embedded_database_a_queued_run_starts_as_soon_as_the_one_before_it_ends(
        server_factory: Callable[..., ScriptboxServer]) -> None:
    # Alone on its database, the dispatcher skips the claim after a run's end
    # unless that end released a run queued behind it: those must not wait
    # for the 2 s poll, nor for the next firing (each second) to wake it.
    server = server_factory(mongodb_uri=None).start()
    api = server.api()
    script = api.create_script(script="sleep 1.2", schedule=schedule(overlap="queue"))
    eventually(lambda: len(runs_of(api, script["id"])) >= 5, 30, message="five runs of the queue schedule")
    stop_schedule(api, script["id"])
    runs = [wait_status(api, r["id"], timeout=60) for r in runs_of(api, script["id"])]
    spans = sorted((parse_iso(r["startedAt"]), parse_iso(r["finishedAt"])) for r in runs)
    gaps = [(later[0] - earlier[1]).total_seconds() for earlier, later in zip(spans, spans[1:], strict=False)]
    assert len(gaps) >= 4 and all(0 <= gap < 0.3 for gap in gaps), gaps


def test_skipped_firings_are_visible_on_the_script(api: Api) -> None:
    script = api.create_script(script="sleep 3", schedule=schedule())
    state = eventually(lambda: (s := api.get(f"/api/admin/scripts/{script['id']}").json()["schedule"])
                     ["skippedCount"] >= 2 and s, 20, message="two skipped due times")
    stop_schedule(api, script["id"])
    assert state["lastSkippedAt"] is not None and state["firedCount"] >= 1
    entries = api.get("/api/admin/audit", params={"action": "schedule.skipped", "targetId": script["id"]}).json()
    assert entries["entries"] and entries["entries"][0]["actor"] == "scheduler"
    assert "scheduledFor" in entries["entries"][0]["details"]
    assert parse_iso(state["lastSkippedAt"]) <= parse_iso(state["lastScheduledFor"])


def test_two_servers_on_one_database_fire_each_due_time_once(server_factory: Callable[..., ScriptboxServer]) -> None:
    first = server_factory().start()
    second = server_factory(db_name=first.db_name).start()
    api_a, api_b = first.api(), second.api()
    script = api_a.create_script(script="true", schedule=schedule(overlap="allow"))
    eventually(lambda: len(runs_of(api_a, script["id"])) >= 12, 40, message="a dozen scheduled runs")
    stop_schedule(api_b, script["id"])
    time.sleep(1.5)
    runs = runs_of(api_a, script["id"])
    dues = [parse_iso(r["meta"]["scheduledFor"]) for r in runs]
    assert len(dues) == len(set(dues)), "a due time fired twice"
    # Both processes scheduled; no second was lost between the first and the last.
    span = int((max(dues) - min(dues)).total_seconds()) + 1
    assert len(dues) == span
    nodes = {r["meta"]["requestedBy"] for r in runs}
    assert nodes == {"scheduler"}


@pytest.mark.parametrize("catch_up", ["none", "latest"])
def test_catch_up_after_a_restart(server_factory: Callable[..., ScriptboxServer], catch_up: str) -> None:
    srv = server_factory().start()
    api = srv.api()
    script = api.create_script(script="true", schedule=schedule("*/2 * * * * *", overlap="allow", catchUp=catch_up))
    eventually(lambda: len(runs_of(api, script["id"])) >= 2, 20, message="two scheduled runs")
    assert srv.stop() == 0
    stopped_at = datetime.now(UTC)
    time.sleep(7)  # due times pass with no server
    srv.start()
    api = srv.api()
    eventually(lambda: any(parse_iso(r["meta"]["scheduledFor"]) > stopped_at + timedelta(seconds=7)
                         for r in runs_of(api, script["id"])), 20, message="the schedule goes on after the restart")
    state = stop_schedule(api, script["id"])["schedule"]
    runs = runs_of(api, script["id"])
    caught = [r for r in runs if r["meta"].get("catchUp")]
    # Due times certainly passed while no server ran (the restart takes more than none).
    gap = [d for d in next_due_times("*/2 * * * * *", "UTC", stopped_at, 5) if d <= stopped_at + timedelta(seconds=5)]
    assert len(gap) >= 2
    ran = [d for d in gap if any(parse_iso(r["meta"]["scheduledFor"]) == d for r in runs)]
    if catch_up == "none":
        assert caught == [] and ran == []
        assert state["missedCount"] >= len(gap)
    else:
        assert len(caught) == 1, caught
        assert parse_iso(caught[0]["meta"]["scheduledFor"]) > stopped_at
        assert len(ran) <= 1
        assert state["missedCount"] >= len(gap) - 1
    # The count follows the run's insert; the last firing may still be on its way.
    eventually(lambda: api.get(f"/api/admin/scripts/{script['id']}").json()["schedule"]["firedCount"]
             == len(runs_of(api, script["id"])), 10, message="firedCount matches the runs")

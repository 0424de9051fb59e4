"""Retention (SPEC §8.6): the pruner, the rules, DELETE of one run, and `retention` on definitions.

Runs are inserted through the store already finished long ago (tests/support/backdated.py),
with output chunks through RunStore.add_chunks; the pruner and the routes run
in-process against the real SecantusDB. One test starts a real server to see
it prune at start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from scriptbox.config import ConfigError, load_settings
from scriptbox.retention import Pruner
from scriptbox.retention_rule import MIN_SPAN, Rule, Window, next_window, rule_for
from scriptbox.store.leases import LeaseStore
from scriptbox.store.records import RunEnd
from support import AppClient, ScriptboxServer, eventually
from support.backdated import active_run_doc, finished_run_doc, insert_runs
from support.inprocess import InProcessApp

NOW = datetime.utcnow().replace(microsecond=0)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture()
def pruner(app: InProcessApp) -> Callable[..., Pruner]:
    """Pruners over the app's database; no rest between pages (the tests measure nothing)."""
    def make(default_days: int = 90, **kwargs: Any) -> Pruner:
        kwargs.setdefault("throttle", 0.0)
        services = app.services
        return Pruner(services.finished_runs, services.definitions, LeaseStore(app.database), services.audit,
                      default_days, kwargs.pop("holder", "test"), **kwargs)
    return make


def script(client: AppClient, **fields: Any) -> str:
    return str(client.create_script(**fields)["id"])


def present(app: InProcessApp, run_ids: list[str]) -> set[str]:
    """Which of these runs still exist."""
    return {run_id for run_id in run_ids if app.services.runs.get(run_id) is not None}


def chunk_count(app: InProcessApp, run_ids: list[str]) -> int:
    return app.services.runs.chunks.count_documents({"runId": {"$in": [ObjectId(r) for r in run_ids]}})


def seed(app: InProcessApp, script_id: str, ages: list[float], **kwargs: Any) -> list[str]:
    return insert_runs(app.services.runs, [finished_run_doc(script_id, days_ago(a), **kwargs) for a in ages])


# -- the pure rules -------------------------------------------------------


def test_a_scripts_retention_overrides_the_default_field_by_field() -> None:
    assert rule_for(90, None) == Rule(90, 0)
    assert rule_for(90, {"days": None, "keepRuns": 5}) == Rule(90, 5)
    assert rule_for(90, {"days": 0, "keepRuns": None}) == Rule(0, 0) and Rule(0, 0).forever
    assert rule_for(0, {"days": 7}).cutoff(NOW) == NOW - timedelta(days=7)


def test_the_walk_rereads_a_full_window_halves_one_that_only_holds_keepers_and_grows_empty_ones() -> None:
    start = datetime(2020, 1, 1)
    window = Window(start, start + timedelta(hours=1))
    stop = start + timedelta(days=10)
    # A full page: its first half next, whether or not it deleted (re-reading a
    # wide window after every page read the whole history each time).
    half = Window(start, start + timedelta(minutes=30))
    assert next_window(window, stop, found=10, deleted=3, limit=10) == half
    assert next_window(window, stop, found=10, deleted=0, limit=10) == half
    after = window.end
    assert next_window(window, stop, found=0, deleted=0, limit=10) == Window(after, after + timedelta(hours=4))
    assert next_window(window, stop, found=5, deleted=5, limit=10) == Window(after, after + timedelta(hours=1))
    tiny = Window(start, start + MIN_SPAN)
    whole = Window(start, start + MIN_SPAN, whole=True)
    assert next_window(tiny, stop, found=10, deleted=0, limit=10) == whole
    assert next_window(tiny, stop, found=10, deleted=4, limit=10) == tiny
    assert next_window(whole, stop, found=40, deleted=4, limit=10) == Window(tiny.end, tiny.end + MIN_SPAN)
    assert next_window(Window(start, stop), stop, found=0, deleted=0, limit=10) is None


def test_the_retention_setting_is_checked_at_start() -> None:
    assert load_settings({}, {}).retention_days == 90
    assert load_settings({}, {"SCRIPTBOX_RETENTION_DAYS": "0"}).retention_days == 0
    for bad in ("-1", "ninety", "36501"):
        with pytest.raises(ConfigError, match="SCRIPTBOX_RETENTION_DAYS"):
            load_settings({}, {"SCRIPTBOX_RETENTION_DAYS": bad})


# -- the pruner -----------------------------------------------------------


def test_old_finished_runs_go_with_their_output_and_recent_and_active_runs_stay(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    sid = script(client)
    old = seed(app, sid, [400, 120, 91]) + seed(app, sid, [100], status="failed")
    old += seed(app, sid, [95], status="timed_out")
    recent = seed(app, sid, [89, 1])
    active = insert_runs(app.services.runs, [active_run_doc(sid, "queued", days_ago(300)),
                                             active_run_doc(sid, "running", days_ago(200))])
    report = pruner(90).prune()
    assert report is not None and report.runs >= len(old) and report.chunks >= 3 * len(old)
    assert present(app, old) == set() and chunk_count(app, old) == 0
    assert present(app, recent + active) == set(recent + active)
    assert chunk_count(app, recent + active) == 3 * len(recent + active)
    entry = client.get("/api/admin/audit", params={"action": "retention.pruned", "limit": 1}).json()["entries"][0]
    assert entry["actor"] == "scheduler" and entry["details"]["runs"] == report.runs
    assert entry["details"]["chunks"] == report.chunks and entry["details"]["defaultDays"] == 90


def test_keep_runs_keeps_the_newest_finished_runs_whatever_their_age(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    sid = script(client, retention={"days": None, "keepRuns": 2})
    oldest, older, old, newer, newest = (seed(app, sid, [age])[0] for age in (500, 400, 300, 200, 100))
    queued = insert_runs(app.services.runs, [active_run_doc(sid, "queued", days_ago(1))])
    pruner(90).prune()
    assert present(app, [oldest, older, old, newer, newest] + queued) == {newer, newest, *queued}
    assert chunk_count(app, [oldest, older, old]) == 0 and chunk_count(app, [newer, newest]) == 6


def test_a_scripts_days_override_the_default_and_zero_keeps_its_runs_for_ever(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    short = script(client, retention={"days": 5})
    forever = script(client, retention={"days": 0, "keepRuns": None})
    plain = script(client)
    short_old, short_new = seed(app, short, [10]), seed(app, short, [2])
    kept = seed(app, forever, [3000, 400])
    plain_runs = seed(app, plain, [10])
    pruner(90).prune()
    assert present(app, short_old + short_new + kept + plain_runs) == set(short_new + kept + plain_runs)


def test_zero_default_days_keeps_every_run_but_a_scripts_own_days_still_apply(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    plain = script(client)
    strict = script(client, retention={"days": 30, "keepRuns": 1})
    ancient = seed(app, plain, [5000])
    strict_runs = seed(app, strict, [60, 50, 40])
    pruner(0).prune()
    assert present(app, ancient + strict_runs) == {ancient[0], strict_runs[2]}


def test_a_deleted_scripts_runs_age_out_under_the_default(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    sid = script(client, retention={"days": 0})  # its own rule ends with it
    old, recent = seed(app, sid, [200]), seed(app, sid, [10])
    assert client.delete(f"/api/admin/scripts/{sid}").status_code == 204
    pruner(90).prune()
    assert present(app, old + recent) == set(recent)


def test_runs_of_kept_scripts_in_the_same_windows_do_not_stop_the_walk(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    forever = script(client, retention={"days": 0})
    plain = script(client)
    moment = days_ago(700)
    # 30 runs to keep in one millisecond, more than a page: the walk must go past them.
    keepers = insert_runs(app.services.runs, [finished_run_doc(forever, moment) for _ in range(30)], chunks_per_run=0)
    due = insert_runs(app.services.runs, [finished_run_doc(plain, moment + timedelta(milliseconds=n % 3))
                                          for n in range(12)], chunks_per_run=1)
    pruner(90, page=4).prune()
    assert present(app, keepers) == set(keepers) and present(app, due) == set()


def test_one_process_prunes_at_a_time_and_concurrent_deletes_are_harmless(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    sid = script(client)
    old = seed(app, sid, [300, 301])
    leases = LeaseStore(app.database)
    assert leases.claim("retention", "another-process", 60)
    assert pruner(90).prune() is None and present(app, old) == set(old)
    leases.release("retention", "another-process")
    # Two processes deleting the same runs (e.g. after a lease lapsed): each run counts once.
    runs = app.services.finished_runs
    assert runs.delete_finished(old[:1]) == (1, 3)
    assert runs.delete_finished(old) == (1, 3)
    assert runs.delete_finished(old) == (0, 0)


def test_a_started_server_prunes_at_start(mongodb_uri: str, server_factory: Callable[..., ScriptboxServer],
                                          app: InProcessApp) -> None:
    server = server_factory(env={"SCRIPTBOX_RETENTION_DAYS": "30"}, db_name=app.settings.db_name)
    sid = str(ObjectId())  # a deleted script's runs
    old, recent = seed(app, sid, [45, 31]), seed(app, sid, [29])
    server.start()
    eventually(lambda: present(app, old) == set(), 30, message="the server pruned at start")
    assert present(app, recent) == set(recent)
    server.stop()


# -- DELETE /api/admin/scripts/runs/:runId --------------------------------


def test_deleting_a_finished_run_removes_it_and_its_output(app: InProcessApp, client: AppClient) -> None:
    sid = script(client)
    run_id, other = seed(app, sid, [1, 2])
    answer = client.delete(f"/api/admin/scripts/runs/{run_id}")
    assert answer.status_code == 204 and answer.content == b""
    assert client.get(f"/api/admin/scripts/runs/{run_id}").status_code == 404
    assert chunk_count(app, [run_id]) == 0 and chunk_count(app, [other]) == 3
    again = client.delete(f"/api/admin/scripts/runs/{run_id}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
    entry = client.get("/api/admin/audit", params={"action": "run.delete", "targetId": run_id}).json()["entries"]
    assert len(entry) == 1 and entry[0]["actor"] == "admin" and entry[0]["scriptId"] == sid
    assert entry[0]["details"]["chunks"] == 3 and entry[0]["details"]["status"] == "succeeded"


@pytest.mark.parametrize("status", ["queued", "running"])
def test_an_active_run_cannot_be_deleted(app: InProcessApp, client: AppClient, status: str) -> None:
    sid = script(client)
    (run_id,) = insert_runs(app.services.runs, [active_run_doc(sid, status, NOW)])
    answer = client.delete(f"/api/admin/scripts/runs/{run_id}")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "run_active"
    assert present(app, [run_id]) == {run_id} and chunk_count(app, [run_id]) == 3


@pytest.mark.parametrize("path", ["/api/admin/scripts/runs/0123456789abcdef01234567", "/api/admin/scripts/runs/nope"])
def test_deleting_an_unknown_run_is_a_json_404(client: AppClient, path: str) -> None:
    answer = client.delete(path)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_a_run_token_may_not_delete_runs_but_an_admin_token_may(app: InProcessApp, client: AppClient) -> None:
    sid = script(client)
    run_id = seed(app, sid, [1])[0]
    secrets = {}
    for scope in ("run", "admin"):
        made = client.post("/api/admin/tokens", json={"name": f"del {scope} {ObjectId()}", "scope": scope})
        secrets[scope] = made.json()["token"]
    bearer = app.client(auth=None)
    refused = bearer.request("DELETE", f"/api/admin/scripts/runs/{run_id}",
                             headers={"Authorization": f"Bearer {secrets['run']}"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "token_scope"
    allowed = bearer.request("DELETE", f"/api/admin/scripts/runs/{run_id}",
                             headers={"Authorization": f"Bearer {secrets['admin']}"})
    assert allowed.status_code == 204 and present(app, [run_id]) == set()


# -- `retention` on definitions -------------------------------------------


def test_retention_is_stored_shown_and_reset_to_the_default_with_null(client: AppClient) -> None:
    created = client.create_script(retention={"days": 7, "keepRuns": 3})
    assert created["retention"] == {"days": 7, "keepRuns": 3}
    assert client.get(f"/api/admin/scripts/{created['id']}").json()["retention"] == {"days": 7, "keepRuns": 3}
    partial = client.put(f"/api/admin/scripts/{created['id']}", json={"retention": {"keepRuns": 10}}).json()
    assert partial["retention"] == {"days": None, "keepRuns": 10}
    cleared = client.put(f"/api/admin/scripts/{created['id']}", json={"retention": None}).json()
    assert cleared["retention"] is None
    assert client.create_script()["retention"] is None


@pytest.mark.parametrize(("retention", "field"), [
    ({"days": -1}, "retention.days"), ({"days": 36501}, "retention.days"), ({"days": "7"}, "retention.days"),
    ({"days": True}, "retention.days"), ({"keepRuns": -2}, "retention.keepRuns"),
    ({"keepRuns": 1.5}, "retention.keepRuns"), ({"forever": True}, "retention.forever"), (7, "retention"),
])
def test_bad_retention_is_a_400_naming_the_field(client: AppClient, retention: Any, field: str) -> None:
    answer = client.post("/api/admin/scripts", json={"name": "r", "codeIdentifier": f"r-{ObjectId()}",
                                                     "type": "bash", "retention": retention})
    assert answer.status_code == 400, answer.content
    assert field in answer.json()["error"]["fields"]


def test_retention_errors_are_worded_for_the_operator(client: AppClient) -> None:
    answer = client.post("/api/admin/scripts", json={"name": "r", "codeIdentifier": f"r-{ObjectId()}", "type": "bash",
                                                     "retention": {"days": 40000, "keepRuns": -1}})
    assert answer.json()["error"]["fields"] == {"retention.days": "must be at most 36,500 days",
                                                "retention.keepRuns": "must be at least 0"}


# -- the scripts list's lastRun, kept beside the runs (store/last_runs.py) --


def test_the_scripts_list_shows_the_newest_run_through_starts_ends_and_deletes(
        app: InProcessApp, client: AppClient) -> None:
    def last_run(script_id: str) -> dict[str, Any] | None:
        listed = {s["id"]: s for s in client.get("/api/admin/scripts").json()["scripts"]}
        return listed[script_id]["lastRun"]

    script_id = script(client)
    assert last_run(script_id) is None
    newest_old, *_ = seed(app, script_id, [1, 2, 3])  # inserted behind the store's back: computed once
    assert last_run(script_id)["id"] == newest_old
    started = client.post(f"/api/admin/scripts/{script_id}/run")  # this app executes nothing: it stays queued
    assert started.status_code == 202, started.text
    run_id = started.json()["runId"]
    assert last_run(script_id) == {**last_run(script_id), "id": run_id, "status": "queued", "finishedAt": None}
    assert app.services.runs.finish_queued(run_id, RunEnd("canceled")) is not None
    ended = last_run(script_id)
    assert ended["id"] == run_id and ended["status"] == "canceled" and ended["finishedAt"] is not None
    assert client.delete(f"/api/admin/scripts/runs/{run_id}").status_code == 204
    assert last_run(script_id)["id"] == newest_old  # the deleted run is no longer the newest
    assert client.delete(f"/api/admin/scripts/runs/{newest_old}").status_code == 204
    assert last_run(script_id)["id"] != newest_old


def test_script_versions_follow_their_scripts_rule_and_go_with_a_deleted_scripts_last_run(
        app: InProcessApp, client: AppClient, pruner: Callable[..., Pruner]) -> None:
    db = app.database.db

    def versions_of(script_id: str) -> list[int]:
        return sorted(v["n"] for v in db.script_versions.find({"scriptId": ObjectId(script_id)}))

    kept = script(client, retention={"days": 1})
    for n in range(2, 6):
        assert client.put(f"/api/admin/scripts/{kept}", json={"script": f"echo {n}"}).status_code == 200
    db.script_versions.update_many({"scriptId": ObjectId(kept), "n": {"$lte": 4}}, {"$set": {"at": days_ago(10)}})
    ran_v1 = finished_run_doc(kept, days_ago(0.1))
    ran_v1["meta"]["version"] = 1
    insert_runs(app.services.runs, [ran_v1])
    gone, still_run = script(client), script(client)
    seed(app, gone, [100])  # older than the default 90 days: this pass deletes it, then its versions
    seed(app, still_run, [0.5])
    for sid in (gone, still_run):
        assert client.delete(f"/api/admin/scripts/{sid}").status_code == 204
    assert versions_of(gone) == versions_of(still_run) == [1]

    report = pruner(keep_versions=2).prune()
    assert report is not None and report.versions >= 3
    # 2 and 3 are older than a day and no kept run ran them; 1 is what a kept run ran, 4 and 5 the newest two.
    assert versions_of(kept) == [1, 4, 5]
    assert versions_of(gone) == [] and versions_of(still_run) == [1]

"""Notification channels (SPEC §8.5): the API in-process on the real database, delivery through
real Apprise to a real HTTP receiver on 127.0.0.1, runs ended by the real engine. The path through
a real (gevent-patched) server process is in tests/ui/test_notifications_ui.py."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from bson import ObjectId, json_util
from pymongo import MongoClient
from pymongo.collection import Collection

from scriptbox.config import ConfigError, load_settings
from scriptbox.engine import EngineOptions
from scriptbox.notify import Notifier, NotifierOptions
from scriptbox.notify.message import describe_duration, last_lines
from scriptbox.secretbox import SecretBox
from support import AppClient, eventually, unique_name
from support.inprocess import InProcessApp
from support.receiver import Receiver

PUBLIC_URL = "https://scripts.example.com/ops"
OPTIONS = NotifierOptions(send_timeout_s=0.5, attempts=3, retry_delay_s=0.2, stop_grace_s=0.5, drop_report_s=0.0)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    instance = Receiver(hang_s=3.0)
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def inproc(mongodb_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    instance = InProcessApp(mongodb_uri, tmp_path_factory.mktemp("notify"), execute=True,
                            options=EngineOptions(kill_grace_s=1.0, flush_every_s=0.02), notifier_options=OPTIONS,
                            public_url=PUBLIC_URL)
    instance.engine.ctx.live.start()  # persistence only: the tests drive the dispatcher
    instance.services.notifier.start()
    yield instance
    instance.engine.dispatcher.stop(join_timeout=10)
    instance.engine.ctx.live.stop()
    instance.close()


@pytest.fixture()
def client(inproc: InProcessApp) -> Iterator[AppClient]:
    client = inproc.client()
    yield client
    for channel in client.get("/api/admin/notifications").json()["notifications"]:
        client.delete(f"/api/admin/notifications/{channel['id']}")


def wait(check: Any, timeout: float = 20.0, message: str = "condition") -> Any:
    return eventually(check, timeout, sleep=gevent.sleep, message=message)


def add_channel(client: AppClient, url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique_name("channel"), "url": url, **fields}
    answer = client.post("/api/admin/notifications", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def path() -> str:
    return uuid.uuid4().hex[:10]


def run_bash(inproc: InProcessApp, script_id: str) -> dict[str, Any]:
    """Execute one run of the script with the real engine; returns it once its end is recorded."""
    engine = inproc.engine
    run_id = str(engine.submit(script_id, "api", "admin")["_id"])
    [execution] = engine.dispatcher.claim_available()
    execution.greenlet.join(timeout=30)
    doc = engine.ctx.runs.get(run_id)
    assert doc is not None and doc["status"] in ("succeeded", "failed"), doc
    return doc


def end_browser_run(inproc: InProcessApp, script_id: str, status: str, exit_code: int | None = None) -> str:
    """A run ended with `status` through the browser-result path (no process needed)."""
    engine = inproc.engine
    run_id = str(engine.submit(script_id, "manual", "admin")["_id"])
    if status == "canceled":
        engine.cancel(run_id)
    else:
        engine.browser_result(run_id, {"status": status, "exitCode": exit_code,
                                       "output": [{"stream": "stdout", "data": f"{status} output\n"}]})
    return run_id


def metric(inproc: InProcessApp, result: str) -> float:
    return float(inproc.services.metrics.notifications.labels(result)._value.get())


# -- pure rules ----------------------------------------------------------------------


def test_the_public_url_setting_is_checked_and_normalised() -> None:
    assert load_settings({}, {"SCRIPTBOX_PUBLIC_URL": "https://console.example.org/ops/"}).public_url == \
        "https://console.example.org/ops"
    assert load_settings({}, {}).public_url is None
    for bad in ("console.example.org", "ftp://x", "https://x/?a=1", "https://"):
        with pytest.raises(ConfigError, match="SCRIPTBOX_PUBLIC_URL"):
            load_settings({}, {"SCRIPTBOX_PUBLIC_URL": bad})


def test_a_message_keeps_the_last_lines_of_output_within_bounds() -> None:
    text = "".join(f"line {i}\n" for i in range(1, 101))
    assert last_lines(text) == "\n".join(f"line {i}" for i in range(81, 101))
    long = "x" * 5000 + "\nend"
    assert last_lines(long, max_chars=100) == "end" or len(last_lines(long, max_chars=100)) <= 100
    assert last_lines("") == ""
    assert [describe_duration(s) for s in (None, 0.4234, 12.34, 245, 7380)] == [
        "not started", "0.42 s", "12.3 s", "4 min 05 s", "2 h 03 min"]


# -- delivery ----------------------------------------------------------------------------


def test_a_run_end_sends_one_message_with_what_happened_and_a_link(inproc: InProcessApp, client: AppClient,
                                                                  receiver: Receiver) -> None:
    script = client.create_script(name="Disk report",
                                  script="for i in $(seq 1 30); do echo line $i; done; exit 3")
    target = f"ok/{path()}"
    channel = add_channel(client, receiver.url(target), events=["failed"], scriptIds=[script["id"]])
    run = run_bash(inproc, script["id"])

    [hit] = wait(lambda: receiver.hits_to(target), message="the message arrives")
    assert hit.body["title"] == "Scriptbox: Disk report failed, exit code 3"
    assert hit.body["type"] == "failure"
    text = hit.body["message"]
    for expected in (f"Script: Disk report ({script['codeIdentifier']})", "Status: failed, exit code 3",
                     "Trigger: api", "Started by: admin", f"Run: {PUBLIC_URL}/admin/scripts/runs/{run['_id']}",
                     "Last output:", "line 30", "line 11"):
        assert expected in text, (expected, text)
    assert "line 10\n" not in text  # the last 20 lines only
    assert "Duration: " in text and "not started" not in text
    shown = wait(lambda: client.get(f"/api/admin/notifications/{channel['id']}").json()["lastSentAt"])
    assert shown is not None
    gevent.sleep(0.5)
    assert len(receiver.hits_to(target)) == 1, "exactly one message per run end"


def test_only_matching_enabled_channels_get_a_run_end(inproc: InProcessApp, client: AppClient,
                                                      receiver: Receiver) -> None:
    mine = client.create_script(type="browser", script="console.log(1)")["id"]
    other = client.create_script(type="browser", script="console.log(2)")["id"]
    paths = {name: f"ok/{path()}" for name in ("any_failed", "success", "other", "disabled", "timeout_cancel")}
    add_channel(client, receiver.url(paths["any_failed"]), events=["failed"])
    add_channel(client, receiver.url(paths["success"]), events=["succeeded"], scriptIds=[mine])
    add_channel(client, receiver.url(paths["other"]), events=["failed", "succeeded"], scriptIds=[other])
    add_channel(client, receiver.url(paths["disabled"]), events=["failed"], scriptIds=[mine], enabled=False)
    add_channel(client, receiver.url(paths["timeout_cancel"]), events=["timed_out", "canceled"], scriptIds=[mine])

    for status, code in (("failed", 1), ("succeeded", 0), ("timed_out", None), ("canceled", None)):
        end_browser_run(inproc, mine, status, code)

    expected = {"any_failed": ["failed"], "success": ["succeeded"], "other": [], "disabled": [],
                "timeout_cancel": ["timed out", "canceled"]}
    wait(lambda: all(len(receiver.hits_to(p)) >= len(expected[n]) for n, p in paths.items()),
         message="every matching channel is notified")
    gevent.sleep(0.5)  # and nothing more arrives
    for name, statuses in expected.items():
        hits = receiver.hits_to(paths[name])
        assert len(hits) == len(statuses), (name, [h.body["title"] for h in hits])
        for hit, status in zip(sorted(hits, key=lambda h: h.at), statuses, strict=True):
            assert f"Status: {status}" in hit.body["message"], (name, hit.body)


def test_a_hanging_or_failing_receiver_delays_no_run_and_no_other_channel(inproc: InProcessApp, client: AppClient,
                                                                        receiver: Receiver) -> None:
    script = client.create_script(script="echo done")["id"]
    hang, fail, ok = f"hang/{path()}", f"fail/{path()}", f"ok/{path()}"
    hanging = add_channel(client, receiver.url(hang), events=["succeeded"], scriptIds=[script])
    failing = add_channel(client, receiver.url(fail), events=["succeeded"], scriptIds=[script])
    add_channel(client, receiver.url(ok), events=["succeeded"], scriptIds=[script])
    sent_before, failed_before = metric(inproc, "sent"), metric(inproc, "failed")

    # Each message to the hanging receiver takes 3 attempts of 0.5 s plus 0.6 s of backoff: had a run's
    # end waited for its notifications, the second run would return with all 6 attempts made.
    first = run_bash(inproc, script)
    second = run_bash(inproc, script)
    assert len(receiver.hits_to(hang)) < 6, "the second run's end waited for its notifications"
    assert first["status"] == second["status"] == "succeeded"

    wait(lambda: len(receiver.hits_to(ok)) == 2, message="the healthy channel gets both messages")
    assert len(receiver.hits_to(hang)) < 6, "the healthy channel did not wait for the hanging one"

    wait(lambda: len(receiver.hits_to(hang)) == 6 and len(receiver.hits_to(fail)) == 6, timeout=30,
         message="3 attempts per message to each broken receiver")
    for channel in (hanging, failing):
        shown = wait(lambda c=channel: (lambda doc: doc if doc["lastErrorAt"] else None)(
            client.get(f"/api/admin/notifications/{c['id']}").json()), message="the failure is recorded")
        assert shown["lastError"] and shown["lastSentAt"] is None
    assert "500" in client.get(f"/api/admin/notifications/{failing['id']}").json()["lastError"]

    def audited() -> list[dict[str, Any]]:
        entries = client.get("/api/admin/audit?action=notification.failed&limit=50").json()["entries"]
        return [e for e in entries if e["targetId"] in (hanging["id"], failing["id"])]

    entries = wait(lambda: len(audited()) == 4 and audited(), message="four failures in the audit log")
    assert {e["actor"] for e in entries} == {"notifier"}
    assert {e["details"]["runId"] for e in entries} == {str(first["_id"]), str(second["_id"])}
    assert all(e["details"]["attempts"] == 3 and e["scriptId"] == script for e in entries)
    assert metric(inproc, "sent") - sent_before == 2 and metric(inproc, "failed") - failed_before == 4
    gevent.sleep(1.0)
    assert len(receiver.hits_to(hang)) == 6 and len(receiver.hits_to(fail)) == 6, "no retry beyond the bound"


def test_full_queues_drop_and_record_instead_of_growing(inproc: InProcessApp, client: AppClient,
                                                        receiver: Receiver) -> None:
    script = client.create_script(type="browser")["id"]
    hang = f"hang/{path()}"
    add_channel(client, receiver.url(hang), events=["failed"], scriptIds=[script])
    results: list[str] = []
    notifier = Notifier(inproc.services.notifications, inproc.services.audit, inproc.services.secrets,
                        on_result=results.append,
                        options=NotifierOptions(send_timeout_s=0.3, attempts=1, queue_size=3, channel_backlog=1,
                                                stop_grace_s=0.2, drop_report_s=0.0))
    notifier.start()
    try:
        for n in range(6):  # without yielding: the queue takes 3
            notifier.run_finished({"_id": f"run{n}", "scriptId": script, "status": "failed", "outputTail": "",
                                   "meta": {"snapshot": {"name": "flood"}}})
        assert results == ["dropped"] * 3
        wait(lambda: len(results) == 6, message="every run end is sent, failed or dropped")
        assert results.count("dropped") >= 4 and len(receiver.hits_to(hang)) <= 2, results
        entries = wait(lambda: [e for e in client.get("/api/admin/audit?action=notification.failed").json()["entries"]
                                if e["details"].get("dropped")], message="the drops are in the audit log")
        assert sum(e["details"]["dropped"] for e in entries) >= 3
    finally:
        notifier.stop()


# -- the API ---------------------------------------------------------------------------


def test_urls_are_masked_in_answers_and_the_audit_log_and_kept_when_sent_back(client: AppClient,
                                                                             receiver: Receiver) -> None:
    target = f"ok/{path()}"
    url = receiver.url(f"{target}?+X-Token=tok123456", auth="robot:s3cretpw@")
    channel = add_channel(client, url, events=["failed", "canceled"])
    assert channel["service"] and channel["events"] == ["failed", "canceled"] and channel["scriptIds"] == []
    listed = client.get("/api/admin/notifications").json()["notifications"]
    audit = client.get(f"/api/admin/audit?targetId={channel['id']}").json()["entries"]
    for shown in (json.dumps(channel), json.dumps(listed), json.dumps(audit)):
        assert "s3cretpw" not in shown and "tok123456" not in shown
    assert "robot:****@" in channel["url"] and "X-Token=****" in channel["url"]
    assert [e["action"] for e in audit] == ["notification.create"]

    # A GET answer sent back (the admin page does) keeps the stored URL and its secrets.
    renamed = client.put(f"/api/admin/notifications/{channel['id']}", json={**channel, "name": unique_name("renamed")})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["url"] == channel["url"]
    tested = client.post(f"/api/admin/notifications/{channel['id']}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True and tested.json()["error"] is None
    assert tested.json()["notification"]["lastSentAt"] is not None
    [hit] = receiver.hits_to(target)
    assert hit.body["title"] == "Scriptbox: test notification"
    assert hit.headers["Authorization"] == "Basic " + base64.b64encode(b"robot:s3cretpw").decode()
    assert hit.headers["X-Token"] == "tok123456"
    edited = client.put(f"/api/admin/notifications/{channel['id']}",
                        json={"url": channel["url"].replace("127.0.0.1", "localhost")})
    assert edited.status_code == 400 and set(edited.json()["error"]["fields"]) == {"url"}
    update = client.get(f"/api/admin/audit?targetId={channel['id']}&action=notification.update").json()["entries"]
    assert update[0]["details"]["fields"] == ["name"] and "s3cretpw" not in json.dumps(update)


def test_a_failed_test_message_is_answered_and_recorded(client: AppClient, receiver: Receiver) -> None:
    channel = add_channel(client, receiver.url(f"fail/{path()}"), enabled=False)
    tested = client.post(f"/api/admin/notifications/{channel['id']}/test")
    assert tested.status_code == 200, tested.text
    result = tested.json()
    assert result["ok"] is False and "500" in result["error"]
    assert result["notification"]["lastError"] == result["error"] and result["notification"]["lastErrorAt"]
    [entry] = client.get(f"/api/admin/audit?targetId={channel['id']}&action=notification.failed").json()["entries"]
    assert entry["actor"] == "admin" and entry["details"]["attempts"] == 1
    assert client.post("/api/admin/notifications/ffffffffffffffffffffffff/test").status_code == 404


def test_channel_requests_are_validated(client: AppClient, receiver: Receiver) -> None:
    script = client.create_script()["id"]

    def fields(body: Any) -> dict[str, str]:
        answer = client.post("/api/admin/notifications", json=body)
        assert answer.status_code == 400, answer.text
        return dict(answer.json()["error"]["fields"])

    assert set(fields({})) == {"name", "url"}
    assert set(fields({"name": "x", "url": "nope://nowhere"})) == {"url"}
    assert set(fields({"name": "x", "url": "json://"})) == {"url"}
    assert "Apprise cannot use" in fields({"name": "x", "url": "nope://nowhere"})["url"]
    assert set(fields({"name": " ", "url": receiver.url("ok/x"), "events": ["failed", "exploded"],
                       "scriptIds": ["zz", "ffffffffffffffffffffffff", script], "enabled": "yes", "extra": 1})) == {
        "name", "events", "scriptIds.0", "scriptIds.1", "enabled", "extra"}
    assert set(fields({"name": "x", "url": receiver.url("ok/x"), "events": []})) == {"events"}
    assert set(fields({"name": "x", "url": receiver.url("ok/x"), "events": ["failed", "failed"]})) == {"events"}
    assert client.post("/api/admin/notifications", data="[", headers={"Content-Type": "application/json"}
                       ).status_code == 400
    assert client.post("/api/admin/notifications", json=[1]).status_code == 400

    created = add_channel(client, receiver.url("ok/x"), scriptIds=[script, script])
    assert created["events"] == ["failed", "timed_out"] and created["enabled"] is True
    assert created["scriptIds"] == [script]
    duplicate = client.post("/api/admin/notifications", json={"name": created["name"], "url": receiver.url("ok/y")})
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "duplicate_channel_name"
    bad_update = client.put(f"/api/admin/notifications/{created['id']}", json={"events": ["nope"], "enabled": 1})
    assert bad_update.status_code == 400 and set(bad_update.json()["error"]["fields"]) == {"events", "enabled"}
    for method in ("get", "put", "delete"):
        assert getattr(client, method)("/api/admin/notifications/ffffffffffffffffffffffff").status_code == 404
    assert client.delete(f"/api/admin/notifications/{created['id']}").status_code == 204
    assert client.get(f"/api/admin/notifications/{created['id']}").status_code == 404
    [deleted] = client.get(f"/api/admin/audit?targetId={created['id']}&action=notification.delete").json()["entries"]
    assert deleted["details"]["name"] == created["name"]


# -- URLs sealed at rest (SPEC §8.3's key) ---------------------------------------------------


@pytest.fixture(scope="module")
def channels(mongodb_uri: str, inproc: InProcessApp) -> Iterator[Collection[dict[str, Any]]]:
    """The notification_channels collection, read and written with pymongo directly (not through the store)."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    yield mongo[inproc.settings.db_name].notification_channels
    mongo.close()


def stored_text(collection: Collection[dict[str, Any]]) -> str:
    """Every document of every collection of this app's database, as one text."""
    database = collection.database
    return "\n".join(json_util.dumps(doc) for name in database.list_collection_names() for doc in database[name].find())


def test_urls_are_sealed_at_rest_and_opened_to_send(client: AppClient, receiver: Receiver,
                                                   channels: Collection[dict[str, Any]]) -> None:
    password, token = f"pw{uuid.uuid4().hex}", f"tok{uuid.uuid4().hex}"
    target = f"ok/{path()}"
    channel = add_channel(client, receiver.url(f"{target}?+X-Token={token}", auth=f"robot:{password}@"))
    doc = channels.find_one({"_id": ObjectId(channel["id"])})
    assert doc is not None and "url" not in doc and doc["urlSealed"].startswith("v1:")
    assert doc["urlMasked"] == channel["url"] and "robot:****@" in doc["urlMasked"]
    assert password not in stored_text(channels) and token not in stored_text(channels)

    tested = client.post(f"/api/admin/notifications/{channel['id']}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
    [hit] = receiver.hits_to(target)
    assert hit.headers["Authorization"] == "Basic " + base64.b64encode(f"robot:{password}".encode()).decode()
    assert hit.headers["X-Token"] == token

    # A new URL is sealed again (never the old one's ciphertext), and the audit names the field only.
    new_password = f"pw{uuid.uuid4().hex}"
    edited = client.put(f"/api/admin/notifications/{channel['id']}",
                        json={"url": receiver.url(target, auth=f"robot:{new_password}@")})
    assert edited.status_code == 200, edited.text
    after = channels.find_one({"_id": ObjectId(channel["id"])})
    assert after is not None and after["urlSealed"] != doc["urlSealed"] and new_password not in stored_text(channels)
    update = client.get(f"/api/admin/audit?targetId={channel['id']}&action=notification.update").json()["entries"]
    assert update[0]["details"]["fields"] == ["url"]


def test_a_url_that_cannot_be_opened_fails_its_sends_with_the_key_problem(
        inproc: InProcessApp, client: AppClient, receiver: Receiver, channels: Collection[dict[str, Any]]) -> None:
    script = client.create_script(type="browser")["id"]
    target = f"ok/{path()}"
    channel = add_channel(client, receiver.url(target, auth="robot:pw@"), events=["failed"], scriptIds=[script])
    # The database moved to a server with another key: the URL was sealed with a key this server lacks.
    other = SecretBox(secrets.token_bytes(32))
    channels.update_one({"_id": ObjectId(channel["id"])}, {"$set": {"urlSealed": other.seal(receiver.url(target))}})

    assert client.get(f"/api/admin/notifications/{channel['id']}").json()["url"] == channel["url"]
    assert client.get("/api/admin/notifications").status_code == 200
    tested = client.post(f"/api/admin/notifications/{channel['id']}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is False, tested.text
    error = tested.json()["error"]
    assert "another key" in error and f"key id {other.key_id}" in error and "SCRIPTBOX_SECRET_KEY" in error
    assert tested.json()["notification"]["lastError"] == error

    run_id = end_browser_run(inproc, script, "failed", 1)

    def failures() -> list[dict[str, Any]]:
        return client.get(f"/api/admin/audit?targetId={channel['id']}&action=notification.failed").json()["entries"]

    entries = wait(lambda: len(failures()) == 2 and failures(), message="the run end's failure is recorded")
    assert [(e["actor"], e["details"]["attempts"], e["details"]["runId"]) for e in entries] == [
        ("notifier", 0, run_id), ("admin", 0, None)]
    assert all(e["details"]["error"] == error for e in entries)
    assert receiver.hits_to(target) == [], "nothing is sent without the URL"

    # A channel with no sealed URL (a pre-release build stored it in clear) asks for the URL again.
    channels.update_one({"_id": ObjectId(channel["id"])},
                        {"$unset": {"urlSealed": ""}, "$set": {"url": receiver.url(target)}})
    legacy = client.post(f"/api/admin/notifications/{channel['id']}/test").json()
    assert legacy["ok"] is False and "cannot read; enter it again" in legacy["error"]
    entered = client.put(f"/api/admin/notifications/{channel['id']}", json={"url": receiver.url(target)})
    assert entered.status_code == 200, entered.text
    assert "url" not in (channels.find_one({"_id": ObjectId(channel["id"])}) or {})
    assert client.post(f"/api/admin/notifications/{channel['id']}/test").json()["ok"] is True

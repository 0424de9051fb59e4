"""Retention's delete path over many runs at once: FinishedRuns deletes in groups
of a few runs (store/finished_runs.py), and a long pass logs its progress.

In-process against the real SecantusDB; runs are inserted already finished
(tests/support/backdated.py), their output through RunStore.add_chunks.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from scriptbox.retention import Pruner
from scriptbox.retention_rule import FIRST_SPAN, Window, next_window
from scriptbox.store.leases import LeaseStore
from support import AppClient
from support.backdated import active_run_doc, finished_run_doc, insert_runs
from support.inprocess import InProcessApp

LONG_AGO = datetime.utcnow().replace(microsecond=0) - timedelta(days=200)


def chunks_of(app: InProcessApp, run_ids: list[str]) -> int:
    return app.services.runs.chunks.count_documents({"runId": {"$in": [ObjectId(r) for r in run_ids]}})


def test_a_delete_over_several_groups_takes_every_finished_run_with_its_output_and_no_active_one(
        app: InProcessApp, client: AppClient) -> None:
    sid = str(client.create_script()["id"])
    runs = app.services.runs
    finished = insert_runs(runs, [finished_run_doc(sid, LONG_AGO + timedelta(seconds=n)) for n in range(25)])
    active = insert_runs(runs, [active_run_doc(sid, "running", LONG_AGO), active_run_doc(sid, "queued", LONG_AGO)])
    # Active runs in the middle of the list, an unknown and a repeated id: groups of 10 cut across them.
    asked = finished[:7] + active + finished[7:] + [str(ObjectId()), finished[0]]

    assert app.services.finished_runs.delete_finished(asked) == (25, 75)

    assert [r for r in finished if runs.get(r) is not None] == [] and chunks_of(app, finished) == 0
    assert all(runs.get(r) is not None for r in active) and chunks_of(app, active) == 6
    assert app.services.finished_runs.delete_finished(asked) == (0, 0)  # idempotent


def test_a_long_pass_logs_how_far_it_got(app: InProcessApp, client: AppClient,
                                         caplog: pytest.LogCaptureFixture) -> None:
    sid = str(client.create_script()["id"])
    insert_runs(app.services.runs, [finished_run_doc(sid, LONG_AGO) for _ in range(10)])
    # Ten runs of one moment, read four a page: three pages; each one logs as if a minute had passed.
    services = app.services
    pruner = Pruner(services.finished_runs, services.definitions, LeaseStore(app.database), services.audit,
                    90, "progress-test", page=4, progress_every_s=0.0, throttle=0.0)
    with caplog.at_level(logging.INFO, logger="scriptbox.retention"):
        report = pruner.prune()
    assert report is not None and report.runs >= 10
    progress = [r.getMessage() for r in caplog.records if "deleted so far" in r.getMessage()]
    assert progress and progress[0].startswith("retention: 4 runs and 12 output chunks deleted so far")
    assert progress[-1].startswith(f"retention: {report.runs} runs and {report.chunks} output chunks")


def test_an_empty_window_grows_whatever_the_page_size() -> None:
    start = datetime(1970, 1, 1)
    window = Window(start, start + FIRST_SPAN)
    stop = start + timedelta(days=365)
    for page in (1, 2, 3, 500):
        assert next_window(window, stop, found=0, deleted=0, limit=page) == Window(window.end,
                                                                                   window.end + 4 * FIRST_SPAN)

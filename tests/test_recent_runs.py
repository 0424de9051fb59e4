"""A run that ended here moments ago is streamed from memory.

Most runs print little, and a viewer often connects after an instant script
has ended (the admin page opens the stream once POST /run has answered). Such
a run's whole output stays in the server's memory for a few seconds
(engine/live.py, RECENT_S), so its stream needs no database: shown here by
stopping the database before the viewer connects.
"""

from __future__ import annotations

from support import SseStream, output_text, run_script
from support.separate_db import SeparateDatabase


def test_a_run_that_just_ended_streams_whole_without_the_database(server_factory,  # type: ignore[no-untyped-def]
                                                                   separate_db: SeparateDatabase) -> None:
    server = server_factory(mongodb_uri=separate_db.uri).start()
    api = server.api()
    run, log = run_script(api, "echo out; sleep 0.1; echo err >&2; sleep 0.1; printf 'no newline'")
    assert run["status"] == "succeeded"
    assert log == "out\nerr\nno newline"

    separate_db.kill()
    assert api.get("/api/admin/scripts").status_code == 503  # the database is really gone
    stream = SseStream(api, run["id"], timeout=30)
    events = stream.until_end()
    stream.close()
    assert [e.event for e in events][0] == "status" and events[-1].event == "end"
    assert events[0].data["status"] == "succeeded" and events[-1].data["exitCode"] == 0
    assert output_text(events) == log  # the same text, in the same order, as the stored log
    assert output_text(events, "stderr") == "err\n"

    # Resuming after an id works from memory too.
    first_id = next(e.id for e in events if e.event == "output")
    resumed = SseStream(api, run["id"], last_event_id=first_id, timeout=30)
    rest = resumed.until_end()
    resumed.close()
    assert output_text(rest) == log[len(events[1].data["data"]):]

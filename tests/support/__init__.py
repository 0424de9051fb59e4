"""Test and benchmark helpers, importable as `support` (tests) or `tests.support` (bench).

- wait:      `eventually()`, the one way to wait for something;
- server:    `ScriptboxServer`, a real `app.py serve` process (`ScriptboxWorker`: `app.py worker`);
- separate_db: a SecantusDB of its own, killed and restarted by outage tests;
- client:    `Api` (HTTP over a socket) and `AppClient` (the Bottle app in-process),
             the same methods on both;
- inprocess: `InProcessApp`, the app and its services on the real database, no subprocess;
- sse:       an EventSource-like reader of SSE responses;
- runs:      start a run, wait for its end, read it;
- procs:     /proc readings (a run's processes, RSS, CPU);
- tokens:    create an API token, a client that sends it.

Modules import each other relatively, so they work under either name.
"""

# First: puts the repository root on sys.path, so `scriptbox` imports from bench scripts too.
from ._path import REPO  # isort: skip
from .client import ADMIN, ADMIN_PASSWORD, ADMIN_USER, Api, AppClient, unique_name
from .procs import pid_alive, rss_bytes, run_pids
from .runs import FINISHED, get_run, run_script, start_run, wait_status
from .server import ScriptboxServer
from .sse import SseEvent, SseStream, output_text
from .tokens import make_token, token_api
from .wait import eventually

__all__ = ["ADMIN", "ADMIN_PASSWORD", "ADMIN_USER", "FINISHED", "REPO", "Api", "AppClient", "ScriptboxServer",
           "SseEvent", "SseStream", "eventually", "get_run", "output_text", "pid_alive", "rss_bytes", "run_pids",
           "run_script", "start_run", "make_token", "token_api", "unique_name", "wait_status"]

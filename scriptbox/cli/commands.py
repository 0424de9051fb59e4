"""The client's subcommands: run, list, runs, log, cancel, show (see docs/cli.md)."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .client import ApiClient, path_segment
from .credentials import load_connection
from .errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_OK, EXIT_STILL_RUNNING, EXIT_USAGE, ApiRefused, CliError
from .follow import Follower, OutputClosed, OutputSink
from .outcome import exit_code_for, outcome_message
from .output import definition_listing, duration, print_json, run_listing, short_time, table

OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
ENVIRONMENT_HELP = """\
environment (credentials are never taken from the command line):
  SCRIPTBOX_URL                  server, default http://127.0.0.1:8765 (--url wins)
  SCRIPTBOX_ADMIN_USER           admin user name, default admin
  SCRIPTBOX_ADMIN_PASSWORD[_FILE] admin password (HTTP Basic auth)
  SCRIPTBOX_TOKEN[_FILE]         API token, sent as Authorization: Bearer (wins over the password;
                                 accepted only by servers that support API tokens)
exit codes: 0 ok; 2 usage or credential problem; 1 failed (not found, conflict, unreachable);
  run --follow/--wait: the script's exit code, 124 timed out, 130 canceled or detached,
  128+N killed by signal N, 1 failed without an exit code; 3 still running after --wait N
"""


class Detached(Exception):
    """The person at the terminal chose to leave the run running."""


def _script_path(ref: str, by_id: bool, suffix: str = "") -> str:
    base = "/api/admin/scripts/" if by_id else "/api/admin/scripts/by-code/"
    return base + path_segment(ref) + suffix


def _by_id_then_code(ref: str, call: Callable[[str], Any]) -> Any:
    """Call with the id path, then the by-code path. A 24-hex-digit SCRIPT is tried as an id first:
    ids are unique and random, so an existing one is what was meant; otherwise it is a codeIdentifier."""
    if OBJECT_ID.fullmatch(ref):
        try:
            return call(_script_path(ref, True))
        except ApiRefused as exc:
            if exc.status != 404 or ref != ref.lower():
                raise
    return call(_script_path(ref, False))


def resolve_script(client: ApiClient, ref: str) -> dict[str, Any]:
    return dict(_by_id_then_code(ref, lambda path: client.json("GET", path)))


def parse_params(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs; raises CliError (exit 2) for a malformed or repeated one."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not PARAM_NAME.fullmatch(name):
            raise CliError(f"--param {pair!r}: expected NAME=VALUE with NAME a letter or _ then letters, "
                           "digits or _", EXIT_USAGE)
        if name in params:
            raise CliError(f"--param {name} is given twice", EXIT_USAGE)
        params[name] = value
    return params


def _ask_cancel(run_id: str) -> bool:
    """After Ctrl-C: True to cancel the run, False to detach. Without a terminal to ask, detach."""
    if not sys.stdin.isatty():
        return False
    sys.stderr.write(f"\nscriptbox: interrupted. Cancel run {run_id} on the server, or detach and "
                     "leave it running? [c]ancel / [d]etach (default): ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("c", "cancel")


def watch(client: ApiClient, run_id: str, on_output: Callable[[str, str], None] | None,
          deadline: float | None) -> dict[str, Any] | None:
    """Follow to the end (or the deadline); Ctrl-C asks to cancel or detach (raises Detached)."""
    follower = Follower(client, run_id, on_output)
    while True:
        try:
            return follower.follow(deadline)
        except KeyboardInterrupt:
            if not _ask_cancel(run_id):
                raise Detached() from None
            try:
                client.json("POST", f"/api/admin/scripts/runs/{path_segment(run_id)}/cancel")
            except ApiRefused as exc:
                if exc.status != 409:  # 409: it finished meanwhile; the stream will say how
                    raise
            sys.stderr.write(f"scriptbox: cancel requested for run {run_id}\n")


def follow_to_exit(client: ApiClient, run_id: str) -> int:
    """Stream the run's output to our stdout/stderr and return its exit code."""
    sink = OutputSink(sys.stdout.buffer, sys.stderr.buffer)
    sys.stdout.flush()
    try:
        run = watch(client, run_id, sink.write, None)
    except Detached:
        sys.stderr.write(("" if sink.stderr_at_line_start else "\n") + f"scriptbox: detached; run {run_id} keeps "
                         f"running (scriptbox log {run_id} --follow, scriptbox cancel {run_id})\n")
        return EXIT_INTERRUPTED
    assert run is not None  # no deadline
    message = outcome_message(run)
    if message:
        sys.stderr.write(("" if sink.stderr_at_line_start else "\n") + f"scriptbox: {message}\n")
    return exit_code_for(run)


def wait_for(client: ApiClient, run_id: str, seconds: float, as_json: bool) -> int:
    """Wait up to `seconds` for the run to finish, print it, return its exit code (3 if still running)."""
    try:
        run = watch(client, run_id, None, time.monotonic() + seconds)
    except Detached:
        sys.stderr.write(f"scriptbox: detached; run {run_id} keeps running\n")
        return EXIT_INTERRUPTED
    finished = run is not None
    if run is None:
        run = client.json("GET", f"/api/admin/scripts/runs/{path_segment(run_id)}")
    assert run is not None
    if as_json:
        print_json(run, sys.stdout)
    else:
        sys.stdout.write(run_listing(run))
        if run.get("outputTail"):
            tail = str(run["outputTail"])
            sys.stdout.write("\n--- output (tail) ---\n" + tail + ("" if tail.endswith("\n") else "\n"))
    if not finished:
        sys.stderr.write(f"scriptbox: run {run_id} is still {run.get('status')} after {seconds:g} s\n")
        return EXIT_STILL_RUNNING
    message = outcome_message(run)
    if message:
        sys.stderr.write(f"scriptbox: {message}\n")
    return exit_code_for(run)


def cmd_run(args: argparse.Namespace, client: ApiClient) -> int:
    params = parse_params(args.param)
    body = {"params": params} if params else None
    started = _by_id_then_code(args.script, lambda path: client.json("POST", path + "/run", body=body))
    run_id = str(started["runId"])
    if args.follow:
        return follow_to_exit(client, run_id)
    if args.wait is not None:
        return wait_for(client, run_id, args.wait, args.json)
    if args.json:
        print_json(started, sys.stdout)
    else:
        sys.stdout.write(run_id + "\n")  # alone on stdout: RUN=$(scriptbox run x) works
    return EXIT_OK


def cmd_list(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.json("GET", "/api/admin/scripts", query={"q": args.query or None})
    if args.json:
        print_json(answer, sys.stdout)
        return EXIT_OK
    rows = []
    for doc in answer["scripts"]:
        last = doc.get("lastRun") or {}
        rows.append([doc.get("codeIdentifier"), doc.get("name"), f"{doc.get('type')}/{doc.get('runner')}",
                     "yes" if doc.get("enabled", True) else "no", last.get("status"),
                     short_time(last.get("createdAt")), doc.get("id")])
    sys.stdout.write(table(["CODE", "NAME", "TYPE", "ENABLED", "LAST RUN", "AT", "ID"], rows))
    return EXIT_OK


def cmd_runs(args: argparse.Namespace, client: ApiClient) -> int:
    codes: dict[str, str] = {}
    script_id = None
    if args.script:
        doc = resolve_script(client, args.script)
        script_id = str(doc["id"])
        codes[script_id] = str(doc["codeIdentifier"])
    answer = client.json("GET", "/api/admin/scripts/runs",
                         query={"scriptId": script_id, "status": args.status, "limit": args.limit})
    if args.json:
        print_json(answer, sys.stdout)
        return EXIT_OK
    if not args.script:
        codes = {str(d["id"]): str(d["codeIdentifier"]) for d in client.json("GET", "/api/admin/scripts")["scripts"]}
    rows = [[r.get("id"), codes.get(str(r.get("scriptId")), r.get("scriptId")), r.get("status"), r.get("exitCode"),
             r.get("trigger"), short_time(r.get("createdAt")), duration(r)] for r in answer["runs"]]
    sys.stdout.write(table(["RUN", "SCRIPT", "STATUS", "EXIT", "TRIGGER", "CREATED", "DURATION"], rows))
    return EXIT_OK


def cmd_log(args: argparse.Namespace, client: ApiClient) -> int:
    run_path = f"/api/admin/scripts/runs/{path_segment(args.run)}"
    run = client.json("GET", run_path)  # a clear 404 for an unknown run before anything is printed
    if args.follow:
        return follow_to_exit(client, str(run["id"]))
    log = client.raw(run_path + "/log")
    if args.json:
        print_json({"run": run, "log": log.decode("utf-8", "replace")}, sys.stdout)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(log)
        sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: ApiClient) -> int:
    run = client.json("POST", f"/api/admin/scripts/runs/{path_segment(args.run)}/cancel")
    if args.json:
        print_json(run, sys.stdout)
    else:
        sys.stdout.write(f"cancel requested: run {run['id']} is {run['status']}\n")
    return EXIT_OK


def cmd_show(args: argparse.Namespace, client: ApiClient) -> int:
    doc = resolve_script(client, args.script)
    if args.json:
        print_json(doc, sys.stdout)
    else:
        sys.stdout.write(definition_listing(doc))
    return EXIT_OK


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds from 0 to 604800")
    return value


def _limit(raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,3}", raw) or not 1 <= int(raw) <= 500:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 1 to 500")
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="the server, e.g. https://scripts.example.com (default: $SCRIPTBOX_URL)")
    common.add_argument("--json", action="store_true", help="print JSON for machines instead of text for people")
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="scriptbox", description="Scriptbox client for automation.",
                                     epilog=ENVIRONMENT_HELP, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], help=help_text, description=help_text,
                                   epilog=ENVIRONMENT_HELP, formatter_class=formatter)

    run = add("run", "start a run of SCRIPT (a codeIdentifier or an id); prints its run id")
    run.add_argument("script", metavar="SCRIPT")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a run parameter (repeatable); sent as {\"params\": {...}} only when given; the server "
                          "converts the text to the parameter's type (count=5, dry_run=true)")
    how = run.add_mutually_exclusive_group()
    how.add_argument("--follow", action="store_true",
                     help="stream its stdout/stderr to ours and exit with its exit code")
    how.add_argument("--wait", type=_positive_seconds, metavar="SECONDS",
                     help="wait up to SECONDS for it to finish, print the result, exit with its exit code")
    add("list", "list the scripts").add_argument("--query", "-q", help="filter by name or codeIdentifier")
    runs = add("runs", "list runs, newest first")
    runs.add_argument("script", metavar="SCRIPT", nargs="?", help="only runs of this script")
    runs.add_argument("--status", help="only these statuses (comma-separated: queued, running, succeeded, "
                                       "failed, canceled, timed_out)")
    runs.add_argument("--limit", type=_limit, default=20, help="at most this many (1-500, default 20)")
    log = add("log", "print the stored output of RUN (stdout and stderr in stored order)")
    log.add_argument("run", metavar="RUN")
    log.add_argument("--follow", action="store_true",
                     help="stream it live instead, stdout and stderr apart, and exit with its exit code")
    add("cancel", "cancel RUN (queued or running)").add_argument("run", metavar="RUN")
    add("show", "show the definition of SCRIPT (a codeIdentifier or an id)").add_argument("script", metavar="SCRIPT")
    return parser


HANDLERS: dict[str, Callable[[argparse.Namespace, ApiClient], int]] = {
    "run": cmd_run, "list": cmd_list, "runs": cmd_runs, "log": cmd_log, "cancel": cmd_cancel, "show": cmd_show,
}


def main(argv: list[str]) -> int:
    """Parse, run one command, map every failure to a message on stderr and an exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2) from argparse
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if getattr(args, "follow", False) and args.json:
        sys.stderr.write("scriptbox: --json cannot be combined with --follow: the run's output goes to stdout\n")
        return EXIT_USAGE
    scheme = None
    try:
        connection = load_connection(os.environ, args.url)
        scheme = connection.scheme
        return HANDLERS[args.command](args, ApiClient(connection))
    except CliError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"scriptbox: {_hint(exc, scheme)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except (BrokenPipeError, OutputClosed):
        # A reader such as `head` stopped reading: no traceback, and the status a shell
        # reports for SIGPIPE. A followed run goes on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _hint(exc: CliError, scheme: str | None) -> str:
    """The message, with what to check when the server refused the credentials or the params."""
    if isinstance(exc, ApiRefused) and exc.status == 400 and exc.fields.get("params") == "unknown field":
        return exc.message + "\n  this server does not take run parameters yet: run without --param"
    if isinstance(exc, ApiRefused) and exc.status == 403 and scheme == "bearer":
        return exc.message + "\n  the API token in SCRIPTBOX_TOKEN does not allow this (see its scope under Tokens)"
    if not isinstance(exc, ApiRefused) or exc.status != 401:
        return exc.message
    if scheme == "bearer":
        return exc.message + ("\n  SCRIPTBOX_TOKEN was sent as a Bearer token and refused: it is unknown, expired "
                              "or revoked (or the server predates API tokens); create a new one in the admin "
                              "page under Tokens")
    return exc.message + "\n  check SCRIPTBOX_ADMIN_USER and SCRIPTBOX_ADMIN_PASSWORD(_FILE)"

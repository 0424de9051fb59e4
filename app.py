"""Scriptbox command line: serve | worker | desktop, and the client commands
run | list | runs | log | cancel | show (scriptbox/cli/).

Only the serving process is gevent-patched, and it is patched here before
anything else is imported. The desktop launcher must never import gevent:
pywebview hangs in a patched process, so it runs the server as a child. The
client commands never import it either: they are plain HTTP clients.

This is also the entry point of the PyInstaller bundle and of the `scriptbox`
console script (pyproject.toml).
"""

from __future__ import annotations

import argparse
import sys

# Imports nothing itself, so it is safe before gevent's patching.
from scriptbox.cli import COMMANDS as CLIENT_COMMANDS


def build_parser() -> argparse.ArgumentParser:
    from scriptbox.config import add_setting_flags

    parser = argparse.ArgumentParser(
        prog="app.py", description="Scriptbox: a console for operational scripts.",
        epilog="client commands (each with --help): " + " | ".join(sorted(CLIENT_COMMANDS)) + " — see docs/cli.md")
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="serve the API and admin UI and execute runs (default)")
    add_setting_flags(serve)
    # Hidden: the desktop launcher passes a one-time login token on stdin.
    serve.add_argument("--desktop-login-stdin", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--no-worker", dest="no_worker", action="store_true",
                       help="serve API and UI but execute no runs (a `worker` process executes them)")
    worker = commands.add_parser("worker", help="execute queued runs from a shared MongoDB; no HTTP")
    add_setting_flags(worker)
    desktop = commands.add_parser("desktop", help="open the admin UI in a native window on a private server")
    add_setting_flags(desktop)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in CLIENT_COMMANDS:
        from scriptbox.cli import main as client_main

        return client_main(argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["serve", *argv]
    if argv[0] in ("serve", "worker"):
        # First thing, before any other module (sockets, ssl, threading) is imported.
        from gevent import monkey

        monkey.patch_all()
    args = build_parser().parse_args(argv)

    from scriptbox.config import ConfigError, load_settings

    flags = {k: v for k, v in vars(args).items() if k not in ("command", "desktop_login_stdin", "no_worker")}
    try:
        settings = load_settings(flags, desktop_login_stdin=bool(getattr(args, "desktop_login_stdin", False)),
                                 run_worker=not getattr(args, "no_worker", False))
    except ConfigError as exc:
        print(f"scriptbox: {exc}", file=sys.stderr)
        return 2

    if args.command == "desktop":
        from scriptbox.desktop import run_desktop

        return run_desktop(settings)

    if args.command == "worker":
        from scriptbox.server import work

        return work(settings)

    login_token = None
    if settings.desktop_login_stdin:
        login_token = sys.stdin.readline().strip() or None

    from scriptbox.server import serve

    return serve(settings, login_token=login_token)


if __name__ == "__main__":
    sys.exit(main())

"""The command-line client for automation: `scriptbox run disk-usage --follow` and friends.

It talks to a running server over the JSON API and the SSE stream only, with
the standard library's urllib (so a machine that only calls a server needs no
third-party package, and the client never imports gevent or pymongo).
Nothing here is imported by the server.
"""

from __future__ import annotations

# The subcommands app.py hands to this package (before any gevent patching). This
# module must import nothing: app.py reads COMMANDS before it decides to patch.
COMMANDS = frozenset({"run", "list", "runs", "log", "cancel", "show"})


def main(argv: list[str]) -> int:
    """Run one client subcommand; returns the process exit code (see docs/cli.md)."""
    from .commands import main as run_command

    return run_command(argv)

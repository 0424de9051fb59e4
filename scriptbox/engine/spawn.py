"""Starting the main process of a run (or of the vm2 pool) from its LaunchSpec."""

from __future__ import annotations

import subprocess

import gevent.subprocess

from .. import proctree
from ..runners.base import LaunchSpec


def start_process(spec: LaunchSpec, stdin_pipe: bool) -> tuple[gevent.subprocess.Popen, int | None]:
    """The started process and its start time (None: unknown); raises OSError
    or ValueError (a NUL byte in argv/env) when it cannot start.

    Own session and process group, stdout/stderr piped, stdin piped or /dev/null.
    """
    # The child reports its own start time before exec: read afterwards,
    # an instant script may already be reaped (proctree.StartProbe).
    probe = proctree.StartProbe()
    try:
        proc = gevent.subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=spec.env,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=probe.preexec(spec.preexec),
            close_fds=True,
        )
        return proc, probe.start_of(proc.pid)
    finally:
        probe.close()

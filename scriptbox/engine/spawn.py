"""Starting the main process of a run (or of the vm2 pool) from its LaunchSpec."""

from __future__ import annotations

import subprocess

import gevent.subprocess

from .. import proctree
from ..runners.base import LaunchSpec


def start_process(spec: LaunchSpec, stdin_pipe: bool) -> tuple[gevent.subprocess.Popen, int | None]:
    """The started process and its start time (None: unknown); raises OSError
    or ValueError (a NUL byte in argv/env) when it cannot start.

    Own session and process group, stdout and stderr piped (or merged into
    stdout: `spec.merge_stderr`), stdin piped or /dev/null.
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
            # merged: 2>&1, so the kernel keeps the order of the two (outputMode, docs/engine.md).
            stderr=subprocess.STDOUT if spec.merge_stderr else subprocess.PIPE,
            start_new_session=True,
            preexec_fn=probe.preexec(spec.preexec),
            close_fds=True,
        )
        return proc, probe.start_of(proc.pid)
    finally:
        probe.close()

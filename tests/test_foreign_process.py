"""Stopping a process that is not our child (the embedded database a killed
server left behind) when its parent never reaps it: it stays a zombie, and
the next start must not wait for the zombie to disappear (it never would)."""

from __future__ import annotations

import subprocess
import sys
import threading

import psutil

from scriptbox.childproc import ForeignProcess, terminate_with_grace

# A parent that starts a child and never waits for it, as a container's pid 1
# or a process that became a subreaper and runs no reaper may.
NEGLECTFUL_PARENT = ("import subprocess, sys, time; child = subprocess.Popen(['sleep', '600']); "
                     "print(child.pid, flush=True); time.sleep(600)")


def test_a_zombie_left_by_a_parent_that_never_reaps_counts_as_stopped() -> None:
    parent = subprocess.Popen([sys.executable, "-c", NEGLECTFUL_PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = psutil.Process(int(parent.stdout.readline()))
        stopped = threading.Event()

        def stop() -> None:
            terminate_with_grace(ForeignProcess(child), grace=5.0)
            stopped.set()

        threading.Thread(target=stop, daemon=True).start()
        assert stopped.wait(30), "the stop waited for a zombie that nobody reaps"
        assert child.status() == psutil.STATUS_ZOMBIE  # gone for good, though its pid remains
    finally:
        parent.kill()
        parent.wait(10)

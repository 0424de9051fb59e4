"""Starting the main process of a run (or of the vm2 pool) from its LaunchSpec.

Two ways, chosen per spec:

- **posix_spawn** (vfork underneath) when the spec has no `preexec`: host bash
  and node runs. It costs ~0.3 ms whatever the server's size. Python's
  posix_spawn has no working-directory action, so the process is started as
  `env -C <cwd> -- <program> <args>`; `env` changes directory and execs the
  program in the same process (same pid, same start time).
- **gevent's Popen** (fork, then Python code in the child) when the spec has a
  `preexec` (vm2: limits and the sandbox user). The fork copies the server's
  page tables and the child then runs Python, so it costs 10-25 ms, growing
  with the server's memory: that was most of a run's start overhead
  (docs/engine.md, "Start path").

Both give a process with the same surface (`ChildProcess`): pid, returncode,
`result` (set when it has exited), wait(), kill(), and stdin/stdout/stderr
file objects whose reads and writes are cooperative.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import subprocess
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.os
import gevent.subprocess
from gevent.fileobject import FileObjectPosix

from .. import proctree
from ..runners.base import LaunchSpec


class ChildProcess(Protocol):
    """What the engine uses of a started process (gevent's Popen has all of it)."""

    pid: int
    returncode: int | None
    result: gevent.event.AsyncResult
    stdin: Any
    stdout: Any
    stderr: Any

    def wait(self) -> int: ...

    def kill(self) -> None: ...


def start_process(spec: LaunchSpec, stdin_pipe: bool) -> tuple[ChildProcess, int | None]:
    """The started process and its start time (None: unknown); raises OSError
    or ValueError (a NUL byte in argv/env) when it cannot start.

    Own session and process group, stdout and stderr piped (or merged into
    stdout: `spec.merge_stderr`), stdin piped or /dev/null, no other
    descriptor inherited.
    """
    env_program = env_with_chdir() if spec.preexec is None else None
    if env_program is not None:
        program = _resolve(spec.argv[0], spec.env)
        if "=" not in program:  # `env` would take it for a NAME=VALUE operand
            return _posix_spawn(spec, stdin_pipe, env_program, program)
    return _fork(spec, stdin_pipe)


@functools.cache
def env_with_chdir() -> str | None:
    """The path of an `env` that has `-C DIR` (GNU coreutils 8.28+), else None.

    Asked once per process; without it every run is started by fork.
    """
    path = shutil.which("env")
    if path is None or "=" in path:
        return None
    try:
        done = gevent.subprocess.run([path, "-C", "/", "true"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if done.returncode == 0 else None


def _resolve(name: str, env: dict[str, str]) -> str:
    """`name` as Popen would run it: looked up on the script's PATH unless it
    holds a slash. Raises as Popen would when it cannot be run (here, not
    inside `env`, which could only say so on the script's stderr)."""
    if "/" not in name:
        found = shutil.which(name, path=os.pathsep.join(os.get_exec_path(env)))
        if found is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        return found
    if not os.path.isfile(name):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
    if not os.access(name, os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), name)
    return name


class SpawnedProcess:
    """A process started by posix_spawn; reaped by gevent's child watcher."""

    def __init__(self, pid: int, stdin: FileObjectPosix | None, stdout: FileObjectPosix,
                 stderr: FileObjectPosix | None) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.returncode: int | None = None
        self.result = gevent.event.AsyncResult()
        gevent.spawn(self._reap)

    def _reap(self) -> None:
        # gevent.os.posix_spawn watched the child from the start, so this wait
        # is cooperative and cannot miss an exit that came first.
        _, status = gevent.os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)  # -N: killed by signal N, as Popen says
        self.result.set(self.returncode)

    def wait(self) -> int:
        code: int = self.result.get()
        return code

    def kill(self) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _posix_spawn(spec: LaunchSpec, stdin_pipe: bool, env_program: str, program: str) -> tuple[ChildProcess, int | None]:
    if not os.path.isdir(spec.cwd):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), spec.cwd)  # as Popen's chdir says
    argv = [env_program, "-C", spec.cwd, "--", program, *spec.argv[1:]]
    out_read, out_write = os.pipe()
    err_read, err_write = (None, None) if spec.merge_stderr else os.pipe()
    in_read, in_write = os.pipe() if stdin_pipe else (None, None)
    parent_ends = [fd for fd in (out_read, err_read, in_write) if fd is not None]
    child_ends = [fd for fd in (out_write, err_write, in_read) if fd is not None]
    if min(parent_ends + child_ends) <= 2:
        # This server runs with a standard descriptor closed, so a pipe took
        # its number; the dup2 plan below assumes otherwise. Popen handles it.
        for fd in parent_ends + child_ends:
            os.close(fd)
        return _fork(spec, stdin_pipe)
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_DUP2, in_read, 0) if in_read is not None
        else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, out_write, 1),
        (os.POSIX_SPAWN_DUP2, err_write if err_write is not None else out_write, 2),
    ]
    # Python opens descriptors close-on-exec, so normally there is nothing
    # more to close; one a library opened inheritable must not reach a script.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds(set(child_ends))]
    try:
        # Python ignores SIGPIPE (and the default of SIGXFSZ matters to
        # scripts): a script gets the defaults, as Popen(restore_signals) does.
        pid = gevent.os.posix_spawn(env_program, argv, spec.env, file_actions=actions,
                                    setsid=True, setsigmask=(), setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))
    except BaseException:
        for fd in parent_ends + child_ends:
            os.close(fd)
        raise
    for fd in child_ends:
        os.close(fd)
    # Read before this greenlet yields: only the hub reaps children, so until
    # then the process exists (alive or a zombie) and its pid cannot be reused.
    info = proctree.read_proc(pid)
    start = info.start if info is not None else None
    proc = SpawnedProcess(
        pid,
        stdin=FileObjectPosix(in_write, "wb") if in_write is not None else None,
        stdout=FileObjectPosix(out_read, "rb"),
        stderr=FileObjectPosix(err_read, "rb") if err_read is not None else None,
    )
    return proc, start


def _inheritable_fds(keep: set[int]) -> list[int]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return found


def _fork(spec: LaunchSpec, stdin_pipe: bool) -> tuple[ChildProcess, int | None]:
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

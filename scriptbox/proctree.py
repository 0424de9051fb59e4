"""Find and kill every process that belongs to one run (Linux /proc).

A run's processes are found five ways, because each alone misses some:

- the descendants of the run's main process (parent links in /proc);
- descendants seen earlier by periodic sampling (`RunProcesses.observe`), which
  keeps track of children whose parent has since died;
- members of the run's process group or session (the main process is a session
  leader, so everything that did not call `setsid` shares its session id);
- as a safety net, any process whose environment carries
  `SCRIPTBOX_RUN_ID=<run id>`: a daemon that forked twice and called `setsid`
  is reparented away from the tree but keeps the environment it was started
  with;
- and any process that still holds the run's output pipes open (a daemon that
  also cleared its environment, e.g. `setsid env -i ...`, still writes there).

Every process is identified by (pid, start time), and its start time is checked
again right before a signal, so a pid that the kernel has reused for an
unrelated process is never signalled.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

RUN_ID_ENV = "SCRIPTBOX_RUN_ID"

_PROC = "/proc"
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class ProcInfo:
    """One line of the process table."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks since boot; (pid, start) identifies a process
    state: str

    @property
    def alive(self) -> bool:
        # A zombie has exited; only its parent's wait() is missing.
        return self.state not in ("Z", "X")


def read_proc(pid: int) -> ProcInfo | None:
    """Read /proc/<pid>/stat; None if the process does not exist (any more)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    close = raw.rfind(b")")
    fields = raw[close + 2 :].split()
    try:
        return ProcInfo(
            pid=pid,
            ppid=int(fields[1]),
            pgid=int(fields[2]),
            sid=int(fields[3]),
            start=int(fields[19]),
            state=fields[0].decode("ascii", "replace"),
        )
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, ProcInfo]:
    """The whole process table, keyed by pid."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir(_PROC)
    except OSError:
        return table
    for name in names:
        if name.isdigit():
            info = read_proc(int(name))
            if info is not None:
                table[info.pid] = info
    return table


def has_run_env(pid: int, run_id: str) -> bool:
    """True if the process was started with SCRIPTBOX_RUN_ID=<run_id>."""
    try:
        with open(f"{_PROC}/{pid}/environ", "rb") as fh:
            environ = fh.read()
    except OSError:
        return False
    needle = b"\0" + f"{RUN_ID_ENV}={run_id}".encode() + b"\0"
    return needle in b"\0" + environ + b"\0"


def pipe_holders(inodes: Iterable[int], table: dict[int, ProcInfo]) -> set[int]:
    """Pids that have a pipe with one of these inodes open (any fd)."""
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    found: set[int] = set()
    if not wanted:
        return found
    for pid in table:
        try:
            fds = os.listdir(f"{_PROC}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{_PROC}/{pid}/fd/{fd}") in wanted:
                    found.add(pid)
                    break
            except OSError:
                continue
    return found


def children_map(table: dict[int, ProcInfo]) -> dict[int, list[int]]:
    """ppid -> child pids."""
    kids: dict[int, list[int]] = {}
    for info in table.values():
        kids.setdefault(info.ppid, []).append(info.pid)
    return kids


def descendants(roots: Iterable[int], table: dict[int, ProcInfo]) -> set[int]:
    """All pids below `roots` (not including the roots themselves)."""
    kids = children_map(table)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in kids.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def become_subreaper() -> bool:
    """Make orphaned descendants reparent to this process instead of pid 1.

    Why: in containers pid 1 often never reaps, so killed daemons of a run would
    stay zombies forever; and an orphan that is our child stays visible to us.
    gevent's child watcher reaps any child that exits. Returns False where the
    call is not available (non-Linux).
    """
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class RunProcesses:
    """The processes of one run: tracking while it runs, killing at the end."""

    def __init__(self, run_id: str, root_pid: int, pipe_inodes: Iterable[int] = ()) -> None:
        self.run_id = run_id
        self.root_pid = root_pid
        # Inodes of the run's stdout/stderr pipes (see pipe_holders).
        self.pipe_inodes = frozenset(pipe_inodes)
        root = read_proc(root_pid)
        self.root_start = root.start if root else -1
        # pid -> start time of every descendant ever seen.
        self._seen: dict[int, int] = {}
        self._self_pid = os.getpid()

    def observe(self, table: dict[int, ProcInfo]) -> None:
        """Remember the current descendants (call periodically while running)."""
        roots = [self.root_pid] + list(self._seen)
        for pid in descendants(roots, table):
            info = table[pid]
            self._seen.setdefault(pid, info.start)
        # Forget pids that are gone so the map does not grow without bound.
        for pid, start in list(self._seen.items()):
            current = table.get(pid)
            if current is None or current.start != start:
                del self._seen[pid]

    def find(self, table: dict[int, ProcInfo] | None = None, env_scan: bool = True) -> list[ProcInfo]:
        """Every live process of the run, root included while it is alive."""
        if table is None:
            table = scan()
        members: set[int] = set()
        root = table.get(self.root_pid)
        if root is not None and root.start == self.root_start:
            members.add(self.root_pid)
        for pid, start in self._seen.items():
            info = table.get(pid)
            if info is not None and info.start == start:
                members.add(pid)
        for info in table.values():
            # Session/group ids equal the root's pid. Processes older than the
            # root cannot belong to it (guards against a recycled pid).
            if (info.sid == self.root_pid or info.pgid == self.root_pid) and info.start >= self.root_start:
                members.add(info.pid)
        if env_scan:
            for info in table.values():
                if info.pid not in members and info.alive and has_run_env(info.pid, self.run_id):
                    members.add(info.pid)
            for pid in pipe_holders(self.pipe_inodes, table):
                if table[pid].start >= self.root_start:
                    members.add(pid)
        # Children of members belong to the run too (even with a cleared env).
        members |= descendants(members, table)
        members.discard(self._self_pid)
        members.discard(1)
        return [table[pid] for pid in members if table[pid].alive]

    def signal_all(self, sig: int, procs: Iterable[ProcInfo]) -> None:
        """Send `sig` to each process whose identity is unchanged."""
        for info in procs:
            send_signal(info, sig)

    def kill(
        self,
        grace: float,
        sleep: Callable[[float], object] = time.sleep,
        include_root: bool = True,
    ) -> int:
        """SIGTERM everything, wait up to `grace` seconds, then SIGKILL the rest.

        Returns how many processes were signalled. Safe to call when nothing is
        left. `sleep` is gevent.sleep in the server so waiting is cooperative.
        """
        procs = self._filter(self.find(), include_root)
        if not procs:
            return 0
        touched = {p.pid for p in procs}
        self.signal_all(signal.SIGTERM, procs)
        # Stopped processes only act on SIGTERM once continued.
        self.signal_all(signal.SIGCONT, procs)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            sleep(0.05)
            procs = self._filter(self.find(env_scan=False), include_root)
            if not procs:
                return len(touched)
            # Children forked during the grace get the same treatment.
            fresh = [p for p in procs if p.pid not in touched]
            if fresh:
                touched.update(p.pid for p in fresh)
                self.signal_all(signal.SIGTERM, fresh)
                self.signal_all(signal.SIGCONT, fresh)
        # A fork loop can create processes between scan and kill; repeat.
        for _ in range(50):
            procs = self._filter(self.find(), include_root)
            if not procs:
                break
            touched.update(p.pid for p in procs)
            self.signal_all(signal.SIGKILL, procs)
            sleep(0.02)
        return len(touched)

    def _filter(self, procs: list[ProcInfo], include_root: bool) -> list[ProcInfo]:
        if include_root:
            return procs
        return [p for p in procs if p.pid != self.root_pid]


def send_signal(info: ProcInfo, sig: int) -> bool:
    """Signal one process if it is still the same process (pid + start time)."""
    current = read_proc(info.pid)
    if current is None or current.start != info.start:
        return False
    try:
        os.kill(info.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def find_run_processes(run_id: str, pid: int | None = None, pid_start: int | None = None) -> list[ProcInfo]:
    """Processes of a run found after a restart (no tracking data left).

    Looks for the recorded main process (only if its start time matches, so a
    reused pid is never taken), its group/session and descendants, and every
    process carrying the run's id in its environment.
    """
    table = scan()
    members: set[int] = set()
    if pid is not None and pid_start is not None:
        info = table.get(pid)
        if info is not None and info.start == pid_start:
            members.add(pid)
        for other in table.values():
            if (other.sid == pid or other.pgid == pid) and other.start >= pid_start:
                members.add(other.pid)
    for info in table.values():
        if info.alive and info.pid not in members and has_run_env(info.pid, run_id):
            members.add(info.pid)
    members |= descendants(members, table)
    members.discard(os.getpid())
    members.discard(1)
    return [table[p] for p in members if table[p].alive]


def kill_orphaned_run(
    run_id: str,
    pid: int | None,
    pid_start: int | None,
    grace: float,
    sleep: Callable[[float], object] = time.sleep,
) -> int:
    """Kill what is left of a run whose executor died. Returns the count signalled."""
    procs = find_run_processes(run_id, pid, pid_start)
    if not procs:
        return 0
    touched = {p.pid for p in procs}
    for p in procs:
        send_signal(p, signal.SIGTERM)
        send_signal(p, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and procs:
        sleep(0.05)
        procs = [p for p in procs if (cur := read_proc(p.pid)) is not None and cur.start == p.start and cur.alive]
    for _ in range(20):
        procs = find_run_processes(run_id, pid, pid_start)
        if not procs:
            break
        touched.update(p.pid for p in procs)
        for p in procs:
            send_signal(p, signal.SIGKILL)
        sleep(0.02)
    return len(touched)

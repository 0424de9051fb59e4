"""Find and kill every process that belongs to one run, and nothing else (Linux /proc).

The kill is exact: a process is signalled only when it is *proven*
to be the run's. Proof is one of:

- the run's main process itself: its pid *and* its start time, which the
  child reports from inside itself before exec (`StartProbe`), so it is known
  even when the script exits, and is reaped, before the server looks;
- descendants of proven processes seen earlier by periodic sampling
  (`RunProcesses.observe`), kept as (pid, start time);
- members of the main process's session or process group (it is a session
  leader, so everything that did not call `setsid` shares its session id);
- a process whose environment carries `SCRIPTBOX_RUN_ID=<run id>` (catches a
  daemon that forked twice and called `setsid`);
- a process holding the *write* end of the run's stdout/stderr pipe (catches a
  daemon that also cleared its environment, e.g. `setsid env -i ...`). Only
  writers count: the server holds the read ends, and so, for an instant, does
  any child the server forks before it execs.

and then the descendants of proven processes. Every candidate, before any
expansion, must also have started no earlier than the main process and must
not be excluded: this server, its ancestors, pid 1, the processes the caller
protects (the embedded database) and the proven processes of other runs. A
descendant walk never passes through an excluded process. When the main
process's start time is unknown nothing is proven (unknown identity means
"not ours"). Each start time is read again right before a signal, so a pid the
kernel has reused for an unrelated process is never signalled.
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

Excluder = Callable[[dict[int, "ProcInfo"]], set[int]]


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


def parse_stat(pid: int, raw: bytes) -> ProcInfo | None:
    """Parse the text of /proc/<pid>/stat; None when it is not one."""
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


def read_proc(pid: int) -> ProcInfo | None:
    """Read /proc/<pid>/stat; None if the process does not exist (any more)."""
    try:
        with open(f"{_PROC}/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    return parse_stat(pid, raw)


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


def _opened_for_writing(pid: int, fd: str) -> bool:
    """True if fd of pid was opened write-only or read-write (fdinfo `flags`, octal)."""
    try:
        with open(f"{_PROC}/{pid}/fdinfo/{fd}", "rb") as fh:
            for line in fh:
                if line.startswith(b"flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError, IndexError):
        return False
    return False


def pipe_writers(inodes: Iterable[int], pids: Iterable[int]) -> set[int]:
    """Those of `pids` that hold the write end of a pipe with one of these inodes."""
    wanted = {f"pipe:[{inode}]" for inode in inodes}
    found: set[int] = set()
    if not wanted:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"{_PROC}/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{_PROC}/{pid}/fd/{fd}") in wanted and _opened_for_writing(pid, fd):
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


def expand(seeds: Iterable[int], table: dict[int, ProcInfo], accept: Callable[[ProcInfo], bool]) -> set[int]:
    """`seeds` plus all their descendants that `accept` allows.

    The walk never passes through a refused process, so nothing is reached
    through an excluded one (the server's children are not the run's because
    the server holds one of its pipes).
    """
    kids = children_map(table)
    found = set(seeds)
    stack = list(found)
    while stack:
        for child in kids.get(stack.pop(), ()):
            if child not in found and accept(table[child]):
                found.add(child)
                stack.append(child)
    return found


def ancestors(pid: int, table: dict[int, ProcInfo]) -> set[int]:
    """pid's parent, grandparent, ... up to pid 1 (as far as the table knows)."""
    found: set[int] = set()
    current = table.get(pid)
    while current is not None and current.ppid > 0 and current.ppid not in found:
        found.add(current.ppid)
        current = table.get(current.ppid)
    return found


def never_signalled(table: dict[int, ProcInfo], protected: Iterable[int] = ()) -> set[int]:
    """This process, its ancestors, pid 0/1 and the caller's protected pids."""
    me = os.getpid()
    return {0, 1, me} | ancestors(me, table) | set(protected)


def _excluded(table: dict[int, ProcInfo], protected: Iterable[int], exclude: Excluder | None) -> set[int]:
    excluded = never_signalled(table, protected)
    if exclude is not None:
        excluded |= exclude(table)
    return excluded


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


class StartProbe:
    """Learns a child's start time from inside the child, before it execs.

    Why not read /proc/<pid>/stat after Popen returns: gevent's Popen yields to
    the hub while it waits for the exec, and its child watcher reaps a script
    that exits at once, so by then the pid may be gone or even reused. A pidfd
    opened after Popen has the same race. The child, though, always exists
    while its own preexec_fn runs: it writes its /proc/self/stat into a pipe,
    and the start time in it stays valid across exec.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()  # both close-on-exec

    def preexec(self, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """A preexec_fn that reports, then runs `then` (the runner's own preexec)."""
        write_fd = self._write_fd

        def report() -> None:
            # Plain syscalls only: this runs in the forked child, before exec.
            fd = os.open("/proc/self/stat", os.O_RDONLY)
            try:
                raw = os.read(fd, 4096)
            finally:
                os.close(fd)
            os.write(write_fd, raw)
            if then is not None:
                then()

        return report

    def start_of(self, pid: int) -> int | None:
        """The start time the child `pid` reported; None if it did not (unknown).

        Call after Popen returned: the child wrote before exec, so the bytes
        are in the pipe already; the read does not wait.
        """
        os.close(self._write_fd)
        self._write_fd = -1
        os.set_blocking(self._read_fd, False)
        try:
            raw = os.read(self._read_fd, 4096)
        except OSError:
            return None
        info = parse_stat(pid, raw)
        head = raw.split(b" ", 1)[0]
        if info is None or head != str(pid).encode():
            return None
        return info.start

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._read_fd = self._write_fd = -1


class RunProcesses:
    """The processes of one run: tracking while it runs, killing at the end."""

    def __init__(
        self,
        run_id: str,
        root_pid: int,
        root_start: int | None,
        pipe_inodes: Iterable[int] = (),
        exclude: Excluder | None = None,
        protected: Iterable[int] = (),
    ) -> None:
        self.run_id = run_id
        self.root_pid = root_pid
        # None: the start time is unknown, so no process can be proven ours.
        self.root_start = root_start
        # Inodes of the run's stdout/stderr pipes (see pipe_writers).
        self.pipe_inodes = frozenset(pipe_inodes)
        # The proven processes of other runs, given the table (the engine's).
        self._exclude = exclude
        self._protected = frozenset(protected)
        # pid -> start time of every descendant ever seen.
        self._seen: dict[int, int] = {}

    def _root_pid_is_ours(self, table: dict[int, ProcInfo]) -> bool:
        """False once the root's pid number belongs to a different process.

        Linux does not hand out a pid that is still some session's or group's
        id, so while no other process holds the number, a process whose
        session/group id equals it is in the root's session.
        """
        holder = table.get(self.root_pid)
        return holder is None or holder.start == self.root_start

    def members(self, table: dict[int, ProcInfo]) -> set[int]:
        """Processes proven by identity alone: the root, seen descendants, its session/group."""
        if self.root_start is None:
            return set()
        found: set[int] = set()
        root = table.get(self.root_pid)
        if root is not None and root.start == self.root_start and root.alive:
            found.add(self.root_pid)
        for pid, start in self._seen.items():
            info = table.get(pid)
            if info is not None and info.start == start and info.alive:
                found.add(pid)
        if self._root_pid_is_ours(table):
            for info in table.values():
                if ((info.sid == self.root_pid or info.pgid == self.root_pid)
                        and info.start >= self.root_start and info.alive):
                    found.add(info.pid)
        return found

    def _accept(self, excluded: set[int]) -> Callable[[ProcInfo], bool]:
        since = self.root_start if self.root_start is not None else 0

        def accept(info: ProcInfo) -> bool:
            return info.alive and info.start >= since and info.pid not in excluded

        return accept

    def _excluded(self, table: dict[int, ProcInfo]) -> set[int]:
        return _excluded(table, self._protected, self._exclude)

    def observe(self, table: dict[int, ProcInfo]) -> None:
        """Remember the current descendants (call periodically while running)."""
        if self.root_start is None:
            return
        accept = self._accept(self._excluded(table))
        seeds = {pid for pid in self.members(table) if accept(table[pid])}
        for pid in expand(seeds, table, accept):
            self._seen.setdefault(pid, table[pid].start)
        # Forget pids that are gone so the map does not grow without bound.
        for pid, start in list(self._seen.items()):
            current = table.get(pid)
            if current is None or current.start != start:
                del self._seen[pid]

    def find(self, table: dict[int, ProcInfo] | None = None, env_scan: bool = True) -> list[ProcInfo]:
        """Every live process proven to be the run's, root included while it is alive."""
        if self.root_start is None:
            return []
        if table is None:
            table = scan()
        accept = self._accept(self._excluded(table))
        # Exclusions are applied to the seeds before anything is expanded from them.
        seeds = {pid for pid in self.members(table) if accept(table[pid])}
        if env_scan:
            candidates = [info.pid for info in table.values() if info.pid not in seeds and accept(info)]
            seeds |= {pid for pid in candidates if has_run_env(pid, self.run_id)}
            seeds |= pipe_writers(self.pipe_inodes, candidates)
        return [table[pid] for pid in expand(seeds, table, accept)]

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
        group = self.root_pid if include_root and self.signal_own_group(signal.SIGTERM) else None
        if group is not None:
            self.signal_own_group(signal.SIGCONT)  # stopped members act on SIGTERM once continued
            # Let other runs whose timeouts fell due send their group signal too
            # before this one blocks on the (costly) process-table scan.
            sleep(0)
        return _terminate(lambda full: self._filter(self.find(env_scan=full), include_root), grace, sleep,
                          signalled_group=group)

    def signal_own_group(self, sig: int) -> bool:
        """Signal the main process's own process group in one call; False if it cannot be proven.

        Why one call: signalled one by one, a shell whose child died first could
        run its next command (and exit 0) before its own signal arrived; the
        kernel delivers a group signal to every member at once, and it costs no
        process-table scan, so many runs timing out together are all stopped on
        time. Exact: the main process (pid and start time, read now; a zombie
        still counts, as its pid cannot be reused before it is reaped) leads the
        group. Only processes of its session can join a group, and none of them
        can be the server, its database or another run (each run has a session
        of its own), so every member is the run's.
        """
        if self.root_start is None:
            return False
        root = read_proc(self.root_pid)
        if root is None or root.start != self.root_start or root.pgid != self.root_pid:
            return False
        try:
            os.killpg(self.root_pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def _filter(self, procs: list[ProcInfo], include_root: bool) -> list[ProcInfo]:
        if include_root:
            return procs
        return [p for p in procs if p.pid != self.root_pid]


def _terminate(find: Callable[[bool], list[ProcInfo]], grace: float, sleep: Callable[[float], object],
               signalled_group: int | None = None) -> int:
    """SIGTERM (+SIGCONT) what `find(True)` returns, wait `grace`, SIGKILL the rest.

    Members of `signalled_group` already had their SIGTERM (a second one would
    run a script's TERM trap twice); the others are signalled parents before
    children (by start time), so no parent sees a child die before its own
    signal. `find(False)` is the cheap look used while waiting (no environment
    or pipe scan). Returns how many processes were signalled.
    """
    # The group leader is the one member known to have had the group's signal.
    touched = {signalled_group} if signalled_group is not None else set()
    procs = find(True)
    if not procs:
        return len(touched)
    touched.update(p.pid for p in procs)
    for p in sorted(procs, key=lambda info: info.start):
        if p.pgid == signalled_group:
            continue
        send_signal(p, signal.SIGTERM)
        # Stopped processes only act on SIGTERM once continued.
        send_signal(p, signal.SIGCONT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        sleep(0.05)
        procs = find(False)
        if not procs:
            return len(touched)
        # Children forked during the grace get the same treatment.
        fresh = [p for p in procs if p.pid not in touched]
        touched.update(p.pid for p in fresh)
        for p in fresh:
            send_signal(p, signal.SIGTERM)
            send_signal(p, signal.SIGCONT)
    # A fork loop can create processes between scan and kill; repeat.
    for _ in range(50):
        procs = find(True)
        if not procs:
            break
        touched.update(p.pid for p in procs)
        for p in procs:
            send_signal(p, signal.SIGKILL)
        sleep(0.02)
    return len(touched)


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


def find_run_processes(
    run_id: str,
    pid: int | None = None,
    pid_start: int | None = None,
    exclude: Excluder | None = None,
    protected: Iterable[int] = (),
) -> list[ProcInfo]:
    """Processes of a run found after a restart or by another executor (no tracking data).

    The recorded main process, its session and group count only with a known
    start time (so a reused pid is never taken); processes carrying the run's
    id in their environment count either way. Exclusions as in RunProcesses.
    """
    table = scan()
    if isinstance(pid, int) and isinstance(pid_start, int) and pid_start >= 0:
        return RunProcesses(run_id, pid, pid_start, exclude=exclude, protected=protected).find(table)
    # No start time (or the -1 of older versions): only the environment proves
    # anything, and no age limit can be applied.
    excluded = _excluded(table, protected, exclude)

    def accept(info: ProcInfo) -> bool:
        return info.alive and info.pid not in excluded

    seeds = {info.pid for info in table.values() if accept(info) and has_run_env(info.pid, run_id)}
    return [table[p] for p in expand(seeds, table, accept)]


def kill_orphaned_run(
    run_id: str,
    pid: int | None,
    pid_start: int | None,
    grace: float,
    sleep: Callable[[float], object] = time.sleep,
    exclude: Excluder | None = None,
    protected: Iterable[int] = (),
) -> int:
    """Kill what is left of a run whose executor died. Returns the count signalled."""
    return _terminate(lambda _full: find_run_processes(run_id, pid, pid_start, exclude, protected), grace, sleep)

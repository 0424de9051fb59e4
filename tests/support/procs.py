"""Process readings straight from /proc, independently of the engine's own code."""

from __future__ import annotations

import os
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _state(pid: int | str) -> bytes | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in (b"Z", b"X")


def run_pids(run_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries this run's id."""
    needle = f"SCRIPTBOX_RUN_ID={run_id}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in env and pid_alive(int(name)):
            found.append(int(name))
    return found


def rss_bytes(pid: int, key: str = "VmRSS") -> int:
    """VmRSS (or VmHWM, the peak) of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Restart a process's VmHWM from its current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU of a process (or of its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # utime, stime | cutime, cstime
    return (int(fields[first]) + int(fields[first + 1])) / CLK_TCK

"""The data dir: one owner at a time, enforced with an OS lock.

The lock is an ``flock`` on ``<data-dir>/scriptbox.lock``. The kernel drops it
when the process dies however it dies, so a SIGKILLed server never leaves the
data dir locked, and a second server on the same data dir is refused.

The data dir is made 0700 at every start, also when it existed before with
looser permissions: it holds the database files and credentials. A directory
owned by another user, or a shared sticky one such as /tmp, is refused rather
than tightened (as root, tightening /tmp would break the machine).
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path


class DataDirBusy(Exception):
    """Another live Scriptbox process holds this data dir."""


class DataDirUnsafe(Exception):
    """The data dir cannot be made private to this user; the message says why."""


def tighten(data_dir: Path) -> None:
    """Create `data_dir` if needed and make it 0700; raises DataDirUnsafe."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.stat(data_dir)
    if info.st_uid != os.geteuid():
        raise DataDirUnsafe(f"the data dir {data_dir} belongs to another user (uid {info.st_uid}); "
                            "use a folder of your own")
    if info.st_mode & stat.S_ISVTX:
        raise DataDirUnsafe(f"the data dir {data_dir} is a shared folder (sticky bit); use a dedicated one")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(data_dir, 0o700)


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / "scriptbox.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DataDirBusy naming the holder's pid (DataDirUnsafe, see tighten)."""
        tighten(self.data_dir)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(
                f"another Scriptbox process (pid {holder}) is already using the data dir {self.data_dir}; "
                "stop it first or choose another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

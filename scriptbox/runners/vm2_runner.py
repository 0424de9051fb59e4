"""The node/vm2 runner: a script's body runs in a vm2 `VM` in its own node process.

vm2 alone is not a security boundary we rely on (its README says new escapes
keep being found), so the process around it is locked down as well; see
docs/vm2.md. This module only *describes* that process (a LaunchSpec); the run
engine spawns it, streams its output and enforces the outer timeout.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pwd
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from scriptbox.runners.base import LaunchSpec, RunnerUnavailable
from scriptbox.vocabulary import TIMEOUT_EXIT_CODE

HARNESS_DIR = Path(__file__).resolve().parent / "vm2"

# V8 heap of the sandbox thread (and of the supervising main thread).
HEAP_LIMIT_MB = 192
# RLIMIT_AS for the whole node process. node 20 with the harness's worker
# thread reserves about 1.6 GiB of virtual memory before running anything
# (code ranges, heap reservations, thread stacks), so the limit must sit well
# above that; 2.5 GiB leaves roughly 0.9 GiB for what the V8 heap limit does
# not cover (ArrayBuffers, large strings' backing stores, native buffers).
ADDRESS_SPACE_LIMIT_BYTES = 2560 * 1024 * 1024
# SIGALRM backstop, armed before exec: if neither the harness nor the engine
# has ended the process this long after the run's timeout, the kernel does.
ALARM_GRACE_SECONDS = 5

# When Scriptbox runs as root, the sandbox process runs as this user instead
# (setting SCRIPTBOX_VM2_USER): an escaped script then cannot signal or ptrace
# the server's processes, nor read its 0700 data dir.
DEFAULT_VM2_USER = "nobody"

MIN_NODE_MAJOR = 20
VM2_VERSION_PREFIX = "3.12."
INSTALL_HINT = f"run `cd {HARNESS_DIR} && npm ci` (`make run` and `make test` do)"

# Exit codes of the harness (scriptbox/runners/vm2/common.js). The engine maps
# EXIT_TIMED_OUT to `timed_out`, 0 to `succeeded` and every other code to `failed`.
EXIT_OK = 0
EXIT_SCRIPT_FAILED = 1
EXIT_HARNESS_ERROR = 2
EXIT_OUT_OF_MEMORY = 3
EXIT_TIMED_OUT = TIMEOUT_EXIT_CODE


@functools.lru_cache(maxsize=8)
def _node_version(node: str) -> tuple[int, int, int]:
    """The version of the node binary at `node`; raises RunnerUnavailable."""
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, env={}, check=True
        ).stdout.strip()
        major, minor, patch = (int(part) for part in out.lstrip("v").split(".")[:3])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise RunnerUnavailable(f"cannot run {node} --version: {exc}") from exc
    return major, minor, patch


def _permission_flag(version: tuple[int, int, int]) -> str:
    # node 22.13 / 23.5 renamed the (then stable) permission model flag.
    major, minor, _ = version
    if major > 23 or (major == 23 and minor >= 5) or (major == 22 and minor >= 13):
        return "--permission"
    return "--experimental-permission"


def _installed_vm2_version(harness_dir: Path) -> str:
    package_json = harness_dir / "node_modules" / "vm2" / "package.json"
    try:
        version = json.loads(package_json.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunnerUnavailable(f"the vm2 package is not installed: {INSTALL_HINT}") from exc
    if not isinstance(version, str) or not version.startswith(VM2_VERSION_PREFIX):
        raise RunnerUnavailable(f"vm2 {VM2_VERSION_PREFIX}x is required, found {version!r}: {INSTALL_HINT}")
    return version


def _address_space_limit() -> int:
    # Never ask for more than the hard limit we were given (setrlimit would fail).
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY:
        return ADDRESS_SPACE_LIMIT_BYTES
    return min(ADDRESS_SPACE_LIMIT_BYTES, hard)


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account a root Scriptbox runs the sandbox process as."""

    name: str
    uid: int
    gid: int


def resolve_sandbox_user(run_as: str | None, euid: int) -> SandboxUser | None:
    """Whom the sandbox process runs as: None means "as Scriptbox itself".

    Only root can switch users, so for any other euid the answer is None. For
    root, `run_as` (a user name or a numeric uid) names the account; None, or
    an account with uid 0, keeps root (the operator's explicit choice).

    Raises RunnerUnavailable when the account does not exist.
    """
    if euid != 0 or not run_as:
        return None
    try:
        entry = pwd.getpwuid(int(run_as)) if run_as.isdigit() else pwd.getpwnam(run_as)
    except (KeyError, OverflowError) as exc:
        raise RunnerUnavailable(
            f"SCRIPTBOX_VM2_USER: no user {run_as!r} on this machine to run the vm2 sandbox as"
        ) from exc
    if entry.pw_uid == 0:
        return None
    return SandboxUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _allows(st: os.stat_result, user: SandboxUser, bits: int) -> bool:
    """Whether mode bits grant all of `bits` (4 read, 2 write, 1 execute) to `user`.

    Supplementary groups are dropped before exec, so only the primary gid counts.
    """
    if st.st_uid == user.uid:
        shift = 6
    elif st.st_gid == user.gid:
        shift = 3
    else:
        shift = 0
    return (st.st_mode >> shift) & bits == bits


def unreachable_for(path: Path, user: SandboxUser, bit: int) -> Path | None:
    """The first directory on the way to `path`, or `path` itself, that `user`
    cannot pass through (search) or use with `bit`; None when all is fine."""
    path = Path(os.path.realpath(path))
    for parent in reversed(path.parents):
        if not _allows(os.stat(parent), user, 1):
            return parent
    return None if _allows(os.stat(path), user, bit) else path


@functools.lru_cache(maxsize=8)
def _check_reachable(node: str, harness_dir: Path, user: SandboxUser) -> None:
    """Raise RunnerUnavailable unless `user` can execute node and read every
    harness file (cached: the tree only changes with an install)."""
    problems: list[str] = []
    blocked = unreachable_for(Path(node), user, 1)
    if blocked is not None:
        problems.append(f"cannot execute {node} (blocked at {blocked})")
    for root, dirs, files in os.walk(harness_dir):
        for name in dirs:
            blocked = unreachable_for(Path(root, name), user, 5)
            if blocked is not None:
                problems.append(f"cannot read {blocked}")
        for name in files:
            blocked = unreachable_for(Path(root, name), user, 4)
            if blocked is not None:
                problems.append(f"cannot read {blocked}")
        if problems:
            break
    if problems:
        raise RunnerUnavailable(
            f"the vm2 sandbox runs as {user.name} (SCRIPTBOX_VM2_USER), who {problems[0]}: "
            "make the harness world-readable (chmod -R a+rX) or install Scriptbox where that user can read it"
        )


def _make_preexec(address_space: int, alarm_seconds: int, user: SandboxUser | None) -> Callable[[], None]:
    def preexec() -> None:
        # Runs in the child between fork and exec: only async-signal-safe-ish work.
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Pending alarms survive execve; node leaves SIGALRM at its default (terminate).
        signal.alarm(alarm_seconds)
        if user is not None:
            # Groups first (needs root), then gid, then uid: after setresuid
            # nothing can be changed back. Real, effective and saved ids all
            # change, so the process cannot regain root.
            os.setgroups([])
            os.setresgid(user.gid, user.gid, user.gid)
            os.setresuid(user.uid, user.uid, user.uid)

    return preexec


def _checked_node() -> tuple[str, tuple[int, int, int]]:
    """The node binary on PATH and its version; raises RunnerUnavailable."""
    node = shutil.which("node")
    if node is None:
        raise RunnerUnavailable("node was not found on PATH: the vm2 runner needs Node.js 20 or newer")
    version = _node_version(node)
    if version[0] < MIN_NODE_MAJOR:
        raise RunnerUnavailable(
            f"the vm2 runner needs Node.js {MIN_NODE_MAJOR} or newer, found {'.'.join(map(str, version))}"
        )
    return node, version


def prepare_vm2_launch(
    script: str,
    script_env: dict[str, str],
    timeout_ms: int,
    *,
    harness_dir: Path = HARNESS_DIR,
    run_as: str | None = DEFAULT_VM2_USER,
    params: Mapping[str, object] | None = None,
) -> LaunchSpec:
    """Describe the node process that runs `script` in a vm2 sandbox.

    The script, its env, its parameter values (typed: the sandbox gets them as
    a frozen `params` object) and its timeout go to the harness as one JSON
    document on stdin; the process itself gets an empty environment, a fresh private
    temporary working directory (removed by the spec's cleanup), a V8 heap
    limit, an address-space limit, node's permission model (read access to the
    harness directory only, no child processes, no writes) and a SIGALRM
    backstop. When Scriptbox runs as root, the process runs as the user
    `run_as` (None: stay root) with no supplementary groups, and its working
    directory belongs to that user.

    Raises RunnerUnavailable when node is missing or too old, when the vm2
    package is not installed, when `run_as` does not exist or cannot execute
    node or read the harness; ValueError when timeout_ms is not positive.
    """
    if timeout_ms < 1:
        raise ValueError("timeout_ms must be positive")
    spec = prepare_vm2_process(math.ceil(timeout_ms / 1000) + ALARM_GRACE_SECONDS, harness_dir=harness_dir,
                               run_as=run_as)
    spec.stdin_data = vm2_input(script, script_env, timeout_ms, params)
    return spec


def vm2_input(script: str, script_env: Mapping[str, str], timeout_ms: int,
              params: Mapping[str, object] | None = None) -> bytes:
    """The one JSON document the harness reads on stdin."""
    return json.dumps({"script": script, "env": dict(script_env), "params": dict(params or {}),
                       "timeoutMs": timeout_ms}).encode("utf-8")


def prepare_vm2_process(alarm_seconds: int, *, harness_dir: Path = HARNESS_DIR,
                        run_as: str | None = DEFAULT_VM2_USER, pooled: bool = False) -> LaunchSpec:
    """Describe the harness process, without its input (`stdin_data` None).

    As prepare_vm2_launch, with the SIGALRM backstop `alarm_seconds` after the
    exec. `pooled`: the process is started ahead of its run (the engine's vm2
    pool) and waits on stdin, its timeout counting from the input's arrival.
    Raises RunnerUnavailable as prepare_vm2_launch.
    """
    node, version = _checked_node()
    harness_dir = harness_dir.resolve()
    harness = harness_dir / "harness.js"
    if not harness.is_file():
        raise RunnerUnavailable(f"the vm2 harness is missing: {harness}")
    _installed_vm2_version(harness_dir)  # refuses a missing or wrong vm2
    if "," in str(harness_dir):
        # --allow-fs-read takes a comma-separated list.
        raise RunnerUnavailable(f"the vm2 harness directory must not contain a comma: {harness_dir}")
    user = resolve_sandbox_user(run_as, os.geteuid())
    if user is not None:
        _check_reachable(node, harness_dir, user)

    argv = [
        node,
        f"--max-old-space-size={HEAP_LIMIT_MB}",
        _permission_flag(version),
        f"--allow-fs-read={harness_dir}",
        "--allow-worker",
        "--disallow-code-generation-from-strings",
        # Keeps node's own warnings (e.g. "permission model is experimental")
        # out of the run's output.
        "--no-warnings",
        str(harness),
        *(["--pooled"] if pooled else []),
    ]
    address_space = _address_space_limit()

    workdir = tempfile.mkdtemp(prefix="scriptbox-vm2-")  # mode 0700
    if user is not None:
        # Still private (0700), but to the sandbox's user, so its cwd is usable.
        os.chown(workdir, user.uid, user.gid)

    def cleanup() -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    return LaunchSpec(
        argv=argv,
        env={},
        cwd=workdir,
        preexec=_make_preexec(address_space, alarm_seconds, user),
        cleanup=cleanup,
        label="vm2",
    )

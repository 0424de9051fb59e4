"""Host runners: `bash -lc <script>` and `node -e <script>` (SPEC §6).

Builds the LaunchSpec only; the engine spawns the process in its own session,
reads its output and owns its lifecycle.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping

from scriptbox.runners.base import LaunchSpec, RunnerUnavailable

# Scriptbox's own configuration (admin password, MongoDB URI, data dir, ...)
# never reaches a script: every SCRIPTBOX_* variable is dropped, and so are the
# usual names under which a MongoDB URI is passed around.
_SECRET_PREFIXES = ("SCRIPTBOX_",)
_SECRET_NAMES = frozenset({"MONGODB_URI", "MONGO_URI", "MONGO_URL", "MONGODB_URL"})


def is_secret_env(name: str) -> bool:
    """True for variables that belong to Scriptbox itself, not to scripts."""
    return name.startswith(_SECRET_PREFIXES) or name.upper() in _SECRET_NAMES


def host_environment(
    base: Mapping[str, str],
    script_env: Iterable[Mapping[str, str]],
    run_id: str,
    script_id: str,
) -> dict[str, str]:
    """The environment of a host run: server env minus secrets, plus script env.

    SCRIPTBOX_RUN_ID and SCRIPTBOX_SCRIPT_ID are set last so a script cannot
    override them (the run id is how leftover processes are found).
    """
    env = {k: v for k, v in base.items() if not is_secret_env(k)}
    for item in script_env:
        env[str(item["key"])] = str(item["value"])
    env["SCRIPTBOX_RUN_ID"] = run_id
    env["SCRIPTBOX_SCRIPT_ID"] = script_id
    return env


def resolve_working_directory(configured: str, data_dir: str) -> str:
    """The directory a host run starts in.

    "" means `<data_dir>/work` (created on demand). A configured directory must
    exist; otherwise the run cannot start.

    Raises:
        RunnerUnavailable: the directory is missing or not a directory.
    """
    if not configured:
        path = os.path.join(data_dir, "work")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise RunnerUnavailable(f"cannot create working directory {path}: {exc.strerror}") from exc
        return path
    if not os.path.isdir(configured):
        reason = "does not exist" if not os.path.exists(configured) else "is not a directory"
        raise RunnerUnavailable(f"working directory {configured} {reason}")
    return configured


def prepare_host_launch(
    definition: Mapping[str, object],
    *,
    run_id: str,
    script_id: str,
    data_dir: str,
    base_env: Mapping[str, str] | None = None,
) -> LaunchSpec:
    """LaunchSpec for a bash/host or node/host script.

    Raises:
        RunnerUnavailable: missing working directory or missing interpreter.
    """
    kind = str(definition.get("type"))
    script = str(definition.get("script") or "")
    env_items = definition.get("env") or []
    assert isinstance(env_items, list)
    env = host_environment(os.environ if base_env is None else base_env, env_items, run_id, script_id)
    cwd = resolve_working_directory(str(definition.get("defaultWorkingDirectory") or ""), data_dir)
    if kind == "bash":
        exe = shutil.which("bash", path=env.get("PATH"))
        if exe is None:
            raise RunnerUnavailable("bash is not installed (not found on PATH)")
        argv = [exe, "-lc", script]
    elif kind == "node":
        exe = shutil.which("node", path=env.get("PATH"))
        if exe is None:
            raise RunnerUnavailable("node is not installed (not found on PATH)")
        argv = [exe, "-e", script]
    else:
        raise RunnerUnavailable(f"the host runner cannot run scripts of type {kind!r}")
    return LaunchSpec(argv=argv, env=env, cwd=cwd, stdin_data=None, label=kind)

"""Host runners: `bash -lc <script>` and `node -e <script>`, each in its own session.

Builds the LaunchSpec only; the engine spawns the process in its own session,
reads its output and owns its lifecycle.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping

from scriptbox.params import env_value
from scriptbox.runners.base import LaunchSpec, RunnerUnavailable

# Scriptbox's own configuration (admin password, MongoDB URI, data dir, ...)
# never reaches a script: every SCRIPTBOX_* variable is dropped, and so are the
# usual names under which a MongoDB URI is passed around.
_SECRET_PREFIXES = ("SCRIPTBOX_",)
_SECRET_NAMES = frozenset({"MONGODB_URI", "MONGO_URI", "MONGO_URL", "MONGODB_URL"})

# Linux refuses any single argument longer than MAX_ARG_STRLEN (32 pages,
# 128 KiB with its NUL) with E2BIG, but a script may be up to 1 MiB.
# A longer script is written to a private file and the -c/-e program loads it.
INLINE_SCRIPT_MAX_BYTES = 128 * 1024 - 1


def is_secret_env(name: str) -> bool:
    """True for variables that belong to Scriptbox itself, not to scripts."""
    return name.startswith(_SECRET_PREFIXES) or name.upper() in _SECRET_NAMES


def host_environment(
    base: Mapping[str, str],
    script_env: Iterable[Mapping[str, str]],
    run_id: str,
    script_id: str,
    params: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The environment of a host run: server env minus secrets, plus script env and params.

    Each parameter is a variable of its name (booleans true/false); one without
    a value is unset, so a variable of that name inherited from the server
    cannot pass for it. SCRIPTBOX_RUN_ID and SCRIPTBOX_SCRIPT_ID are set last so
    a script cannot override them (the run id is how leftover processes are found).
    """
    env = {k: v for k, v in base.items() if not is_secret_env(k)}
    for item in script_env:
        env[str(item["key"])] = str(item["value"])
    for name, value in (params or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = env_value(value)
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
    env_items: list[dict[str, str]] | None = None,
    params: Mapping[str, object] | None = None,
) -> LaunchSpec:
    """LaunchSpec for a bash/host or node/host script.

    `env_items` (default: the definition's env) are the env entries with
    secrets opened; `params` the run's parameter values.

    Raises:
        RunnerUnavailable: missing working directory or missing interpreter.
    """
    kind = str(definition.get("type"))
    script = str(definition.get("script") or "")
    if env_items is None:
        env_items = list(definition.get("env") or [])  # type: ignore[call-overload]
    assert isinstance(env_items, list)
    # execve() cannot pass a NUL byte; say so instead of failing inside Popen.
    if "\0" in script:
        raise RunnerUnavailable("the script contains a NUL character, which cannot be passed to a process")
    for item in env_items:
        if "\0" in str(item.get("value", "")):
            raise RunnerUnavailable(f"env {item.get('key')} contains a NUL character, "
                                    "which cannot be passed to a process")
    env = host_environment(os.environ if base_env is None else base_env, env_items, run_id, script_id, params)
    cwd = resolve_working_directory(str(definition.get("defaultWorkingDirectory") or ""), data_dir)
    if kind not in ("bash", "node"):
        raise RunnerUnavailable(f"the host runner cannot run scripts of type {kind!r}")
    exe = shutil.which(kind, path=env.get("PATH"))
    if exe is None:
        raise RunnerUnavailable(f"{kind} is not installed (not found on PATH)")
    cleanup: Callable[[], None] | None = None
    if len(script.encode("utf-8")) > INLINE_SCRIPT_MAX_BYTES:
        path, cleanup = _write_script_file(script, ".sh" if kind == "bash" else ".js")
        if kind == "bash":
            # `.` reads the whole file before running it, so the file may go
            # away (cleanup) while the run is still going.
            script = f". {shlex.quote(path)}"
        else:
            # -e code sees require/module/__dirname as globals; so does code
            # run in this context, exactly as if it had been passed with -e.
            script = (f"require('vm').runInThisContext(require('fs').readFileSync({_js_string(path)}, 'utf8'),"
                      " {filename: '[eval]'})")
    argv = [exe, "-lc", script] if kind == "bash" else [exe, "-e", script]
    return LaunchSpec(argv=argv, env=env, cwd=cwd, stdin_data=None, cleanup=cleanup, label=kind)


def _write_script_file(script: str, suffix: str) -> tuple[str, Callable[[], None]]:
    """Write a too-long script to a private (0700) temp dir; returns (path, cleanup)."""
    try:
        folder = tempfile.mkdtemp(prefix="scriptbox-script-")
        path = os.path.join(folder, "script" + suffix)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(script)
    except OSError as exc:
        raise RunnerUnavailable(f"cannot write the script to a temporary file: {exc.strerror or exc}") from exc

    def cleanup() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    return path, cleanup


def _js_string(text: str) -> str:
    """A JavaScript string literal (JSON is valid JavaScript here)."""
    return json.dumps(text)

"""Runner selection: what a definition runs as (snapshot) and how to start it (LaunchSpec)."""

from __future__ import annotations

import functools
from typing import Any

from ..runners.base import LaunchSpec, RunnerUnavailable
from ..runners.host import prepare_host_launch
from ..store.records import Snapshot
from ..vocabulary import DEFAULT_OUTPUT_MODE, DEFAULT_TIMEOUT_MS, runner_of
from .inputs import RunInputs
from .vm2pool import Vm2Pool

# vm2_runner.ALARM_GRACE_SECONDS (that module is imported only when vm2 runs).
VM2_ALARM_GRACE_S = 5


def timeout_ms_of(definition: dict[str, Any]) -> int:
    return int(definition.get("timeoutMs") or DEFAULT_TIMEOUT_MS)


def output_mode_of(definition: dict[str, Any]) -> str:
    """The definition's output mode; definitions stored before it existed are "separate"."""
    return str(definition.get("outputMode") or DEFAULT_OUTPUT_MODE)


def snapshot_of(definition: dict[str, Any]) -> Snapshot:
    """What a run of this definition records about what ran."""
    return Snapshot(
        name=definition.get("name"),
        code_identifier=definition.get("codeIdentifier"),
        type=definition.get("type"),
        runner=runner_of(definition.get("type"), definition.get("runner")),
        timeout_ms=timeout_ms_of(definition),
        working_directory=definition.get("defaultWorkingDirectory") or "",
        version=definition.get("version"),
        env_keys=tuple(str(e["key"]) for e in definition.get("env") or [] if isinstance(e, dict) and "key" in e),
        output_mode=output_mode_of(definition),
    )


def pooled_vm2_spec(run_as: str | None, alarm_s: int) -> LaunchSpec:
    """A harness process for the vm2 pool (engine/vm2pool.py); raises RunnerUnavailable."""
    try:
        from ..runners import vm2_runner
    except ImportError as exc:
        raise RunnerUnavailable("the vm2 runner is not available in this build") from exc
    return vm2_runner.prepare_vm2_process(alarm_s, run_as=run_as, pooled=True)


def vm2_pool(size: int, run_as: str | None) -> Vm2Pool | None:
    """The pool of vm2 sandbox processes of an executing process; None when `size` is 0."""
    if size <= 0:
        return None
    # A pooled process's alarm must leave the run's timeout plus the runner's usual grace.
    return Vm2Pool(size, functools.partial(pooled_vm2_spec, run_as), grace_s=VM2_ALARM_GRACE_S)


def launch_spec(definition: dict[str, Any], run_id: str, script_id: str, data_dir: str,
                vm2_user: str | None = "nobody", inputs: RunInputs | None = None) -> LaunchSpec:
    """How to start a run of this definition with `inputs` (env and params,
    secrets opened); raises RunnerUnavailable."""
    spec = _runner_spec(definition, run_id, script_id, data_dir, vm2_user, inputs)
    spec.merge_stderr = output_mode_of(definition) == "merged"
    return spec


def _runner_spec(definition: dict[str, Any], run_id: str, script_id: str, data_dir: str,
                 vm2_user: str | None, inputs: RunInputs | None) -> LaunchSpec:
    runner = runner_of(definition.get("type"), definition.get("runner"))
    inputs = inputs or RunInputs(env=list(definition.get("env") or []))
    if runner == "host":
        return prepare_host_launch(definition, run_id=run_id, script_id=script_id, data_dir=data_dir,
                                   env_items=inputs.env, params=inputs.params)
    if runner == "vm2":
        try:
            from ..runners import vm2_runner
        except ImportError as exc:
            raise RunnerUnavailable("the vm2 runner is not available in this build") from exc
        env = {str(e["key"]): str(e["value"]) for e in inputs.env}
        spec: LaunchSpec = vm2_runner.prepare_vm2_launch(
            str(definition.get("script") or ""), env, timeout_ms_of(definition), run_as=vm2_user,
            params=inputs.params)
        spec.env = {**spec.env, "SCRIPTBOX_RUN_ID": run_id, "SCRIPTBOX_SCRIPT_ID": script_id}
        if not spec.label:
            spec.label = "vm2"
        return spec
    raise RunnerUnavailable(f"runner {runner!r} does not execute on the server")

"""What a run is given besides its script: env and params, secrets opened.

The run document keeps parameter values with secrets as "***" and the sealed
secret values in `secretParams` (until the run ends); the definition keeps its
secret env values sealed. Only here, right before a process starts (or a
browser result is recorded), are they opened, and every opened value is also
handed to the output masker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..definition_secrets import secret_values_of
from ..runners.base import RunnerUnavailable
from ..secretbox import SecretBox, SecretUnavailable


@dataclass(frozen=True)
class RunInputs:
    """The env entries and parameter values of one run, secrets in clear."""

    env: list[dict[str, str]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # every clear secret value, for masking


def open_run_secrets(run: Mapping[str, Any], box: SecretBox) -> dict[str, str]:
    """The run's secret parameter values in clear; raises SecretUnavailable."""
    sealed = run.get("secretParams") or {}
    return {name: box.open(value, f"parameter {name}") for name, value in sealed.items()}


def open_inputs(definition: Mapping[str, Any], run: Mapping[str, Any], box: SecretBox | None) -> RunInputs:
    """The run's env and params with every secret opened.

    Raises RunnerUnavailable (the run cannot start) when a secret cannot be
    opened with this server's key, saying which one and what to do.
    """
    env = [dict(e) for e in definition.get("env") or []]
    params = dict(run.get("params") or {})
    needs_key = any(e.get("secret") for e in env) or bool(run.get("secretParams"))
    if not needs_key:
        return RunInputs(env=env, params=params)
    if box is None:
        raise RunnerUnavailable("this process has no secret key to open the run's secrets")
    try:
        opened_params = open_run_secrets(run, box)
        secrets = secret_values_of({"env": definition.get("env")}, box)
        for entry in env:
            if entry.get("secret"):
                entry["value"] = box.open(entry["sealed"], f"env {entry['key']}")
    except SecretUnavailable as exc:
        raise RunnerUnavailable(str(exc)) from None
    params.update(opened_params)
    return RunInputs(env=env, params=params, secrets=(*secrets, *opened_params.values()))

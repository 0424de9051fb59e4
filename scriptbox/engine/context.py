"""What the engine's parts share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..secretbox import SecretBox
from ..store.executors import ClusterSlots, ExecutorStore
from ..store.records import Executor
from ..store.runs import RunStore
from .live import LiveOutput
from .options import EngineOptions
from .vm2pool import Vm2Pool


@dataclass(frozen=True)
class EngineContext:
    """What the engine's parts share, built once by the `Engine` facade."""

    runs: RunStore
    live: LiveOutput
    options: EngineOptions
    executor: Executor
    # The stored definition of a script id; raises NotFound.
    get_definition: Callable[[str], dict[str, Any]]
    data_dir: str
    vm2_user: str | None = "nobody"  # when running as root, vm2 sandboxes run as this user
    # Opens the secrets a run needs (engine/inputs.py); None: runs with secrets cannot start.
    secrets: SecretBox | None = None
    # Never signalled by any run's kill: the children this process had before
    # the engine started (the embedded database); filled by Engine.start().
    protected_pids: set[int] = field(default_factory=set)
    # vm2 sandbox processes started ahead of their runs; None: each run starts its own.
    vm2_pool: Vm2Pool | None = None
    # The executors registry (heartbeats prove an executor alive to every reaper);
    # None: this engine neither registers nor asks (some in-process tests).
    executors: ExecutorStore | None = None
    # SCRIPTBOX_CLUSTER_MAX_RUNS as slot documents; None: no cluster-wide limit.
    cluster_slots: ClusterSlots | None = None
    # "serve" or "worker": its role in the executors list; None: not registered
    # (in-process tests that build an engine of their own).
    role: str | None = None

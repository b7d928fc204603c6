"""What the runtime needs from the host: ``[resources]`` per client actor and ``[ray]`` (which
cluster). They live on the runtime floor, which uses them; the scenario only composes them.
No Ray import here, so loading a scenario does not load Ray."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raysim.inputs import at_least

MAX_CPUS_PER_ACTOR = 1024  # torch takes the thread count as a C int; no host has more cores
MIN_ACTOR_SHARE = 0.01  # Ray refuses resource amounts below 1e-4; a hundredth of a device is a floor


@dataclass(frozen=True, kw_only=True)
class ResourcesConfig:
    """Host resources per client actor (not the simulated device speed: see [system])."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    clients_per_actor: int | Literal["auto"] = "auto"
    vectorize: Literal["auto", "on", "off"] = "auto"  # train equal-sized clients as one batch of models
    # a client actor that dies is always replaced; its clients' unfinished work is re-run (same
    # updates, same metrics) or dropped (those clients fail that round with status "lost")
    actor_failure: Literal["rerun", "drop"] = "rerun"
    # what the driver keeps of the clients' own state (SCAFFOLD's controls, a user algorithm's
    # arrays, error-feedback memories) in memory; beyond it, it is spilled to the run folder
    client_state_mb: float = 1024.0

    def __post_init__(self) -> None:
        at_least("client_state_mb", self.client_state_mb, 0.0)
        if not MIN_ACTOR_SHARE <= self.num_cpus <= MAX_CPUS_PER_ACTOR:
            raise ValueError(f"num_cpus must be in [{MIN_ACTOR_SHARE}, {MAX_CPUS_PER_ACTOR}] (an actor's share "
                             f"of the cores and its torch threads), got {self.num_cpus}")
        if self.num_gpus != 0 and self.num_gpus < MIN_ACTOR_SHARE:
            raise ValueError(f"num_gpus must be 0 or >= {MIN_ACTOR_SHARE}, got {self.num_gpus}")
        if self.clients_per_actor != "auto":
            at_least("clients_per_actor", self.clients_per_actor, 1)


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """``address`` of an existing cluster ('' starts a local one with ``num_cpus`` CPUs, 0 = all)."""

    address: str = ""
    num_cpus: int = 0
    num_gpus: int = 0

    def __post_init__(self) -> None:
        at_least("num_cpus", self.num_cpus, 0)
        at_least("num_gpus", self.num_gpus, 0)

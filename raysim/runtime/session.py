"""Starting or joining a Ray cluster, sizing the actor pool, and the driver actor.

Every ``ray`` call outside the executor lives here. A local cluster is started with an
explicit CPU count and no dashboard, and shut down by whoever started it; joining an existing
cluster (``ray.address``) never shuts it down.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import ray

from raysim.scenario import RayConfig, ResourcesConfig


class ResourceError(RuntimeError):
    """The scenario asks for resources the cluster does not have."""


def start(config: RayConfig, *, address: str | None = None) -> bool:
    """Connects to ``address`` (or the scenario's) or starts a local Ray; True if started here."""
    if ray.is_initialized():
        return False
    target = address or config.address
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if target:
        ray.init(address=target, **common)
    else:
        # "local" starts a fresh instance even when another Ray cluster runs on this machine.
        ray.init(address="local", num_cpus=config.num_cpus or os.cpu_count(), num_gpus=config.num_gpus, **common)
    return True


def stop(started_here: bool) -> None:
    if started_here and ray.is_initialized():
        ray.shutdown()


@dataclass(frozen=True)
class PoolPlan:
    num_actors: int
    num_cpus: float
    num_gpus: float


def plan_pool(resources: ResourcesConfig, *, population: int) -> PoolPlan:
    """How many client actors, checked against what the cluster has (never an empty pool or a hang)."""
    cluster = ray.cluster_resources()
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if resources.num_gpus > 0 and gpus == 0:
        raise ResourceError(
            f"resources.num_gpus = {resources.num_gpus} but the Ray cluster has no GPUs: "
            "set resources.num_gpus = 0 or join a cluster with GPUs (ray.address)"
        )
    fit = math.floor(cpus / resources.num_cpus + 1e-9)
    if resources.num_gpus > 0:
        fit = min(fit, math.floor(gpus / resources.num_gpus + 1e-9))
    if fit < 1:
        raise ResourceError(
            f"one client actor needs {resources.num_cpus} CPU and {resources.num_gpus} GPU; "
            f"the cluster has {cpus:g} CPU and {gpus:g} GPU: lower resources.num_cpus / num_gpus"
        )
    if resources.clients_per_actor == "auto":
        wanted = min(fit, population)
    else:
        wanted = math.ceil(population / resources.clients_per_actor)
        if wanted > fit:
            raise ResourceError(
                f"resources.clients_per_actor = {resources.clients_per_actor} needs {wanted} actors of "
                f"{resources.num_cpus} CPU / {resources.num_gpus} GPU, but only {fit} fit in the cluster "
                f"({cpus:g} CPU, {gpus:g} GPU): raise clients_per_actor, lower resources.num_cpus, or use 'auto'"
            )
    return PoolPlan(num_actors=wanted, num_cpus=resources.num_cpus, num_gpus=resources.num_gpus)


def put(value: Any) -> Any:
    return ray.put(value)


def remote_driver(driver_cls: type, *args: Any, **kwargs: Any) -> Any:
    """The driver as a Ray actor; it takes no CPU slot so client actors fill the cluster."""
    return ray.remote(num_cpus=0)(driver_cls).remote(*args, **kwargs)


def call(handle: Any, method: str, *args: Any) -> Any:
    """Calls a driver actor's method and returns its value, unwrapping a client's error."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(getattr(handle, method).remote(*args))
    except RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


def kill(handle: Any) -> None:
    ray.kill(handle)


def node_of_actors() -> list[str]:
    """Node ids of live raysim client actors (for cluster tests)."""
    from ray.util.state import list_actors

    return [a.node_id for a in list_actors(filters=[("class_name", "=", "ClientActor"), ("state", "=", "ALIVE")])]

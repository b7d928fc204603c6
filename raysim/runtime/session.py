"""Starting or joining a Ray cluster, sizing the actor pool, and the driver actor.

Every ``ray`` call outside the executor lives here. A local cluster is started with an
explicit CPU count and no dashboard, and shut down by whoever started it (its processes are
listed in ``orphans.py``, so none outlives the run); joining an existing cluster
(``ray.address``) never shuts it down, and an address where nothing answers fails in seconds.

Ray starts its processes with ``fork`` and runs Python in the child before ``exec``: a thread
of ours running native code (BLAS, torch) at that moment can deadlock the child, and with it
``ray.init``. So :func:`start` must be called while this process runs no other busy thread;
the caller prepares the data after it returns (``api.py``), never alongside it.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import ray

from raysim.runtime import DriverLost, orphans
from raysim.runtime.resources import RayConfig, ResourcesConfig

CONNECT_TIMEOUT_S = 5.0


class ResourceError(RuntimeError):
    """The scenario asks for a cluster or resources that are not there (bad input: exit 2)."""


def start(config: RayConfig, *, address: str | None = None) -> bool:
    """Connects to ``address`` (or the scenario's) or starts a local Ray; True if started here."""
    if ray.is_initialized():
        return False
    target = address or config.address
    common = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if target:
        _check_reachable(target)
        ray.init(address=target, **common)
    else:
        orphans.reap()
        # "local" starts a fresh instance even when another Ray cluster runs on this machine.
        with _unused_head_processes_not_started():
            ray.init(address="local", num_cpus=config.num_cpus or os.cpu_count(), num_gpus=config.num_gpus,
                     object_store_memory=object_store_bytes(), **common)
        _end_unused_head_processes()
        orphans.record()
    for signum, handler in handlers.items():  # ray.init replaces SIGTERM's: the caller's decides
        if handler is not None:
            signal.signal(signum, handler)
    return True


# The local object store's share of the machine's memory. It holds the data set once (every
# actor reads it in place), the model versions in flight, and a dispatch's task arguments and
# results: each call's results are fetched and copied out as the call ends, then freed
# (ray_executor.py), so what is in flight is about the client states sent to the actors (100
# clients of the FedAvg CNN under SCAFFOLD: at most 0.7 GB, less what the actors hold) and a few
# calls' results. Ray's default, 30%, is sized for programs that keep their objects; here it only
# lets shared memory that was once used stay resident (it is not returned to the system when
# objects are freed) without any run needing it. 15% holds the data sets raysim ships (CIFAR-10:
# 0.2 GB) and that traffic several times over on an 8 GB machine; an object that does not fit is
# spilled to disk by Ray, which is slower but never fails. Joining a cluster keeps its setting.
OBJECT_STORE_FRACTION = 0.15
MIN_OBJECT_STORE_BYTES = 1 << 30  # on a machine of under 7 GB, but never more than Ray's own 30%


def object_store_bytes() -> int:
    """The object store a locally started Ray gets (``OBJECT_STORE_FRACTION``)."""
    import psutil

    total = psutil.virtual_memory().total
    return max(int(OBJECT_STORE_FRACTION * total), min(MIN_OBJECT_STORE_BYTES, int(0.3 * total)))


# Head processes ``ray.init`` starts that a run it started for itself never uses; ``ray.init``
# has no switch for them. They are not started (``_unused_head_processes_not_started``), and
# ended once it returns where a Ray names its methods otherwise (about 160 MB together): the
# autoscaler monitor (a fixed local cluster never scales; it also ignores SIGTERM, which held
# every ``ray.shutdown`` for a second), the log monitor (workers' logs are not streamed here:
# ``log_to_driver=False``) and the API server that ``include_dashboard=False`` still starts (for
# the state and job APIs: ``ray status`` and ``ray list`` answer only for a Ray started
# with ``ray start``, which raysim joins with ``--address`` and leaves alone).
UNUSED_HEAD_SCRIPTS = ("autoscaler/_private/monitor.py", "_private/log_monitor.py", "dashboard/dashboard.py")


# The methods of Ray's ``Node`` that start them (ray 2.60; a Ray without one starts its process).
UNUSED_HEAD_STARTERS = ("start_monitor", "start_log_monitor", "start_api_server")


@contextmanager
def _unused_head_processes_not_started():
    """While ``ray.init`` runs, ``UNUSED_HEAD_STARTERS`` start nothing. Started and ended, the
    three took 1.6 s of CPU during ``ray.init`` (each imports Ray, the API server its web
    modules too), and ``ray.init`` waited for the API server to publish its address (0.5-0.9 s
    here, on its critical path) for nothing: benchmarks/startup.py, benchmarks/README.md."""
    from ray._private.node import Node

    saved = {name: Node.__dict__[name] for name in UNUSED_HEAD_STARTERS if name in Node.__dict__}
    for name in saved:
        setattr(Node, name, _start_nothing)
    try:
        yield
    finally:
        for name, method in saved.items():
            setattr(Node, name, method)


def _start_nothing(self: Any, *args: Any, **kwargs: Any) -> None:
    """In place of a ``Node`` method starting a process a local run never uses."""


def _end_unused_head_processes() -> None:
    """Ends the processes of ``UNUSED_HEAD_SCRIPTS``, children of this process; a Ray whose
    scripts are named otherwise keeps them."""
    import psutil

    def unused(process: psutil.Process) -> bool:
        try:
            return any(arg.endswith(UNUSED_HEAD_SCRIPTS) for arg in process.cmdline())
        except psutil.Error:
            return False

    orphans.end([child for child in psutil.Process().children() if unused(child)])


def record_processes(started_here: bool) -> None:
    """Lists the local Ray's processes again once its workers are up (see orphans.py)."""
    if started_here:
        orphans.record()


def stop(started_here: bool) -> None:
    if started_here and ray.is_initialized():
        ray.shutdown()
        orphans.release()


def _check_reachable(target: str) -> None:
    """Fails within seconds when no cluster answers at ``host:port`` (Ray itself retries for minutes)."""
    if target == "auto":
        return
    host, _, port = target.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ResourceError(f"ray.address = {target!r} is not 'auto' or HOST:PORT (or ray://HOST:PORT)")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ResourceError(
            f"ray.address (or --address) = {target!r}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start one with `ray start --head`, fix the address, or leave it empty for a local Ray"
        ) from None


@dataclass(frozen=True)
class PoolPlan:
    num_actors: int
    num_cpus: float
    num_gpus: float
    bundles: tuple[int, ...] = ()  # inside a placement group (a sweep's trial): each actor's bundle


def plan_pool(resources: ResourcesConfig, *, population: int) -> PoolPlan:
    """How many client actors, checked against what the cluster has (never an empty pool or a hang).

    Inside a placement group (a Ray Tune trial of ``raysim sweep``) the actors must fit the
    group's bundles, one actor each: an actor asking for more than the reservation holds would
    wait forever and hang the sweep (ray#24445), so it is refused here instead."""
    group = ray.util.get_current_placement_group()
    if group is not None:
        return _plan_in_group(resources, population, group.bundle_specs)
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


def _plan_in_group(resources: ResourcesConfig, population: int, bundles: list[dict]) -> PoolPlan:
    """One client actor per bundle of the trial's placement group that can hold one."""
    fitting = [i for i, b in enumerate(bundles)
               if b.get("CPU", 0.0) + 1e-9 >= resources.num_cpus and b.get("GPU", 0.0) + 1e-9 >= resources.num_gpus]
    if resources.clients_per_actor == "auto":
        wanted = min(len(fitting), population)
    else:
        wanted = math.ceil(population / resources.clients_per_actor)
    if not fitting or wanted > len(fitting):
        raise ResourceError(
            f"this trial needs {max(wanted, 1)} client actors of {resources.num_cpus} CPU / {resources.num_gpus} GPU "
            f"but its placement group holds {len(fitting)} such bundles ({bundles}): the sweep sized it wrongly"
        )
    return PoolPlan(num_actors=wanted, num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                    bundles=tuple(fitting[:wanted]))


def put(value: Any) -> Any:
    return ray.put(value)


def fetch(ref: Any) -> Any:
    """The value behind ``ref`` (or a list of refs); an exception raised where it was computed is
    raised here as itself (a scenario's ``ConfigError`` stays one, without Ray's wrapping)."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


class DriverActor:
    """The driver actor: a process started before the run's driver can be built, which builds it
    (``build``) and runs its methods (``call``).

    The driver needs the initial model, which the first client actor computes once it has
    imported torch; an actor of the driver's own class could only be created then, and its
    process start (Python, Ray, the driver's modules: 0.8 s of CPU) followed the client actors'
    instead of overlapping them (benchmarks/startup.py). ``driver_cls`` arrives with the actor,
    so its modules are imported at its start too."""

    def __init__(self, driver_cls: type):
        self._driver_cls = driver_cls
        self._driver: Any = None

    def build(self, kwargs: dict[str, Any]) -> None:
        self._driver = self._driver_cls(**kwargs)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self._driver, method)(*args)


def start_driver(driver_cls: type) -> Any:
    """Starts the driver actor for a driver of ``driver_cls`` (built later: ``build_driver``); it
    takes no CPU slot so client actors fill the cluster. In a sweep's trial it is placed in the
    trial's placement group (any bundle: it needs nothing)."""
    return ray.remote(num_cpus=0)(DriverActor).options(**in_group(-1)).remote(driver_cls)


def build_driver(handle: Any, **kwargs: Any) -> None:
    """Builds the driver in its actor (``start_driver``); the driver's own error is raised as itself."""
    _answer(handle.build.remote(kwargs), "build")


def in_group(bundle: int) -> dict[str, Any]:
    """Ray options placing an actor in ``bundle`` of the current placement group (-1: any), its
    own children included; {} outside a placement group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group = ray.util.get_current_placement_group()
    if group is None:
        return {}
    return {"scheduling_strategy": PlacementGroupSchedulingStrategy(
        placement_group=group, placement_group_bundle_index=bundle, placement_group_capture_child_tasks=True)}


def call(handle: Any, method: str, *args: Any) -> Any:
    """Calls the built driver's method and returns its value, unwrapping a client's error."""
    return _answer(handle.call.remote(method, *args), method)


def _answer(ref: Any, method: str) -> Any:
    from ray.exceptions import RayActorError

    try:
        return fetch(ref)
    except RayActorError as exc:
        raise DriverLost(f"the driver actor died during '{method}': {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def kill(handle: Any) -> None:
    ray.kill(handle)


def node_of_actors() -> list[str]:
    """Node ids of live raysim client actors (for cluster tests)."""
    from ray.util.state import list_actors

    return [a.node_id for a in list_actors(filters=[("class_name", "=", "ClientActor"), ("state", "=", "ALIVE")])]

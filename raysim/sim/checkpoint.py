"""Loading checkpoints without running code: pickle restricted to an allow-list of classes.

A plain ``pickle.loads`` calls whatever callable the bytes name (``os.system`` included), so
``raysim run --resume`` on a results folder from someone else would run their code. Checkpoints
only ever hold the driver's state: builtin values and containers (which pickle encodes
without naming a global), numpy arrays and scalars, and the raysim classes listed below. Any
other global, and ``getattr`` on anything but the one bound method the state holds, is refused
before it is resolved, so nothing outside the list is ever called.
A class added to the driver's checkpointed state must be added here (tests/test_resume.py
fails until it is).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype")} | {
    (f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")
}
_RAYSIM = {
    "raysim.algorithms.personal": ("PersonalLayers",),
    "raysim.algorithms.server_opt": ("ServerOptState",),
    "raysim.algorithms.staleness": ("StalenessWeight",),
    "raysim.algorithms.strategy": ("ServerState",),
    "raysim.network.config": ("NetworkConfig",),
    "raysim.network.ledger": ("Block", "PowRace"),
    "raysim.network.mqtt": ("Broker",),
    "raysim.network.transport": ("Link", "Message", "NodeTraffic", "SerialQueue", "Transport"),
    "raysim.contribution.config": ("ContributionConfig",),
    "raysim.contribution.plant": ("PlantConfig",),
    "raysim.incentives.config": ("IncentiveConfig",),
    "raysim.incentives.participation": ("Earnings",),
    "raysim.incentives.rewards": ("BetaReputation",),
    "raysim.privacy.accounting": ("PrivacyAccountant",),
    "raysim.privacy.dp": ("AdaptiveClipState",),
    "raysim.privacy.stage": ("PrivacyConfig", "PrivacyStage"),
    "raysim.sim.client_state": ("ClientState",),
    "raysim.sim.clock": ("SimClock",),
    "raysim.sim.contribution": ("Ledger",),
    "raysim.sim.dispatch": ("Task", "TriggerCheck", "Later"),
    "raysim.sim.network": ("Chain", "NetworkLinks"),
    "raysim.sim.incentives": ("Incentives",),
    "raysim.sim.policies.asynchronous": ("AsyncAggregation", "AsyncPolicy"),
    "raysim.sim.policies.base": ("Arrival", "Failure", "TaskInfo", "Timer", "Dispatch"),
    "raysim.sim.policies.event": ("EventPolicy", "EventTriggered"),
    "raysim.sim.policies.hybrid": ("HybridPolicy", "HybridRounds"),
    "raysim.sim.policies.periodic": ("PeriodicPolicy", "PeriodicRounds"),
    "raysim.sim.policies.staleness_buffer": ("StalenessBuffer",),
    "raysim.sim.policies.sync": ("SyncPolicy", "SyncRounds"),
    "raysim.sim.system": ("Availability", "DeviceProfile", "Population", "SystemConfig"),
    "raysim.sim.tasks": ("ClientResult",),
}
ALLOWED = _NUMPY | {("collections", "Counter")} | {(module, name) for module, names in _RAYSIM.items() for name in names}
# Bound methods the state holds (pickled as getattr(instance, name)): the privacy stage's link.
_METHODS = {("raysim.sim.system", "Population", "link")}


class UnsafePickleError(pickle.UnpicklingError):
    """The bytes name a global outside the allow-list; nothing was called."""


def _bound_method(obj: Any, name: str) -> Any:
    """``getattr`` for the allow-listed bound methods only (a free getattr reaches ``os``)."""
    cls = type(obj)
    if (cls.__module__, cls.__qualname__, name) not in _METHODS:
        raise UnsafePickleError(f"refused getattr({cls.__qualname__}, {name!r}): not a checkpointed method")
    return getattr(obj, name)


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _bound_method
        if (module, name) not in ALLOWED:
            raise UnsafePickleError(f"refused {module}.{name}: not a class a raysim checkpoint holds")
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """``pickle.loads`` that resolves only allow-listed globals.

    Raises:
        UnsafePickleError: The data names anything else (a crafted or foreign pickle).
        pickle.UnpicklingError: The data is truncated or malformed (every other failure of
            damaged bytes is re-raised as this, so callers catch one type).
    """
    try:
        return _Restricted(io.BytesIO(data)).load()
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # damaged bytes fail in arbitrary ways: EOFError, struct.error, ...
        raise pickle.UnpicklingError(f"damaged pickle ({type(exc).__name__}: {exc})") from exc

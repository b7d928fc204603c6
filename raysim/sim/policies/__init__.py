"""Round policies by name: when clients start and when updates are aggregated."""

from raysim.sim.policies.base import (
    Action,
    Aggregate,
    Arrival,
    Dispatch,
    Discard,
    Dispatched,
    Event,
    Failure,
    Policy,
    PolicyFacts,
    ServerView,
    SetTimer,
    Suppressed,
    TaskInfo,
    Timer,
    facts_of,
    postponed,
)
from raysim.sim.policies.asynchronous import AsyncPolicy
from raysim.sim.policies.event import EventPolicy
from raysim.sim.policies.hybrid import HybridPolicy
from raysim.sim.policies.periodic import PeriodicPolicy
from raysim.sim.policies.sync import SyncPolicy

POLICIES: dict[str, type] = {p.kind: p for p in (SyncPolicy, PeriodicPolicy, HybridPolicy, AsyncPolicy, EventPolicy)}

__all__ = [
    "Action", "AsyncPolicy", "EventPolicy", "HybridPolicy", "PeriodicPolicy", "Aggregate", "Arrival", "Discard", "Dispatch", "Dispatched", "Event", "Failure", "POLICIES",
    "Policy", "PolicyFacts", "ServerView", "SetTimer", "Suppressed", "SyncPolicy", "TaskInfo", "Timer", "facts_of", "postponed",
]

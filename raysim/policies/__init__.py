"""Round policies by name: when clients start and when updates are aggregated."""

from raysim.policies.base import (
    Action,
    Aggregate,
    Arrival,
    Dispatch,
    Discard,
    Dispatched,
    Event,
    Failure,
    Policy,
    ServerView,
    SetTimer,
    Suppressed,
    TaskInfo,
    Timer,
    postponed,
)
from raysim.policies.asynchronous import AsyncPolicy
from raysim.policies.event import EventPolicy
from raysim.policies.hybrid import HybridPolicy
from raysim.policies.periodic import PeriodicPolicy
from raysim.policies.sync import SyncPolicy

POLICIES: dict[str, type] = {p.kind: p for p in (SyncPolicy, PeriodicPolicy, HybridPolicy, AsyncPolicy, EventPolicy)}

__all__ = [
    "Action", "AsyncPolicy", "EventPolicy", "HybridPolicy", "PeriodicPolicy", "Aggregate", "Arrival", "Discard", "Dispatch", "Dispatched", "Event", "Failure", "POLICIES",
    "Policy", "ServerView", "SetTimer", "Suppressed", "SyncPolicy", "TaskInfo", "Timer", "postponed",
]

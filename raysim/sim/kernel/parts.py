"""What the driver is handed: built parts, never the scenario.

The scenario floor composes them (``raysim/scenario/composition.py``, ``driver_parts``); the
driver only runs them, so it can be read, built and tested without a scenario file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from raysim.algorithms.personal import PersonalLayers
from raysim.algorithms.strategy import ServerStrategy
from raysim.compression.channel import Channel
from raysim.network.config import NetworkConfig
from raysim.models.learning_task import Classification, LearningTask
from raysim.privacy.stage import PrivacyStage
from raysim.sim.cost.devices import Population
from raysim.sim.policies import Policy
from raysim.sim.selection.protocol import Selector
from raysim.sim.selection.uniform import UniformSelector
from raysim.sim.stages.stage import Stage


@dataclass(frozen=True)
class RunLimits:
    """When the run ends (``rounds``, or simulated time past ``sim_time_limit`` when it is not 0),
    how often the global model is scored (every ``eval_every`` rounds, and at the end) and kept
    as a result (every ``save_model_every`` rounds, 0 never: ``RoundReport.model``)."""

    rounds: int
    sim_time_limit: float = 0.0
    eval_every: int = 1
    save_model_every: int = 0

    def keeps_model(self, round_number: int) -> bool:
        return bool(self.save_model_every) and round_number % self.save_model_every == 0


@dataclass(frozen=True)
class ClientSchedule:
    """The local work a task asks for: ``epochs``; FedProx's stragglers (``straggler_fraction`` of
    each dispatch) run fewer, and ``drop_stragglers`` (FedAvg) throws their partial work away."""

    epochs: int
    straggler_fraction: float = 0.0
    drop_stragglers: bool = False


@dataclass(frozen=True, kw_only=True)
class DriverParts:
    """Everything a run's driver is made of. The driver takes ownership: the policy, the personal
    layers, the privacy stage, the selector and the stages carry state that evolves (and is
    checkpointed) with the run."""

    policy: Policy
    strategy: ServerStrategy
    population: Population
    clients_per_round: int
    limits: RunLimits
    schedule: ClientSchedule
    seed: int
    exchange_bytes: int  # what one model crosses the simulated network as (the body only, with heads)
    attackers: frozenset[int] = frozenset()  # the attack's clients (the attack stage tampers with their updates)
    personal: PersonalLayers | None = None
    privacy: PrivacyStage | None = None  # DP or secure aggregation: the step's reduction (server_step.py)
    client_state_bytes: int = 1 << 30  # the per-client store's memory budget (state_store.py)
    channel: Channel | None = None  # update compression on the simulated link (its codec's sizes, the broadcast)
    network: NetworkConfig | None = None  # [network] other than star (gossip and hierarchical run their own loop)
    task: LearningTask = field(default_factory=Classification)  # [task]: what evaluations score and report
    stages: tuple[Stage, ...] = ()  # the run's optional features, in the order their hooks run (stages/stage.py)
    selector: Selector = field(default_factory=UniformSelector)  # [selection.selector]: who each dispatch starts

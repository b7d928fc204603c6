"""What the driver is handed: built parts, never the scenario.

The scenario floor composes them (``raysim/scenario/composition.py``, ``driver_parts``); the
driver only runs them, so it can be read, built and tested without a scenario file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raysim.algorithms.personal import PersonalLayers
from raysim.algorithms.strategy import ServerStrategy
from raysim.compression.channel import Channel
from raysim.network.config import NetworkConfig
from raysim.contribution import ContributionConfig
from raysim.incentives.config import IncentiveConfig
from raysim.models.learning_task import Classification, LearningTask
from raysim.privacy.stage import PrivacyStage
from raysim.sim.chain import Chain
from raysim.sim.cost.devices import Population
from raysim.sim.cost.links import NetworkLinks
from raysim.sim.evaluation import EvaluationConfig
from raysim.sim.policies import Policy
from raysim.sim.selection.protocol import Selector
from raysim.sim.selection.uniform import UniformSelector


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
    layers and the privacy stage carry state that evolves (and is checkpointed) with the run."""

    policy: Policy
    strategy: ServerStrategy
    population: Population
    clients_per_round: int
    limits: RunLimits
    schedule: ClientSchedule
    seed: int
    exchange_bytes: int  # what one model crosses the simulated network as (the body only, with heads)
    attack: Any = None  # an attack of attacks.py, run by the clients in ``attackers``
    attackers: frozenset[int] = frozenset()
    personal: PersonalLayers | None = None
    privacy: PrivacyStage | None = None
    client_state_bytes: int = 1 << 30  # the per-client store's memory budget (state_store.py)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)  # client evaluation ([evaluation])
    channel: Channel | None = None  # update compression on the simulated link
    network: NetworkConfig | None = None  # [network] other than star (gossip and hierarchical run their own loop)
    links: NetworkLinks | None = None  # broker and ledger: transfers timed through the network's nodes
    chain: Chain | None = None  # ledger: a block per aggregation
    contribution: ContributionConfig | None = None  # value each step's participants (sim/contribution.py)
    incentive: IncentiveConfig | None = None  # pay them, and let the pay decide who joins (sim/incentives.py)
    task: LearningTask = field(default_factory=Classification)  # [task]: what evaluations score and report
    selector: Selector = field(default_factory=UniformSelector)  # [selection.selector]: who each dispatch starts

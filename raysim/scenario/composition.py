"""What a scenario's names become: the client optimiser, the attackers, the server strategy,
and the driver's parts (``driver_parts``).

Kept apart from the driver, which only runs them, and from sections.py, which only validates.
"""

from __future__ import annotations

from typing import Callable

from raysim.algorithms.attacks import choose_attackers
from raysim.algorithms.personal import PersonalLayers, local_mask
from raysim.algorithms.server_opt import make_server_optimizer
from raysim.algorithms.sgd import SGDConfig
from raysim.algorithms.strategy import Strategy
from raysim.inputs import import_function
from raysim.models.layout import ParamLayout
from raysim.privacy.stage import PrivacyStage
from raysim.scenario.combinations import max_clients_per_round
from raysim.scenario.sections import WEIGHTINGS, Scenario
from raysim.sim.network import Chain, NetworkLinks
from raysim.sim.parts import ClientSchedule, DriverParts, RunLimits
from raysim.sim.system import Population


def client_sgd(scenario: Scenario) -> SGDConfig:
    """The client optimiser a scenario asks for. FedSGD: one step with lr 1, so the delta is minus
    the gradient of the client's loss, weight decay included (momentum and the proximal term
    vanish at the first step from the global model)."""
    client = scenario.client
    if scenario.server.strategy == "fedsgd":
        return SGDConfig(lr=1.0, weight_decay=client.weight_decay)
    return SGDConfig(lr=client.lr, momentum=client.momentum, weight_decay=client.weight_decay,
                     proximal_mu=client.proximal_mu)


def attackers(scenario: Scenario) -> list[int]:
    """The misbehaving clients, a function of the seed alone."""
    if scenario.attack.kind == "none":
        return []
    return [int(c) for c in choose_attackers(scenario.data.num_clients, scenario.attack.fraction, scenario.run.seed)]


WEIGHTING_PARAMETERS = ("client_id", "samples")  # a user weighting's documented signature


def user_weighting(spec: str) -> Callable[[int, int], float]:
    """The user function ``server.weighting`` names, checked to be a ``def`` taking exactly
    (client_id, samples) before anything calls it (``inputs.import_function``)."""
    return import_function(spec, what="server.weighting", choices=list(WEIGHTINGS),
                           parameters=WEIGHTING_PARAMETERS)


def make_strategy(scenario: Scenario) -> Strategy:
    """Composes the scenario's weighting, reducer and server optimizer."""
    server = scenario.server
    weighting = server.weighting
    if ":" in weighting:
        weighting = user_weighting(weighting)
    reducer = "fednova" if server.strategy == "fednova" else server.aggregator
    params = {"trimmed_mean": {"trim": server.trim}, "krum": {"num_byzantine": server.num_byzantine},
              "multi_krum": {"num_byzantine": server.num_byzantine, "num_selected": server.num_selected}}
    optimizer = make_server_optimizer(server.optimizer, lr=server.lr, momentum=server.momentum,
                                      beta1=server.beta1, beta2=server.beta2, tau=server.tau)
    return Strategy(server_optimizer=optimizer, weighting=weighting, reducer=reducer,
                    reducer_params=params.get(reducer, {}), client_sgd=client_sgd(scenario))


def driver_parts(scenario: Scenario, *, layout: ParamLayout, num_classes: int, num_clients: int) -> DriverParts:
    """The one place a scenario becomes the driver's parts: its policy, strategy, population,
    attack, personal layers, privacy stage, limits, client schedule and, for a ``[network]``
    other than star, its links and ledger."""
    prefixes = scenario.personal.local_layers
    personal = PersonalLayers(local_mask(layout, prefixes)) if prefixes else None
    # what crosses the (simulated) network: the body only, when heads stay on the clients
    exchange_bytes = round(layout.nbytes * (personal.body_fraction if personal else 1.0))
    population = Population(scenario.system, num_clients, scenario.run.seed)
    privacy = (PrivacyStage(scenario.privacy, seed=scenario.run.seed, population=num_clients,
                            cohort=scenario.clients_per_round, drawn=max_clients_per_round(scenario),
                            link=population.link, update_bytes=exchange_bytes, num_params=layout.size)
               if scenario.privacy.active else None)
    run, client, network = scenario.run, scenario.client, scenario.network
    links = NetworkLinks(network, population) if network.topology in ("broker", "ledger") else None
    chain = (Chain(network, seed=run.seed, num_clients=num_clients)
             if network.topology == "ledger" else None)
    return DriverParts(
        policy=scenario.policy.build(), strategy=make_strategy(scenario), population=population,
        clients_per_round=scenario.clients_per_round,
        limits=RunLimits(rounds=run.rounds, sim_time_limit=run.sim_time_limit, eval_every=run.eval_every),
        schedule=ClientSchedule(epochs=client.epochs, straggler_fraction=client.straggler_fraction,
                                drop_stragglers=scenario.server.drop_stragglers),
        seed=run.seed, exchange_bytes=exchange_bytes, attack=scenario.attack.build(num_classes),
        attackers=frozenset(attackers(scenario)), personal=personal, privacy=privacy,
        scaffold=scenario.server.strategy == "scaffold", evaluation=scenario.evaluation,
        channel=scenario.compression.channel(layout.tensor_sizes),
        network=network if network.topology != "star" else None, links=links, chain=chain,
        contribution=scenario.contribution if scenario.contribution.active else None,
        incentive=scenario.incentive if scenario.incentive.active else None,
    )

"""Rules that span scenario sections: which combinations of options run, and which are refused.

Each section validates its own keys; this module holds every rule that needs two or more
sections at once (a cohort no larger than the population, FedSGD's full-batch step, what
secure aggregation hides from the server, ...). A refused combination raises ``ValueError``
naming the keys and the fix; the loader turns it into a ``ConfigError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raysim.data import Natural
from raysim.privacy.dp import adaptive_noise_multiplier
from raysim.system import Population

if TYPE_CHECKING:
    from raysim.scenario import Scenario


def check_combinations(scenario: Scenario) -> None:
    """Raises ValueError for the first combination of sections that cannot run as named."""
    _check_population(scenario)
    _check_strategy(scenario)
    _check_privacy(scenario)


def _check_population(scenario: Scenario) -> None:
    cohort = scenario.selection.cohort(scenario.data.num_clients)
    if cohort > scenario.data.num_clients:
        raise ValueError(
            f"selection.clients_per_round = {cohort} exceeds data.num_clients = {scenario.data.num_clients}"
        )
    natural = isinstance(scenario.data.partition, Natural)
    if scenario.data.dataset == "synthetic" and not natural:
        raise ValueError("data.dataset = 'synthetic' has one client per device: set data.partition = 'natural'")
    if natural and scenario.data.dataset != "synthetic":
        raise ValueError(f"data.partition = 'natural' needs a dataset with devices (synthetic), not {scenario.data.dataset!r}")
    if scenario.system.trace:  # read now, so a bad trace stops the run before anything starts
        Population(scenario.system, scenario.data.num_clients, scenario.run.seed)


def _check_strategy(scenario: Scenario) -> None:
    server, client = scenario.server, scenario.client
    if server.strategy == "scaffold" and (scenario.policy.kind != "sync" or client.momentum):
        raise ValueError("server.strategy = 'scaffold' needs policy.kind = 'sync' and client.momentum = 0")
    if scenario.personal.local_layers and (scenario.policy.kind == "event" or server.strategy == "scaffold"):
        raise ValueError("personal.local_layers cannot be combined with policy 'event' or strategy 'scaffold'")
    if server.strategy == "fedsgd" and (client.epochs != 1 or client.batch_size != 0):
        raise ValueError(
            "server.strategy = 'fedsgd' sends one full-batch gradient per client: "
            "set client.epochs = 1 and client.batch_size = 0"
        )


def _check_privacy(scenario: Scenario) -> None:
    """Refuses combinations that cannot work when the server must not see single updates."""
    privacy, server = scenario.privacy, scenario.server
    hidden = privacy.secure_aggregation != "none" or privacy.homomorphic != "none"
    protected = "secure aggregation" if privacy.secure_aggregation != "none" else "homomorphic encryption"
    if hidden and server.aggregator != "mean":
        raise ValueError(f"server.aggregator = {server.aggregator!r} needs individual updates, which "
                         f"{protected} hides from the server: use aggregator = 'mean'")
    if hidden and server.strategy in ("fednova", "scaffold"):
        raise ValueError(f"server.strategy = {server.strategy!r} needs per-client values the server "
                         f"cannot see under {protected}")
    if privacy.active and scenario.policy.kind != "sync":
        raise ValueError("the [privacy] options run with policy.kind = 'sync' (accounting and masking "
                         "assume one cohort per round)")
    if (privacy.dp != "none" or privacy.secure_aggregation != "none") and server.weighting != "uniform":
        raise ValueError("differential privacy and secure aggregation average with a fixed, uniform "
                         "weighting: set server.weighting = 'uniform'")
    if privacy.adaptive_clipping:
        adaptive_noise_multiplier(privacy.noise_multiplier, scenario.clients_per_round / 20.0)

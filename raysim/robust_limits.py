"""Robust aggregators' parameters against the number of updates they will see in one step.

Trimmed mean, Krum and Multi-Krum refuse (in robust.py) a step with too few updates; without
this check such a scenario loads, starts, and ends in a traceback at the first aggregation.
The limits need the server section and the policy and selection sections together, so they are
a cross-section rule: ``combinations.check_combinations`` calls :func:`check_robust_limits`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raysim.scenario import Scenario


def updates_per_step(scenario: Scenario) -> tuple[int, str]:
    """How many updates one aggregation gets at most, and the key that sets it.

    FedBuff aggregates its buffer, FedAsync each update alone; every other policy aggregates
    (at most) the round's cohort.
    """
    policy = scenario.policy
    if policy.kind == "async":
        if policy.mode == "fedasync":
            return 1, "policy.mode = 'fedasync' (one update per step)"
        return policy.buffer_size, f"policy.buffer_size = {policy.buffer_size}"
    return scenario.clients_per_round, f"selection's {scenario.clients_per_round} clients per round"


def check_robust_limits(scenario: Scenario) -> None:
    """Raises ValueError naming server.trim / num_byzantine / num_selected when the step is too small.

    Trimmed mean drops 2 * trim values per coordinate, so it needs 2 * trim < K; Krum's guarantee
    (Blanchard et al. 2017) needs K > 2f + 2; Multi-Krum averages m of the K - f most central
    updates, so m <= K - f.
    """
    server = scenario.server
    if server.aggregator not in ("trimmed_mean", "krum", "multi_krum"):
        return
    k, source = updates_per_step(scenario)
    if server.aggregator == "trimmed_mean" and 2 * server.trim >= k:
        raise ValueError(f"server.trim = {server.trim} drops every update of a step with {source}: "
                         f"set server.trim <= {(k - 1) // 2} or aggregate more updates")
    if server.aggregator in ("krum", "multi_krum") and k <= 2 * server.num_byzantine + 2:
        raise ValueError(f"server.aggregator = {server.aggregator!r} with server.num_byzantine = "
                         f"{server.num_byzantine} needs more than {2 * server.num_byzantine + 2} updates "
                         f"per step, but has {source}: lower num_byzantine or aggregate more updates")
    if server.aggregator == "multi_krum" and server.num_selected > k - server.num_byzantine:
        raise ValueError(f"server.num_selected = {server.num_selected} exceeds the {k - server.num_byzantine} "
                         f"updates Multi-Krum keeps ({source} minus server.num_byzantine): "
                         f"set server.num_selected <= {k - server.num_byzantine}")

"""Policy facts are asked of the policy (issue 34, item 5): each built-in answers its own, a
user's policy gets defaults that restrict nothing, and the scenario's rules ask the facts
rather than compare kind strings, so a user's policy is held to what it declares."""

from __future__ import annotations

import pytest

from raysim.scenario.combinations import max_clients_per_round, max_updates_per_step, policy_facts
from raysim.sim.policies import AsyncPolicy, EventPolicy, HybridPolicy, PeriodicPolicy, PolicyFacts, SyncPolicy
from raysim.sim.policies import facts_of
from tests.user_code import SequentialPolicy

COHORT, POPULATION = 4, 8


@pytest.mark.parametrize("settings, facts", [
    (SyncPolicy(), PolicyFacts(updates_per_step=4, tasks_per_round=4, synchronous=True)),
    (SyncPolicy(over_selection=1.3), PolicyFacts(updates_per_step=4, tasks_per_round=6, synchronous=True)),
    (SyncPolicy(over_selection=3.0), PolicyFacts(updates_per_step=4, tasks_per_round=8, synchronous=True)),
    (PeriodicPolicy(period_s=5.0), PolicyFacts(updates_per_step=4, tasks_per_round=4)),
    (HybridPolicy(min_updates=2, deadline_s=3.0), PolicyFacts(updates_per_step=4, tasks_per_round=4)),
    (AsyncPolicy(mode="fedbuff", buffer_size=3), PolicyFacts(updates_per_step=3, tasks_per_round=4)),
    (AsyncPolicy(mode="fedasync"), PolicyFacts(updates_per_step=1, tasks_per_round=4, mixes_one_update=True)),
    (EventPolicy(threshold=0.1), PolicyFacts(updates_per_step=1, tasks_per_round=4, mixes_one_update=True,
                                             client_decides_sending=True)),
    (SequentialPolicy(), PolicyFacts(updates_per_step=4, tasks_per_round=4)),  # a user's: the defaults
])
def test_each_policy_answers_its_facts(settings, facts):
    assert facts_of(settings, cohort=COHORT, population=POPULATION) == facts


def test_the_scenario_rules_ask_the_facts(tiny):
    scenario = tiny(policy={"kind": "async", "mode": "fedbuff", "buffer_size": 3})
    assert max_updates_per_step(scenario) == 3 and max_clients_per_round(scenario) == 4
    assert not policy_facts(scenario).synchronous


@pytest.mark.parametrize("kind, refused", [("tests.user_code:SequentialPolicy", False),
                                           ("tests.user_code:MixingPolicy", True)])
def test_a_user_policy_is_held_to_what_it_declares(tiny, kind, refused):
    """A robust rule compares several updates: a policy that declares it mixes one at a time is
    refused with it, as FedAsync is; one that declares nothing is not."""
    make = lambda: tiny(policy={"kind": kind}, server={"aggregator": "median"})  # noqa: E731
    if refused:
        with pytest.raises(Exception, match="applies each update on its own"):
            make()
    else:
        make()

"""A server strategy's init may receive the run's facts (issue 34, item 7): a user strategy
declaring ``init(self, params, run)`` is handed the population, cohort and seed; one declaring
``init(self, params)`` is called as before; any other init is refused at load."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from raysim.algorithms.strategy import RunFacts
from raysim import inputs
from raysim.inputs import UserCodeError
from raysim.scenario.composition import make_strategy

TOLD: list[RunFacts] = []


class ToldTheRun:
    def init(self, params, run):
        TOLD.append(run)
        return {}

    def aggregate(self, params, state, updates):
        return params, state, {}


class Untold:
    def init(self, params):
        return {"plain": np.zeros(1)}

    def aggregate(self, params, state, updates):
        return params, state, {}


class AsksTooMuch:
    def init(self, params, run, more):
        return {}

    def aggregate(self, params, state, updates):
        return params, state, {}


def test_a_strategy_that_asks_is_told_the_run(tiny):
    TOLD.clear()
    scenario = tiny(server={"strategy": "tests.test_run_facts:ToldTheRun"}, run={"seed": 11})
    strategy = make_strategy(scenario)
    assert strategy.init(np.zeros(3)) == {} and TOLD == [RunFacts(population=8, cohort=4, seed=11)]
    assert pickle.loads(pickle.dumps(strategy)).run == TOLD[0]  # it travels to the driver actor


def test_a_strategy_that_does_not_ask_is_called_as_before(tiny):
    strategy = make_strategy(tiny(server={"strategy": "tests.test_run_facts:Untold"}))
    assert isinstance(strategy, Untold) and set(strategy.init(np.zeros(2))) == {"plain"}


def test_any_other_init_is_refused_before_anything_is_built(tiny):
    with pytest.raises(UserCodeError, match=r"its init takes \(self, params, run, more\), not \(self, params\) "
                                            r"or \(self, params, run\)"):
        make_strategy(tiny(server={"strategy": "tests.test_run_facts:AsksTooMuch"}))


def test_the_strategy_is_imported_through_the_gate_once(tiny, monkeypatch):
    """Which init it declares is read from the class the build imported, not by a second import."""
    imported = []

    def counting(spec, **kwargs):
        imported.append(spec)
        return gate(spec, **kwargs)

    gate = inputs.import_object
    monkeypatch.setattr(inputs, "import_object", counting)
    TOLD.clear()
    make_strategy(tiny(server={"strategy": "tests.test_run_facts:ToldTheRun"})).init(np.zeros(1))
    assert imported.count("tests.test_run_facts:ToldTheRun") == 1 and len(TOLD) == 1

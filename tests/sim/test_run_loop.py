"""Every kind of run's loop answers the run-loop protocol, which is all api.py calls."""

from __future__ import annotations

import pytest

from raysim import api
from raysim.sim.kernel.driver import Driver
from raysim.sim.loops.gossip import GossipRounds
from raysim.sim.loops.hierfavg import HierRounds
from raysim.sim.kernel.run_loop import RunLoop
from tests.sim.test_driver_parts import driver

CALLS = [name for name in vars(RunLoop) if not name.startswith("_")]


def test_the_protocol_names_the_calls_api_makes():
    assert sorted(CALLS) == ["advance", "client_models", "close", "describe", "model_arrays", "restore", "snapshot",
                             "use_state_dir"]


@pytest.mark.parametrize("kind", [Driver, GossipRounds, HierRounds, api._LocalDriver, api._RayDriver])
def test_each_kind_of_loop_implements_it(kind):
    assert all(callable(getattr(kind, name, None)) for name in CALLS), kind


def test_a_driver_built_from_plain_parts_is_a_run_loop():
    assert isinstance(driver(), RunLoop)

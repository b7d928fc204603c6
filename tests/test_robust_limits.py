"""Robust aggregators' parameters are checked against the updates one step aggregates."""

from __future__ import annotations

import pytest

from raysim.robust_limits import check_robust_limits
from raysim.scenario import parse_scenario
from tests.conftest import tiny_table


@pytest.mark.parametrize(("server", "message"), [
    ({"aggregator": "trimmed_mean", "trim": 2}, r"server.trim = 2 .* set server.trim <= 1"),
    ({"aggregator": "krum", "num_byzantine": 1}, r"server.num_byzantine = 1 needs more than 4 updates"),
    ({"aggregator": "multi_krum", "num_byzantine": 0, "num_selected": 5}, r"server.num_selected <= 4"),
])
def test_parameters_too_large_for_the_cohort_are_refused(server, message):
    with pytest.raises(ValueError, match=message):
        check_robust_limits(parse_scenario(tiny_table(server=server)))


@pytest.mark.parametrize("server", [
    {"aggregator": "trimmed_mean", "trim": 1},
    {"aggregator": "krum", "num_byzantine": 0},
    {"aggregator": "multi_krum", "num_byzantine": 0, "num_selected": 4},
    {"aggregator": "median", "trim": 9, "num_byzantine": 9},
])
def test_parameters_that_fit_pass(server):
    check_robust_limits(parse_scenario(tiny_table(server=server)))


def test_fedbuff_steps_are_as_large_as_the_buffer():
    scenario = parse_scenario(tiny_table(server={"aggregator": "trimmed_mean", "trim": 1},
                                         policy={"kind": "async", "buffer_size": 2}))
    with pytest.raises(ValueError, match="policy.buffer_size = 2"):
        check_robust_limits(scenario)

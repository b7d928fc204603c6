"""Contribution evaluation: how much each client's update was worth to a round.

Pure math over a game (players, utility): exact Shapley and leave-one-out (``exact.py``),
TMC- and GTG-Shapley (``permutations.py``), the batched, cached, budgeted utility
(``utility.py``) and the settings (``config.py``). ``value_round`` runs one method on one
round's game. No Ray, no torch: the simulation floor builds the games (sim/contribution.py).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from raysim.contribution.config import METHODS, ContributionConfig
from raysim.contribution.exact import EXACT_MAX_PLAYERS, exact_shapley, leave_one_out
from raysim.contribution.permutations import Estimate, gtg_shapley, tmc_shapley
from raysim.contribution.utility import BudgetExhausted, Utility

__all__ = ["EXACT_MAX_PLAYERS", "METHODS", "BudgetExhausted", "ContributionConfig", "Estimate", "Utility",
           "exact_affordable", "value_round"]


def exact_affordable(players: int, max_evaluations: int) -> bool:
    """Whether the budget covers all 2^n coalitions (and n is within the exact method's limit)."""
    return players <= EXACT_MAX_PLAYERS and 2 ** players <= max_evaluations


def value_round(method: str, players: Sequence[int], utility: Utility, draw: np.random.Generator,
                config: ContributionConfig) -> Estimate:
    """One method's values of a round's players. ``exact`` and ``fedsv`` (Wang et al.,
    arXiv:2009.06192) compute the same round Shapley value; they differ in the record (fedsv also
    gives every absent client a 0, so a client's total is its sum over rounds).

    ``tmc`` and ``gtg`` compute the exact value too, and say so (``stopped = "exact"``), when
    ``max_evaluations`` covers all 2^n coalitions: their orders would visit nearly every
    coalition through the cache anyway (n <= 8 with the defaults) and still carry Monte Carlo
    error. Below that budget they estimate."""
    if method in ("exact", "fedsv") or (method in ("tmc", "gtg") and exact_affordable(len(players),
                                                                                      config.max_evaluations)):
        return Estimate(exact_shapley(players, utility), 0, "exact")
    if method == "loo":
        return Estimate(leave_one_out(players, utility), 0, "exact")
    limits = dict(truncation=config.truncation, max_permutations=config.max_permutations, tolerance=config.tolerance)
    if method == "gtg":
        return gtg_shapley(players, utility, draw, round_truncation=config.round_truncation, **limits)
    if method == "tmc":
        return tmc_shapley(players, utility, draw, **limits)
    raise ValueError(f"unknown contribution method {method!r}; choose from {sorted(METHODS)}")

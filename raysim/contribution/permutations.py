"""Shapley values estimated from permutations: TMC-Shapley and GTG-Shapley.

phi_i = E_pi[v(P_i + i) - v(P_i)] over orders pi, P_i the players before i. Both estimators walk
sampled orders and average the marginals; both truncate a walk once the prefix is already
worth about what everyone is (|v(N) - v(prefix)| < ``truncation``): the rest of that order's
marginals are taken as 0 without evaluating anything.

- TMC-Shapley (Ghorbani & Zou, ICML 2019, arXiv:1904.02868): uniform orders; stops at
  convergence or ``max_permutations``.
- GTG-Shapley (Liu et al., ACM TIST 2022, arXiv:2109.02053), with the constants FedML codes:
  between-round truncation (a round whose |v(N) - v(empty)| <= ``round_truncation`` gets all
  zeros, and says so), within-round truncation, guided orders (each cycle of n orders puts every
  player first once, the rest shuffled), and the convergence test after each cycle.

Orders are walked in lockstep, a group at a time: step k asks for the k-th prefix of every
order of the group still walking, one batch of utility calls (which the caller can score in
one remote call). A group cut short by the evaluation budget is dropped whole, so every
estimate averages complete orders only. With both truncations at 0 and all n! orders, GTG is
the exact Shapley value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from raysim.contribution.utility import BudgetExhausted, Utility


@dataclass(frozen=True)
class Estimate:
    """Values per player id and how they were obtained: orders averaged, and why it stopped
    (``"exact"``, ``"converged"``, ``"max_permutations"``, ``"budget"``, ``"round_truncated"``).

    ``valued`` is False when the round was not valued at all: GTG's between-round truncation,
    or a budget that cut the first group of orders short. The values are then 0 by convention,
    not a finding, and consumers (reputation, earnings) must count no outcome, which a 0 that
    an estimate did find cannot tell them."""

    values: dict[int, float]
    permutations: int
    stopped: str
    valued: bool = True


def unvalued(players: Sequence[int], why: str) -> Estimate:
    """A round not valued: every player 0 by convention, and ``valued`` False."""
    return Estimate({int(p): 0.0 for p in players}, 0, why, valued=False)


def walk(orders: np.ndarray, players: Sequence[int], utility: Utility, *, full: float, empty: float,
         truncation: float) -> np.ndarray:
    """Marginals of each order (rows) per player position (columns), walked in lockstep.

    ``orders`` holds positions into ``players``; ``full`` and ``empty`` are v(N) and v(empty).
    """
    m, n = orders.shape
    marginals = np.zeros((m, n))
    previous = np.full(m, empty)
    walking = np.ones(m, dtype=bool)
    for step in range(n):
        if truncation > 0:
            walking &= np.abs(full - previous) >= truncation
        rows = np.flatnonzero(walking)
        if not len(rows):
            break
        values = utility([[players[p] for p in orders[r, : step + 1]] for r in rows])
        marginals[rows, orders[rows, step]] = values - previous[rows]
        previous[rows] = values
    return marginals


def converged(means: Sequence[np.ndarray], *, window: int, tolerance: float) -> bool:
    """GTG's test: over the last ``window`` running-mean vectors r, the largest mean relative
    distance to the latest, mean_i |r_i - last_i| / (|last_i| + 1e-12), is at most ``tolerance``."""
    if len(means) < window:
        return False
    last = means[-1]
    return max(float(np.mean(np.abs(r - last) / (np.abs(last) + 1e-12))) for r in means[-window:]) <= tolerance


def guided_orders(n: int, draw: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless cycles of n orders: in each, every position comes first once, the rest shuffled."""
    while True:
        cycle = []
        for first in range(n):
            rest = np.array([p for p in range(n) if p != first])
            cycle.append(np.concatenate([[first], draw.permutation(rest)]).astype(int))
        yield np.stack(cycle)


def uniform_orders(n: int, draw: np.random.Generator, group: int) -> Iterator[np.ndarray]:
    """Endless groups of ``group`` uniformly random orders."""
    while True:
        yield np.stack([draw.permutation(n) for _ in range(group)])


def permutation_shapley(players: Sequence[int], utility: Utility, groups: Iterator[np.ndarray], *,
                        truncation: float, max_permutations: int, min_permutations: int, window: int,
                        tolerance: float) -> Estimate:
    """Averages marginals over groups of orders until the convergence test passes (after at
    least ``min_permutations``), ``max_permutations`` are walked, or the budget runs out."""
    n = len(players)
    if n == 0:
        return Estimate({}, 0, "converged")
    try:
        full, empty = utility([list(players), []])
    except BudgetExhausted:
        return unvalued(players, "budget")
    total = np.zeros(n)
    count = 0
    means: list[np.ndarray] = []
    stopped = "max_permutations"
    for orders in groups:
        orders = orders[: max_permutations - count]
        try:
            marginals = walk(orders, players, utility, full=full, empty=empty, truncation=truncation)
        except BudgetExhausted:
            stopped = "budget"
            break
        for row in marginals:
            total += row
            count += 1
            means.append(total / count)
        if count >= max_permutations:
            break
        if count > min_permutations and converged(means, window=window, tolerance=tolerance):
            stopped = "converged"
            break
    values = total / count if count else total
    return Estimate({int(p): float(v) for p, v in zip(players, values)}, count, stopped, valued=count > 0)


def gtg_shapley(players: Sequence[int], utility: Utility, draw: np.random.Generator, *,
                round_truncation: float = 0.01, truncation: float = 0.001, max_permutations: int = 1000,
                min_permutations: int = 30, window: int = 10, tolerance: float = 0.05,
                orders: Iterator[np.ndarray] | None = None) -> Estimate:
    """GTG-Shapley (see the module's docstring). ``orders`` replaces the guided cycles with
    given groups of orders (all n! of them give the exact value when truncation is off)."""
    try:
        full, empty = utility([list(players), []])
    except BudgetExhausted:
        return unvalued(players, "budget")
    if abs(full - empty) <= round_truncation:
        return unvalued(players, "round_truncated")
    return permutation_shapley(players, utility, orders if orders is not None else guided_orders(len(players), draw),
                               truncation=truncation, max_permutations=max_permutations,
                               min_permutations=min_permutations, window=window, tolerance=tolerance)


def tmc_shapley(players: Sequence[int], utility: Utility, draw: np.random.Generator, *, truncation: float = 0.001,
                max_permutations: int = 1000, min_permutations: int = 100, window: int = 100,
                tolerance: float = 0.05) -> Estimate:
    """TMC-Shapley: uniform orders, n to a group; the convergence test over the last 100 orders
    with a 5% tolerance follows the paper's stopping rule (R: its exact form differs)."""
    return permutation_shapley(players, utility, uniform_orders(len(players), draw, max(len(players), 1)),
                               truncation=truncation, max_permutations=max_permutations,
                               min_permutations=min_permutations, window=window, tolerance=tolerance)

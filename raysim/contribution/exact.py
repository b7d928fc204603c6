"""Closed-form valuations over one game: the exact Shapley value and leave-one-out.

Shapley (1953): phi_i = sum over S of N without i of |S|! (n - |S| - 1)! / n! [v(S + i) - v(S)],
which needs all 2^n coalitions (one batch). Leave-one-out: phi_i = v(N) - v(N without i), n + 1
coalitions; it is not efficient (the values need not add up to v(N) - v(empty)), and two
duplicated clients each look worthless to it, since either alone covers for the other.
Reconstruction utilities make each evaluation cheap (Song, Tong, Wei, IEEE BigData 2019), but
2^n still grows fast, hence ``EXACT_MAX_PLAYERS``.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Sequence

import numpy as np

from raysim.contribution.utility import Utility

EXACT_MAX_PLAYERS = 12  # 4,096 coalitions per round; beyond, use "gtg" or "tmc"


def exact_shapley(players: Sequence[int], utility: Utility) -> dict[int, float]:
    """The Shapley value of every player, from all 2^n coalitions evaluated in one batch."""
    n = len(players)
    if n > EXACT_MAX_PLAYERS:
        raise ValueError(f"exact Shapley over {n} players needs 2^{n} utility evaluations; "
                         f"at most {EXACT_MAX_PLAYERS} players are allowed: use method 'gtg' or 'tmc'")
    subsets = [c for size in range(n + 1) for c in combinations(range(n), size)]
    values = dict(zip(subsets, utility([[players[i] for i in s] for s in subsets])))
    weight = [math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)]
    phi = np.zeros(n)
    for subset, v in values.items():
        for i in range(n):
            if i not in subset:
                joined = tuple(sorted((*subset, i)))
                phi[i] += weight[len(subset)] * (values[joined] - v)
    return {int(p): float(x) for p, x in zip(players, phi)}


def leave_one_out(players: Sequence[int], utility: Utility) -> dict[int, float]:
    """phi_i = v(N) - v(N without i), from n + 1 coalitions in one batch."""
    everyone = list(players)
    values = utility([everyone] + [[q for q in everyone if q != p] for p in everyone])
    return {int(p): float(values[0] - values[1 + k]) for k, p in enumerate(everyone)}

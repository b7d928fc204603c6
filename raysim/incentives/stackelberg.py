"""A Stackelberg pricing game between the server (leader) and the clients (followers), with a
closed-form equilibrium the simulation is checked against.

Textbook form of the game in Sarikaya & Ercetin (arXiv:1908.03092) (R: the paper's utilities
differ in detail). Stage 2: the server posts a unit price p; client i, whose effort costs
c_i x^2 / 2, picks x_i = argmax_x p x - c_i x^2 / 2 = p / c_i. Stage 1: the server maximises
U(p) = a ln(1 + X) - p X with X = sum_i x_i = p C, C = sum_i 1 / c_i. The first-order condition
2 C p^2 + 2 p - a = 0 gives p* = (sqrt(1 + 2 a C) - 1) / (2 C) and X* = (sqrt(1 + 2 a C) - 1) / 2;
U is strictly concave in p, so p* is the unique maximum.

``play`` simulates the game without the closed form: each client answers a price by climbing its
own payoff, and the server searches prices on the payoffs it observes (golden-section search
over a concave payoff).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Outcome:
    price: float
    efforts: tuple[float, ...]

    @property
    def total_effort(self) -> float:
        return math.fsum(self.efforts)


def _check(value: float, costs: Sequence[float]) -> None:
    if value <= 0 or not costs or any(c <= 0 for c in costs):
        raise ValueError(f"the game needs a value a > 0 and costs c_i > 0, got a = {value}, costs = {list(costs)}")


def equilibrium(value: float, costs: Sequence[float]) -> Outcome:
    """The closed-form Stackelberg equilibrium (p*, x*)."""
    _check(value, costs)
    capacity = math.fsum(1.0 / c for c in costs)
    price = (math.sqrt(1.0 + 2.0 * value * capacity) - 1.0) / (2.0 * capacity)
    return Outcome(price, tuple(price / c for c in costs))


def server_payoff(value: float, price: float, efforts: Sequence[float]) -> float:
    """U(p) = a ln(1 + X) - p X."""
    total = math.fsum(efforts)
    return value * math.log1p(total) - price * total


def best_effort(price: float, cost: float, *, iterations: int = 200) -> float:
    """A client's answer to a price, without the closed form: it raises its effort while the
    marginal payoff p - c x of one more unit is positive (bisection on [0, upper], upper large
    enough to hold the optimum)."""
    low, high = 0.0, 2.0 * price / cost + 1.0
    for _ in range(iterations):
        middle = (low + high) / 2.0
        low, high = (middle, high) if price - cost * middle > 0 else (low, middle)
    return (low + high) / 2.0


def play(value: float, costs: Sequence[float], *, iterations: int = 200) -> Outcome:
    """The simulated game: the server searches prices, the clients best-respond to each."""
    _check(value, costs)
    respond = lambda p: [best_effort(p, c, iterations=iterations) for c in costs]  # noqa: E731
    price = _maximise(lambda p: server_payoff(value, p, respond(p)), 0.0, value, iterations)
    return Outcome(price, tuple(respond(price)))


def _maximise(f, low: float, high: float, iterations: int) -> float:
    """Golden-section search for the maximum of a unimodal f on [low, high]."""
    a, b = low, high
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iterations):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    return (a + b) / 2.0

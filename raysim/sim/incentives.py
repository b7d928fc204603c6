"""Paying for contributions, and who takes part because of it: the driver's incentive part.

After each valued server step (sim/contribution.py) the budget is paid out by the scheme
(``equal``: split evenly among the step's participants; ``proportional`` and ``reputation``:
in proportion to the positive values of ``incentive.method``), every participant the method
valued sees one Beta-reputation outcome (positive when its value is > 0, negative otherwise),
and its earnings grow. A participant the step did not value (GTG's round truncation, a budget
cut) sees no outcome: its reputation stays where it was, and, unless the scheme pays evenly
whatever the values, the round is not one of its paid rounds either (its expected reward is
the mean over the rounds it was valued in).

At each dispatch, with a price set, every idle online client compares the reward it expects
(its mean reward over its paid rounds, or the budget's even share before its first) with the cost of the
task on its simulated device, and only those it covers can be drawn; under ``reputation``
they are drawn with probability in proportion to their reputation, else uniformly. So the
scheme changes who participates, and with it accuracy and time-to-accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from raysim.algorithms.strategy import ServerState, Update
from raysim.incentives.config import IncentiveConfig
from raysim.incentives.participation import Earnings, joins, task_cost
from raysim.incentives.rewards import BetaReputation, proportional
from raysim.seeding import Stream, rng
from raysim.sim.dispatch import RunStalled
from raysim.sim.selection.uniform import idle_online

if TYPE_CHECKING:
    from raysim.sim.contribution import ContributionLedger


class NobodyJoins(RunStalled):
    """No idle online client expects a reward that covers its cost: no round can start (the run
    failed, and the message names the prices and the budget to change)."""


class Incentives:
    """Reputations, earnings and the participation decisions since the last step."""

    def __init__(self, config: IncentiveConfig, *, pay_by: str, cohort: int):
        self.config, self.pay_by = config, pay_by
        self.prior = config.budget / cohort  # the even share: what a newcomer expects
        self.reputation: dict[int, BetaReputation] = {}
        self.earnings: dict[int, Earnings] = {}
        self.decisions: dict[int, tuple[float, float, bool]] = {}  # client -> (cost, expected, joined)

    def score(self, client: int) -> float:
        return self.reputation.get(client, BetaReputation()).score

    def expected(self, client: int) -> float:
        return self.earnings.get(client, Earnings()).expected(self.prior)

    def settle(self, round_number: int, values: dict[int, float], participants: Sequence[int]) -> list[dict]:
        """Pays the step's participants and updates the reputation of those valued (``values``
        holds the valued participants only); one row per client that took part or was asked to
        since the last step."""
        config = self.config
        if config.scheme == "equal":
            paid = {c: config.budget / len(participants) for c in participants}
        else:
            paid = proportional({c: values.get(c, 0.0) for c in participants}, config.budget) if participants else {}
        for client, reward in paid.items():
            if client in values:
                positive = float(values[client] > 0)
                self.reputation[client] = self.reputation.get(client, BetaReputation()).observe(
                    positive, 1.0 - positive, config.decay)
            if client in values or config.scheme == "equal":
                self.earnings[client] = self.earnings.get(client, Earnings()).add(reward)
        rows = []
        for client in sorted(set(paid) | set(self.decisions)):
            cost, expected, joined = self.decisions.get(client, (float("nan"), float("nan"), True))
            rows.append({"round": round_number, "client_id": client, "scheme": config.scheme,
                         "participated": client in paid, "valued": client in values, "reward": paid.get(client, 0.0),
                         "earned": self.earnings.get(client, Earnings()).total, "reputation": self.score(client),
                         "cost": cost, "expected_reward": expected, "joins": joined})
        self.decisions = {}
        return rows


class Incentivised:
    """The driver's incentive part: the draw of clients, and valuing each step (a part of
    ``Driver``, as dispatch.py and records.py are; it uses the driver's population, clock,
    sizes, schedule, ledger and incentives)."""

    ledger: ContributionLedger | None
    incentives: Incentives | None

    def _select(self, count: int, *, key: int) -> list[int]:
        """Without a price or reputation weighting, the draw is the one without incentives."""
        config = self.incentives.config if self.incentives is not None else None
        if config is None or not (config.priced or config.scheme == "reputation"):
            return super()._select(count, key=key)
        candidates = idle_online(self.population, range(self.population.num_clients), busy=self.busy, now=self.clock.now)
        if config.priced:
            willing = []
            for client in candidates:
                cost, expected = self._task_cost(client), self.incentives.expected(client)
                self.incentives.decisions[client] = (cost, expected, joins(expected, cost))
                if joins(expected, cost):
                    willing.append(client)
            if candidates and not willing:
                raise NobodyJoins(
                    f"round {self.round + 1}: none of the {len(candidates)} idle online clients expects a reward "
                    f"covering its cost (incentive.budget = {config.budget}, prices per compute second "
                    f"{config.price_per_compute_s} and per MB {config.price_per_mb}): raise the budget or lower the prices")
            candidates = willing
        draw = rng(self.seed, Stream.SELECTION, key)
        size = min(count, len(candidates))
        weights = None  # every idle online client that joins (all of them without a price), uniformly
        if config.scheme == "reputation" and candidates:
            scores = np.array([self.incentives.score(c) for c in candidates])
            weights = scores / scores.sum()
        return sorted(int(candidates[i]) for i in draw.choice(len(candidates), size=size, replace=False, p=weights))

    def _task_cost(self, client: int) -> float:
        """What a task costs a client's device: compute seconds and megabytes moved, priced."""
        config = self.incentives.config
        timing = self.population.timing(client, start=self.clock.now, samples=int(self.sizes[client]),
                                        epochs=self.schedule.epochs, model_bytes=self.exchange_bytes,
                                        update_bytes=self.upload_bytes)
        return task_cost(timing.compute_s, (self.exchange_bytes + self.upload_bytes) / 1e6,
                         price_per_compute_s=config.price_per_compute_s, price_per_mb=config.price_per_mb)

    def _value_round(self, start: ServerState, updates: Sequence[Update]) -> dict[str, list[dict]]:
        """The step's contribution rows and, with incentives, its payment rows (the extra tables
        of the round's report); nothing without ``[contribution]``."""
        if self.ledger is None:
            return {}
        rows, values = self.ledger.value(self.round, self.strategy, start, updates, self.executor)
        tables = {"contributions": rows}
        if self.incentives is not None:
            participants = sorted(u.client_id for u in updates)
            tables["incentives"] = self.incentives.settle(self.round, values[self.incentives.pay_by], participants)
        return tables

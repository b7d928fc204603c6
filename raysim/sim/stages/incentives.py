"""The incentive stage: paying for contributions, and who takes part because of it.

After each valued server step (sim/stages/contribution.py) the budget is paid out by the scheme
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

from typing import Sequence

import numpy as np

from raysim.incentives.config import IncentiveConfig
from raysim.incentives.participation import Earnings, joins, task_cost
from raysim.incentives.rewards import BetaReputation, proportional
from raysim.sim.cost.devices import Population
from raysim.sim.kernel.dispatch import RunStalled
from raysim.sim.selection.protocol import SelectionView
from raysim.sim.stages.stage import NOTHING, Stage, StageContext, Step, StepOutput


class NobodyJoins(RunStalled):
    """No idle online client expects a reward that covers its cost: no round can start (the run
    failed, and the message names the prices and the budget to change)."""


class IncentiveStage(Stage):
    """Reputations, earnings and the participation decisions since the last step. It pays by
    the values the contribution stage (before it in the list) put on the step (``Step.values``);
    ``population``, ``epochs`` and the bytes a task moves price a task (``task_cost``)."""

    key = "incentives"
    REBUILT = ("population",)  # the devices, rebuilt from the scenario: not the stage's state

    def __init__(self, config: IncentiveConfig, *, pay_by: str, cohort: int, population: Population, epochs: int,
                 model_bytes: int, update_bytes: int):
        self.config, self.pay_by = config, pay_by
        self.population, self.epochs, self.model_bytes, self.update_bytes = population, epochs, model_bytes, update_bytes
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

    def choose(self, count: int, view: SelectionView, draw: np.random.Generator) -> list[int] | None:
        """With a price, only the idle online clients whose expected reward covers their cost can
        be drawn; under ``reputation`` in proportion to their reputation, else uniformly. Without
        either, the selection stage draws."""
        config = self.config
        if not (config.priced or config.scheme == "reputation"):
            return None
        candidates = view.candidates()
        if config.priced:
            willing = []
            for client in candidates:
                cost, expected = self._task_cost(client, view), self.expected(client)
                self.decisions[client] = (cost, expected, joins(expected, cost))
                if joins(expected, cost):
                    willing.append(client)
            if candidates and not willing:
                raise NobodyJoins(
                    f"round {view.round}: none of the {len(candidates)} idle online clients expects a reward "
                    f"covering its cost (incentive.budget = {config.budget}, prices per compute second "
                    f"{config.price_per_compute_s} and per MB {config.price_per_mb}): raise the budget or lower the prices")
            candidates = willing
        size = min(count, len(candidates))
        weights = None  # every idle online client that joins (all of them without a price), uniformly
        if config.scheme == "reputation" and candidates:
            scores = np.array([self.score(c) for c in candidates])
            weights = scores / scores.sum()
        return sorted(int(candidates[i]) for i in draw.choice(len(candidates), size=size, replace=False, p=weights))

    def _task_cost(self, client: int, view: SelectionView) -> float:
        """What a task costs a client's device: compute seconds and megabytes moved, priced."""
        config = self.config
        timing = self.population.timing(client, start=view.now, samples=int(view.examples[client]),
                                        epochs=self.epochs, model_bytes=self.model_bytes,
                                        update_bytes=self.update_bytes)
        return task_cost(timing.compute_s, (self.model_bytes + self.update_bytes) / 1e6,
                         price_per_compute_s=config.price_per_compute_s, price_per_mb=config.price_per_mb)

    def after_step(self, step: Step, context: StageContext) -> StepOutput:
        if self.pay_by not in step.values:  # no valuing stage ran (combinations.py requires one)
            return NOTHING
        participants = sorted(u.client_id for u in step.updates)
        return StepOutput(tables={"incentives": self.settle(context.round, step.values[self.pay_by], participants)})

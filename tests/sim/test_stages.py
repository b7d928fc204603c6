"""Each stage alone, against a small fake context: no driver, no scenario, no Ray, no torch.
(The stages inside whole runs are covered by the feature tests and by the shipped scenarios'
table hashes, tools/table_hashes.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from raysim.algorithms.attacks import SignFlip
from raysim.algorithms.strategy import ServerState, Update
from raysim.incentives.config import IncentiveConfig
from raysim.models.learning_task import Classification
from raysim.network.config import NetworkConfig
from raysim.sim.stages.chain import Chain
from raysim.sim.cost.devices import Population, SystemConfig
from raysim.sim.kernel.evaluation import EvalCounts
from raysim.sim.selection.protocol import SelectionView
from raysim.sim.stages.attack import AttackStage
from raysim.sim.stages.incentives import IncentiveStage, NobodyJoins
from raysim.sim.stages.ledger import ChainStage, CommitteeStage
from raysim.sim.stages.privacy import PrivacyBudgetStage
from raysim.sim.stages.stage import StageContext, Step


class ScoresByDistance:
    """A fake evaluator: a model's accuracy is 1 / (1 + its distance to the point 1)."""

    def evaluate(self, params, slices):
        accuracy = 1.0 / (1.0 + float(np.linalg.norm(params - 1.0)))
        return [EvalCounts(count=10, sums={"correct": 10 * accuracy, "loss": 0.0, "count": 10}) for _ in slices]

    def evaluate_models(self, models, slices):
        return [self.evaluate(m, slices) for m in models]


def context(round_number: int = 0, now: float = 0.0, params=None) -> StageContext:
    return StageContext(round=round_number, now=now, seed=0, params=np.zeros(3, dtype=np.float32) if params is None
                        else params, task=Classification(), evaluator=ScoresByDistance())


@dataclass
class FakeTask:
    client_id: int
    task_id: int = 0
    status: str = "applied"
    result: dict = field(default_factory=dict)

    @property
    def info(self):
        return SimpleNamespace(client_id=self.client_id, task_id=self.task_id)


def test_the_attack_stage_tampers_with_the_attackers_updates_only():
    stage = AttackStage(SignFlip(scale=2.0), frozenset({1}))
    delta = np.ones(3)
    assert np.array_equal(stage.inbound(FakeTask(0), delta, context()), delta)
    assert np.array_equal(stage.inbound(FakeTask(1), delta, context()), -2.0 * delta)


def test_the_privacy_budget_stops_the_step_that_would_cross_it():
    crossing = SimpleNamespace(would_exceed_budget=lambda clients: 3 in clients)
    stage = PrivacyBudgetStage(crossing)
    assert stage.allows_step([1, 2]) and not stage.allows_step([2, 3])


def test_the_committee_drops_the_updates_its_members_score_lowest():
    """Updates towards the point 1 score higher; with reject = 1 the one moving away is dropped
    and its task marked rejected by the committee."""
    chain = Chain(NetworkConfig(topology="ledger", consensus="committee", committee_size=3, reject=1), seed=0,
                  num_clients=10)
    stage = CommitteeStage(chain, test_size=100)
    updates = [Update(client_id=c, num_samples=1, steps=1, delta=np.full(3, d)) for c, d in ((0, 0.9), (1, -2.0), (2, 0.5))]
    tasks = {c: FakeTask(c) for c in (0, 1, 2)}
    kept = stage.admit(updates, tasks, context())
    assert [u.client_id for u in kept] == [0, 2]
    assert tasks[1].status == "rejected" and tasks[1].result["rejected_because"] == "committee"
    assert tasks[0].status == tasks[2].status == "applied"


def test_the_chain_holds_the_server_after_the_step_for_its_block():
    chain = Chain(NetworkConfig(topology="ledger", consensus="pow", miners=4, block_interval_s=10.0), seed=0,
                  num_clients=10)
    stage = ChainStage(chain)
    state = ServerState(params=np.zeros(3, dtype=np.float32), strategy_state=None)
    step = Step(strategy=None, start=state, state=state, updates=[Update(0, 1, 1, np.ones(3))], busy_s=2.0)
    out = stage.after_step(step, context(round_number=1, now=5.0))
    assert out.busy_s > 0 and out.columns["block"] == 0 and out.columns["block_s"] == out.busy_s
    assert len(chain.blocks) == 1 and chain.blocks[0].timestamp == pytest.approx(5.0 + 2.0 + out.busy_s)
    assert "ledger" in stage.network(1)


def _view(now: float = 0.0, busy=frozenset(), examples: int = 100) -> SelectionView:
    return SelectionView(round=1, now=now, num_clients=6, examples=[examples] * 6, busy=busy, records={},
                         available=lambda c: c not in busy, expected_duration_s=lambda c: 1.0)


def _incentives(**config) -> IncentiveStage:
    return IncentiveStage(IncentiveConfig(**config), pay_by="loo", cohort=2, population=Population(SystemConfig(), 6, seed=0),
                          epochs=1, model_bytes=1000, update_bytes=1000)


def test_without_a_price_or_reputation_the_incentive_stage_leaves_the_draw_to_selection():
    assert _incentives(scheme="equal").choose(2, _view(), np.random.default_rng(0)) is None


def test_a_price_nobody_covers_stops_the_run_naming_the_budget():
    """A task of 100,000 examples takes 100 compute seconds at 1 per second: more than the even
    share (0.5) of a budget of 1 that a newcomer expects."""
    stage = _incentives(scheme="equal", budget=1.0, price_per_compute_s=1.0)
    assert stage.choose(2, _view(examples=100), np.random.default_rng(0)) is not None
    with pytest.raises(NobodyJoins, match="incentive.budget"):
        stage.choose(2, _view(examples=100_000), np.random.default_rng(0))


def test_the_incentive_stage_pays_by_the_values_the_stage_before_it_found():
    stage = _incentives(scheme="proportional", budget=10.0)
    state = ServerState(params=np.zeros(3, dtype=np.float32), strategy_state=None)
    updates = [Update(0, 1, 1, np.ones(3)), Update(1, 1, 1, np.ones(3))]
    step = Step(strategy=None, start=state, state=state, updates=updates, values={"loo": {0: 3.0, 1: 1.0}})
    rows = stage.after_step(step, context(round_number=1)).tables["incentives"]
    assert {r["client_id"]: r["reward"] for r in rows} == {0: 7.5, 1: 2.5}
    assert stage.after_step(Step(strategy=None, start=state, state=state, updates=updates),
                            context(round_number=2)).tables == {}  # nothing valued: nothing paid

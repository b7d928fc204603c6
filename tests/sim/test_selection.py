"""Selectors against hand-computed selections on small populations (no Ray, no driver)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from raysim.sim.selection import ClientRecord, Oort, PowerOfChoice, SelectionError, SelectionStage, SelectionView
from raysim.sim.selection.oort import preferred_duration


def view(examples, records=None, *, busy=(), offline=(), round_number=5, expected=None) -> SelectionView:
    busy, offline = frozenset(busy), frozenset(offline)
    return SelectionView(round=round_number, now=0.0, num_clients=len(examples), examples=list(examples), busy=busy,
                         records=records or {}, available=lambda c: c not in busy and c not in offline,
                         expected_duration_s=lambda c: (expected or {}).get(c, 1.0))


def reported(loss, *, samples=100, duration=10.0, last_round=4) -> ClientRecord:
    return ClientRecord(tries=1, last_tried=last_round, completions=1, last_round=last_round, loss=loss,
                        samples=samples, duration_s=duration, last_fate="arrived")


def draw() -> np.random.Generator:
    return np.random.default_rng(7)


def test_power_of_choice_takes_the_highest_losses_and_the_unheard_first():
    # every client a candidate (d = population): the 3 highest losses among the idle, online ones,
    # clients never heard from (4) counting as +inf; 5 is busy, 6 offline
    records = {0: reported(0.5), 1: reported(2.0), 2: reported(1.0), 3: reported(0.1), 6: reported(9.0)}
    chosen = PowerOfChoice(d=7).build().select(3, view([10] * 7, records, busy={5}, offline={6}), draw())
    assert chosen == [1, 2, 4]


def test_power_of_choice_draws_candidates_by_data_size():
    # clients without examples are never candidates: with d = 3 the candidates are exactly 2, 3, 5
    records = {c: reported(loss) for c, loss in enumerate([9.0, 8.0, 0.3, 0.2, 7.0, 0.9])}
    selector = PowerOfChoice(d=3).build()
    for seed in range(5):
        assert selector.select(2, view([0, 0, 10, 10, 0, 10], records), np.random.default_rng(seed)) == [2, 5]


def oort(**settings) -> Oort:
    return Oort(**{"exploration_factor": 0.0, "exploration_min": 0.0, "cut_off_util": 1.0, "clip_bound": 1.0,
                   "round_threshold": 50.0, **settings})


OORT_RECORDS = {  # utility |B| * loss: 100, 200, 50, 100; client 1 is 4x slower than T = 10 s
    0: reported(1.0, samples=100), 1: reported(2.0, samples=100, duration=40.0),
    2: reported(1.0, samples=50, last_round=2), 3: reported(0.5, samples=200),
}


def test_oort_exploits_utility_times_the_system_penalty():
    # by hand (round 5): low = 50 * 0.999, spread = 200 - low; bonus sqrt(0.1 ln 5 / t_i)
    low, spread = 49.95, 150.05
    bonus4, bonus2 = math.sqrt(0.1 * math.log(5) / 4), math.sqrt(0.1 * math.log(5) / 2)
    scores = {0: (100 - low) / spread + bonus4, 1: ((200 - low) / spread + bonus4) * (10 / 40) ** 2,
              2: (50 - low) / spread + bonus2, 3: (100 - low) / spread + bonus4}
    assert sorted(scores, key=lambda c: (-scores[c], c)) == [0, 3, 2, 1]
    assert oort().build().select(3, view([100] * 4, OORT_RECORDS), draw()) == [0, 2, 3]
    # without the penalty (alpha = 0) the slow, high-loss client ranks first
    assert oort(round_penalty=0.0).build().select(1, view([100] * 4, OORT_RECORDS), draw()) == [1]


def test_oort_explores_the_largest_fast_clients_first():
    # nobody tried yet: with a sample window of 1 the 2 explored are the largest (client 3 is
    # larger still but its expected duration is penalised only once a T is known: none yet)
    settings = Oort(sample_window=1.0)
    chosen = settings.build().select(2, view([5, 50, 40, 60, 10]), draw())
    assert chosen == [1, 3]
    # with a preferred duration known (T = 10 s, client 0's), the slow one (100 s) is penalised:
    # 50 * (10 / 100)^2 = 0.5 against 40 and 60 (the first dispatch explores both slots)
    records = {0: reported(1.0, duration=10.0)}
    slow = view([5, 50, 40, 60, 10], records, expected={1: 100.0, 2: 5.0, 3: 5.0, 4: 5.0})
    assert Oort(sample_window=1.0, round_threshold=99.0).build().select(2, slow, draw()) == [2, 3]


def test_oort_epsilon_decays_to_its_floor_and_splits_the_slots():
    selector = Oort().build()
    records = {c: reported(1.0 + c) for c in range(10)}
    for _ in range(3):
        selector.select(10, view([10] * 20, records), draw())
    assert selector.epsilon == pytest.approx(0.9 * 0.98 ** 3)
    for _ in range(200):
        selector.select(10, view([10] * 20, records), draw())
    assert selector.epsilon == 0.3


def test_the_pacer_admits_slower_clients_when_utility_is_flat():
    selector = Oort(pacer_step=2, pacer_delta=5.0).build()
    selector.exploited_utility = [10.0, 10.0, 10.5, 10.0]
    selector._pace()
    assert selector.threshold == 35.0
    selector.exploited_utility = [10.0, 10.0, 80.0, 90.0]
    selector._pace()
    assert selector.threshold == 30.0


def test_preferred_duration_is_a_percentile_of_the_measured_ones():
    assert preferred_duration([40.0, 10.0, 20.0, 30.0], 50.0) == 30.0
    assert preferred_duration([], 30.0) == math.inf and preferred_duration([5.0], 100.0) == math.inf


class Returns:
    def __init__(self, clients):
        self.clients = clients

    def select(self, count, view, draw):
        return self.clients


@pytest.mark.parametrize("clients, words", [
    ([1, 1], "repeated"), ([0, 1, 2], "at most 2"), ([3], "not idle and online"), ([9], "not idle and online"),
    (["0"], "not a client id"),
])
def test_the_stage_refuses_what_a_selector_cannot_start(clients, words):
    with pytest.raises(SelectionError, match=words):
        SelectionStage(Returns(clients)).choose(2, view([10] * 4, busy={3}), draw())


def test_the_stage_keeps_what_the_server_learned():
    stage = SelectionStage(Returns([]))
    stage.dispatched([1, 2], round_number=3)
    stage.arrived(1, round_number=3, loss=0.7, metrics={"loss_rms": 0.9}, samples=40, duration_s=12.0, compute_s=8.0)
    stage.failed(2, "dropout")
    assert stage.records[1] == ClientRecord(tries=1, last_tried=3, completions=1, last_round=3, loss=0.7, loss_rms=0.9,
                                            samples=40, duration_s=12.0, compute_s=8.0, last_fate="arrived")
    assert (stage.records[2].completions, stage.records[2].last_fate) == (0, "dropout")

"""Personal layers: heads stay on the clients, evaluation compares global and personalised."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raysim.algorithms.personal import PersonalLayers, holdout_split, local_mask
from raysim.api import run
from raysim.inputs import ConfigError
from raysim.models.models import build_model
from raysim.models.params import FlatModel
from raysim.sim.state.client_state import ClientState
from raysim.sim.state.state_store import ClientStore


def test_local_mask_marks_the_named_layers_only():
    layout = FlatModel(build_model("mlp2nn", input_shape=(60,), num_classes=10)).layout
    mask = local_mask(layout, ("5.",))
    assert mask.sum() == 200 * 10 + 10 and mask[-10:].all() and not mask[0]
    with pytest.raises(ValueError, match="match no state entry"):
        local_mask(layout, ("head.",))


def test_a_client_keeps_its_head_and_sends_only_the_body():
    personal = PersonalLayers(np.array([False, False, True]))
    head, delta = personal.head_of(np.array([1.0, 2.0, 3.0])), personal.without_head(np.array([0.5, 0.5, 0.5]))
    np.testing.assert_array_equal(delta, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(personal.start(np.zeros(3), head), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(personal.start(np.zeros(3), None), [0.0, 0.0, 0.0])


def test_heads_live_in_the_per_client_store_and_spill_to_disk(tmp_path):
    """A million clients' heads must not all sit in the driver's memory: they are store state,
    spilled past the budget and read back unchanged."""
    clients = ClientState(store=ClientStore(budget_bytes=0, directory=tmp_path),
                          personal=PersonalLayers(np.array([False, True, True])))
    assert clients.head(3) is None and clients.start(np.zeros(3), 3) is None
    clients.keep_head(3, start=np.zeros(3), trained_delta=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(clients.sent(np.ones(3)), [1.0, 0.0, 0.0])
    clients.store.flush()
    assert [p.name.split(".")[1] for p in tmp_path.iterdir()] == ["personal"]
    np.testing.assert_array_equal(clients.head(3), np.array([2.0, 3.0], np.float32))
    np.testing.assert_array_equal(clients.start(np.full(3, 9.0), 3), [9.0, 2.0, 3.0])


def test_holdout_split_is_disjoint_and_deterministic():
    parts = [np.arange(10), np.arange(10, 13), np.arange(13, 14)]
    train, held = holdout_split(parts, 0.2, seed=1)
    assert [len(h) for h in held] == [2, 1, 0]
    for t, h, p in zip(train, held, parts):
        assert sorted(np.concatenate([t, h])) == list(p)
    assert all(np.array_equal(a, b) for a, b in zip(held, holdout_split(parts, 0.2, seed=1)[1]))


def test_personalised_heads_beat_the_global_model_on_skewed_clients(tiny, tmp_path):
    scenario = tiny(run={"rounds": 8}, model={"name": "mlp2nn"}, data={"num_clients": 8},
                    selection={"clients_per_round": 8}, client={"epochs": 3},
                    personal={"local_layers": ["5."], "holdout": 0.25})
    outcome = run(scenario, results_root=tmp_path)
    evaluation = pd.read_parquet(outcome.run_dir / "evaluation.parquet")
    rounds = pd.read_parquet(outcome.run_dir / "rounds.parquet")
    last = evaluation[evaluation["round"] == 8]
    assert len(last) == 8
    assert rounds["holdout_personal_accuracy"].iloc[-1] > rounds["holdout_global_accuracy"].iloc[-1]
    full = FlatModel(build_model("mlp2nn", input_shape=(60,), num_classes=10)).layout.nbytes
    clients = pd.read_parquet(outcome.run_dir / "clients.parquet")
    assert (clients["bytes_up"] < full).all()  # heads never leave the clients


def test_personal_layers_need_a_holdout_and_refuse_event_triggering(tiny):
    with pytest.raises(ConfigError, match="needs holdout > 0"):
        tiny(personal={"local_layers": ["5."]})
    with pytest.raises(ConfigError, match="cannot be combined"):
        tiny(personal={"local_layers": ["5."], "holdout": 0.2}, policy={"kind": "event", "threshold": 1.0})


def test_unknown_local_layer_is_a_config_error(tiny, tmp_path):
    with pytest.raises(ConfigError, match="personal.local_layers"):
        run(tiny(model={"name": "mlp2nn"}, personal={"local_layers": ["head."], "holdout": 0.2}),
            results_root=tmp_path)
    assert not any(tmp_path.iterdir())

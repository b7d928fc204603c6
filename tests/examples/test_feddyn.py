"""FedDyn (examples/feddyn): the server's h and model against a hand computation, the client's
regularised step and state against autograd, the one object that gives both halves, the
scenario file run by the CLI, the same as its two-key form (across actor packings and a hard
kill: test_hard_kill.py), and the client in functional form, vectorised or not, against the
per-client client it replaced (tests/examples/feddyn_reference.py), across executors, packings
and a resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from feddyn import FedDyn, FedDynClient, FedDynServer
from raysim.algorithms.strategy import RunFacts, Update
from tests.examples.conftest import make_task, run_example


def update(client_id: int, delta: list[float]) -> Update:
    return Update(client_id=client_id, num_samples=10, steps=1, delta=np.array(delta, dtype=np.float32))


def test_server_h_and_params_after_two_rounds_match_a_hand_computation():
    server = FedDynServer(alpha=0.5)
    params = np.array([1.0, 2.0], dtype=np.float32)
    state = server.init(params, RunFacts(population=4, cohort=2, seed=0))
    # round 1: clients 0 and 1, deltas (1, 0) and (3, 2): sum (4, 2), mean (2, 1)
    params, state, metrics = server.aggregate(params, state, [update(0, [1, 0]), update(1, [3, 2])])
    h1 = np.array([0.0, 0.0]) - 0.5 * np.array([4.0, 2.0]) / 4  # (-0.5, -0.25)
    np.testing.assert_allclose(state["h"], h1)
    np.testing.assert_allclose(params, np.array([1.0, 2.0]) + [2.0, 1.0] - h1 / 0.5)  # (4, 3.5)
    assert params.dtype == np.float32 and metrics["h_norm"] == pytest.approx(np.linalg.norm(h1))
    # round 2: clients 1 and 3, deltas (-2, 2) and (0, -4): sum (-2, -2), mean (-1, -1)
    params, state, _ = server.aggregate(params, state, [update(1, [-2, 2]), update(3, [0, -4])])
    h2 = h1 - 0.5 * np.array([-2.0, -2.0]) / 4  # (-0.25, 0)
    np.testing.assert_allclose(state["h"], h2)
    np.testing.assert_allclose(params, np.array([4.0, 3.5]) + [-1.0, -1.0] - h2 / 0.5)  # (3.5, 2.5)


def test_server_leaves_everything_as_it_is_without_updates_and_refuses_an_unknown_client():
    server = FedDynServer()
    params = np.ones(3, dtype=np.float32)
    server.init(params, RunFacts(population=2, cohort=2, seed=0))
    state = {"h": np.array([0.1, 0.0, -0.1])}
    same, kept, _ = server.aggregate(params, state, [])
    assert same is params and kept is state
    with pytest.raises(ValueError, match="the population has 2 clients"):
        server.aggregate(params, state, [update(2, [0, 0, 0])])
    assert server.broadcast(state)["alpha"].item() == 0.01


def expected_step(task, own: torch.Tensor, alpha: float) -> torch.Tensor:
    """One full-batch step of the FedDyn objective from the start, by autograd on the objective."""
    w = task.start.clone().requires_grad_(True)
    named = task.unflatten(w)
    out = torch.func.functional_call(task.model, named, (task.x,))
    objective = torch.nn.functional.cross_entropy(out, task.y) - own @ w \
        + alpha / 2 * (w - task.start).square().sum()
    (grad,) = torch.autograd.grad(objective, w)
    return task.start - task.settings.sgd.lr * grad


def test_client_step_and_state_follow_the_regularised_objective():
    alpha = 0.3
    first = make_task(batch_size=0)  # one full-batch step
    result = FedDynClient(alpha=alpha).train(first)
    w1 = expected_step(first, torch.zeros(first.start.numel()), alpha)
    torch.testing.assert_close(first.flat.flat, w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.state["gradient"], (-alpha * (w1 - first.start)).numpy(), rtol=1e-5, atol=1e-7)
    assert result.steps == 1  # the trained weights minus the start are sent
    np.testing.assert_array_equal(result.delta, (first.flat.flat - first.start).numpy())
    # the next round starts from the state: its linear term moves the step
    own = torch.as_tensor(result.state["gradient"]) * 50
    second = make_task(batch_size=0, state={"gradient": own.numpy()})
    FedDynClient(alpha=alpha).train(second)
    torch.testing.assert_close(second.flat.flat, expected_step(second, own, alpha), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(second.flat.flat, w1, atol=1e-4)


def test_client_refuses_an_alpha_other_than_the_servers():
    task = make_task(server=FedDynServer(alpha=0.1).broadcast({}))
    with pytest.raises(ValueError, match="alpha = 0.01 but server.strategy_options.alpha = 0.1"):
        FedDynClient().train(task)


def test_the_one_object_gives_both_halves_with_its_alpha():
    feddyn = FedDyn(alpha=0.3)
    client, server = feddyn.client(), feddyn.server()
    assert isinstance(client, FedDynClient) and isinstance(server, FedDynServer)
    assert client.alpha == server.alpha == 0.3


# the scenario file's [algorithm] written as the two keys naming the halves, alpha twice
TWO_KEYS = ("algorithm.kind=''", "algorithm.options={}",
            "client.algorithm='feddyn:FedDynClient'", "client.algorithm_options={alpha=0.01}",
            "server.strategy='feddyn:FedDynServer'", "server.strategy_options={alpha=0.01}")


def without_wall_clock(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if "wall" in c])


def test_the_scenario_runs_from_the_cli_as_its_two_key_form(tmp_path):
    rounds, clients = run_example("feddyn", tmp_path / "results")
    assert rounds["round"].tolist() == [1, 2, 3]
    assert np.isfinite(rounds["test_accuracy"]).all() and rounds["test_accuracy"].iloc[-1] > 0.5
    assert (rounds["h_norm"] > 0).all()
    assert len(clients) == 6 and (clients["status"] == "applied").all()
    two_rounds, two_clients = run_example("feddyn", tmp_path / "two_keys", *TWO_KEYS)
    pd.testing.assert_frame_equal(without_wall_clock(rounds), without_wall_clock(two_rounds))
    pd.testing.assert_frame_equal(without_wall_clock(clients), without_wall_clock(two_clients))


# 8 clients of 20 points each, 4 a round: one group of 4 when vectorised
FEDDYN = {"algorithm": {"kind": "feddyn:FedDyn", "options": {"alpha": 0.1}}, "run": {"rounds": 3},
          "data": {"dataset": "tests.examples.feddyn_reference:points", "partition": "iid", "num_clients": 8},
          "client": {"momentum": 0.5, "batch_size": 5}}
SIM = ["round", "sim_time", "clients", "test_accuracy", "test_loss", "train_loss", "h_norm"]


@pytest.fixture
def batches(monkeypatch):
    """The sizes of the groups the functional client trained as a batch of models, in-process."""
    from raysim.models.functional import FunctionalClient

    sizes, train_batch = [], FunctionalClient.train_batch

    def counted(self, tasks):
        sizes.append(len(tasks))
        return train_batch(self, tasks)

    monkeypatch.setattr(FunctionalClient, "train_batch", counted)
    return sizes


def tables(outcome) -> tuple[pd.DataFrame, pd.DataFrame]:
    from raysim.results import load

    results = load(outcome.run_dir)
    return results.rounds[SIM], results.clients.sort_values(["round", "client_id"])[["client_id", "train_loss"]]


def assert_within_rounding(one: tuple[pd.DataFrame, pd.DataFrame], other: tuple[pd.DataFrame, pd.DataFrame]):
    for a, b in zip(one, other):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False,
                                      rtol=1e-5, atol=1e-6)


def test_the_functional_client_equals_the_per_client_loop_vectorised_or_not(tiny, tmp_path, batches):
    from feddyn import FedDynServer
    from tests.examples.feddyn_reference import LoopFedDynClient

    from raysim.api import run

    without = {**FEDDYN, "algorithm": {"kind": "", "options": {}}}
    loop = tables(run(tiny(**without), results_root=tmp_path / "loop", client_algorithm=LoopFedDynClient(alpha=0.1),
                      strategy=FedDynServer(alpha=0.1)))
    assert batches == []
    one_by_one = tables(run(tiny(**FEDDYN, resources={"vectorize": "off"}), results_root=tmp_path / "off"))
    assert batches == []
    vectorised = tables(run(tiny(**FEDDYN, resources={"vectorize": "on"}), results_root=tmp_path / "on"))
    assert batches == [4, 4, 4]  # every round's 4 clients as one batch of models
    assert (loop[0].h_norm > 0).all() and loop[0].test_accuracy.iloc[-1] > 0.3
    assert_within_rounding(loop, one_by_one)
    assert_within_rounding(loop, vectorised)


def test_the_vectorised_functional_client_resumes_to_the_uninterrupted_run(tiny, tmp_path, batches):
    from tests.conftest import whole_and_resumed

    whole, resumed = whole_and_resumed(tiny(**FEDDYN, resources={"vectorize": "on"}), tmp_path, after=2)
    assert batches and set(batches) == {4}
    for name in ("rounds", "clients"):
        pd.testing.assert_frame_equal(*(without_wall_clock(pd.read_parquet(d / f"{name}.parquet"))
                                        for d in (whole, resumed)))


def test_the_vectorised_functional_client_gives_the_same_tables_on_every_executor_and_packing(tmp_path):
    """In-process, and on Ray with the 4 clients on one actor or on one actor each: the groups
    trained together are the same (sim/kernel/tasks.py:group_tasks), so the tables are the same bits."""
    points = ("data.dataset='tests.examples.feddyn_reference:points'", "data.partition='iid'", "client.batch_size=5",
              "resources.vectorize='on'", "resources.num_cpus=0.5")
    runs = [run_example("feddyn", tmp_path / name, *points, *sets) for name, sets in
            [("local", ["run.executor='local'"]), ("one_actor", ["resources.clients_per_actor=4"]),
             ("two_actors", ["resources.clients_per_actor=1"])]]
    (rounds, clients), others = runs[0], runs[1:]
    assert rounds["round"].tolist() == [1, 2, 3] and (rounds["h_norm"] > 0).all()
    for other_rounds, other_clients in others:
        pd.testing.assert_frame_equal(without_wall_clock(rounds), without_wall_clock(other_rounds))
        pd.testing.assert_frame_equal(without_wall_clock(clients), without_wall_clock(other_clients))

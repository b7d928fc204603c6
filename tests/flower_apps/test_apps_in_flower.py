"""The Flower apps in ``tests/flower_apps`` run on Flower's own in-process machinery (no Ray).

Each app runs with 3 nodes, 2 rounds and 600 training examples through ``run_in_flower``,
which proves them valid Flower 1.42 apps independently of raysim's adapter.
"""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")
torch = pytest.importorskip("torch")

from tests.flower_apps import draws_app, legacy_app, message_app, run_in_flower, stateful_app, task  # noqa: E402

NODES, ROUNDS = 3, 2
RUN_CONFIG = {
    "num-server-rounds": ROUNDS,
    "fraction-train": 1.0,
    "lr": 0.05,
    "local-epochs": 3,
    "train-examples": 600,
}


@pytest.fixture(autouse=True)
def _seeded():
    """Model initialisation draws from torch's global generator: seed it, as a simulator would."""
    torch.manual_seed(0)


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox", "fedadam"])
def test_message_app_runs_each_strategy(strategy, monkeypatch):
    seen_mu = []
    train_fn = message_app.train_fn

    def recording_train(*args, **kwargs):
        seen_mu.append(kwargs.get("proximal_mu"))
        return train_fn(*args, **kwargs)

    monkeypatch.setattr(message_app, "train_fn", recording_train)
    monkeypatch.setattr(message_app, "LAST_RESULT", None)
    config = dict(RUN_CONFIG, strategy=strategy, **{"proximal-mu": 0.5})

    run_in_flower.run(message_app.server, message_app.app, NODES, config)

    result = message_app.LAST_RESULT
    assert result is not None
    assert sorted(result.train_metrics_clientapp) == [1, 2]
    assert all("train_loss" in m for m in result.train_metrics_clientapp.values())
    assert sorted(result.evaluate_metrics_clientapp) == [1, 2]
    assert all("eval_acc" in m for m in result.evaluate_metrics_clientapp.values())
    assert sorted(result.evaluate_metrics_serverapp) == [0, 1, 2]
    assert result.evaluate_metrics_serverapp[ROUNDS]["accuracy"] > 0.1
    assert set(result.arrays.keys()) == set(task.Net().state_dict().keys())
    # FedProx sends "proximal-mu" in the train config and the ClientApp applies it
    assert seen_mu == [0.5 if strategy == "fedprox" else 0.0] * (NODES * ROUNDS)


def test_proximal_term_pulls_towards_global_weights():
    trainloader, _ = task.load_data(0, 3, 600)

    def drift(mu: float) -> float:
        torch.manual_seed(0)
        net = task.Net()
        start = [p.detach().clone() for p in net.parameters()]
        task.train(net, trainloader, 1, 0.05, torch.device("cpu"), proximal_mu=mu)
        return sum(float((p.detach() - s).pow(2).sum()) for p, s in zip(net.parameters(), start))

    assert drift(10.0) < drift(0.0)


def test_stateful_app_counts_in_its_context():
    replies = []
    run_in_flower.run(
        stateful_app.server, stateful_app.app, NODES, {"num-server-rounds": ROUNDS}, replies=replies
    )

    counts: dict[int, list[int]] = {}
    for reply in replies:
        assert reply.metadata.message_type == "train"
        counts.setdefault(reply.metadata.src_node_id, []).append(
            reply.content["metrics"]["times-trained"]
        )
    assert len(counts) == NODES
    assert all(seq == [1, 2] for seq in counts.values()), counts
    result = stateful_app.RESULTS[-1]
    assert [result.train_metrics_clientapp[r]["times-trained"] for r in (1, 2)] == [1.0, 2.0]


def test_draws_app_reports_its_draws_and_examples():
    replies = []
    run_in_flower.run(draws_app.server, draws_app.app, NODES, {"num-server-rounds": ROUNDS}, replies=replies)

    kinds = [r.metadata.message_type for r in replies]
    assert kinds.count("train") == kinds.count("evaluate") == NODES * ROUNDS
    for reply in replies:
        metrics = reply.content["metrics"]
        assert metrics["num-examples"] == (100 if reply.metadata.message_type == "train" else 20)
        assert {"py-draw", "np-draw", "torch-draw"} <= set(metrics.keys())


def test_legacy_app_runs(monkeypatch):
    import flwr.serverapp.server_app as server_app_module

    histories = []
    start_grid = server_app_module.start_grid

    def recording_start_grid(**kwargs):
        histories.append(start_grid(**kwargs))
        return histories[-1]

    # ServerApp discards start_grid's History; catch it on the way out
    monkeypatch.setattr(server_app_module, "start_grid", recording_start_grid)
    replies = []
    run_in_flower.run(legacy_app.server, legacy_app.app, NODES, RUN_CONFIG, replies=replies)

    kinds = [(r.metadata.group_id, r.metadata.message_type) for r in replies]
    for rnd in ("1", "2"):
        assert kinds.count((rnd, "train")) == NODES
        assert kinds.count((rnd, "evaluate")) == NODES
    (history,) = histories
    assert [rnd for rnd, _ in history.losses_distributed] == [1, 2]

"""raysim's Flower Grid on its own: the simulated deadline, offline nodes, replies in node order,
message bytes, and the clock moving without a wall-clock wait (sim/bridges/flower_grid.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common.constant import SUPERLINK_NODE_ID  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from raysim.sim.cost.devices import Population, SystemConfig  # noqa: E402
from raysim.sim.bridges.flower_grid import FIRST_NODE, SimulatedGrid, answer, payload_bytes  # noqa: E402

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Reports as many examples as its partition id times 1,000, and echoes the arrays."""
    examples = 1000 * (context.node_config["partition-id"] + 1)
    return Message(RecordDict({"arrays": msg.content["arrays"],
                               "metrics": MetricRecord({"num-examples": examples})}), reply_to=msg)


def grid(system: SystemConfig, rows: list, *, forward_fraction: float = 1 / 3) -> SimulatedGrid:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SUPERLINK_NODE_ID, 1
    return SimulatedGrid(run_id=1, num_nodes=3, population=Population(system, 3, seed=0), seed=0,
                         execute=lambda deliveries: [answer(app, d, name="app") for d in deliveries],
                         run_config={"local-epochs": 2}, local_epochs="local-epochs", examples_key="num-examples",
                         forward_fraction=forward_fraction, on_round=rows.append)


def messages(g: SimulatedGrid) -> list[Message]:
    content = RecordDict({"arrays": ArrayRecord([np.zeros(1000, np.float32)])})
    return [Message(content, node, "train") for node in reversed(list(g.get_node_ids()))]


def test_replies_come_in_node_order_on_the_simulated_clock_and_a_deadline_drops_the_slow():
    rows: list = []
    g = grid(SystemConfig(seconds_per_sample=0.01, latency_s=0.0), rows)
    started = time.perf_counter()
    replies = g.send_and_receive(messages(g))
    assert [r.metadata.src_node_id for r in replies] == [FIRST_NODE, FIRST_NODE + 1, FIRST_NODE + 2]
    # node p computes 1000 (p + 1) examples x 2 local epochs x 0.01 s
    assert g.clock.now == pytest.approx(3000 * 2 * 0.01 + 2 * 8 * payload_bytes(messages(g)[0].content) / 10e6, rel=1e-3)
    late = g.send_and_receive(messages(g), timeout=45.0)  # nodes 0 (20 s) and 1 (40 s) make it
    assert [r.metadata.src_node_id for r in late] == [FIRST_NODE, FIRST_NODE + 1]
    g.finish()
    assert [row["status"] for row in rows[-1].rows] == ["replied", "replied", "late"]  # by node
    assert rows[-1].ended == pytest.approx(g.clock.now) and time.perf_counter() - started < 10  # no wall-clock wait


def test_an_offline_node_gives_no_reply_and_runs_nothing():
    rows: list = []
    g = grid(SystemConfig(availability="intermittent", mean_online_s=1.0, mean_offline_s=1e6), rows)
    g.clock.advance_to(1e5)  # far into the on/off trace: almost surely offline
    replies = g.send_and_receive(messages(g), timeout=5.0)
    g.finish()
    assert not replies and {row["status"] for row in rows[-1].rows} == {"offline"}
    assert g.clock.now == pytest.approx(1e5 + 5.0)  # the server waited out its deadline


def test_a_node_whose_reply_is_lost_keeps_its_context_as_it_was():
    """The app changes its Context in place; only a delivered reply's context is kept, in this
    process as on an actor (answer works on the node's own copy)."""
    rows: list = []
    g = grid(SystemConfig(dropout=0.5), rows)
    counting = ClientApp()

    @counting.train()
    def count(msg: Message, context: Context) -> Message:
        context.state["seen"] = MetricRecord({"n": 1})
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": 10})}), reply_to=msg)

    g.execute = lambda deliveries: [answer(counting, d, name="counting") for d in deliveries]
    g.send_and_receive(messages(g))
    g.finish()
    fates = {row["client_id"]: row["status"] for row in rows[-1].rows}
    assert set(fates.values()) == {"replied", "dropout"}  # seed 0 drops some, keeps others
    for node, fate in fates.items():
        assert ("seen" in g.contexts[node].state) == (fate == "replied")


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Reports as many examples as its partition id times 1,000."""
    examples = 1000 * (context.node_config["partition-id"] + 1)
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": examples})}), reply_to=msg)


@pytest.mark.parametrize("fraction", [1 / 3, 0.5])
def test_an_evaluated_example_costs_forward_fraction_of_a_trained_one_and_no_epochs(fraction):
    rows: list = []
    g = grid(SystemConfig(seconds_per_sample=0.01), rows, forward_fraction=fraction)
    g.send_and_receive(messages(g))
    g.send_and_receive([Message(RecordDict(), node, "evaluate") for node in g.get_node_ids()])
    g.finish()
    compute = {(row["message_type"], row["client_id"]): row["compute_s"] for row in rows[-1].rows}
    for p in range(3):
        assert compute["train", p] == pytest.approx(1000 * (p + 1) * 2 * 0.01)  # local-epochs = 2
        assert compute["evaluate", p] == pytest.approx(1000 * (p + 1) * fraction * 0.01)


def test_a_reply_without_an_example_count_ends_the_run_naming_the_node_and_the_message():
    """Refused rather than computed for free; kept, so a legacy strategy's thread pool (which
    counts an exception as one failed client) cannot swallow it: the next call and the end of
    the run raise it again."""
    from raysim.sim.kernel.tasks import FlowerAppError

    rows: list = []
    g = grid(SystemConfig(), rows)
    silent = ClientApp()

    @silent.train()
    def no_count(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"loss": 1.0})}), reply_to=msg)

    g.execute = lambda deliveries: [answer(silent, d, name="silent") for d in deliveries]
    with pytest.raises(FlowerAppError, match=r"node 1002 \(partition 2\) replied to the 'train' message of round 1 "
                                             "without an example count.*'num-examples'"):
        g.send_and_receive(messages(g))
    with pytest.raises(FlowerAppError, match="node 1002"):
        g.send_and_receive(messages(g))
    with pytest.raises(FlowerAppError, match="node 1002"):
        g.finish()

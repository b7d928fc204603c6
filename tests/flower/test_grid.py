"""raysim's Flower Grid on its own: the simulated deadline, offline nodes, replies in node order,
message bytes, and the clock moving without a wall-clock wait (sim/flower_grid.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common.constant import SUPERLINK_NODE_ID  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from raysim.sim.flower_grid import FIRST_NODE, SimulatedGrid, answer, payload_bytes  # noqa: E402
from raysim.sim.system import Population, SystemConfig  # noqa: E402

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Reports as many examples as its partition id times 1,000, and echoes the arrays."""
    examples = 1000 * (context.node_config["partition-id"] + 1)
    return Message(RecordDict({"arrays": msg.content["arrays"],
                               "metrics": MetricRecord({"num-examples": examples})}), reply_to=msg)


def grid(system: SystemConfig, rows: list) -> SimulatedGrid:
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, SUPERLINK_NODE_ID, 1
    return SimulatedGrid(run_id=1, num_nodes=3, population=Population(system, 3, seed=0), seed=0,
                         execute=lambda deliveries: [answer(app, d, name="app") for d in deliveries],
                         run_config={"local-epochs": 2}, local_epochs="local-epochs", on_round=rows.append)


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
    assert g.now == pytest.approx(3000 * 2 * 0.01 + 2 * 8 * payload_bytes(messages(g)[0].content) / 10e6, rel=1e-3)
    late = g.send_and_receive(messages(g), timeout=45.0)  # nodes 0 (20 s) and 1 (40 s) make it
    assert [r.metadata.src_node_id for r in late] == [FIRST_NODE, FIRST_NODE + 1]
    g.finish()
    assert [row["status"] for row in rows[-1].rows] == ["replied", "replied", "late"]  # by node
    assert rows[-1].ended == pytest.approx(g.now) and time.perf_counter() - started < 10  # no wall-clock wait


def test_an_offline_node_gives_no_reply_and_runs_nothing():
    rows: list = []
    g = grid(SystemConfig(availability="intermittent", mean_online_s=1.0, mean_offline_s=1e6), rows)
    g.now = 1e5  # far into the on/off trace: almost surely offline
    replies = g.send_and_receive(messages(g), timeout=5.0)
    g.finish()
    assert not replies and {row["status"] for row in rows[-1].rows} == {"offline"}
    assert g.now == pytest.approx(1e5 + 5.0)  # the server waited out its deadline


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

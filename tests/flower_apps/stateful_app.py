"""flower_apps: a Message-API ClientApp that keeps state in its Context.

Every train message increments ``context.state["counter"]["count"]`` and the reply
carries it as ``"times-trained"``; the arrays come back unchanged. No data needed.

ClientApp: ``app``; ServerApp: ``server``.

run_config keys read:
  ClientApp: none
  ServerApp: ``num-server-rounds``
"""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

# Flower ClientApp
app = ClientApp()


@app.train()
def train(msg: Message, context: Context):
    """Count this node's trainings in its Context; echo the arrays."""
    if "counter" not in context.state:
        context.state["counter"] = MetricRecord({"count": 0})
    counter = context.state["counter"]
    counter["count"] = int(counter["count"]) + 1
    context.state["counter"] = counter

    metrics = MetricRecord({"times-trained": counter["count"], "num-examples": 10})
    content = RecordDict({"arrays": msg.content["arrays"], "metrics": metrics})
    return Message(content=content, reply_to=msg)


server = ServerApp()
RESULTS = []  # each run's Result, in this process


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg on a tiny model, training only."""
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0)
    RESULTS.append(strategy.start(grid=grid, initial_arrays=ArrayRecord(torch.nn.Linear(4, 2).state_dict()),
                                  num_rounds=context.run_config["num-server-rounds"]))

"""flower_apps: a Message-API ClientApp that reports what it draws from the global generators.

Each reply carries one draw from Python's ``random``, numpy's and torch's global generators,
as a Flower app's own randomness (dropout layers, augmentation, sampling) would consume them;
train replies echo the arrays. ``report-examples`` (default true) adds ``num-examples``
(``train-examples`` to train, ``eval-examples`` to evaluate), what Flower's strategies weight by.
No data needed.

ClientApp: ``app``; ServerApp: ``server``.

run_config keys read:
  ClientApp: ``train-examples`` (default 100), ``eval-examples`` (default 20),
             ``report-examples`` (default true)
  ServerApp: ``num-server-rounds``
"""

import random

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

# Flower ClientApp
app = ClientApp()


def draws(context: Context, examples_key: str, default: int) -> MetricRecord:
    """This call's draws, and its example count when the run config asks for one."""
    metrics = {"py-draw": random.random(), "np-draw": float(np.random.random()), "torch-draw": float(torch.rand(1))}
    if context.run_config.get("report-examples", True):
        metrics["num-examples"] = int(context.run_config.get(examples_key, default))
    return MetricRecord(metrics)


@app.train()
def train(msg: Message, context: Context):
    """Draw; echo the arrays."""
    content = RecordDict({"arrays": msg.content["arrays"], "metrics": draws(context, "train-examples", 100)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context):
    """Draw."""
    return Message(content=RecordDict({"metrics": draws(context, "eval-examples", 20)}), reply_to=msg)


server = ServerApp()


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg on a tiny model, every node training and evaluating each round."""
    strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=1, min_evaluate_nodes=1,
                      min_available_nodes=1)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(torch.nn.Linear(4, 2).state_dict()),
                   num_rounds=context.run_config["num-server-rounds"])

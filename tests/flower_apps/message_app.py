"""flower_apps: a Flower / PyTorch app on the Message API (Flower 1.42 quickstart-pytorch).

ClientApp: ``app``; ServerApp: ``server``.

run_config keys read:
  ClientApp: ``local-epochs``, ``train-examples`` (default 2000)
  ServerApp: ``num-server-rounds``, ``fraction-train``, ``lr``,
             ``strategy`` (fedavg | fedprox | fedadam, default fedavg),
             ``proximal-mu`` (default 0.1, FedProx only),
             ``fraction-evaluate`` (default 1.0)
"""

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

from .task import Net, central_test_loader, load_data
from .task import test as test_fn
from .task import train as train_fn

# Flower ClientApp
app = ClientApp()


def model_and_data(msg: Message, context: Context):
    """The received model on this node's device, and this node's (trainloader, valloader)."""
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    model.to(device)
    partition_id = context.node_config["partition-id"]
    num_partitions = context.node_config["num-partitions"]
    train_examples = context.run_config.get("train-examples", 2000)
    return model, device, load_data(partition_id, num_partitions, train_examples)


@app.train()
def train(msg: Message, context: Context):
    """Train the model on local data."""
    model, device, (trainloader, _) = model_and_data(msg, context)

    # FedProx sends its proximal term weight in the config under "proximal-mu"
    config = msg.content["config"]
    proximal_mu = float(config.get("proximal-mu", 0.0))
    global_params = None
    if proximal_mu > 0:
        global_params = [p.detach().clone() for p in model.parameters()]

    # Call the training function
    train_loss = train_fn(
        model,
        trainloader,
        context.run_config["local-epochs"],
        config["lr"],
        device,
        proximal_mu=proximal_mu,
        global_params=global_params,
    )

    # Construct and return reply Message
    model_record = ArrayRecord(model.state_dict())
    metrics = {
        "train_loss": train_loss,
        "num-examples": len(trainloader.dataset),
    }
    metric_record = MetricRecord(metrics)
    content = RecordDict({"arrays": model_record, "metrics": metric_record})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context):
    """Evaluate the model on local data."""
    model, device, (_, valloader) = model_and_data(msg, context)

    # Call the evaluation function
    eval_loss, eval_acc = test_fn(model, valloader, device)

    # Construct and return reply Message
    metrics = {
        "eval_loss": eval_loss,
        "eval_acc": eval_acc,
        "num-examples": len(valloader.dataset),
    }
    metric_record = MetricRecord(metrics)
    content = RecordDict({"metrics": metric_record})
    return Message(content=content, reply_to=msg)


# Flower ServerApp
server = ServerApp()

LAST_RESULT = None  # The Result of the last run of this ServerApp in this process


@server.main()
def main(grid: Grid, context: Context) -> None:
    """Main entry point for the ServerApp."""
    global LAST_RESULT

    # Read run config
    fraction_train: float = context.run_config["fraction-train"]
    fraction_evaluate: float = context.run_config.get("fraction-evaluate", 1.0)
    num_rounds: int = context.run_config["num-server-rounds"]
    lr: float = context.run_config["lr"]
    strategy_name: str = context.run_config.get("strategy", "fedavg")

    # Load global model
    global_model = Net()
    arrays = ArrayRecord(global_model.state_dict())

    # Initialize strategy
    if strategy_name == "fedavg":
        strategy = FedAvg(fraction_train=fraction_train, fraction_evaluate=fraction_evaluate)
    elif strategy_name == "fedprox":
        strategy = FedProx(
            fraction_train=fraction_train,
            fraction_evaluate=fraction_evaluate,
            proximal_mu=context.run_config.get("proximal-mu", 0.1),
        )
    elif strategy_name == "fedadam":
        strategy = FedAdam(
            fraction_train=fraction_train, fraction_evaluate=fraction_evaluate, eta=0.01
        )
    else:
        raise ValueError(f"Unknown strategy: {strategy_name}")

    # Start strategy, run FedAvg for `num_rounds`
    result = strategy.start(
        grid=grid,
        initial_arrays=arrays,
        train_config=ConfigRecord({"lr": lr}),
        num_rounds=num_rounds,
        evaluate_fn=central_evaluate,
    )
    LAST_RESULT = result


def central_evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    """Evaluate model on central data."""

    # Load the model and initialize it with the received weights
    model = Net()
    model.load_state_dict(arrays.to_torch_state_dict())
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    model.to(device)

    # Evaluate the global model on the test set
    test_loss, test_acc = test_fn(model, central_test_loader(), device)

    # Return the evaluation metrics
    return MetricRecord({"accuracy": test_acc, "loss": test_loss})

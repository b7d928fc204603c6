"""flower_apps: a Flower / PyTorch app on the legacy API (NumPyClient, server_fn).

ClientApp: ``app``; ServerApp: ``server``.

run_config keys read:
  ClientApp: ``local-epochs``, ``train-examples`` (default 2000); ``lr`` arrives in the
             fit config, sent by the server
  ServerApp: ``num-server-rounds``, ``lr``, ``fraction-fit`` (default 1.0),
             ``fraction-evaluate`` (default 1.0)
"""

from collections import OrderedDict

import torch
from flwr.app import Context
from flwr.client import ClientApp, NumPyClient
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg

from .task import Net, load_data
from .task import test as test_fn
from .task import train as train_fn


def get_weights(net):
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net, parameters):
    params_dict = zip(net.state_dict().keys(), parameters)
    state_dict = OrderedDict({k: torch.tensor(v) for k, v in params_dict})
    net.load_state_dict(state_dict, strict=True)


# Define Flower Client
class FlowerClient(NumPyClient):
    def __init__(self, net, trainloader, valloader, local_epochs):
        self.net = net
        self.trainloader = trainloader
        self.valloader = valloader
        self.local_epochs = local_epochs
        self.device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        self.net.to(self.device)

    def get_parameters(self, config):
        return get_weights(self.net)

    def fit(self, parameters, config):
        """Train the model with data of this client."""
        set_weights(self.net, parameters)
        train_loss = train_fn(
            self.net, self.trainloader, self.local_epochs, config["lr"], self.device
        )
        return (
            get_weights(self.net),
            len(self.trainloader.dataset),
            {"train_loss": train_loss},
        )

    def evaluate(self, parameters, config):
        """Evaluate the model on the data this client has."""
        set_weights(self.net, parameters)
        loss, accuracy = test_fn(self.net, self.valloader, self.device)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}


def client_fn(context: Context):
    """Construct a Client that will be run in a ClientApp."""
    net = Net()
    partition_id = context.node_config["partition-id"]
    num_partitions = context.node_config["num-partitions"]
    train_examples = context.run_config.get("train-examples", 2000)
    trainloader, valloader = load_data(partition_id, num_partitions, train_examples)
    local_epochs = context.run_config["local-epochs"]

    # Return Client instance
    return FlowerClient(net, trainloader, valloader, local_epochs).to_client()


# Flower ClientApp
app = ClientApp(client_fn=client_fn)


def server_fn(context: Context):
    """Construct components that set the ServerApp behaviour."""
    num_rounds = context.run_config["num-server-rounds"]
    lr = context.run_config["lr"]

    # Initialize model parameters
    parameters = ndarrays_to_parameters(get_weights(Net()))

    # Define the strategy
    strategy = FedAvg(
        fraction_fit=context.run_config.get("fraction-fit", 1.0),
        fraction_evaluate=context.run_config.get("fraction-evaluate", 1.0),
        min_available_clients=2,
        initial_parameters=parameters,
        on_fit_config_fn=lambda server_round: {"lr": lr},
    )
    config = ServerConfig(num_rounds=num_rounds)

    return ServerAppComponents(strategy=strategy, config=config)


# Create ServerApp
server = ServerApp(server_fn=server_fn)

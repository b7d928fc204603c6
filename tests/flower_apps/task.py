"""flower_apps: the quickstart's shared pieces (model, data, train, test), on Fashion-MNIST.

Adapted from Flower's quickstart-pytorch ``task.py``: the same small CNN for 28x28 grey
images, and Fashion-MNIST read from the Debian package's IDX files (no internet).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530
BATCH_SIZE = 32
VAL_FRACTION = 0.2
CENTRAL_TEST_EXAMPLES = 1000


class Net(nn.Module):
    """Model (simple CNN adapted from 'PyTorch: A 60 Minute Blitz'), for 28x28 grey."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 4 * 4)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


_cache: dict[str, np.ndarray] = {}  # Read each IDX file once per process


def _read_idx(name: str, header: int) -> np.ndarray:
    if name not in _cache:
        with gzip.open(DATA_DIR / name, "rb") as f:
            _cache[name] = np.frombuffer(f.read(), dtype=np.uint8, offset=header)
    return _cache[name]


def _images(split: str) -> np.ndarray:
    return _read_idx(f"{split}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)


def _labels(split: str) -> np.ndarray:
    return _read_idx(f"{split}-labels-idx1-ubyte.gz", 8)


def _dataset(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
    """Pixels to float32 in [0, 1], normalised, shaped [n, 1, 28, 28]."""
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return TensorDataset(
        torch.from_numpy(x[:, None, :, :].copy()),
        torch.from_numpy(labels.astype(np.int64)),
    )


def load_data(partition_id: int, num_partitions: int, train_examples: int = 2000):
    """This node's IID partition of the first ``train_examples`` training images:
    (trainloader, valloader), the last 20% of the partition held out for validation."""
    order = np.random.default_rng(0).permutation(train_examples)
    indices = np.array_split(order, num_partitions)[partition_id]
    cut = len(indices) - int(round(VAL_FRACTION * len(indices)))
    images, labels = _images("train"), _labels("train")
    train_idx, val_idx = indices[:cut], indices[cut:]
    generator = torch.Generator().manual_seed(int(partition_id))
    trainloader = DataLoader(
        _dataset(images[train_idx], labels[train_idx]),
        batch_size=BATCH_SIZE,
        shuffle=True,
        generator=generator,
    )
    valloader = DataLoader(_dataset(images[val_idx], labels[val_idx]), batch_size=BATCH_SIZE)
    return trainloader, valloader


def central_test_loader():
    """The server side's test set: the first 1,000 Fashion-MNIST test images."""
    n = CENTRAL_TEST_EXAMPLES
    return DataLoader(_dataset(_images("t10k")[:n], _labels("t10k")[:n]), batch_size=128)


def train(net, trainloader, epochs, lr, device, proximal_mu=0.0, global_params=None):
    """Train the model on the training set; return the mean training loss.

    With ``proximal_mu > 0`` the FedProx term ``mu / 2 * ||w - w_global||^2`` is added to
    the loss, ``global_params`` being the weights received from the server (taken from
    ``net`` before training when not given).
    """
    net.to(device)  # move model to GPU if available
    if proximal_mu > 0 and global_params is None:
        global_params = [p.detach().clone() for p in net.parameters()]
    criterion = torch.nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for images, labels in trainloader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(net(images), labels)
            if proximal_mu > 0:
                proximal_term = 0.0
                for local_weights, global_weights in zip(net.parameters(), global_params):
                    proximal_term += (local_weights - global_weights.to(device)).pow(2).sum()
                loss = loss + (proximal_mu / 2) * proximal_term
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    return running_loss / (epochs * len(trainloader))


def test(net, testloader, device):
    """Validate the model on the test set; return (loss, accuracy)."""
    net.to(device)
    net.eval()
    criterion = torch.nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for images, labels in testloader:
            images, labels = images.to(device), labels.to(device)
            outputs = net(images)
            loss += criterion(outputs, labels).item()
            correct += (torch.max(outputs.data, 1)[1] == labels).sum().item()
    accuracy = correct / len(testloader.dataset)
    loss = loss / len(testloader)
    return loss, accuracy
